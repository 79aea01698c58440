"""Error log and access log set-up. With the access log off, requests make no logging calls."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from uwsgiapp.server.connection import AccessLogger

ERROR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"


def _handler(target: str, default: Any) -> logging.Handler:
    if target in ("", "-"):
        return logging.StreamHandler(default)
    return logging.FileHandler(target)


def setup_error_log(target: str = "-", level: int = logging.INFO) -> None:
    """Send the ``uwsgiapp`` loggers to ``target`` ('-' = stderr), one line per event."""
    logger = logging.getLogger("uwsgiapp")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler = _handler(target, sys.stderr)
    handler.setFormatter(logging.Formatter(ERROR_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def make_access_log(fmt: str, target: str = "-") -> AccessLogger | None:
    """An access logger for ``fmt`` ('off' → None, 'uwsgi' → uWSGI-like lines, 'json')."""
    if fmt == "off":
        return None
    logger = logging.getLogger("uwsgiapp.access")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler = _handler(target, sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    info = logger.info
    pid = os.getpid

    if fmt == "json":

        def access_json(environ: dict[str, Any], status: str, sent: int, seconds: float) -> None:
            info(
                json.dumps(
                    {
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "pid": pid(),
                        "remote_addr": environ.get("REMOTE_ADDR", ""),
                        "method": environ.get("REQUEST_METHOD", ""),
                        "uri": environ.get("REQUEST_URI", environ.get("PATH_INFO", "")),
                        "protocol": environ.get("SERVER_PROTOCOL", ""),
                        "status": int(status[:3]) if status[:3].isdigit() else 0,
                        "bytes": sent,
                        "duration_ms": round(seconds * 1000, 3),
                    }
                )
            )

        return access_json

    def access_uwsgi(environ: dict[str, Any], status: str, sent: int, seconds: float) -> None:
        info(
            "[pid: %d] %s [%s] %s %s => generated %d bytes in %d msecs (%s %s)",
            pid(),
            environ.get("REMOTE_ADDR", "-"),
            time.strftime("%a %b %d %H:%M:%S %Y"),
            environ.get("REQUEST_METHOD", "-"),
            environ.get("REQUEST_URI", environ.get("PATH_INFO", "")),
            sent,
            int(seconds * 1000),
            environ.get("SERVER_PROTOCOL", "-"),
            status[:3],
        )

    return access_uwsgi
