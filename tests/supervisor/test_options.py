"""A HUP reads the options again: what changed, what a reload applies (--env, --workers)."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator

import pytest

from uwsgiapp.config import make_config
from uwsgiapp.supervisor import options
from uwsgiapp.supervisor.actions import Log, LogLevel


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """``options.watch`` fed from a list the test fills (the last item is read)."""
    monkeypatch.setattr(options, "_current", None)
    monkeypatch.setattr(options, "_reread", None)
    monkeypatch.delenv("OPT_A", raising=False)
    monkeypatch.delenv("OPT_B", raising=False)
    states: list[object] = []

    def reread() -> object:
        state = states[-1]
        if isinstance(state, Exception):
            raise state
        return state

    started = make_config(app="a:app", env=("OPT_A=1", "OPT_B=2"), workers=2)
    os.environ.update(started.env_vars())  # as the command line did at start
    options.watch(started, reread, {"OPT_B": "from the start"})  # type: ignore[arg-type]
    yield states
    os.environ.pop("OPT_A", None)
    os.environ.pop("OPT_B", None)


def test_env_and_workers_apply_the_rest_is_said(watched: list[object]) -> None:
    watched.append(
        make_config(app="a:app", env=("OPT_A=10",), workers=3, harakiri=5.0, max_requests=9)
    )
    workers, logged = options.on_hup(most_workers=32)
    said = [line.message for line in logged]
    assert workers == 3
    # OPT_B dropped from --env: back to the value it had before --env set it.
    assert os.environ["OPT_A"] == "10" and os.environ["OPT_B"] == "from the start"
    assert said == [
        "HUP: --env read again: 1 set, 1 removed",
        "HUP: --harakiri changed since the start: a restart or a USR2 upgrade applies it (a "
        "reload applies --env, --workers and the options a worker reads as it starts)",
        "HUP: --max-requests 9 read again: the new workers take them",
        "HUP: --workers read again: 3",
    ]
    # What a restart must still apply is a warning (a uWSGI user expects HUP to apply it).
    levels = [LogLevel.INFO, LogLevel.WARNING, LogLevel.INFO, LogLevel.INFO]
    assert [line.level for line in logged] == levels
    # Read again, unchanged: the live ones are applied; the others are said until a restart.
    assert options.on_hup(most_workers=32) == (None, [logged[1]])


def test_what_a_usr2_upgrade_keeps_is_said_to_need_a_restart(watched: list[object]) -> None:
    # The new master inherits the socket files as they are (their mode, their owner) and
    # starts as the user the old one dropped to: "a USR2 upgrade applies it" was not so.
    watched.append(
        make_config(
            app="a:app", env=("OPT_A=1", "OPT_B=2"), workers=2, chmod_socket=0o666, harakiri=5.0
        )
    )
    said = [line.message for line in options.on_hup(most_workers=32)[1]]
    assert said == [
        "HUP: --harakiri changed since the start: a restart or a USR2 upgrade applies it (a "
        "reload applies --env, --workers and the options a worker reads as it starts)",
        "HUP: --chmod-socket changed since the start: a restart applies it (a USR2 upgrade "
        "takes over the sockets, and the user, as they are) (a reload applies --env, "
        "--workers and the options a worker reads as it starts)",
    ]


def test_nothing_changed_says_nothing(watched: list[object]) -> None:
    watched.append(make_config(app="a:app", env=("OPT_B=2", "OPT_A=1"), workers=2))
    assert options.on_hup(most_workers=32) == (None, [])
    assert (os.environ["OPT_A"], os.environ["OPT_B"]) == ("1", "2")


def test_a_reload_goes_back_to_the_workers_option_after_ttin_or_ttou(watched: list[object]) -> None:
    # gunicorn's HUP does: TTIN is a bump for now, a deploy's reload starts from --workers.
    watched.append(make_config(app="a:app", env=("OPT_B=2", "OPT_A=1"), workers=2))
    assert options.on_hup(32, running=5) == (
        2,
        [Log(LogLevel.INFO, "HUP: back to --workers 2 (TTIN/TTOU had made it 5)")],
    )
    assert options.on_hup(32, running=2) == (None, [])


def test_options_that_cannot_be_read_again_keep_the_running_ones(watched: list[object]) -> None:
    watched.append(OSError("[Errno 2] No such file or directory: 'uwsgiapp.toml'"))
    workers, said = options.on_hup(most_workers=32)
    assert workers is None and os.environ["OPT_A"] == "1"
    assert said == [  # a warning: the next start would fail on it
        Log(
            LogLevel.WARNING,
            "HUP: cannot read the options again ([Errno 2] No such file or directory: "
            "'uwsgiapp.toml'): keeping those read before",
        )
    ]


def test_more_workers_than_the_start_allows_are_capped(watched: list[object]) -> None:
    watched.append(make_config(app="a:app", env=("OPT_A=1", "OPT_B=2"), workers=100))
    workers, said = options.on_hup(most_workers=32)
    assert workers == 32
    assert said[-1] == Log(LogLevel.WARNING, "HUP: --workers 100 is more than this start allows")


def test_a_reload_called_off_takes_its_options_back(watched: list[object]) -> None:
    # The new code did not import: the old serves on, with the environment and the workers
    # it had (the next HUP then says the change again).
    watched.append(make_config(app="a:app", env=("OPT_A=10",), workers=3))
    assert options.on_hup(most_workers=32)[0] == 3
    assert options.rollback() == 2
    assert (os.environ["OPT_A"], os.environ["OPT_B"]) == ("1", "2")
    assert options.rollback() is None  # once
    assert options.on_hup(most_workers=32)[0] == 3


def test_while_a_child_tries_the_new_code_the_master_keeps_the_old_env(
    watched: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker forked during the trial import runs the old code: it got the new --env, and
    # kept it after the reload was called off (a review's repro: 'v1 X=2').
    monkeypatch.setattr(options, "_held", {})
    watched.append(make_config(app="a:app", env=("OPT_A=10",), workers=2))
    options.on_hup(most_workers=32)
    assert os.environ["OPT_A"] == "10"  # the child, forked now, has it
    options.hold_environ()
    assert (os.environ["OPT_A"], os.environ["OPT_B"]) == ("1", "2")
    options.release_environ()  # the child imported it
    assert (os.environ["OPT_A"], os.environ["OPT_B"]) == ("10", "from the start")
    # Called off instead: the old environment, and nothing held comes back later.
    watched.append(make_config(app="a:app", env=("OPT_A=20",), workers=2))
    options.on_hup(most_workers=32)
    options.hold_environ()
    options.rollback()
    options.release_environ()
    assert (os.environ["OPT_A"], os.environ["OPT_B"]) == ("10", "from the start")
    # A HUP whose options cannot be read again: nothing to hold or take back (the earlier
    # HUP's changes stay).
    watched.append(make_config(app="a:app", env=("OPT_A=30",), workers=3))
    options.on_hup(most_workers=32)
    options.hold_environ()
    options.release_environ()
    watched.append(OSError("gone"))
    options.on_hup(most_workers=32)
    options.hold_environ()
    assert options.rollback() is None
    assert (os.environ["OPT_A"], os.environ["OPT_B"]) == ("30", "from the start")


def test_a_hup_says_when_another_uwsgiapp_is_installed_than_runs() -> None:
    """After a pip install -U, the reload kept the running uwsgiapp without a word (and with
    --lazy-apps the workers mixed the two)."""
    assert options.installed_elsewhere() == ""  # the one installed is the one running
    said = options.installed_elsewhere(running="0.0.1")
    installed = importlib.metadata.version("uwsgiapp")
    assert said.startswith(f"HUP: uwsgiapp {installed} is installed, this master runs 0.0.1")
    assert "a USR2 or a restart runs" in said and "--lazy-apps" in said


def test_the_hup_says_it_when_another_uwsgiapp_is_installed(
    watched: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9")  # pip install -U
    watched.append(make_config(app="a:app", env=("OPT_A=1", "OPT_B=2"), workers=2))
    _, said = options.on_hup(most_workers=32)
    assert [line.level for line in said] == [LogLevel.WARNING]
    assert str(said[0].message).startswith("HUP: uwsgiapp 9.9.9 is installed, this master runs ")


def test_a_workers_options_go_to_the_workers_forked_after_the_hup(watched: list[object]) -> None:
    # A uWSGI user raises buffer-size or max-requests in the ini and HUPs (uWSGI's reload
    # applies it): "a restart applies it" was all this said.
    started = make_config(app="a:app", env=("OPT_A=1", "OPT_B=2"), workers=2, harakiri=9.0)
    assert options.for_workers(started) == started
    watched.append(
        make_config(
            app="a:app", env=("OPT_A=1", "OPT_B=2"), workers=2, buffer_size=32768, max_requests=50
        )
    )
    said = [line.message for line in options.on_hup(most_workers=32)[1]]
    assert said == [
        "HUP: --buffer-size 32768, --max-requests 50 read again: the new workers take them"
    ]
    forked = options.for_workers(started)
    assert (forked.buffer_size, forked.max_requests, forked.harakiri) == (32768, 50, 9.0)
    options.rollback()  # the new code did not import: the old workers' options come back
    assert options.for_workers(started) == started


def test_while_a_child_tries_the_new_code_workers_keep_the_old_options(
    watched: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker recycled during the trial import runs the old code: it took the new
    # --limit-post (413s), and kept it after the reload was called off (a review's repro).
    monkeypatch.setattr(options, "_held", {})
    monkeypatch.setattr(options, "_held_workers", False)
    started = make_config(app="a:app", env=("OPT_A=1", "OPT_B=2"), workers=2)  # the watched's
    watched.append(make_config(app="a:app", env=("OPT_A=1", "OPT_B=2"), workers=2, limit_post=10))
    options.on_hup(most_workers=32)
    options.hold_environ()
    assert options.for_workers(started).limit_post == 0  # forked during the trial: as at start
    options.release_environ()  # the child imported it: the reload's workers take it
    assert options.for_workers(started).limit_post == 10
    options.on_hup(most_workers=32)  # again, and this time called off
    options.hold_environ()
    options.rollback()
    assert options.for_workers(started).limit_post == 10  # as the last reload applied it
