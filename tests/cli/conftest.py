"""Fixtures for the command line tests (helpers live in cli_testkit)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from cli.cli_testkit import FakeServers, Handler, TCPServer, UnixServer


@pytest.fixture(scope="module")
def fake_uwsgi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServers]:
    """A unix and a TCP stand-in uwsgi server for a test module (not the session: their
    threads would outlive it, and the supervisor tests that fork in this process later got
    Python 3.12's warning that a multi-threaded process forked)."""
    path = str(tmp_path_factory.mktemp("sock") / "fake.sock")
    unix = UnixServer(path, Handler)
    tcp = TCPServer(("127.0.0.1", 0), Handler)
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        for s in (unix, tcp)
    ]
    for t in threads:
        t.start()
    try:
        yield FakeServers(unix=path, tcp=f"127.0.0.1:{tcp.server_address[1]}")
    finally:
        for s in (unix, tcp):
            s.shutdown()
            s.server_close()
