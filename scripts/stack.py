#!/usr/bin/env python3
"""The local stack (``make run``): nginx in front of ``uwsgiapp serve`` on loopback, no Docker.

The same topology as docker-compose.yml, built from the same files:

* nginx runs ``deploy/nginx.conf`` with ``deploy/nginx/templates/default.conf.template``
  rendered the way the official nginx image renders it (envsubst of the listed variables),
  for ``127.0.0.1:PORT``;
* the app runs the ``app`` service's ``command`` read from docker-compose.yml, with only the
  listen address (``127.0.0.1:<free port>``) and the allow-list (``127.0.0.1``) changed.

Everything it writes (rendered config, nginx temp dirs, pid files) lives under the run dir
(default ``./run``). Ctrl-C (or TERM) stops both: TERM to the uwsgiapp master (graceful stop),
QUIT to nginx (graceful shutdown). The children run in their own sessions so that a terminal's
Ctrl-C reaches only this script, which then stops them in that order.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_MAIN_CONF = ROOT / "deploy" / "nginx.conf"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "templates" / "default.conf.template"
STATIC_ROOT = ROOT / "examples" / "static"
ENSURE_NGINX = ROOT / "scripts" / "ensure-nginx.sh"

#: What the local stack changes in the compose command: loopback only.
LOCAL_ALLOW_FROM = "127.0.0.1"
#: Seconds to wait for a graceful stop before KILL (the app's graceful timeout is 30 s).
STOP_TIMEOUT = 40.0
START_TIMEOUT = 20.0

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class StackError(Exception):
    """A problem the user can act on; printed without a traceback."""


class Interrupted(StackError):
    """Ctrl-C (or TERM/HUP) arrived while starting."""


#: Signals received (INT, TERM, HUP): the handler only records them; the loops act on them.
_signals: list[int] = []


def _record_signal(signum: int, _frame: object) -> None:
    _signals.append(signum)


def say(message: str) -> None:
    print(f"stack: {message}", file=sys.stderr, flush=True)


# --- the shared definitions ----------------------------------------------------------------


def compose_command(text: str, service: str = "app") -> list[str]:
    """The ``command`` of ``service`` in a compose file, uninterpolated.

    The compose file writes it as a JSON-style flow list (``command: ["a", "b", ...]``, which
    may span lines), so it is read without a YAML library: find the service, then the list.
    """
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == f"  {service}:")
    except StopIteration:
        raise StackError(f"{COMPOSE_FILE.name}: no service {service!r}") from None
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line.strip() and not line.startswith("    ") and not line.lstrip().startswith("#"):
            break  # the next service or top-level key
        if line.startswith("    command:"):
            chunk = line.split(":", 1)[1]
            j = i
            while chunk.count("[") > chunk.count("]") and j + 1 < len(lines):
                j += 1
                chunk += "\n" + lines[j]
            try:
                value = json.loads(chunk)
            except ValueError as exc:
                raise StackError(
                    f"{COMPOSE_FILE.name}: {service}.command must be a JSON-style list: {exc}"
                ) from None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise StackError(f"{COMPOSE_FILE.name}: {service}.command must list strings")
            return value
    raise StackError(f"{COMPOSE_FILE.name}: service {service!r} has no command")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose-style ``${VAR}`` / ``${VAR:-default}`` interpolation."""

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        got = env.get(name, "")
        if got == "" and default is not None:
            return default
        return got

    return _VAR.sub(sub, value)


def local_app_command(
    compose_text: str, app_address: str, env: Mapping[str, str] | None = None
) -> list[str]:
    """The compose app command for loopback: ``--socket`` and ``--uwsgi-allow-from`` changed,
    ``${...}`` interpolated from ``env``; still starting with ``uwsgiapp``."""
    env = os.environ if env is None else env
    argv = [interpolate(arg, env) for arg in compose_command(compose_text)]
    replace = {"--socket": app_address, "--uwsgi-allow-from": LOCAL_ALLOW_FROM}
    seen = set()
    for i, arg in enumerate(argv[:-1]):
        if arg in replace:
            argv[i + 1] = replace[arg]
            seen.add(arg)
    missing = set(replace) - seen
    if missing:
        raise StackError(f"{COMPOSE_FILE.name}: app command lacks {', '.join(sorted(missing))}")
    return argv


