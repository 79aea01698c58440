"""A binary upgrade (gunicorn's ``USR2``), the decisions: pure functions, no processes.

What a master does on ``USR2``, ``WINCH`` and ``HUP`` depends on where it stands in an upgrade
(:class:`Standing`): :func:`decide` says it. What the old master passes to the new one (its
listening sockets, by spec and descriptor) travels in one environment variable
(:data:`VARIABLE`), written by :func:`encode` and read by :func:`decode`; the environment the
new master starts with is :func:`exec_environ`'s. The effects are
:mod:`~uwsgiapp.supervisor.upgrade`'s.
"""

from __future__ import annotations

import enum
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from uwsgiapp.addresses import AddressError, parse_address
from uwsgiapp.exitcodes import ServeExit

__all__ = [
    "TOUCHED",
    "VARIABLE",
    "Do",
    "Passed",
    "PassedSocket",
    "Seen",
    "Standing",
    "child_exit",
    "decide",
    "decode",
    "encode",
    "exec_environ",
    "fault",
    "oldbin",
]

#: The master loop's name for a touch of ``--touch-reload``: a HUP's reload, unless a USR2's
#: new master runs (a real HUP after WINCH starts the old workers again; a touch must not).
TOUCHED = "touch"

#: What the old master passes its sockets in (not ``UWSGIAPP_*``: those are options).
VARIABLE = "_UWSGIAPP_UPGRADE"


@dataclass(frozen=True, slots=True, kw_only=True)
class PassedSocket:
    """One listening socket the new master takes over: its ``spec`` as the old master's
    options named it, its descriptor, and the unix socket file it was bound to (path, inode)."""

    spec: str
    fd: int
    path: str = ""
    inode: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Passed:
    """What the old master (pid ``parent``) hands the new one."""

    parent: int
    sockets: tuple[PassedSocket, ...] = ()


def encode(passed: Passed) -> str:
    """The value of :data:`VARIABLE` for ``passed``."""
    return json.dumps(
        {
            "parent": passed.parent,
            "sockets": [[s.spec, s.fd, s.path, list(s.inode or ())] for s in passed.sockets],
        },
        separators=(",", ":"),
    )


def decode(text: str) -> Passed | None:
    """``passed`` from the value of :data:`VARIABLE`; None if it is not one."""
    try:
        data = json.loads(text)
        sockets = tuple(
            PassedSocket(
                spec=str(spec),
                fd=int(fd),
                path=str(path),
                inode=(int(inode[0]), int(inode[1])) if len(inode) == 2 else None,
            )
            for spec, fd, path, inode in data["sockets"]
        )
        parent = int(data["parent"])
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    if parent <= 0 or any(s.fd < 3 for s in sockets):
        return None
    return Passed(parent=parent, sockets=sockets)


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen:
    """What a passed descriptor turns out to be: its ``SO_TYPE`` (``kind``), ``SO_ACCEPTCONN``
    (``accepting``), family, ``getsockname()`` (``name``), and the (device, inode) of what is
    at the socket file's path now (``file``, None: nothing, or no path)."""

    kind: int
    accepting: bool
    family: int
    name: object
    file: tuple[int, int] | None = None


def fault(one: PassedSocket, seen: Seen) -> str:
    """Why the descriptor passed as ``one`` is not the listening socket its spec names ("":
    it is); the new master then closes it and binds the spec itself."""
    if seen.kind != socket.SOCK_STREAM:
        return "not a stream socket"
    if not seen.accepting:
        return "not a listening socket"
    try:
        address = parse_address(one.spec)
    except AddressError:
        return "its spec names no socket"
    if address.fd is not None:
        return "" if address.fd == one.fd else f"not descriptor {address.fd}"
    if address.is_unix:
        if one.path != os.path.abspath(address.path):  # the file that is chowned and removed
            return f"{one.path or '(no path)'} is not the file its spec names"
        name = seen.name if isinstance(seen.name, str) else ""
        if seen.family != socket.AF_UNIX or os.path.basename(name) != os.path.basename(one.path):
            return f"not a unix socket bound to {one.path or address.path}"
        if seen.file is None or seen.file != one.inode:
            return f"{one.path} is no longer the socket file it was bound to"
        return ""
    port = seen.name[1] if isinstance(seen.name, tuple) and len(seen.name) >= 2 else None
    if seen.family not in (socket.AF_INET, socket.AF_INET6) or port != address.port:
        return f"not a TCP socket on port {address.port}"
    return ""


def exec_environ(start: Mapping[str, str], passed: Passed, new_pid: int) -> dict[str, str]:
    """The new master's environment: the old one's as it was at start (before ``--env``),
    with the sockets passed. Sockets systemd passed the old master (``LISTEN_PID`` names it)
    are passed as systemd passes them, to ``new_pid``, so that a unit that names no socket
    finds them there again."""
    env = dict(start)
    env[VARIABLE] = encode(passed)
    if env.get("LISTEN_PID") == str(passed.parent):
        env["LISTEN_PID"] = str(new_pid)
    return env


def oldbin(pidfile: str) -> str:
    """Where the old master's pidfile goes while a new master runs (nginx's and gunicorn's
    name)."""
    return pidfile + ".oldbin"


