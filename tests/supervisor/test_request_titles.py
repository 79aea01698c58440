"""``--request-titles``: the title text for a request, and the sampler across threads."""

from __future__ import annotations

import sys
import threading
from typing import Any

from uwsgiapp.server.inflight import request_environ, request_line
from uwsgiapp.supervisor.titles import REQUEST_SHOWN, RequestTitles, shown_request


def _environ(path: str, **more: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "token=s3cret", **more}


def test_the_shown_request_has_no_query_and_no_controls() -> None:
    assert shown_request(_environ("/a\nb")) == "POST /a\\x0Ab"
    assert shown_request(_environ("/x", SCRIPT_NAME="/app")) == "POST /app/x"
    assert shown_request({}) == "- /"


def test_a_long_path_is_cut_with_dots() -> None:
    text = shown_request(_environ("/" + "p" * 500))
    assert len(text) == REQUEST_SHOWN and text.endswith("...") and text.startswith("POST /ppp")


class _InRequest:
    """A thread that sits inside a (fake) WSGI call until released."""

    def __init__(self, path: str) -> None:
        self.entered = threading.Event()
        self.leave = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(_environ(path),))
        self.thread.start()
        assert self.entered.wait(5)

    def _serve(self, environ: dict[str, Any]) -> None:
        self._app(environ)

    def _app(self, environ: dict[str, Any]) -> None:
        self.entered.set()
        self.leave.wait(5)

    def finish(self) -> None:
        self.leave.set()
        self.thread.join(5)


def test_one_thread_busy_then_idle() -> None:
    shown: list[str] = []
    titles = RequestTitles("w 1", setter=shown.append)
    assert titles.sample() == "w 1 idle"
    request = _InRequest("/x")
    try:
        assert titles.sample() == "w 1 busy POST /x"
        assert titles.sample() == "w 1 busy POST /x"
    finally:
        request.finish()
    assert titles.sample() == "w 1 idle"
    assert shown == ["w 1 idle", "w 1 busy POST /x", "w 1 idle"]  # only the changes


def test_threads_are_counted() -> None:
    titles = RequestTitles("w 2", threads=4, setter=lambda text: None)
    first = _InRequest("/a")
    second = _InRequest("/b")
    try:
        assert titles.sample() in ("w 2 busy 2/4 POST /a", "w 2 busy 2/4 POST /b")
        first.finish()
        assert titles.sample() == "w 2 busy 1/4 POST /b"
    finally:
        first.finish()
        second.finish()
    assert titles.sample() == "w 2 idle"


def test_the_sampling_thread_shows_a_request_and_stops() -> None:
    shown: list[str] = []
    changed = threading.Event()
    titles = RequestTitles("w 3", setter=lambda text: (shown.append(text), changed.set()))
    thread = titles.start(interval=0.01)
    assert shown == ["w 3 idle"]
    changed.clear()
    request = _InRequest("/slow")
    try:
        assert changed.wait(5)
        assert shown[-1] == "w 3 busy POST /slow"
    finally:
        request.finish()
        titles.stop()
        thread.join(5)
    assert not thread.is_alive()


def test_the_outermost_environ_is_the_request() -> None:
    def app(environ: dict[str, Any]) -> Any:
        return sys._getframe()

    def serve(environ: dict[str, Any]) -> Any:
        return app({"REQUEST_METHOD": "GET", "PATH_INFO": "/app-copy"})

    frame = serve(_environ("/outer", REQUEST_URI="/outer?token=s3cret"))
    assert request_environ(frame) is not None
    assert request_line(frame) == "POST /outer?token=s3cret"
    assert request_environ(None) is None and request_line(None) == "unknown request"


def test_busy_threads_are_counted_against_those_that_serve() -> None:
    # At a thread limit a worker of --threads 4 serves with those it could start: its title
    # said "busy 2/4" with its 2 threads both busy.
    serving = [4]
    titles = RequestTitles("w 4", threads=lambda: serving[0], setter=lambda text: None)
    serving[0] = 2
    first = _InRequest("/a")
    try:
        assert titles.sample() == "w 4 busy 1/2 POST /a"
    finally:
        first.finish()
