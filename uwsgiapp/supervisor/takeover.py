"""A binary upgrade's new master, at its start: how this process was started (what a new
master of its own USR2 is started with), and the listening sockets an old master passed it,
checked (:func:`~uwsgiapp.supervisor.handover.fault`) and adopted
(:func:`~uwsgiapp.server.listeners.adopt`) so that binding their specs gives them. The rest of
the upgrade is :mod:`~uwsgiapp.supervisor.upgrade`'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from uwsgiapp.server.listeners import Listener, adopt, drop_adopted
from uwsgiapp.supervisor.handover import VARIABLE, PassedSocket, Seen, decode, fault

__all__ = [
    "Start",
    "alone",
    "bound",
    "claim",
    "parent",
    "receive",
    "say_received",
    "start_dir",
    "started",
]

log = logging.getLogger("uwsgiapp.error")


@dataclass(frozen=True, slots=True)
class Start:
    """How this process was started: what a new master is started with."""

    executable: str
    argv: list[str]
    cwd: str


_start: Start | None = None
#: The old master whose sockets this one took (0: none).
_parent = 0
#: What receive() found, for the log: (level, line).
_notes: list[tuple[int, str]] = []


def receive() -> None:
    """At ``serve``'s start: note how the process was started, and take the sockets an old
    master passed (they are what binding their specs gives, :func:`~uwsgiapp.server.listeners.
    adopt`). The variable leaves the environment: the app must not see it.

    The old master may have exited already (a QUIT right after the USR2): this one, reparented,
    still holds the sockets, and takes them as its own (gunicorn does not ask for the parent
    either); a socket file is then this master's to remove."""
    global _start, _parent
    with contextlib.suppress(OSError):
        _start = Start(sys.executable, list(sys.orig_argv), start_dir(os.environ))
    text = os.environ.pop(VARIABLE, None)
    if text is None:
        return
    passed = decode(text)
    if passed is None:
        _notes.append((logging.WARNING, f"{VARIABLE} ignored: not what a uwsgiapp master passes"))
        return
    alive = passed.parent == os.getppid()
    for one in passed.sockets:
        why = _take(one, alive)
        if why:  # closed: not inherited by the workers, and the spec is bound anew
            said = f"the old master's socket {one.spec} (fd {one.fd}) not taken: {why}"
            _notes.append((logging.WARNING, said))
    if alive:
        _parent = passed.parent
        _notes.append((logging.INFO, f"binary upgrade: started by master {_parent}'s USR2"))
    else:
        said = (
            f"binary upgrade: started by master {passed.parent}'s USR2, which has exited "
            "already: its sockets, and their files, are this master's"
        )
        _notes.append((logging.INFO, said))


def _take(one: PassedSocket, alive: bool) -> str:
    """Adopt the socket passed as ``one`` if it is the one its spec names; else close the
    descriptor and say why."""
    try:
        sock = socket.socket(fileno=one.fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.close(one.fd)
        return str(exc.strerror or exc)
    try:
        why = fault(one, _seen(sock, one.path))
    except OSError as exc:
        why = str(exc.strerror or exc)
    if why:
        sock.close()
        return why
    sock.set_inheritable(False)
    adopt(Listener(sock, one.spec, path=one.path, inode=one.inode, shared=alive))
    return ""


def _seen(sock: socket.socket, path: str) -> Seen:
    file = None
    with contextlib.suppress(OSError):
        st = os.lstat(path) if path else None
        file = (st.st_dev, st.st_ino) if st is not None else None
    return Seen(
        kind=sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE),
        accepting=bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)),
        family=sock.family,
        name=sock.getsockname(),
        file=file,
    )


def start_dir(environ: Mapping[str, str]) -> str:
    """The directory a new master starts in: the shell's ``$PWD`` when it is the working
    directory (gunicorn's ``util.getcwd``), as written: through a deploy's ``current``
    symlink, which the new master then follows to the new release; else ``getcwd()``, the
    resolved path. OSError: the working directory is gone."""
    cwd = os.getcwd()
    pwd = environ.get("PWD", "")
    with contextlib.suppress(OSError):
        if os.path.isabs(pwd) and os.path.samefile(pwd, cwd):
            return pwd
    return cwd


def say_received() -> None:
    """What :func:`receive` found, in the log (once it is set up, before binding)."""
    for level, note in _notes:
        log.log(level, "%s", note)
    _notes.clear()


def bound() -> None:
    """Once the sockets are bound: the passed sockets no option names are closed."""
    unused = drop_adopted()
    if unused:
        log.warning("the old master's sockets %s: no option names them, closed", ", ".join(unused))


def started() -> Start | None:
    """How this process was started (None: its directory could not be read then)."""
    return _start


def parent() -> int:
    """The old master whose sockets this one took, alive at the start (0: none)."""
    return _parent


def claim() -> int:
    """:func:`parent`, for the master's loop, which follows it from now on
    (:class:`~uwsgiapp.supervisor.upgrade.Upgrade`)."""
    global _parent
    taken, _parent = _parent, 0
    return taken


def alone(listeners: Iterable[Listener]) -> None:
    """At a stop before the master's loop took over (the app failed to import): if the old
    master has exited meanwhile, the socket files are this one's to remove (none is left)."""
    if _parent and os.getppid() != _parent:
        for listener in listeners:
            listener.shared = False
