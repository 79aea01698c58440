"""Start real processes for tests: nginx (own config, port, temp dirs) and ``uwsgiapp serve``.

Everything binds to loopback or lives under the test's tmp dir; each process is stopped by the
PID we started, never by name.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import uwsgiproto

APPS_DIR = Path(__file__).resolve().parents[1] / "apps"

UWSGI_PARAMS = """
uwsgi_param QUERY_STRING $query_string;
uwsgi_param REQUEST_METHOD $request_method;
uwsgi_param CONTENT_TYPE $content_type;
uwsgi_param CONTENT_LENGTH $content_length;
uwsgi_param REQUEST_URI $request_uri;
uwsgi_param PATH_INFO $document_uri;
uwsgi_param DOCUMENT_ROOT $document_root;
uwsgi_param SERVER_PROTOCOL $server_protocol;
uwsgi_param REQUEST_SCHEME $scheme;
uwsgi_param HTTPS $https if_not_empty;
uwsgi_param REMOTE_ADDR $remote_addr;
uwsgi_param REMOTE_PORT $remote_port;
uwsgi_param SERVER_PORT $server_port;
uwsgi_param SERVER_NAME $server_name;
"""


def nginx_binary() -> str | None:
    """The nginx executable, or None when it is not installed."""
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until true; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _connects(address: str) -> bool:
    if address.startswith("/"):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(address)
    else:
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=1):
            pass
    return True


class Nginx:
    """A real nginx in front of ``upstream`` (``unix:/path`` or ``127.0.0.1:port``).

    Its workers run as root when we are root, unless ``user`` names another user and group.
    """

    def __init__(
        self,
        workdir: Path,
        upstream: str,
        *,
        read_timeout: int = 60,
        user: str = "",
        more_upstreams: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.upstream = upstream
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        # ``user``: nginx's worker user and group (e.g. "www-data www-data"); root by default.
        if user:
            user = f"user {user};"
        elif os.geteuid() == 0:
            user = "user root root;"
        temps = " ".join(
            f"{kind}_temp_path {workdir}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # ``more_upstreams``: further servers; nginx's default `uwsgi_next_upstream error
        # timeout` passes a request on to the next one when it could not be sent.
        servers = " ".join(f"server {u};" for u in (upstream, *more_upstreams))
        self.conf = workdir / "nginx.conf"
        self.error_log = workdir / "nginx-error.log"
        self.conf.write_text(
            f"""
{user}
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  {temps}
  upstream app {{ {servers} }}
  server {{
    listen 127.0.0.1:{self.port};
    client_max_body_size 64m;
    location / {{
      {UWSGI_PARAMS}
      uwsgi_read_timeout {read_timeout}s;
      uwsgi_pass app;
    }}
    # The two ways nginx mounts an app under a prefix: rewrite it away, or have it stripped.
    location /sub-rewrite/ {{
      rewrite ^/sub-rewrite(/.*)$ $1 break;
      {UWSGI_PARAMS}
      uwsgi_param SCRIPT_NAME /sub-rewrite;
      uwsgi_pass app;
    }}
    location /sub-strip/ {{
      {UWSGI_PARAMS}
      uwsgi_param SCRIPT_NAME /sub-strip;
      uwsgi_modifier1 30;
      uwsgi_pass app;
    }}
    # Bodies passed on as they come (uploads with progress, --post-buffering's trials).
    location /unbuffered/ {{
      {UWSGI_PARAMS}
      uwsgi_request_buffering off;
      uwsgi_read_timeout {read_timeout}s;
      uwsgi_pass app;
    }}
    # Debian's uwsgi_params sends HTTP_HOST $host; params given again after the include.
    location /override/ {{
      rewrite ^/override(/.*)$ $1 break;
      {UWSGI_PARAMS}
      uwsgi_param HTTP_HOST $host;
      uwsgi_param HTTP_HOST $http_host;
      uwsgi_param REMOTE_ADDR $http_x_real_ip;
      uwsgi_param REQUEST_SCHEME https;
      uwsgi_pass app;
    }}
  }}
}}
"""
        )

    def start(self) -> Nginx:
        """Start nginx in the foreground as our child and wait for its port."""
        binary = nginx_binary()
        assert binary, "nginx is not installed (.ci/run installs it)"
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.conf), "-p", str(self.workdir), "-e", str(self.error_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _connects(f"127.0.0.1:{self.port}"), 10, "nginx to listen")
        return self

    def stop(self) -> None:
        """Graceful quit, then kill if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def upstream_errors(self) -> list[str]:
        """nginx error-log lines about the upstream (resets, premature closes, 502s)."""
        if not self.error_log.exists():
            return []
        return [
            line
            for line in self.error_log.read_text(errors="replace").splitlines()
            if "upstream" in line and ("[error]" in line or "[crit]" in line)
        ]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One HTTP request through nginx: (status, headers, body)."""
        return http_request(self.port, method, path, body, headers, timeout)


def never_reached_server(line: str) -> bool:
    """An nginx error line about a connect that failed: the request never reached the server
    (nginx passes such a request on to its next server, a POST too)."""
    return "while connecting to upstream" in line


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One HTTP request to 127.0.0.1:``port``: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def short_tmpdir_prefix(pid: int) -> str:
    """The name start of the short temp dirs process ``pid`` made: the test session removes its
    own at its end (not in ``stop``: tests check that the server itself removed its socket file).
    By name, not by a list: this module can be imported twice under importlib's import mode."""
    return f"uwa-{pid}-"


