"""The client commands and ``top`` stay out of a server's processes, yet are whole when run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.procs import Server, uwsgi_exchange, uwsgi_get
from uwsgiapp.cli import build_parser
from uwsgiapp.lazycommands import LAZY_COMMANDS, command_named

UNUSED_BY_SERVE = {"uwsgiapp.clientcli", "uwsgiapp.client", "uwsgiapp.stats.top"}


def test_a_worker_holds_no_client_or_top_code(tmp_path: Path) -> None:
    server = Server(tmp_path, "supervisor_app:app", workers=1).start()
    try:
        answer = uwsgi_exchange(server.socket, uwsgi_get("/modules"), timeout=10).data
    finally:
        server.stop()
    modules = set(answer.partition(b"\r\n\r\n")[2].decode().split())
    assert "uwsgiapp.server.worker" in modules  # the worker's own list
    assert not modules & UNUSED_BY_SERVE


@pytest.mark.parametrize("command", sorted(LAZY_COMMANDS))
def test_a_lazy_command_is_declared_in_full_when_it_runs(command: str) -> None:
    argv = [command, "--help"]
    sub = build_parser(argv)._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert sub.choices[command]._actions[1:]  # its own options, beyond --help
    # the one-line help `uwsgiapp --help` shows is the same either way
    helps = {a.dest: a.help for a in sub._choices_actions}
    others = {
        a.dest: a.help
        for a in build_parser(["serve"])._subparsers._group_actions[0]._choices_actions
    }  # type: ignore[union-attr]
    assert helps == others


def test_a_server_s_parser_declares_the_others_by_name_only() -> None:
    sub = build_parser(["serve", "a:app"])._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert set(LAZY_COMMANDS) <= set(sub.choices)
    assert all(not sub.choices[name]._actions[1:] for name in LAZY_COMMANDS)


@pytest.mark.parametrize(
    ("argv", "command"),
    [(["--version"], None), (["-h", "ping"], "ping"), (["top", "--once"], "top"), ([], None)],
)
def test_the_command_is_the_first_argument_that_is_no_option(
    argv: list[str], command: str | None
) -> None:
    assert command_named(argv) == command