def render_template(text: str, values: Mapping[str, str]) -> str:
    """envsubst restricted to ``values`` (like the nginx image, which passes only defined
    environment variables); any other ``${UPPER_CASE}`` left in the result is an error, since
    nginx's own variables are lower case."""
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
        text = re.sub(r"\$" + name + r"(?![A-Za-z0-9_])", value.replace("\\", "\\\\"), text)
    left = sorted(set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)\}?", text)))
    if left:
        raise StackError(f"nginx template uses variables with no value: {', '.join(left)}")
    return text


def nginx_values(port: int, upstream: str, static_root: Path = STATIC_ROOT) -> dict[str, str]:
    """The template variables for the local stack (compose sets the same names)."""
    return {
        "UWSGIAPP_UPSTREAM": upstream,
        "NGINX_LISTEN": f"127.0.0.1:{port}",
        "NGINX_STATIC_ROOT": str(static_root),
        # Compose sets a `resolver` (Docker's DNS) so nginx follows replicas; the local
        # upstream is an IP address, which nginx uses without resolving anything.
        "NGINX_RESOLVER": "# no resolver: the upstream is an IP address",
    }


def write_nginx_prefix(run_dir: Path, values: Mapping[str, str]) -> Path:
    """Lay out ``run_dir/nginx`` (main conf, rendered site conf, temp dirs); return it."""
    prefix = run_dir / "nginx"
    (prefix / "conf.d").mkdir(parents=True, exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    shutil.copyfile(NGINX_MAIN_CONF, prefix / "nginx.conf")
    rendered = render_template(NGINX_TEMPLATE.read_text(), values)
    (prefix / "conf.d" / "default.conf").write_text(rendered)
    return prefix


# --- processes -----------------------------------------------------------------------------


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )


NGINX_MISSING = (
    "Install it (Debian/Ubuntu: sudo apt-get install -y nginx; `make run` as root installs it) "
    "and try again."
)


def ensure_nginx() -> str:
    """The nginx binary: $NGINX if set, else from PATH or /usr/sbin, else installed through
    scripts/ensure-nginx.sh (which does so only as root on Debian/Ubuntu)."""
    chosen = os.environ.get("NGINX")
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise StackError(f"nginx not found at NGINX={chosen}. {NGINX_MISSING}")
        return chosen
    binary = nginx_binary()
    if binary:
        return binary
    subprocess.run([str(ENSURE_NGINX)], check=False)
    binary = nginx_binary()
    if not binary:
        raise StackError(f"nginx is not installed. {NGINX_MISSING}")
    return binary


