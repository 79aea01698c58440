"""A HUP serves the new code even when a deploy rewrote a module with a text of the same size in
the second its bytecode cache records: CPython's own check (whole seconds and size) would take
the old cache. Real processes, real signals, a real nginx in front."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from support.procs import Nginx, stack, wait_until

from uwsgiapp.freshcode import may_be_stale

pytestmark = pytest.mark.nginx

APP = """
from helpers import answer

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [answer().encode()]
"""
HELPER = "def answer():\n    return {version!r}\n"


def _answers(nginx: Nginx, expected: bytes, times: int = 6) -> bool:
    """Several requests in a row (so every worker is asked) all answer ``expected``."""
    return all(nginx.request("GET", "/")[2] == expected for _ in range(times))


def test_a_cache_written_before_its_source_changed_may_be_stale() -> None:
    assert may_be_stale(source_mtime_ns=2_000_000_000, cache_mtime_ns=1_500_000_000, cache_flags=0)
    assert not may_be_stale(2_000_000_000, 2_500_000_000, 0)
    # Equal times: a reproducible build's or a Nix store's, not a later edit.
    assert not may_be_stale(1_000_000_000, 1_000_000_000, 0)
    # Hash-based caches (PEP 552) are CPython's to check, or meant to be used unchecked.
    assert not may_be_stale(2_000_000_000, 1_500_000_000, 0b01)
    assert not may_be_stale(2_000_000_000, 1_500_000_000, 0b11)


FILE_APP = """
VERSION = {version!r}

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
"""


@pytest.mark.parametrize("how", ["preloaded", "lazy-apps", "app-file"])
def test_hup_serves_a_same_size_rewrite_made_in_the_caches_second(
    tmp_path: Path, nginx_available: None, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # "app-file": `uwsgiapp serve path/to/app.py:app` (uWSGI's wsgi-file), whose entry file
    # was loaded by the stock loader, its stale cache used, while its imports were checked.
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # caches as in production
    appdir = tmp_path / "app"
    appdir.mkdir()
    if how == "app-file":
        changed, template = appdir / "fileapp.py", FILE_APP
        spec, options = f"{changed}:app", {"workers": 1}
    else:
        (appdir / "reapp.py").write_text(APP)
        changed, template = appdir / "helpers.py", HELPER
        spec = "reapp:app"
        options = {"workers": 2, "lazy_apps": how == "lazy-apps", "pythonpath": [str(appdir)]}
    changed.write_text(template.format(version="v1"))
    # The deploy's two writes fall in one second, after the first import wrote its cache: a
    # second still to come makes it certain however long the start takes.
    second = int(time.time()) + 60
    os.utime(changed, (second + 0.1, second + 0.1))
    with stack(tmp_path, spec, **options) as (server, nginx):
        assert _answers(nginx, b"v1")
        cached = list((appdir / "__pycache__").glob(f"{changed.stem}.*.pyc"))
        assert cached, "no cache was written"
        changed.write_text(template.format(version="v2"))  # the same size
        os.utime(changed, (second + 0.5, second + 0.5))
        server.signal(signal.SIGHUP)
        wait_until(lambda: "ready, stopping" in server.log(), 10, "the reload")
        # The line is written before the old workers get their SIGHUP: one may take a request
        # still. A stale cache would have every new worker answer v1 for good.
        wait_until(lambda: _answers(nginx, b"v2"), 10, "only the new code to answer")
