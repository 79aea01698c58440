"""``uwsgiapp serve --ini``, end to end: what the command prints for uWSGI inis."""

from __future__ import annotations

from pathlib import Path

from cli.cli_testkit import run_cli

from uwsgiapp.cli import EXIT_USAGE


def test_warnings_found_before_an_error_are_shown(tmp_path: Path) -> None:
    """The unset variable is the cause of the bad value: both must be on the screen."""
    (tmp_path / "app.ini").write_text(
        "[uwsgi]\nmodule = app:app\nsocket = /tmp/x.sock\nprocesses = $(UWSGI_WORKERS)\n"
    )
    r = run_cli("serve", "--ini", "app.ini", cwd=tmp_path)
    assert r.returncode == EXIT_USAGE, r.stderr
    lines = r.stderr.decode().splitlines()
    assert lines == [
        "uwsgiapp serve: warning: ini app.ini [uwsgi]: $(UWSGI_WORKERS) is not set in the"
        " environment; expanded to ''",
        "uwsgiapp serve: error: --ini (from ini app.ini [uwsgi] processes (line 4)):"
        " processes = $(UWSGI_WORKERS) expands to nothing: $(UWSGI_WORKERS) is not set in the"
        " environment, or is empty (uWSGI reads it as 0 and starts with no worker: it serves"
        " nothing): set it, or remove the key",
    ]


def test_warnings_found_before_an_ini_error_are_shown(tmp_path: Path) -> None:
    (tmp_path / "app.ini").write_text(
        "[uwsgi]\nmodule = app:app\nsocket = $(NO_SUCH_SOCKET)\nprocesses = %(cores)\n"
    )
    r = run_cli("serve", "--ini", "app.ini", cwd=tmp_path)
    assert r.returncode == EXIT_USAGE, r.stderr
    err = r.stderr.decode()
    assert "warning: ini app.ini [uwsgi]: $(NO_SUCH_SOCKET) is not set" in err
    assert err.index("$(NO_SUCH_SOCKET)") < err.index("error: --ini")


def test_uwsgi_variables_are_named_with_ours(tmp_path: Path) -> None:
    """Images built for uWSGI (tiangolo's) set UWSGI_INI, UWSGI_PROCESSES, UWSGI_CHEAPER."""
    env = {"UWSGI_INI": "/app/uwsgi.ini", "UWSGI_PROCESSES": "4", "UWSGI_CHEAPER": "2"}
    env["UWSGI_RELOADS"] = "0"  # uWSGI's own bookkeeping, never an option
    r = run_cli("serve", "app:app", "--print-config", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.decode().splitlines() if "UWSGI_" in line]
    assert said == [
        "uwsgiapp serve: warning: UWSGI_CHEAPER, UWSGI_INI, UWSGI_PROCESSES are set but not"
        " read: uWSGI takes each UWSGI_* variable as an option, uwsgiapp does not (an --ini"
        " file may still use them as %(name) placeholders). Use --ini FILE and UWSGIAPP_*"
        " variables (UWSGI_CHEAPER: UWSGIAPP_CHEAPER; UWSGI_INI: --ini FILE;"
        " UWSGI_PROCESSES: UWSGIAPP_WORKERS)"
    ]
    assert "workers = 1 " in r.stdout.decode()


def test_ini_given_twice_is_a_usage_error(tmp_path: Path) -> None:
    for name in ("a.ini", "b.ini"):
        (tmp_path / name).write_text("[uwsgi]\nmodule = app:app\n")
    r = run_cli("serve", "--ini", "a.ini", "--ini", "b.ini", "--print-config", cwd=tmp_path)
    assert r.returncode == EXIT_USAGE
    assert r.stdout == b""
    assert (
        "uwsgiapp serve: error: --ini is given twice (a.ini, then b.ini): uwsgiapp reads one"
        " ini file" in r.stderr.decode()
    )


def test_an_ini_without_a_socket_says_the_default_is_used(tmp_path: Path) -> None:
    # uWSGI refuses to start without one; the socket may be in a base image's other ini.
    from uwsgiapp.cli import build_parser
    from uwsgiapp.config.serve import resolve_serve_config

    (tmp_path / "app.ini").write_text("[uwsgi]\nmodule = app:app\n")
    for argv, said in (([], True), (["--socket", "/tmp/x.sock"], False)):
        args = build_parser().parse_args(["serve", "--ini", str(tmp_path / "app.ini"), *argv])
        warnings = resolve_serve_config(args, {}).warnings
        found = [w for w in warnings if w.startswith("no socket in the ini nor anywhere else")]
        assert found == (
            ["no socket in the ini nor anywhere else: listening on the default 127.0.0.1:3031 "
             "(uWSGI would not start; set socket in the ini, or --socket)"] if said else []
        )  # fmt: skip