def nginx_command(binary: str, prefix: Path) -> list[str]:
    globals_ = "daemon off;"
    if os.geteuid() == 0:
        # A root master would run its workers as `nobody`, who may not be able to read the
        # checkout (static files): run them as the checkout's owner instead.
        st = ROOT.stat()
        user = pwd.getpwuid(st.st_uid).pw_name
        group = grp.getgrgid(st.st_gid).gr_name
        globals_ += f" user {user} {group};"
    return [
        binary,
        "-p",
        f"{prefix}/",
        "-c",
        str(prefix / "nginx.conf"),
        "-e",
        "stderr",
        "-g",
        globals_,
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise StackError(
                f"port {port} on 127.0.0.1 is not available ({exc.strerror}); "
                f"pick another with PORT=NNNN"
            ) from None


def app_answers(address: str) -> bool:
    from uwsgiapp import client

    try:
        client.ping(client.parse_address(address), timeout=1.0)
    except client.ClientError:
        return False
    return True


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_ready(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _signals:
            raise Interrupted(f"interrupted while starting {what}")
        if proc.poll() is not None:
            raise StackError(f"{what} exited with status {proc.returncode} while starting")
        if ready():
            return
        time.sleep(0.05)
    raise StackError(f"{what} did not become ready in {START_TIMEOUT:.0f}s")


def stop(proc: subprocess.Popen[bytes] | None, signum: int, what: str) -> bool:
    """Send ``signum`` and wait; KILL after STOP_TIMEOUT or on another Ctrl-C. True when it
    stopped by itself."""
    if proc is None or proc.poll() is not None:
        return True
    seen = len(_signals)
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signum)
    deadline = time.monotonic() + STOP_TIMEOUT
    while proc.poll() is None:
        if len(_signals) > seen:
            reason = "stop requested again"
        elif time.monotonic() > deadline:
            reason = f"did not stop in {STOP_TIMEOUT:.0f}s"
        else:
            time.sleep(0.05)
            continue
        say(f"{what} (pid {proc.pid}) {reason}: killing it")
        proc.kill()
        proc.wait()
        return False
    return True


def already_running(pids_file: Path) -> int | None:
    """The pid of a live stack that wrote ``pids_file``, if any."""
    try:
        pid = int(json.loads(pids_file.read_text())["stack"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid


def warn_leftovers(pids_file: Path) -> None:
    """A stack killed with SIGKILL cannot stop its children: name any that still run (they
    are not killed here: after a reboot those pids may belong to something else)."""
    try:
        pids = json.loads(pids_file.read_text())
    except (OSError, ValueError):
        return
    for what in ("app", "nginx"):
        pid = pids.get(what) if isinstance(pids, dict) else None
        if isinstance(pid, int):
            try:
                os.kill(pid, 0)
            except OSError:
                continue
            say(f"warning: {what} pid {pid} from a previous stack may still be running")
    pids_file.unlink(missing_ok=True)


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8080),
        help="nginx port on 127.0.0.1 (default: $PORT or 8080; 0 = any free port)",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get("RUN_DIR") or ROOT / "run"),
        help="where config, temp dirs and pid files go (default: ./run)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _record_signal)

    app: subprocess.Popen[bytes] | None = None
    nginx: subprocess.Popen[bytes] | None = None
    run_dir: Path = args.run_dir.resolve()
    pids_file = run_dir / "stack.pids"
    other = already_running(pids_file)
    if other is not None:
        say(f"error: a stack is already running from {run_dir} (pid {other}); stop it first")
        return 1
    warn_leftovers(pids_file)
    try:
        binary = ensure_nginx()
        port = args.port or free_port()
        check_port_free(port)
        app_address = f"127.0.0.1:{free_port()}"
        app_argv = local_app_command(COMPOSE_FILE.read_text(), app_address)
        run_dir.mkdir(parents=True, exist_ok=True)
        prefix = write_nginx_prefix(run_dir, nginx_values(port, app_address))

        say(f"app: {' '.join(app_argv)}")
        app = subprocess.Popen(
            [sys.executable, "-m", "uwsgiapp", *app_argv[1:]], cwd=ROOT, start_new_session=True
        )
        wait_ready(app, lambda: app_answers(app_address), "uwsgiapp serve")

        nginx = subprocess.Popen(nginx_command(binary, prefix), cwd=ROOT, start_new_session=True)
        wait_ready(nginx, lambda: port_accepts(port), "nginx")

        pids_file.write_text(json.dumps({"stack": os.getpid(), "app": app.pid, "nginx": nginx.pid}))
        say(f"app pid {app.pid} on {app_address}, nginx pid {nginx.pid}; Ctrl-C stops both")
        print(f"uwsgiapp stack running: http://127.0.0.1:{port}/", flush=True)

        while not _signals:
            if app.poll() is not None:
                raise StackError(f"uwsgiapp serve exited with status {app.returncode}")
            if nginx.poll() is not None:
                raise StackError(f"nginx exited with status {nginx.returncode}")
            time.sleep(0.1)
        say(f"got {signal.Signals(_signals[0]).name}: stopping")
        code = 0
    except Interrupted as exc:
        say(f"{exc}: stopping")
        code = 0
    except StackError as exc:
        say(f"error: {exc}")
        code = 1
    finally:
        # nginx first (QUIT: stop accepting, finish requests in flight), then the app (TERM:
        # graceful stop), so no request arrives at a stopping app.
        clean = stop(nginx, signal.SIGQUIT, "nginx")
        clean = stop(app, signal.SIGTERM, "uwsgiapp serve") and clean
        pids_file.unlink(missing_ok=True)
    if app is not None or nginx is not None:
        say("stopped" if clean else "stopped (some processes had to be killed)")
    if code == 0 and not clean:
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