def child_exit(pid: int, code: int | None, signum: int | None) -> str:
    """How the new master ended, for the old master's log line."""
    if signum is not None:
        return f"the new master (pid {pid}) was killed by signal {signum}"
    try:
        meaning = "stopped" if not code else ServeExit(code).description
    except ValueError:
        meaning = "not a code of uwsgiapp serve: it could not be executed?"
    return f"the new master (pid {pid}) exited with code {code} ({meaning})"


class Do(enum.Enum):
    """What a master does with a signal of the upgrade's."""

    #: Not the upgrade's: the policy decides (a HUP's reload; anything while stopping).
    POLICY = "policy"
    IGNORE = "ignore"
    REFUSE = "refuse"
    UPGRADE = "upgrade"
    STOP_WORKERS = "stop workers"
    START_WORKERS = "start workers"


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """Where a master stands: ``child``, the pid of the new master its USR2 started (alive,
    0: none); ``parent``, the pid of the old master whose USR2 started this one (alive, 0:
    none); ``workers_stopped``: a WINCH stopped its workers; ``stopping``: it stops;
    ``pid1``: it is a container's PID 1; ``init``: the container init whose child it is (tini
    under ``docker run --init``), ''; ``can_exec``: it knows the command it was started
    with; ``cwd_lost``: the directory it was started in could not be read at its start."""

    child: int = 0
    parent: int = 0
    workers_stopped: bool = False
    stopping: bool = False
    pid1: bool = False
    init: str = ""
    can_exec: bool = True
    cwd_lost: bool = False


def decide(name: str, standing: Standing) -> tuple[Do, str]:
    """What ``name`` ('USR2', 'WINCH', 'HUP', :data:`TOUCHED`) does now, and the line that
    says it ('' for none)."""
    if standing.stopping:
        if name == "USR2":
            return Do.REFUSE, "SIGUSR2 refused: this master is stopping"
        return Do.POLICY, ""
    if name in ("TTIN", "TTOU") and standing.workers_stopped:
        return Do.IGNORE, (
            f"SIG{name} ignored: WINCH stopped this master's workers (HUP starts them again)"
        )
    if name == "USR2":
        return _usr2(standing)
    if name == TOUCHED and standing.child:
        return Do.IGNORE, (
            f"--touch-reload: the reload is left to the new master (pid {standing.child}) of "
            "this master's USR2, which sees the touch too (HUP here after WINCH starts this "
            "master's workers again)"
        )
    if name == "WINCH":
        if standing.parent and not standing.child:  # a deploy script's likeliest slip
            return Do.IGNORE, (
                "SIGWINCH ignored: this is the new master of a USR2; WINCH the old master "
                f"(pid {standing.parent}, its pidfile .oldbin) to stop its workers"
            )
        if not standing.child:  # a terminal's resize; gunicorn acts only when daemonized
            return Do.IGNORE, ""
        if standing.workers_stopped:
            return Do.IGNORE, "SIGWINCH: the workers are stopped already (HUP starts them)"
        return Do.STOP_WORKERS, (
            f"SIGWINCH: stopping the workers gracefully; the new master (pid {standing.child}) "
            "serves; TERM or QUIT to this master ends it, HUP starts its workers again"
        )
    if name == "HUP" and standing.workers_stopped:
        return Do.START_WORKERS, (
            "SIGHUP: the workers WINCH stopped start again, with the code this master loaded "
            "(no re-import: the new code is the new master's); TERM the new master "
            f"(pid {standing.child}) to go back to this one"
            if standing.child
            else "SIGHUP: the workers WINCH stopped start again, with the code this master loaded"
        )
    return Do.POLICY, ""


def _usr2(standing: Standing) -> tuple[Do, str]:
    if standing.child:
        return Do.REFUSE, (
            f"SIGUSR2 refused: the new master of an earlier USR2 (pid {standing.child}) still "
            "runs; stop it (TERM), or this one (WINCH, then TERM), first"
        )
    if standing.parent:
        return Do.REFUSE, (
            f"SIGUSR2 refused: the old master (pid {standing.parent}) that started this one "
            "still runs; stop it (WINCH, then TERM) first"
        )
    if standing.pid1:
        return Do.REFUSE, (
            "SIGUSR2 refused: this master is PID 1 (a container's): a new master would be its "
            "child and die with it; start a new container instead (HUP reloads the app's code)"
        )
    if standing.init:
        return Do.REFUSE, (
            f"SIGUSR2 refused: this master's parent is {standing.init}, a container's PID 1, "
            "which ends the container when this master exits: the new master would die with "
            "it; start a new container instead (HUP reloads the app's code)"
        )
    if not standing.can_exec:
        return Do.REFUSE, (
            "SIGUSR2 refused: this server was not started by the uwsgiapp command, so there "
            "is no command line to start a new master with"
        )
    if standing.cwd_lost:
        return Do.REFUSE, (
            "SIGUSR2 refused: the directory this server was started in could not be read at "
            "its start (removed, or not searchable), so a new master has none to start in"
        )
    return Do.UPGRADE, ""
