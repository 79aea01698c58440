"""What a worker holds: the modules only rare paths need (a typo's suggestion, a JSON error
record, a spooled body, a jitter, the trial import's fallback) are imported there, not at
start-up, so that every worker of the default configuration is smaller by them. Real
processes: the app answers with its worker's ``sys.modules``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.procs import Server, uwsgi_exchange, uwsgi_get, wait_for_serving

APP = """
import sys

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["\\n".join(sorted(sys.modules)).encode()]
"""

#: Imported only where they are used (each is some hundred KB of every worker's memory).
RARE = {"difflib", "datetime", "tempfile", "random", "secrets", "importlib.abc"}


def _worker_modules(tmp_path: Path, **options: object) -> set[str]:
    (tmp_path / "modsapp.py").write_text(APP)
    server = Server(tmp_path, "modsapp:app", workers=1, **options).start()
    try:
        wait_for_serving(server, 1)
        answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
    finally:
        server.stop()
    return set(answer.rpartition(b"\r\n\r\n")[2].decode().split("\n"))


def test_a_default_worker_holds_none_of_the_modules_only_rare_paths_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unknown UWSGIAPP_ variable (CI's UWSGIAPP_DOCKER_REQUIRED) is told its nearest name:
    # difflib's work, and a rare path.
    for name in [n for n in os.environ if n.startswith("UWSGIAPP_")]:
        monkeypatch.delenv(name)
    modules = _worker_modules(tmp_path)
    assert "uwsgiapp.server.worker" in modules  # the answer is the worker's list
    assert not RARE & modules, sorted(RARE & modules)


def test_post_buffering_brings_the_temporary_files_module_in_at_start_up(
    tmp_path: Path,
) -> None:
    # The spool directory is tried at start-up (a directory the workers cannot write stops it).
    modules = _worker_modules(tmp_path, post_buffering="4096")
    assert {"tempfile", "random"} <= modules
