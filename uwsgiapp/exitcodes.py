"""Every exit status the program uses, one table per kind of command, each code with its meaning.

``serve`` (the server) and the client commands ``request`` / ``ping`` are different programs
to their callers: a deploy script asks "did the server start", a health check asks "did the
server answer". So they have two sets of codes, as a server and curl do; within a set a
number has one meaning. 0 (success) and 2 (usage error) mean the same in both.

A worker's exit status is read by the master only (:class:`WorkerExit`); the master turns
a worker that cannot load the app into its own :attr:`ServeExit.APP_LOAD`.

Help texts are generated from the descriptions (:func:`help_text`), so the help cannot say
something the code does not do.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import TypeAlias


class _Described(IntEnum):
    """An exit code with a one-line description (what a help text prints after the number)."""

    description: str

    def __new__(cls, value: int, description: str = "") -> _Described:
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member


class ServeExit(_Described):
    """``uwsgiapp serve``: how the server ended (also the master's exit status)."""

    OK = 0, "stopped on TERM, INT or QUIT (or --print-config printed, or --check-config passed)"
    INTERNAL = 1, "internal error (the server cannot be imported, or an unexpected exception)"
    USAGE = 2, "bad option or configuration value (the message names it)"
    START_FAILED = (
        3,
        (
            "cannot start: a socket cannot be bound, --uid/--gid cannot be used, "
            "the error log, the access log or the pidfile cannot be written, or the first "
            "workers have too few descriptors free (ulimit -n)"
        ),
    )
    APP_LOAD = (
        4,
        "the app cannot be imported (at start, or by --check-config; with --lazy-apps, also "
        "when a worker cannot and none is left serving or starting)",
    )
    BOOT_LOOP = 5, "workers kept dying while starting (5 in a row): stopped instead of looping"


class ClientExit(_Described):
    """``uwsgiapp request`` and ``uwsgiapp ping``: what became of the request."""

    OK = 0, "a response with status < 500, < 400 with --fail (ping: a pong)"
    SERVER_ERROR = 1, "request: the response's status is >= 500 (>= 400 with --fail)"
    USAGE = 2, "usage error"
    CONNECT = 3, "cannot connect"
    BAD_RESPONSE = 4, "no valid answer (not HTTP, truncated, closed early; ping: no pong in time)"
    TIMEOUT = 5, "request: no complete response within --max-time"
    TOO_LARGE = 6, "request: the response is larger than --max-response-size"
    WRITE_ERROR = (
        7,
        ("request: the body cannot be written out (quietly when its reader stopped, as | head)"),
    )


class WorkerExit(_Described):
    """A worker process's exit status, as the master reads it."""

    CLEAN = 0, "left on purpose: recycled (max-requests, EMFILE), stopped or retired"
    CRASHED = 1, "an unexpected exception ended the worker (its traceback is logged)"
    APP_LOAD = (
        4,
        "a --lazy-apps worker cannot import the app: the master tries again later while "
        "others serve, else stops (no fork loop)",
    )
    NO_ROOM = (
        75,  # EX_TEMPFAIL: not a code an app's sys.exit() is likely to give
        "a worker has too few descriptors free to serve (ulimit -n): as for APP_LOAD, the "
        "master tries again later while others serve, else stops (3, cannot start)",
    )


#: Any of the program's exit codes (each enum is an ``int``).
ExitCode: TypeAlias = ServeExit | ClientExit | WorkerExit

#: A client code's words for ``ping`` where its description is written for ``request`` (ping
#: has no ``--fail`` and reads no status).
PING_TEXT: dict[ClientExit, str] = {
    ClientExit.OK: "a pong",
    ClientExit.BAD_RESPONSE: "no pong in time, or an answer that is not one (closed early)",
}

#: The table each command's exit status comes from.
COMMAND_EXIT_CODES: dict[str, type[ServeExit] | type[ClientExit]] = {
    "serve": ServeExit,
    "request": ClientExit,
    "ping": ClientExit,
}


#: ``uwsgiapp dev``'s: serve's codes, those it can end with.
DEV_EXIT_TEXT = (
    f"exit status: {ServeExit.OK.value} stopped (Ctrl-C), {ServeExit.USAGE.value} bad option or "
    f"APP, {ServeExit.START_FAILED.value} the address cannot be bound, "
    f"{ServeExit.APP_LOAD.value} the app cannot be imported (serve's codes), 128+N the "
    "serving process was killed by signal N"
)


def help_text(codes: type[ServeExit] | type[ClientExit], *, only: str = "") -> str:
    """``exit status: 0 ..., 2 ...`` for a command's help epilog.

    ``only``: for one client command, the codes that concern it ("ping" drops the
    request-only ones, and the "request:"/"ping:" prefixes are dropped from the others).
    """
    parts = []
    for code in codes:
        text = code.description
        if only:
            command, sep, rest = text.partition(": ")
            if sep and command in COMMAND_EXIT_CODES:
                if command != only:
                    continue
                text = rest
        if only == "ping" and isinstance(code, ClientExit):
            text = PING_TEXT.get(code, text)
        elif only:  # what the table says of ping is not request's: " (ping: ...)", "; ping: ..."
            text = re.sub(r" \(ping: [^)]*\)|; ping: [^)]*", "", text)
        parts.append(f"{code.value} {text}")
    return "exit status: " + "; ".join(parts)
