"""The paths start-up opens, binds or writes, as the master sees them (it may be root).

Shared by :mod:`~uwsgiapp.supervisor.boot`, which opens them, and ``--check-config``
(:mod:`~uwsgiapp.supervisor.check`), which looks at them the same way without touching them.
"""

from __future__ import annotations

import os
from dataclasses import replace

from uwsgiapp.addresses import server_address
from uwsgiapp.config import Config
from uwsgiapp.logtargets import is_stream

__all__ = ["access_log_file", "anchored"]


def _anchored(path: str, base: str) -> str:
    """``path`` as root opens it: an absolute one as it is; a relative one joined to ``base``,
    ``--chdir`` as written, not the directory it led to (``os.path.abspath`` after the chdir):
    a link on the way, which the app user may have planted, is then checked as any other is
    (:mod:`uwsgiapp.server.safefiles`)."""
    return path if not path or is_stream(path) or os.path.isabs(path) else os.path.join(base, path)


def _anchored_socket(spec: str, base: str) -> str:
    address = server_address(spec)
    if address.path and not address.path.startswith("\0") and not os.path.isabs(address.path):
        return os.path.join(base, address.path)
    return spec


def anchored(config: Config, base: str) -> Config:
    """``config`` with its relative paths (logs, pidfile, touch-reload files, unix sockets)
    joined to ``base``, the absolute ``--chdir`` as written (see :func:`_anchored`)."""
    return replace(
        config,
        error_log_file=_anchored(config.error_log_file, base),
        access_log_file=_anchored(config.access_log_file, base),
        pidfile=_anchored(config.pidfile, base),
        touch_reload=tuple(_anchored(path, base) for path in config.touch_reload),
        socket=tuple(_anchored_socket(spec, base) for spec in config.socket),
        stats=_anchored_socket(config.stats, base) if config.stats else "",
    )


def access_log_file(config: Config) -> str:
    """The access log's file; "-" when it goes to stdout or is off."""
    return config.access_log_file if config.access_log != "off" else "-"
