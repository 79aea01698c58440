"""One table of exit codes (uwsgiapp.exitcodes): the code returns them and the help texts and
the module docstring say them, all from the same table."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli.cli_testkit import run_cli

import uwsgiapp.cli
from uwsgiapp.exitcodes import PING_TEXT, ClientExit, ServeExit


def _flat(text: bytes | str) -> str:
    """Help text with its line wrapping undone."""
    if isinstance(text, bytes):
        text = text.decode()
    return re.sub(r"\s+", " ", text)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="uwa-exit-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_every_exit_constant_comes_from_the_table() -> None:
    constants = {k: v for k, v in vars(uwsgiapp.cli).items() if k.startswith("EXIT_")}
    assert constants and all(isinstance(v, ClientExit) for v in constants.values())
    assert not any(k.startswith("EXIT_") for k in vars(__import__("uwsgiapp.client").client))


@pytest.mark.parametrize(
    ("command", "codes"),
    [
        ("serve", list(ServeExit)),
        ("request", list(ClientExit)),
        ("ping", [c for c in ClientExit if not c.description.startswith("request:")]),
    ],
)
def test_help_lists_each_code_as_the_table_says(command: str, codes: list[ClientExit]) -> None:
    r = run_cli(command, "--help", env={"COLUMNS": "80"})
    assert r.returncode == 0
    text = _flat(r.stdout)
    for code in codes:
        description = PING_TEXT.get(code) if command == "ping" else None
        description = description or code.description.removeprefix(f"{command}: ")
        description = description.replace(" (ping: a pong)", "").replace(
            "; ping: no pong in time", ""
        )
        assert f" {code.value} {_flat(description)}" in text, (code, text)
    if command == "ping":
        assert " 5 " not in text.partition("exit status:")[2]


def test_ping_help_names_no_option_ping_lacks() -> None:
    """The 0 code's words are request's (--fail): ping has no --fail, its 0 is a pong."""
    text = _flat(run_cli("ping", "--help", env={"COLUMNS": "80"}).stdout)
    codes = text.partition("exit status:")[2]
    assert "--fail" not in codes and "status <" not in codes
    assert "exit status: 0 a pong;" in text
    assert "HTTP" not in codes and "no pong in time" in codes


def test_request_help_says_nothing_of_ping() -> None:
    codes = _flat(run_cli("request", "--help", env={"COLUMNS": "80"}).stdout)
    codes = codes.partition("exit status:")[2]
    assert "ping" not in codes and "pong" not in codes
    assert "0 a response with status < 500, < 400 with --fail;" in codes
    assert "4 no valid answer (not HTTP, truncated, closed early);" in codes


def test_serve_help_no_longer_says_an_app_that_cannot_load_exits_2() -> None:
    text = _flat(run_cli("serve", "--help").stdout)
    assert "app that cannot be loaded" not in text
    assert f"{ServeExit.APP_LOAD.value} the app cannot be imported" in text


def test_the_module_docstring_lists_every_code() -> None:
    doc = uwsgiapp.cli.__doc__ or ""
    for table in (ServeExit, ClientExit):
        for code in table:
            assert f"* {code.value} — {code.description}" in doc


def test_serve_an_app_that_cannot_load_exits_as_the_help_says(short_dir: Path) -> None:
    sock = str(short_dir / "x.sock")
    r = run_cli("serve", "no_such_module_xyz:app", "--socket", sock, cwd=short_dir, timeout=60)
    assert r.returncode == ServeExit.APP_LOAD == 4
    help_text = _flat(run_cli("serve", "--help").stdout)
    assert f"{r.returncode} the app cannot be imported" in help_text


def test_serve_usage_errors_exit_2(short_dir: Path) -> None:
    r = run_cli("serve", "app:app", "--workers", "zero", cwd=short_dir)
    assert r.returncode == ServeExit.USAGE == 2
    r = run_cli("serve", cwd=short_dir)
    assert r.returncode == ServeExit.USAGE and b"no app given" in r.stderr
    # A socket that cannot be an address is a bad value too (it was 3, "cannot start", once
    # the bind tried it), and --print-config refuses it.
    for extra in ((), ("--print-config",)):
        r = run_cli("serve", "app:app", "--socket", "127.0.0.1:99999", *extra, cwd=short_dir)
        assert r.returncode == ServeExit.USAGE, r.stderr
        assert b"--socket (from command line --socket): bad socket" in r.stderr


def test_an_access_log_file_that_cannot_be_opened_stops_the_start_in_one_line(
    short_dir: Path,
) -> None:
    # Unchecked, each worker died while starting, and the master stopped with code 5 after
    # five of them and 150 lines of tracebacks (the master opens it now, for the workers).
    sock = str(short_dir / "x.sock")
    target = str(short_dir / "missing" / "access.log")
    r = run_cli("serve", "a:app", "--socket", sock, "--access-log-file", target, cwd=short_dir)
    assert r.returncode == ServeExit.START_FAILED == 3
    err = r.stderr.decode()
    assert f"--access-log-file: cannot open {target}: No such file or directory" in err, err
    assert "Traceback" not in err and not os.path.exists(sock)


def test_check_config_imports_the_app_and_binds_nothing(tmp_path: Path) -> None:
    # gunicorn's --check-config as a deploy gate: a broken app must fail it (--print-config
    # never imports the app).
    (tmp_path / "good.py").write_text(
        "import os\nSEEN = os.environ['FROM_ENV']\ndef app(environ, start_response):\n"
        "    return []\n"
    )
    (tmp_path / "broken.py").write_text("import no_such_module_here\napp = None\n")
    sock = tmp_path / "never.sock"
    common = ["--chdir", str(tmp_path), "--env", "FROM_ENV=1", "--socket", str(sock)]
    ok = run_cli("serve", "good:app", "--check-config", *common)
    assert ok.returncode == ServeExit.OK, ok.stderr
    assert b"the options are valid and good:app loads" in ok.stdout
    bad = run_cli("serve", "broken:app", "--check-config", *common)
    assert bad.returncode == ServeExit.APP_LOAD
    assert b"--check-config:" in bad.stderr and b"no_such_module_here" in bad.stderr
    assert not sock.exists()
    usage = run_cli("serve", "good:app", "--check-config", "--workers", "0")
    assert usage.returncode == ServeExit.USAGE
    # --post-buffering's directory is tried as start-up tries it (one unnamed temp file).
    missing = tmp_path / "no-such-spool"
    spool = ["--post-buffering", "8192", "--post-buffering-dir", str(missing)]
    nowhere = run_cli("serve", "good:app", "--check-config", *common, *spool)
    assert nowhere.returncode == ServeExit.START_FAILED, nowhere.stderr
    said = f"--check-config: --post-buffering-dir: cannot make a temporary file in {missing}"
    assert said.encode() in nowhere.stderr
    missing.mkdir()
    assert run_cli("serve", "good:app", "--check-config", *common, *spool).returncode == 0
    # A --chdir that cannot be entered is the start's 3 (it was 4, as an app that cannot load).
    gone = run_cli("serve", "good:app", "--check-config", "--chdir", str(tmp_path / "gone"))
    assert gone.returncode == ServeExit.START_FAILED == 3, gone.stderr
    assert b"--check-config: --chdir: cannot enter " in gone.stderr
    start = run_cli("serve", "good:app", "--chdir", str(tmp_path / "gone"))
    assert start.returncode == gone.returncode


def test_check_config_warns_of_a_socket_on_every_interface_closed_to_all_but_loopback(
    tmp_path: Path,
) -> None:
    # An ini's "socket = :3031" (a Docker image's): start-up warned that nginx in another
    # container is refused, but the deploy gate said only "the options are valid".
    (tmp_path / "good.py").write_text("def app(environ, start_response):\n    return []\n")
    common = ["good:app", "--check-config", "--chdir", str(tmp_path)]
    for spec in (":3031", "0.0.0.0:3031", "[::]:3031", "0:3031"):  # 0: the bind's 0.0.0.0
        closed = run_cli("serve", *common, "--socket", spec)
        assert closed.returncode == ServeExit.OK, closed.stderr
        said = f"warning: {spec} listens on every interface but lets only loopback peers in"
        assert said.encode() in closed.stderr, closed.stderr
    for quiet in (
        ["--socket", ":3031", "--uwsgi-allow-from", "10.0.0.0/8"],
        ["--socket", "127.0.0.1:3031"],
        ["--socket", "localhost:3031"],
        ["--socket", str(tmp_path / "app.sock")],
    ):
        done = run_cli("serve", *common, *quiet)
        assert done.returncode == ServeExit.OK and b"warning" not in done.stderr, done.stderr


def test_json_lines_from_several_workers_into_a_pipe_without_log_master_are_warned_of(
    tmp_path: Path,
) -> None:
    # Over 4 KiB, a worker's write into a pipe can interleave with another's: 1161 of 19465
    # JSON lines broke under a 20 KB User-Agent (observability exploration). run_cli's stdout
    # and stderr are pipes.
    (tmp_path / "good.py").write_text("def app(environ, start_response):\n    return []\n")
    common = ["good:app", "--check-config", "--chdir", str(tmp_path), "--workers", "2"]
    said = "JSON lines go into a pipe (or socket) from 2 workers without --log-master"
    for json_lines, option in (
        (["--access-log", "json"], "--access-log"),
        (["--access-log", '{"u": "%(uri)"}'], "--access-log"),
        (["--error-log-format", "json"], "--error-log-format"),
    ):
        warned = run_cli("serve", *common, *json_lines)
        assert warned.returncode == 0 and f"{option}: {said}".encode() in warned.stderr
    for quiet in (
        ["--access-log", "json", "--log-master"],
        ["--access-log", "json", "--workers", "1"],
        ["--access-log", "json", "--access-log-file", str(tmp_path / "access.log")],
        ["--access-log", "combined"],
    ):
        done = run_cli("serve", *common, *quiet)
        assert done.returncode == 0 and b"JSON lines" not in done.stderr, done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="imports as --uid only when started as root")
def test_check_config_imports_as_the_uid_user(short_dir: Path) -> None:
    # As root, the import ran as root: the files it made (a log, a SQLite file) were root's,
    # where the real workers, as --uid, then could not write.
    short_dir.chmod(0o755)
    (short_dir / "whoami.py").write_text(
        "import os\nprint('IMPORTED AS', os.getuid())\ndef app(environ, start_response):\n"
        "    return []\n"
    )
    ok = run_cli(
        "serve", "whoami:app", "--check-config", "--chdir", str(short_dir), "--uid", "nobody"
    )
    assert ok.returncode == ServeExit.OK, ok.stderr
    assert f"IMPORTED AS {pwd.getpwnam('nobody').pw_uid}".encode() in ok.stdout
    bad = run_cli("serve", "whoami:app", "--check-config", "--uid", "no-such-user-here")
    assert bad.returncode == ServeExit.START_FAILED and b"no-such-user-here" in bad.stderr
