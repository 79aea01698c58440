"""bench/stop_resets.py: what it counts as a POST reset, and one real stop behind nginx."""

from __future__ import annotations

from types import ModuleType

import pytest
from support.scripts import load_script

STOPPED = "127.0.0.1:4001"
LOG = [
    # refused at connect: nginx passed it on (a POST too)
    "[error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, "
    'request: "POST / HTTP/1.1", upstream: "uwsgi://127.0.0.1:4001"',
    # sent, then reset: a 502
    "[error] 7#7: *2 recv() failed (104: Connection reset by peer) while reading response "
    'header from upstream, request: "POST / HTTP/1.1", upstream: "uwsgi://127.0.0.1:4001"',
    "[error] 7#7: *3 upstream prematurely closed connection while reading response header from "
    'upstream, request: "POST / HTTP/1.1", upstream: "uwsgi://127.0.0.1:4001"',
    # the other server's
    "[error] 7#7: *4 recv() failed (104: Connection reset by peer) while reading response "
    'header from upstream, request: "POST / HTTP/1.1", upstream: "uwsgi://127.0.0.1:4002"',
]


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return load_script("bench/stop_resets.py")


def test_only_requests_sent_to_the_stopped_server_and_then_cut_count(tool: ModuleType) -> None:
    assert [line.split()[2] for line in tool.sent_then_reset(LOG, STOPPED)] == ["*2", "*3"]


@pytest.mark.usefixtures("nginx_available")
def test_one_stop_under_post_load(tool: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main(["--rounds", "1", "--before", "50", "--after", "50", "--clients", "4"]) == 0
    out = capsys.readouterr().out
    assert "1 stops of 1 of 2 servers" in out
    assert "stop 1: " in out and "stops with a POST reset: " in out, out