def short_tmpdir() -> str:
    """A new temp dir with a short path (unix socket paths must stay under 108 bytes)."""
    return tempfile.mkdtemp(prefix=short_tmpdir_prefix(os.getpid()))


class Server:
    """A real ``uwsgiapp serve`` in a subprocess (its stderr captured to a log file)."""

    def __init__(self, workdir: Path, app: str, **options: Any) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        # Unix socket paths must stay under 108 bytes: use a short temp dir, not tmp_path.
        self.socket = options.pop("socket", "") or os.path.join(short_tmpdir(), "app.sock")
        self.app = app
        self.options = options
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def upstream(self) -> str:
        """How nginx reaches this server."""
        return f"unix:{self.socket}" if self.socket.startswith("/") else self.socket

    def command(self) -> list[str]:
        """The command line, as a user would type it."""
        options = {"socket": [self.socket], **self.options}
        options.setdefault("pythonpath", [str(APPS_DIR)])
        argv = [sys.executable, "-m", "uwsgiapp", "serve", self.app]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                argv.append(flag if value else "--no-" + key.replace("_", "-"))
            elif isinstance(value, (list, tuple)):
                for item in value:
                    argv += [flag, str(item)]
            elif key == "chmod_socket":
                argv += [flag, f"{value:o}"]
            else:
                argv += [flag, str(value)]
        return argv

    def start(self, wait: bool = True, timeout: float = 15) -> Server:
        """Start the server; by default wait until its socket accepts connections."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        if wait:
            wait_until(self._ready, timeout, f"uwsgiapp serve on {self.socket}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
        return _connects(self.socket)

    @property
    def pid(self) -> int:
        """The server's (master's) pid."""
        assert self.proc is not None
        return self.proc.pid

    def signal(self, signum: int) -> None:
        """Send a signal to the process we started."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for exit; return the exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15) -> int | None:
        """TERM, wait, then KILL if needed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def stack(workdir: Path, app: str, **options: Any) -> Iterator[tuple[Server, Nginx]]:
    """``uwsgiapp serve`` behind a real nginx; both stopped on exit."""
    server = Server(workdir / "server", app, **options).start()
    nginx = Nginx(workdir / "nginx", server.upstream)
    try:
        nginx.start()
        yield server, nginx
    finally:
        nginx.stop()
        server.stop()


# -- raw uwsgi clients and process checks (reliability suite) ---------------------------------


#: What systemd does for a socket unit: the listening socket at fd 3, LISTEN_FDS and this
#: process's LISTEN_PID in the environment, then exec the service (same pid).
SYSTEMD_EXEC = """
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)
os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="app.socket")
os.execv(sys.executable, [sys.executable, "-m", "uwsgiapp", "serve", *sys.argv[2:]])
"""


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def worker_pids(master_pid: int) -> set[int]:
    """The pids of ``master_pid``'s children: its workers (Linux /proc)."""
    path = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


class RawResult:
    """What a raw uwsgi exchange saw: the bytes the server sent and how the connection ended."""

    __slots__ = ("data", "end", "seconds")

    def __init__(self, data: bytes, end: str, seconds: float) -> None:
        self.data = data
        #: "eof" (closed by the server), "reset", "timeout" (still open after ``timeout``), or
        #: "send-failed" (the server closed before taking all of our bytes; then EOF).
        self.end = end
        #: From our last byte sent (or the failed send) to the end of the connection.
        self.seconds = seconds


def uwsgi_get(path: str, query: str = "") -> bytes:
    """A uwsgi GET request packet, as nginx would send it."""
    return uwsgiproto.build_request(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "t",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
    )


