"""--post-buffering behind a real nginx: the whole body is read before the app, so an app may
read it after its response has begun, and read it twice (``seek(0)``)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
from pathlib import Path

import pytest
from support.procs import Nginx, Server, stack

pytestmark = pytest.mark.nginx

UPLOAD = 20 << 20


def test_an_app_that_answers_first_then_reads_a_20_mb_upload_gets_all_of_it(
    tmp_path: Path, nginx_available: None
) -> None:
    # nginx passes the body on as it comes (uwsgi_request_buffering off) and stops once the
    # response head is in: without --post-buffering the app's reads then wait --socket-timeout
    # and the answer is cut (test_body_after_head.py). With it, the body is in before the app.
    spool = tmp_path / "spool"
    spool.mkdir()
    body = os.urandom(UPLOAD)
    options = {"post_buffering": 8192, "post_buffering_dir": str(spool), "socket_timeout": 2}
    with stack(tmp_path, "postbuf_app:app", **options) as (server, nginx):
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=60)
        conn.request("POST", "/unbuffered/head-first", body=body)
        response = conn.getresponse()
        status, answer = response.status, response.read()
        conn.close()
        log = server.log()
    assert status == 200
    expected = b"%d %s" % (UPLOAD, hashlib.sha256(body).hexdigest().encode())
    assert answer.split(b"\n")[:2] == [b"started", expected], answer[:200]
    assert "read timed out" not in log, log
    assert f"is the only bound), in unnamed files in {spool}" in log, log
    assert list(spool.iterdir()) == []  # nothing left behind


def test_an_app_reads_the_body_twice_with_seek(tmp_path: Path, nginx_available: None) -> None:
    body = os.urandom(3 << 20)
    # With request threads too: each thread spools its own requests.
    with stack(tmp_path, "postbuf_app:app", post_buffering=4096, threads=2) as (_, nginx):
        status, _, answer = nginx.request("POST", "/twice", body=body)
    assert status == 200, answer[:300]
    digest = hashlib.sha256(body).hexdigest()
    assert json.loads(answer) == {"first": digest, "again": digest, "length": str(len(body))}


#: Runs the command after it under a file-size limit (``ulimit -f``; Python ignores SIGXFSZ,
#: so a write past it fails with EFBIG, as one to a full disk fails with ENOSPC).
_FILE_SIZE_LIMITED = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY)); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


class FileSizeLimited(Server):
    """``uwsgiapp serve`` whose files may not grow past 1 MB (its log stays far under)."""

    def command(self) -> list[str]:
        return [sys.executable, "-c", _FILE_SIZE_LIMITED, str(1 << 20), *super().command()]


def test_a_body_the_spool_cannot_hold_is_a_500_through_nginx_not_a_reset(
    tmp_path: Path, nginx_available: None
) -> None:
    # The spool's write failed a megabyte into a 4 MB body: the 500 was answered, then the
    # connection closed with the rest unread; nginx, still sending it, got EPIPE and said 502.
    spool = tmp_path / "spool"
    spool.mkdir()
    options = {"post_buffering": 8192, "post_buffering_dir": str(spool)}
    server = FileSizeLimited(tmp_path / "server", "postbuf_app:app", **options).start()
    nginx = Nginx(tmp_path / "nginx", server.upstream)
    try:
        nginx.start()
        status, _, answer = nginx.request("POST", "/twice", body=os.urandom(4 << 20))
        errors = nginx.upstream_errors()
    finally:
        nginx.stop()
        server.stop()
    assert (status, errors) == (500, []), (status, answer[:200], errors)
    log = server.log()
    assert "post-buffering: cannot hold the body of (POST /twice)" in log, log
    assert "File too large" in log and "answering 500" in log, log
