"""``wsgi.input`` and ``write()`` used by an app's thread after its request ended, behind a
real nginx: the descriptor they used belongs to the next request by then, whose body must not
be taken nor its response written into."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
from support.procs import stack

pytestmark = pytest.mark.nginx


def test_a_thread_reading_the_body_after_the_response_never_takes_the_next_requests(
    tmp_path: Path, nginx_available: None
) -> None:
    mine = b"A" * (1 << 20)  # over 64 KiB: most of it is still on the socket when the app answers
    theirs = b"B" * (1 << 20)
    with stack(tmp_path, "late_read_app:app", workers=1, socket_timeout=3) as (server, nginx):
        assert nginx.request("POST", "/later", body=mine)[::2] == (200, b"answered")
        answers: dict[str, tuple[int, bytes]] = {}

        def next_request() -> None:
            status, _, body = nginx.request("POST", "/slow-digest", body=theirs)
            answers["next"] = (status, body)

        other = threading.Thread(target=next_request)
        other.start()  # accepted while the first request's thread still waits to read
        other.join(30)
        time.sleep(0.2)
        late = nginx.request("GET", "/late-result")[2]
        log = server.log()
    expected = b"%d %s" % (len(theirs), hashlib.sha256(theirs).hexdigest().encode())
    assert answers["next"] == (200, expected), log[-2000:]
    assert b"foreign" not in late, late
    assert b"wsgi.input read after its request ended" in late, late


def test_a_thread_calling_write_after_the_response_never_writes_into_the_next_one(
    tmp_path: Path, nginx_available: None
) -> None:
    with stack(tmp_path, "late_read_app:app", workers=1) as (server, nginx):
        assert nginx.request("GET", "/write-later")[::2] == (200, b"answered")
        # Served while the first request's thread wakes up and calls its write().
        status, _, body = nginx.request("GET", "/slow-hello")
        late = nginx.request("GET", "/late-result")[2]
        log = server.log()
    assert (status, body) == (200, b"hello"), log[-2000:]
    assert b"write() called after its request ended" in late, late
