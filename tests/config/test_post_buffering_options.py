"""--post-buffering and --post-buffering-dir: from the command line, the environment, TOML and
an ini (uWSGI's ``post-buffering``, now honoured); a bad value stops the start naming it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from cli.cli_testkit import run_cli

from uwsgiapp.config import ConfigError, make_config
from uwsgiapp.config.model import MAX_POST_BUFFERING
from uwsgiapp.exitcodes import ServeExit
from uwsgiapp.server.spool import IN_MEMORY_ANYWAY, check_spool_dir, spooling_said


@pytest.mark.parametrize(
    ("values", "option", "fragment"),
    [
        ({"post_buffering": -1}, "--post-buffering", "must be 0 (off)"),
        ({"post_buffering": MAX_POST_BUFFERING + 1}, "--post-buffering", "got 1073741825"),
        ({"post_buffering_dir": "/var/tmp"}, "--post-buffering-dir", "needs --post-buffering N"),
    ],
)
def test_bad_values_name_the_option(values: dict[str, object], option: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(app="a:b", **values)
    assert str(info.value).startswith(option + ":"), info.value
    assert fragment in str(info.value)


def test_off_by_default() -> None:
    config = make_config(app="a:b")
    assert (config.post_buffering, config.post_buffering_dir) == (0, "")


@pytest.mark.parametrize(
    ("args", "env", "files"),
    [
        (["--post-buffering", "8192", "--post-buffering-dir", "/var/tmp"], {}, {}),
        ([], {"UWSGIAPP_POST_BUFFERING": "8192", "UWSGIAPP_POST_BUFFERING_DIR": "/var/tmp"}, {}),
        (
            ["--config", "app.toml"],
            {},
            {"app.toml": 'post_buffering = 8192\npost_buffering_dir = "/var/tmp"\n'},
        ),
        # uWSGI's key, as Django and Flask ini files have it: taken without a warning.
        (
            ["--ini", "app.ini", "--post-buffering-dir", "/var/tmp"],
            {},
            {"app.ini": "[uwsgi]\npost-buffering = 8192\n"},
        ),
    ],
)  # fmt: skip
def test_every_source_sets_it(
    tmp_path: Path, args: list[str], env: dict[str, str], files: dict[str, str]
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    r = run_cli("serve", "app:app", "--print-config", *args, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "post-buffering = 8192" in out and 'post-buffering-dir = "/var/tmp"' in out, out
    assert b"post-buffering" not in r.stderr, r.stderr  # no "not supported" warning


CLI = b"--post-buffering (from command line --post-buffering): "
INI = b"--post-buffering (from ini app.ini [uwsgi] post-buffering (line 2)): must be 0"


@pytest.mark.parametrize(
    ("args", "env", "ini", "message"),
    [
        (["--post-buffering", "8k"], {}, "", CLI + b"expected an"),
        (["--post-buffering", "-1"], {}, "", CLI + b"must be 0"),
        ([], {"UWSGIAPP_POST_BUFFERING": "x"}, "", b"--post-buffering (from env UWSGIAPP_"),
        (["--ini", "app.ini"], {}, "post-buffering = -4096", INI),
        (["--post-buffering-dir", "/var/tmp"], {}, "", b"--post-buffering-dir (from command"),
    ],
)
def test_a_bad_value_stops_the_start_naming_the_option(
    tmp_path: Path, args: list[str], env: dict[str, str], ini: str, message: bytes
) -> None:
    if ini:
        (tmp_path / "app.ini").write_text(f"[uwsgi]\n{ini}\n")
    r = run_cli("serve", "app:app", "--print-config", *args, env=env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr, r.stderr
    assert b"Traceback" not in r.stderr


def test_help_describes_it() -> None:
    r = run_cli("serve", "--help")
    text = " ".join(r.stdout.decode().split())
    assert "--post-buffering" in text and "UWSGIAPP_POST_BUFFERING" in text
    assert "--post-buffering-dir" in text and "TMPDIR" in text


def test_a_spool_directory_that_cannot_be_written_stops_the_start(tmp_path: Path) -> None:
    # Tried once at start-up (as the workers' user), not found at the first large upload.
    missing = tmp_path / "missing"
    socket = tmp_path / "s.sock"
    r = run_cli(
        "serve", "app:app", "--socket", str(socket), "--post-buffering", "4096",
        "--post-buffering-dir", str(missing), cwd=tmp_path, timeout=20,
    )  # fmt: skip
    assert r.returncode == ServeExit.START_FAILED, r.stderr
    said = f"--post-buffering-dir: cannot make a temporary file in {missing}: No such file"
    assert said.encode() in r.stderr, r.stderr
    assert not socket.exists()


def test_no_writable_temporary_directory_stops_the_start_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only root filesystem with no tmpfs (a locked-down container): Python's
    # gettempdir() finds no candidate it can write and raises; the start ended in a traceback
    # (exit 1, "internal error") instead of the option's message (exit 3).
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() caches its answer
    monkeypatch.setattr(tempfile, "_candidate_tempdir_list", lambda: [str(tmp_path / "ro")])
    where, error = check_spool_dir("")
    assert where == ""
    assert error.startswith("No usable temporary directory found in"), error
    assert "mount a tmpfs on /tmp" in error


def test_the_start_up_line_says_how_large_a_spooled_body_may_be() -> None:
    # Without --limit-post a body of any size is written to the directory (the security
    # review's finding: the line said where, not that nothing bounds it here).
    unbounded = spooling_said(4096, "/var/spool/app", 0)
    assert f"up to {IN_MEMORY_ANYWAY} bytes in memory" in unbounded
    assert "of any size (no --limit-post" in unbounded and unbounded.endswith("/var/spool/app")
    bounded = spooling_said(IN_MEMORY_ANYWAY * 2, "/tmp", 10_000_000)
    assert f"up to {IN_MEMORY_ANYWAY * 2} bytes in memory" in bounded
    assert "up to --limit-post 10000000 bytes" in bounded and "any size" not in bounded
