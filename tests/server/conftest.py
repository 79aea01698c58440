"""Fixtures of the server tests; makes this directory's helper modules importable.

pytest's importlib mode does not put test directories on ``sys.path``; the helpers here have
names no other test directory uses, so adding this one is safe.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from handler_kit import Logs  # noqa: E402  (importable only once the path is set)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[Logs]:
    """Records of ``uwsgiapp.error``, however the process's logging was set up before."""
    logger = logging.getLogger("uwsgiapp.error")
    saved = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # the handler is attached here: don't count records twice
    logger.addHandler(caplog.handler)
    try:
        yield Logs(caplog)
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


@pytest.fixture(autouse=True)
def fresh_line_bursts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with the process-wide line bursts unspent (20 lines a window): a run
    of earlier tests' refusals or body mismatches must not silence the one a test expects."""
    from uwsgiapp.server import inflight, throttle

    monkeypatch.setattr(inflight, "BODY_LINES", throttle.body_mismatches())
    monkeypatch.setattr(inflight, "REFUSED_LINES", throttle.refused_requests())
    monkeypatch.setattr(inflight, "STALL_LINES", throttle.stalled_clients())
