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
        "uwsgiapp serve: error: --workers (from ini app.ini [uwsgi] processes (line 4)):"
        " expected an integer, got ''",
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
