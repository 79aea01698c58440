"""``serve --check-config``: the paths start-up would use, looked at as it would look at them,
and the app imported as a worker would import it; nothing served.

gunicorn's deploy gate. First the log files, the unix sockets (``--socket``, ``--stats``) and
the pidfile, as the starting user (root, with ``--uid``) and anchored to ``--chdir`` as start-up
anchors them (:mod:`~uwsgiapp.supervisor.rootpaths`): the directories on the way are walked by
:func:`~uwsgiapp.server.safefiles.in_parent` (as root, a link the app user could have planted
is refused) and the last name is ``lstat``-ed, read-only: nothing is created, opened for
writing, chowned or removed. :func:`refusals` then applies start-up's rules to what was found
(:func:`~uwsgiapp.server.safefiles.file_refusal` for a log,
:func:`~uwsgiapp.server.listeners.in_the_way` for a socket; a pidfile is renamed over its path,
which only a directory refuses), and a directory on a file system mounted read-only is
refused. What only the write itself can tell is not known here: whether the file can be
created or written (a full filesystem, or, not as root, the permissions). Neither is a server
still running on the socket or named by the pidfile, which stops a start: the gate runs while
the old server still serves.

Then the import, as a worker: as the ``--uid``/``--gid`` user when started as root (an import
as root would leave root's files where the workers must write: a log, a SQLite file, a cache),
in ``--chdir``, with ``--pythonpath`` and the ``--env`` the caller has applied; then, with
``--post-buffering``, one unnamed temporary file in its directory, as start-up makes it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from uwsgiapp.addresses import AddressError, server_address
from uwsgiapp.config import Config
from uwsgiapp.exitcodes import ServeExit
from uwsgiapp.importer import AppImportError, load_app
from uwsgiapp.logtargets import is_stream
from uwsgiapp.server import safefiles
from uwsgiapp.server.listeners import in_the_way
from uwsgiapp.server.spool import check_spool_dir
from uwsgiapp.supervisor import privileges
from uwsgiapp.supervisor.listening import closed_wildcard_warning, closed_wildcards
from uwsgiapp.supervisor.rootpaths import access_log_file, anchored
from uwsgiapp.unpatched import threads_patched_by

__all__ = ["Seen", "check_app", "check_paths", "look", "refusals"]

_LOGS = ("--error-log-file", "--access-log-file")
_SOCKETS = ("--socket", "--stats")


@dataclass(frozen=True, slots=True)
class Seen:
    """What the read-only walk found at one path start-up would use."""

    #: The option naming it: ``--error-log-file``, ``--access-log-file``, ``--socket``,
    #: ``--stats`` or ``--pidfile``.
    option: str
    path: str
    #: ``lstat`` of its last name; None where nothing is there (start-up creates it).
    st: os.stat_result | None = None
    #: The walk to it failed: :class:`~uwsgiapp.server.safefiles.UnsafeFileError` for a link on
    #: the way that root must not follow, another ``OSError`` for a missing directory.
    error: OSError | None = None
    #: Its directory is on a file system mounted read-only: start-up's write there fails.
    readonly: bool = False


def _leaf_refusal(option: str, path: str, st: os.stat_result, root: bool) -> str | None:
    if option in _LOGS:
        why = safefiles.file_refusal(st, root)
        return None if why is None else safefiles.refused(path, why)
    if option in _SOCKETS:
        why = in_the_way(st)
        return None if why is None else f"{path}: {why}"
    if stat.S_ISDIR(st.st_mode):  # the pidfile: any other file, a link too, is replaced
        return f"{path}: is a directory, which the pidfile written beside it cannot replace"
    return None


def refusals(seen: Iterable[Seen], root: bool) -> list[str]:
    """Why start-up would stop (exit 3) on each of the paths ``seen`` (``root``: started as
    root), one line each, naming the option and the path; empty if it would use them all."""
    said = []
    for one in seen:
        if isinstance(one.error, safefiles.UnsafeFileError):
            why: str | None = str(one.error)
        elif one.error is not None:
            why = f"{one.path}: {one.error.strerror or one.error}"
        elif one.readonly:  # a container's read-only root, a ro bind mount: EROFS at the start
            why = f"{one.path}: on a read-only file system, where start-up must write it"
        else:
            why = None if one.st is None else _leaf_refusal(one.option, one.path, one.st, root)
        if why is not None:
            said.append(f"{one.option}: {why}")
    return said


def look(option: str, path: str) -> Seen:
    """Walk to ``path`` as start-up would (:func:`~uwsgiapp.server.safefiles.in_parent`) and
    ``lstat`` its last name; opens nothing but the directories on the way (``O_PATH``)."""
    try:
        with safefiles.in_parent(path) as (parent, name):
            try:
                st = os.lstat(name, dir_fd=parent)
            except FileNotFoundError:
                return Seen(option, path, readonly=_readonly(parent))
            # A log there is written in place (a file bind-mounted writable in a read-only
            # directory serves); a socket and the pidfile are made in the directory.
            here = option in _LOGS and stat.S_ISREG(st.st_mode)
            return Seen(option, path, st, readonly=_readonly(parent, name if here else ""))
    except OSError as exc:
        return Seen(option, path, error=exc)


def _readonly(parent: int, name: str = "") -> bool:
    """Whether the directory ``parent`` (or its file ``name``) is on a read-only mount."""
    if not name:
        return bool(os.fstatvfs(parent).f_flag & os.ST_RDONLY)
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=parent)
    try:
        return bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY)
    finally:
        os.close(fd)


def _unix_path(spec: str) -> str:
    try:
        address = server_address(spec)
    except AddressError:
        return ""  # refused with the options already
    return address.path if address.path and address.fd is None else ""


def _paths(config: Config) -> list[tuple[str, str]]:
    """(option, path) for every path start-up opens, binds or writes, in its order."""
    logs = zip(_LOGS, (config.error_log_file, access_log_file(config)), strict=True)
    found = [(option, path) for option, path in logs if not is_stream(path)]
    found += [("--socket", path) for path in map(_unix_path, config.socket) if path]
    stats = _unix_path(config.stats) if config.stats else ""
    found += [("--stats", stats)] if stats else []
    return found + ([("--pidfile", config.pidfile)] if config.pidfile else [])


def check_paths(config: Config) -> list[str]:
    """Why start-up would stop on one of ``config``'s paths, looked at read-only as the current
    user (see the module); empty if none."""
    base = os.path.abspath(config.chdir) if config.chdir else os.getcwd()
    seen = [look(option, path) for option, path in _paths(anchored(config, base))]
    return refusals(seen, os.geteuid() == 0)


def check_app(config: Config, warn: Callable[[str], None] | None = None) -> tuple[ServeExit, str]:
    """Check ``config``'s paths, then load ``config.app`` as a worker would: the exit code and
    what to say; ``warn`` is given what start-up would warn of but serve with (a TCP socket
    on every interface that only loopback peers may use)."""
    if broken := _server_broken():
        return ServeExit.INTERNAL, f"--check-config: the server cannot be imported: {broken}"
    refused = check_paths(config)
    if config.chdir and not os.path.isdir(config.chdir):  # start-up's exit 3, not the app's 4
        refused.insert(0, f"--chdir: cannot enter {os.path.abspath(config.chdir)}: no directory")
    if refused:
        return ServeExit.START_FAILED, "\n".join(f"--check-config: {why}" for why in refused)
    for spec in closed_wildcards(config.socket, config.uwsgi_allow_from):
        if warn is not None:
            warn(closed_wildcard_warning(spec))
    try:
        if config.chown_socket:  # as start-up would chown (before a --uid drop)
            privileges.may_give(privileges.resolve_owner(config.chown_socket))
        privileges.drop(privileges.resolve(config.uid, config.gid), [], [])
    except (privileges.PrivilegeError, OSError) as exc:
        return ServeExit.START_FAILED, f"--check-config: {exc}"
    if config.post_buffering:  # as start-up does (before the import): one unnamed file
        spool = config.post_buffering_dir
        error = check_spool_dir(os.path.join(config.chdir, spool) if spool else "")[1]
        if error:
            return ServeExit.START_FAILED, f"--check-config: --post-buffering-dir: {error}"
    try:
        load_app(config.app, chdir=config.chdir, pythonpath=config.pythonpath)
    except AppImportError as exc:
        return ServeExit.APP_LOAD, f"--check-config: {exc}"
    if config.threads > 1 and (patcher := threads_patched_by()) is not None:  # as a worker
        return ServeExit.APP_LOAD, (  # refuses it: the check passed, the start exited 4
            f"--check-config: --threads {config.threads}: the app's import monkey-patched the "
            f"standard library's threads into {patcher}'s green ones, which would run the "
            "request threads one at a time: serve it with --threads 1 and more --workers"
        )
    return ServeExit.OK, f"the options are valid and {config.app} loads"


def _server_broken() -> str:
    """What stops the server's own code from importing ("" if nothing): an install whose
    server code does not load passed the deploy gate (exit 0), and the start then failed."""
    import importlib
    import pkgutil

    import uwsgiapp

    for found in pkgutil.walk_packages(uwsgiapp.__path__, "uwsgiapp."):
        if found.name.endswith("__main__"):
            continue
        try:  # every module: some are imported only when needed (a bind conflict, a health check)
            importlib.import_module(found.name)
        except Exception as exc:  # a SyntaxError, a dependency missing: what the start meets
            if type(exc).__name__ == "FlaskOnlyModule":  # (the web package may not import)
                continue  # uwsgiapp.web.views: refuses its own import on purpose, saying why
            return f"{found.name}: {type(exc).__name__}: {exc}"
    return ""
