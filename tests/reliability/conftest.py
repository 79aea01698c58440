"""Reliability suite: bad input, faults and long runs against a real ``uwsgiapp serve``.

The same tests run at two sizes: short in CI (``make test``), long with
``RELIABILITY_SIZE=long`` (``make reliability``, which also writes docs/RELIABILITY.md).
Each test reports its figures through the ``report`` fixture; when
``RELIABILITY_OUT`` names a file, figures and outcomes are appended to it as JSON lines
for ``scripts/reliability.py`` to render.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

LONG = os.environ.get("RELIABILITY_SIZE", "short") == "long"
OUT = os.environ.get("RELIABILITY_OUT", "")


def sized(short: T, long: T) -> T:
    """``long`` in the long run, ``short`` in CI."""
    return long if LONG else short


def _append(entry: dict[str, Any]) -> None:
    if OUT:
        with open(OUT, "a") as f:
            f.write(json.dumps(entry, default=str) + "\n")


class Report:
    """What one test measured: a case title, a one-line claim and named figures."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.case = ""
        self.claim = ""
        self.figures: dict[str, Any] = {}

    def __call__(self, case: str, claim: str = "", **figures: Any) -> None:
        """Name the case and what it shows; figures may be added now or later via ``add``."""
        self.case = case
        self.claim = claim
        self.figures.update(figures)

    def add(self, **figures: Any) -> None:
        """Record more figures (counts, durations, sizes)."""
        self.figures.update(figures)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Iterator[Report]:
    """Record the test's figures for docs/RELIABILITY.md (written even when the test fails)."""
    rep = Report(request.node.nodeid)
    started = time.monotonic()
    yield rep
    _append(
        {
            "kind": "figures",
            "nodeid": rep.nodeid,
            "case": rep.case,
            "claim": rep.claim,
            "figures": rep.figures,
            "seconds": round(time.monotonic() - started, 1),
        }
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Append each test's outcome (and the first line of a failure) for the report."""
    rep = yield
    if rep.when == "call" or (rep.when == "setup" and not rep.passed):
        failure = ""
        if rep.failed:
            failure = str(getattr(rep.longrepr, "reprcrash", None) or rep.longrepr)[:500]
        _append(
            {"kind": "outcome", "nodeid": item.nodeid, "outcome": rep.outcome, "failure": failure}
        )
    return rep
