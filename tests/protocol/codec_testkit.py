"""Shared helpers for the codec tests: the corpus manifest and replaying bytes through a Decoder.

(Named so it cannot clash with another test directory's helper: pytest puts each test directory
on ``sys.path``.)
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uwsgiproto import NEED_DATA, Decoder, Limits, Ping, ProtocolError, Request

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
MANIFEST = CORPUS / "manifest.json"


@dataclass(frozen=True)
class Case:
    """One expectation from the manifest about one corpus file."""

    file: str
    expect: dict[str, Any]
    limits: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def data(self) -> bytes:
        return (CORPUS / self.file).read_bytes()

    @property
    def id(self) -> str:
        suffix = ",".join(f"{k}={v}" for k, v in sorted(self.limits.items()))
        return self.file + (f"[{suffix}]" if suffix else "")

    def make_limits(self) -> Limits:
        return Limits(**self.limits)


def load_cases() -> list[Case]:
    raw = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return [Case(**case) for case in raw["cases"]]


def expand(value: str | dict[str, Any]) -> str:
    """A manifest value: a string, or ``{"repeat": s, "count": n}`` for long ones."""
    if isinstance(value, str):
        return value
    return str(value["repeat"]) * int(value["count"])


def chunkings(data: bytes, name: str, seeds: int = 4) -> Iterator[tuple[str, list[int]]]:
    """Ways to split ``data``: whole, byte by byte, and ``seeds`` seeded random splits."""
    n = len(data)
    yield "whole", [n]
    yield "bytewise", [1] * n
    top = max(1, min(n, 97 if n < 4096 else 4096))
    for seed in range(seeds):
        rng = random.Random(f"{name}/{seed}")
        sizes: list[int] = []
        left = n
        while left > 0:
            size = min(left, rng.randint(1, top))
            sizes.append(size)
            left -= size
        yield f"random{seed}", sizes


@dataclass
class Outcome:
    """What replaying some bytes produced."""

    event: Request | Ping | None = None
    body: bytes = b""
    error: ProtocolError | None = None
    #: how many bytes had been fed when the event arrived or the error was raised
    fed: int = 0
    #: how many bytes had been fed before the chunk that brought the event or the error
    fed_before: int = 0
    #: the error came from eof(), not from next_event()
    at_eof: bool = False
    decoder: Decoder | None = None


def replay(data: bytes, sizes: Sequence[int], limits: Limits) -> Outcome:
    """Feed ``data`` in chunks of ``sizes``, polling after each; then eof() if nothing came."""
    decoder = Decoder(limits)
    pos = 0
    outcome = Outcome(decoder=decoder)
    for size in sizes:
        decoder.receive_data(data[pos : pos + size])
        before, pos = pos, pos + size
        if outcome.event is not None:
            continue  # body bytes after the event: the decoder just holds them
        try:
            event = decoder.next_event()
        except ProtocolError as exc:
            outcome.error, outcome.fed, outcome.fed_before = exc, pos, before
            return outcome
        if event is not NEED_DATA:
            assert isinstance(event, Request | Ping)
            outcome.event, outcome.fed, outcome.fed_before = event, pos, before
    assert pos == len(data), "chunk sizes must cover the data"
    if outcome.event is not None:
        outcome.body = decoder.trailing_data
        return outcome
    try:
        decoder.eof()
    except ProtocolError as exc:
        outcome.error, outcome.fed, outcome.fed_before, outcome.at_eof = exc, pos, pos, True
    return outcome
