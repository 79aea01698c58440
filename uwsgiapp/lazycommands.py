"""The commands a server never runs (``request``, ``ping``, ``top``, ``health``), declared in
full only when one of them is the command line's.

``serve``'s master parses its command line with the same parser, and every worker forks from
the master: the client's and ``top``'s code, imported there, would sit in each process's
memory (0.17 MB a worker). When another command runs, these are declared by name and one-line
help only, which is all ``uwsgiapp --help`` and a mistyped command's error show of them.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any

#: name: (module, its declaring function, the one-line help ``uwsgiapp --help`` shows)
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "request": (
        "uwsgiapp.clientcli",
        "add_request_parser",
        "send one uwsgi request to a socket and print the response",
    ),
    "ping": (
        "uwsgiapp.clientcli",
        "add_ping_parser",
        "uwsgi ping (modifier1 100): exit 0 if the server answers pong",
    ),
    "top": (
        "uwsgiapp.stats.top",
        "add_parser",
        "live view of a stats server (ours or uWSGI's): workers, req/s, listen queue",
    ),
    "health": (
        "uwsgiapp.stats.health",
        "add_parser",
        "ask the stats server: exit 0 while a worker accepts (a container's health check)",
    ),
}


def command_named(argv: Sequence[str]) -> str | None:
    """The command an argument list runs: its first argument that is no option (the top-level
    parser takes only ``--version`` and ``--help``, neither with a value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def declare_lazy_commands(sub: argparse._SubParsersAction[Any], argv: Sequence[str] | None) -> None:
    """Declare the lazy commands on ``sub``: in full the one ``argv`` runs (all of them for
    ``None``), the others by name and help."""
    wanted = None if argv is None else command_named(argv)
    for name, (module, function, summary) in LAZY_COMMANDS.items():
        if argv is None or name == wanted:
            getattr(importlib.import_module(module), function)(sub, summary)
        else:
            sub.add_parser(name, help=summary)
