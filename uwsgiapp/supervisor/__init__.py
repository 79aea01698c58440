"""The master: a prefork supervisor of worker processes.

- :mod:`~uwsgiapp.supervisor.actions`: the vocabulary (worker states, master mode, actions).
- :mod:`~uwsgiapp.supervisor.policy`: pure decisions (what to do on a signal, an exit, a tick).
- :mod:`~uwsgiapp.supervisor.arbiter`: carries them out (fork, kill, waitpid, signals).
- :mod:`~uwsgiapp.supervisor.boot`: ``uwsgiapp serve``'s start-up (bind, pidfile, drop, load).
- :mod:`~uwsgiapp.supervisor.status`: the workers' shared status slots.

Importing this package or the policy does not load the server: ``serve``, ``bind`` and
``build_handler`` are looked up in :mod:`~uwsgiapp.supervisor.boot` on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from uwsgiapp.exitcodes import ServeExit

if TYPE_CHECKING:
    from uwsgiapp.supervisor.boot import bind, build_handler, serve

__all__ = ["EXIT_APP_LOAD", "EXIT_BIND", "EXIT_BOOT_LOOP", "bind", "build_handler", "serve"]

#: The old names of the serve exit codes (kept importable; :class:`ServeExit` rules).
EXIT_BIND = ServeExit.START_FAILED
EXIT_APP_LOAD = ServeExit.APP_LOAD
EXIT_BOOT_LOOP = ServeExit.BOOT_LOOP

_FROM_BOOT = frozenset({"bind", "build_handler", "serve"})


def __getattr__(name: str) -> Any:
    if name in _FROM_BOOT:
        return getattr(importlib.import_module("uwsgiapp.supervisor.boot"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
