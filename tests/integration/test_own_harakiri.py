"""A request's own harakiri (:func:`uwsgiapp.set_harakiri`, uWSGI's ``set_user_harakiri``):
a stream meant to last runs past ``--harakiri``, a request may set a bound where there is no
``--harakiri``, and the next request has ``--harakiri`` again. Real processes, real signals."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from support.procs import Server, uwsgi_exchange, uwsgi_get, wait_for_serving, wait_until

APP = """
import time
from uwsgiapp import set_harakiri

def app(environ, start_response):
    own, sleep = environ["QUERY_STRING"].split("-")  # own harakiri (none: --harakiri), sleep
    took = set_harakiri(float(own)) if own else None
    time.sleep(float(sleep))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"slept {sleep} {took}".encode()]
"""


def _serve(tmp_path: Path, **options: object) -> Server:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "ownapp.py").write_text(APP)
    server = Server(
        tmp_path / "s", "ownapp:app", workers=1, access_log="uwsgi",
        pythonpath=[str(tmp_path / "app")], **options,
    ).start()  # fmt: skip
    wait_for_serving(server, 1)
    return server


def _ask(server: Server, query: str, path: str = "/") -> bytes:
    return uwsgi_exchange(server.socket, uwsgi_get(path, query), timeout=20).data


def test_a_request_with_no_harakiri_of_its_own_outlasts_harakiri_and_the_next_has_it_again(
    tmp_path: Path,
) -> None:
    server = _serve(tmp_path, harakiri=1)
    try:
        assert _ask(server, "0-1.8").endswith(b"slept 1.8 True")  # set_harakiri(0): none
        assert "HARAKIRI" not in server.log()
        began = time.monotonic()
        assert b"slept" not in _ask(server, "-3")  # the same worker: --harakiri again
        assert time.monotonic() - began < 2.8
        wait_until(lambda: "HARAKIRI: worker 1" in server.log(), 5, "the harakiri")
    finally:
        server.stop()
    assert "(limit 1s)" in server.log()


def test_a_request_sets_a_bound_where_there_is_no_harakiri(tmp_path: Path) -> None:
    server = _serve(tmp_path)
    try:
        began = time.monotonic()
        assert b"slept" not in _ask(server, "0.5-4")
        assert time.monotonic() - began < 3.5
        wait_until(lambda: "exited with code 0" in server.log(), 10, "the worker's exit")
        assert _ask(server, "-0.8").endswith(b"slept 0.8 None")  # its successor: no bound
    finally:
        server.stop()
    log = server.log()
    assert "stuck in one request for 0." in log, log
    # 0.5 s from the call, which comes a moment after the request's start (to the tenth).
    assert re.search(r"\(its own limit, 0\.[56]s from its start, set by the app's", log), log
    assert log.count("HARAKIRI") == 1, log


def test_with_threads_the_request_past_its_own_harakiri_is_cut_not_the_older_stream(
    tmp_path: Path,
) -> None:
    # The oldest request is a stream with no harakiri; a newer one is stuck past --harakiri:
    # the master judges each request by its own bound, and the worker cuts the stuck one.
    server = _serve(tmp_path, harakiri=2, threads=2)
    answers: dict[str, bytes] = {}

    def ask(path: str, query: str) -> None:
        answers[path] = _ask(server, query, path)

    try:
        stream = threading.Thread(target=ask, args=("/stream", "0-3"))
        stream.start()
        time.sleep(0.3)
        ask("/stuck", "-8")
        stream.join(20)
    finally:
        server.stop()
    log = server.log()
    assert "stuck in one request for 2." in log and "(limit 2s)" in log, log
    assert "stuck in GET /stuck for 2." in log and "(also busy) in GET /stream" in log, log
    assert b"slept" not in answers["/stuck"]
    # The stream ends within the harakiri's grace (--harakiri more seconds for the others).
    assert answers["/stream"].endswith(b"slept 3 True"), log
