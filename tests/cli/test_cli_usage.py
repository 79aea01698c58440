"""Usage errors as a user meets them: a mistyped option shows its own command's usage."""

from __future__ import annotations

import pytest
from cli.cli_testkit import run_cli

from uwsgiapp.cli import EXIT_USAGE


@pytest.mark.parametrize(
    ("args", "command", "error"),
    [
        (["serve", "app:app", "--wokers", "4"], "serve", "unrecognized arguments: --wokers 4"),
        (
            ["serve", "--max-request", "5"],
            "serve",
            "unrecognized arguments: --max-request\n  --max-request: did you mean --max-requests?",
        ),
        (["request", "/x.sock", "/", "--bogus"], "request", "unrecognized arguments: --bogus"),
        (["ping", "/x.sock", "--quite"], "ping", "unrecognized arguments: --quite"),
        (["dev", "app:app", "--prot", "5001"], "dev", "unrecognized arguments: --prot 5001"),
    ],
)
def test_a_mistyped_option_gets_its_commands_usage(
    args: list[str], command: str, error: str
) -> None:
    r = run_cli(*args)
    assert r.returncode == EXIT_USAGE
    err = r.stderr.decode()
    assert err.startswith(f"usage: uwsgiapp {command} "), err
    assert f"\nuwsgiapp {command}: error: {error}" in err, err
    assert "COMMAND ..." not in err and "Traceback" not in err


def test_a_stray_top_level_option_gets_the_top_level_usage() -> None:
    r = run_cli("--bogus", "serve")
    assert r.returncode == EXIT_USAGE
    assert r.stderr.decode().startswith("usage: uwsgiapp [-h] [--version] COMMAND ...")
    assert b"uwsgiapp: error: unrecognized arguments: --bogus" in r.stderr
