"""``--request-titles``: the title text for a request, and busy/idle across threads."""

from __future__ import annotations

import threading
from typing import Any

from uwsgiapp.supervisor.titles import REQUEST_SHOWN, RequestTitles, TitledHooks, shown_request


def _environ(path: str, **more: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "token=s3cret", **more}


def test_the_shown_request_has_no_query_and_no_controls() -> None:
    assert shown_request(_environ("/a\nb")) == "POST /a\\x0Ab"
    assert shown_request(_environ("/x", SCRIPT_NAME="/app")) == "POST /app/x"
    assert shown_request({}) == "- /"


def test_a_long_path_is_cut_with_dots() -> None:
    text = shown_request(_environ("/" + "p" * 500))
    assert len(text) == REQUEST_SHOWN and text.endswith("...") and text.startswith("POST /ppp")


class _Hooks:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def begin(self) -> None:
        self.calls.append("begin")

    def end(self, requests: int) -> None:
        self.calls.append(f"end {requests}")


def test_one_thread_busy_then_idle_through_the_app_and_hooks() -> None:
    shown: list[str] = []
    titles = RequestTitles("w 1", setter=shown.append)
    inner = _Hooks()
    hooks = titles.hooks(inner)
    app = titles.wrap(lambda environ, start_response: [b"ok"])
    hooks.begin()
    assert list(app(_environ("/x"), lambda *a: None)) == [b"ok"]
    hooks.end(1)
    hooks.begin()  # a connection that ended without a request (a ping): no title change
    hooks.end(1)
    assert inner.calls == ["begin", "end 1", "begin", "end 1"]
    assert shown == ["w 1 idle", "w 1 busy POST /x", "w 1 idle"]


def test_threads_count_busy_and_name_the_latest_request() -> None:
    shown: list[str] = []
    titles = RequestTitles("w 2", threads=4, setter=shown.append)
    entered = threading.Barrier(2)
    leave = threading.Event()
    both_in = threading.Event()

    def request(path: str) -> None:
        hooks = titles.hooks(_Hooks())
        titles.show(_environ(path))
        entered.wait(5)
        both_in.set()
        leave.wait(5)
        hooks.end(1)

    threads = [threading.Thread(target=request, args=(p,)) for p in ("/a", "/b")]
    for thread in threads:
        thread.start()
    assert both_in.wait(5)
    assert shown[1].startswith("w 2 busy 1/4 POST /") and shown[2].startswith("w 2 busy 2/4 POST")
    leave.set()
    for thread in threads:
        thread.join(5)
    assert shown[3:] == ["w 2 busy 1/4", "w 2 idle"]


def test_titled_hooks_pass_the_cores_start_through() -> None:
    class Core(_Hooks):
        started = 12.5

    assert TitledHooks(Core(), lambda: None).started == 12.5
    assert TitledHooks(_Hooks(), lambda: None).started == 0.0
