"""The worker loop's decisions, as pure functions: when to accept more than one connection,
how long a stopping worker drains its listen queues, which parked connection gives way.
:mod:`uwsgiapp.server.worker` acts on them."""

from __future__ import annotations

import errno

from uwsgiapp.server.intake import Pending

#: Longest TERM drain of the listen queues (:func:`drain_limit`): under a load that never lets
#: a queue empty, a stop must still end.
DRAIN_SECONDS = 5.0


def drain_limit(graceful_timeout: float) -> float:
    """Seconds a stopping worker drains its listen queues: :data:`DRAIN_SECONDS`, or half of
    ``--graceful-timeout`` if that is shorter (the other half is for the requests in hand)."""
    return min(DRAIN_SECONDS, graceful_timeout / 2)


def accept_burst(stopped_early: bool, listener_ready: bool) -> bool:
    """Whether the next accepts go on until the queue is empty (True), or take one connection
    and then look again with epoll (False).

    An ``accept`` that finds the queue empty is dear: Linux makes and frees a socket file for
    it (about 4 µs of kernel time, 25 times an epoll check) and Python raises for it. So a
    worker woken by epoll takes one connection, then asks epoll (without sleeping) whether
    another waits: under light load that check is all it pays, as with uWSGI. Only when one
    does (``stopped_early`` and ``listener_ready``: connections are arriving faster than they
    are served) does it accept until EAGAIN, where one failed call ends a long run.
    """
    return stopped_early and listener_ready


#: Parked connections looked at for one that never sent a byte (the oldest come first).
SILENT_SCAN = 64


def silent(pending: Pending) -> bool:
    """Nothing of the request has arrived yet."""
    return pending.decoder is not None and pending.decoder.buffered == 0


def longest_silent(parked: dict[int, Pending]) -> Pending | None:
    """The parked connection a new one that has sent nothing yet takes the place of: the one
    parked first among those that never sent a byte; if the oldest hold none, the one heard
    from least recently (dicts keep insertion order, and a connection that sends something is
    parked anew at the end). Clients that trickle their requests a byte at a time must not hold
    every place either: then each new connection, nginx's next request too, was closed."""
    for count, pending in enumerate(parked.values()):
        if count >= SILENT_SCAN:
            break
        if silent(pending):
            return pending
    return next(iter(parked.values()), None)


#: Descriptors kept free of parked connections (at least, or half a limit under 256; a quarter
#: of the limit if more): the app's files and sockets, the listeners, logs and pipes.
FD_RESERVE = 128


def parking_cap(most: int, fd_limit: int, loops: int = 1) -> int:
    """Connections one accept loop parks at most: ``most``, or fewer where the open-files
    limit (``fd_limit``, RLIMIT_NOFILE's soft value; < 0 for none) shared by ``loops`` loops
    (``--threads``) would run out first. Parked clients that used every descriptor made
    ``accept`` fail with EMFILE, which recycles the worker as if the app leaked them (and the
    app could open nothing): 4 threads parking 512 each under the usual 1024."""
    if fd_limit < 0:
        return most
    # Under 256 (ulimit -n 64), all 128 kept left 1: each connection nginx had just opened
    # displaced the one before it, still unwritten (a reset: nginx's 502).
    spare = fd_limit - max(min(FD_RESERVE, fd_limit // 2), fd_limit // 4)
    return max(1, min(most, spare // max(1, loops)))


def cap_hint(cap: int, most: int, fd_limit: int) -> str:
    """What the full-parking line adds where the open-files limit set the ``cap``."""
    if cap >= most:
        return ""
    return (
        f"; the open-files limit ({fd_limit}, ulimit -n) sets that cap: raise it (LimitNOFILE= "
        "in systemd, docker --ulimit nofile)"
    )


def too_few_descriptors(limit: int, used: int, loops: int = 1, lazy: bool = False) -> str | None:
    """Why a worker about to serve cannot, the open-files ``limit`` (RLIMIT_NOFILE's soft
    value; < 0 for none) leaving too few of its descriptors free with ``used`` open (what the
    app's import holds: the master's, which every worker inherits, or its own with ``lazy``)
    for its ``loops`` accept loops; None when enough. A worker short of them died at its epoll
    and was forked again every second, for good. One loop: a worker with 3 free served, with 2
    it failed. ``--threads``: an epoll, a wake-up pipe (two ends) and a connection each, and
    the main thread's own pipe (16 threads under a limit of 64 passed a count of 3 each, then
    hung at its accepts, or recycled at each thread's epoll)."""
    needed = 3 if loops == 1 else 4 * loops + 2
    if limit < 0 or limit - used >= needed:
        return None
    whose = "in this worker" if lazy else "in the master, which every worker inherits"
    return (
        f"{max(limit - used, 0)} of its {limit} descriptors are free (ulimit -n) with {used} "
        f"open (the server's own few, any the process was started with, and what the app's "
        f"import opened, {whose}), and it needs {needed}: raise the limit (LimitNOFILE= in "
        "systemd, docker --ulimit nofile)"
    )


def accept_error_recycles(code: int | None, served: int = 1) -> str | None:
    """Whether an ``accept`` that failed with errno ``code`` must recycle the worker (no
    retry in this process can get past it): what the log line adds (maybe ""), else None.

    Out of descriptors after ``served`` requests (the app leaks them), or the listening
    socket's descriptor closed or replaced by the app: a fresh worker starts with the master's
    socket. Anything else (a client that gave up, the system out of memory or files) is
    retried; so is EMFILE before the first request: a fresh worker starts as short of
    descriptors (what the master's import of the app holds, what the app opens as it starts),
    and recycling it forked hundreds of workers a second while a connection waited.
    """
    if code == errno.EMFILE:
        return "" if served else None
    if code in (errno.EBADF, errno.ENOTSOCK, errno.EINVAL):
        return " (did the app close it?)"
    return None


def accept_retry_hint(code: int | None) -> str:
    """What the line about a retried ``accept`` failure adds to its errno ``code``'s text."""
    if code == errno.EMFILE:  # retried only before the worker's first request
        return (
            " before this worker's first request: a new worker would start as short of "
            "descriptors, so this one waits for some to be closed (raise the open-files limit: "
            "ulimit -n, systemd's LimitNOFILE=; or have the app open fewer as it starts)"
        )
    if code == errno.ENFILE:
        return " (the whole system is out of open files: fs.file-max)"
    return ""


def accept_error_is_the_stop(code: int | None, server_stopping: bool) -> bool:
    """Whether an ``accept`` failed with errno ``code`` only because the server's stop shut
    the listening sockets down (EINVAL: the first worker out shut them for every process, see
    :func:`~uwsgiapp.server.lastout.last_out`, or a busy one at the drain's end, see
    :meth:`~uwsgiapp.server.stopsignals.StopSignals._refuse_late`): the stop, nothing to log
    or recycle for; the worker just takes no more connections."""
    return server_stopping and code == errno.EINVAL