def uwsgi_exchange(
    path: str, data: bytes, *, timeout: float, pieces: int = 1, delay: float = 0.0
) -> RawResult:
    """Send ``data`` to the unix socket ``path``, half-close, read until the server closes.

    ``pieces`` > 1 sends the bytes in that many writes, ``delay`` seconds apart (byte-by-byte
    delivery is ``pieces=len(data)``). The half-close makes a short packet end with EOF instead
    of waiting for the server's socket timeout.
    """
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(timeout)
    end = "eof"
    try:
        sock.connect(path)
        try:
            if pieces <= 1:
                sock.sendall(data)
            else:
                step = max(1, -(-len(data) // pieces))
                for i in range(0, len(data), step):
                    if i and delay:
                        time.sleep(delay)
                    sock.sendall(data[i : i + step])
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            end = "send-failed"
        except TimeoutError:  # the server stopped reading and did not close
            return RawResult(b"", "timeout", timeout)
        started = time.monotonic()
        chunks = []
        try:
            while chunk := sock.recv(262144):
                chunks.append(chunk)
        except ConnectionResetError:
            end = "reset"
        except TimeoutError:
            end = "timeout"
        return RawResult(b"".join(chunks), end, time.monotonic() - started)
    finally:
        sock.close()


class LogCursor:
    """Reads what a growing log file gained since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new_lines(self) -> list[str]:
        """Whole lines written since the last call (a partial last line waits for the next)."""
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read()
        cut = text.rfind(b"\n") + 1
        self.offset += cut
        return text[:cut].decode("latin-1").splitlines()


def wait_for_workers(server: Server, count: int, timeout: float = 10) -> set[int]:
    """Wait until the master has forked ``count`` workers (still starting, maybe); their pids."""
    wait_until(
        lambda: len(worker_pids(server.pid)) == count and "starting" in server.log(),
        timeout,
        f"{count} workers",
    )
    return worker_pids(server.pid)


def catches_term(pid: int) -> bool:
    """Whether ``pid`` handles SIGTERM itself (``SigCgt`` in /proc) with it unblocked: a worker
    has installed its signals, i.e. finished starting; before, a TERM ends it at once. (Just
    after fork it still has the master's handlers, but with the signals blocked.)"""
    masks: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("SigCgt", "SigBlk"):
                    masks[name] = int(value, 16)
    except OSError:
        return False
    bit = 1 << (signal.SIGTERM - 1)
    return bool(masks.get("SigCgt", 0) & bit) and not masks.get("SigBlk", 0) & bit


def wait_for_serving(server: Server, count: int, timeout: float = 10) -> set[int]:
    """Wait until the master has ``count`` workers, each with its own signal handlers (its
    app loaded: a TERM now stops it gracefully); their pids.

    (:func:`wait_for_workers` waits for the forks only: a stop sent then may find a worker
    that has not yet installed its handlers, which it ends at once.)
    """
    wait_until(
        lambda: len(pids := worker_pids(server.pid)) == count and all(map(catches_term, pids)),
        timeout,
        f"{count} workers serving",
    )
    return worker_pids(server.pid)


def closed_after(
    socks: list[socket.socket], sent_at: list[float], until: float
) -> tuple[list[float], list[bytes]]:
    """Seconds from each socket's last byte to its close by the server (inf: still open), and
    what the server sent it."""
    closed = [float("inf")] * len(socks)
    received = [b""] * len(socks)
    selector = selectors.DefaultSelector()
    for i, sock in enumerate(socks):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, i)
    try:
        while selector.get_map() and time.monotonic() < until:
            for key, _ in selector.select(timeout=max(0.0, until - time.monotonic())):
                i = key.data
                try:
                    data = socks[i].recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                received[i] += data
                if not data:
                    closed[i] = time.monotonic() - sent_at[i]
                    selector.unregister(socks[i])
    finally:
        selector.close()
    return closed, received


_STALLED_ONE = re.compile(r"\] client \S+ stalled: ")
_STALLED_MORE = re.compile(r"(\d+) more stalled clients closed in ")


def stalled_closed(lines: Iterable[str]) -> int:
    """How many parked clients the log says were closed for their silence: one line each up
    to a burst a window, then counted in one line (uwsgiapp.server.throttle)."""
    count = 0
    for line in lines:
        if more := _STALLED_MORE.search(line):
            count += int(more.group(1))
        elif _STALLED_ONE.search(line):
            count += 1
    return count


@contextlib.contextmanager
def notify_socket(monkeypatch: Any) -> Iterator[socket.socket]:
    """A stand-in for systemd's notify socket (NOTIFY_SOCKET set to it), told the senders."""
    path = os.path.join(short_tmpdir(), "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(path)
        manager.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        manager.settimeout(30)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        yield manager
