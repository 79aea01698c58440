"""An app that reads its request body after its response has begun, behind a real nginx."""

from __future__ import annotations

import http.client
import logging
import os
from pathlib import Path

import pytest
from support.procs import stack

pytestmark = pytest.mark.nginx


def test_reading_the_body_after_the_head_is_named_in_a_warning(
    tmp_path: Path, nginx_available: None
) -> None:
    # nginx (request buffering on or off) stops sending the body once the response head is in:
    # the app's next read waits for --socket-timeout, the response is cut. The log said
    # "client stalled: read timed out" at INFO, blaming a client that had sent it all.
    with stack(tmp_path, "nginx_app:app", socket_timeout=1) as (server, nginx):
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=20)
        conn.request("POST", "/progress", body=os.urandom(16 << 20))
        response = conn.getresponse()
        # Cut short of the 16 MiB the body had (on a unix socket the cut is no reset, so nginx
        # ends the chunked answer as if it were whole).
        assert response.read().split()[-1] != str(16 << 20).encode()
        conn.close()
        log = server.log()
    (line,) = [line for line in log.splitlines() if "POST /progress" in line]
    assert f"[{logging.getLevelName(logging.WARNING)}]" in line, line
    assert "read timed out" in line and "nginx sends no more of a request body" in line, line
    assert "or set --post-buffering" in line, line
