"""Helpers for the command line tests: running ``uwsgiapp`` as a user would, and a tiny uwsgi
server (a thread decoding with :class:`uwsgiproto.Decoder`) that stands in for the real one."""

from __future__ import annotations

import json
import os
import resource
import socket
import socketserver
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import uwsgiproto

REPO = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 30,
    memory_cap: int | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m uwsgiapp ARGS`` the way a user types it; UWSGIAPP_* vars are cleared.

    ``memory_cap``: the child's address space in bytes, as a container limit would set it (an
    unbounded expansion must fail in the test, not take the machine's memory first).
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}
    base.update(env or {})

    def cap() -> None:
        assert memory_cap is not None
        resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

    return subprocess.run(
        [sys.executable, "-m", "uwsgiapp", *args],
        cwd=cwd,
        env=base,
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
        preexec_fn=cap if memory_cap is not None else None,
    )


class Handler(socketserver.BaseRequestHandler):
    """Answer one uwsgi packet: pong for a ping, else a JSON echo of the vars and body.

    PATH_INFO selects special answers: /status/NNN, /garbage, /silent, /hang, /title.
    """

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        decoder = uwsgiproto.Decoder()
        event: object = uwsgiproto.NEED_DATA
        while event is uwsgiproto.NEED_DATA:
            chunk = sock.recv(65536)
            if not chunk:
                return
            decoder.receive_data(chunk)
            event = decoder.next_event()
        if isinstance(event, uwsgiproto.Ping):
            sock.sendall(uwsgiproto.build_pong())
            return
        assert isinstance(event, uwsgiproto.Request)
        body = decoder.trailing_data
        length = int(event.vars.get("CONTENT_LENGTH") or 0)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        path = event.vars.get("PATH_INFO", "")
        if path == "/garbage":
            sock.sendall(b"this is not http")
            return
        if path == "/silent":
            return
        if path == "/hang":
            time.sleep(3)
            return
        if path == "/title":  # a reason phrase that would set the terminal's title
            sock.sendall(b"HTTP/1.1 503 \x1b]0;PWNED\x07\r\nContent-Length: 0\r\n\r\n")
            return
        status = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
        payload = json.dumps(
            {
                "modifier1": event.modifier1,
                "vars": dict(event.vars),
                "body": body.decode("latin-1"),
            }
        ).encode()
        sock.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class FakeServers:
    """Addresses of the stand-in uwsgi servers."""

    unix: str
    tcp: str


def free_port() -> int:
    """An ephemeral TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
