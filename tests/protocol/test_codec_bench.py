"""The codec benchmark's contenders compute the same thing (no timing here)."""

from __future__ import annotations

import struct
from types import ModuleType

import pytest
from codec_testkit import CORPUS, Case, load_cases
from support.scripts import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench/bench_codec.py")


def test_every_contender_decodes_the_capture_alike(bench: ModuleType) -> None:
    data = (CORPUS / "valid" / "nginx_get_hello.bin").read_bytes()
    results = [fn(data) for _name, fn in bench.CONTENDERS]
    assert len(results) >= 5
    assert all(r == results[0] for r in results)
    assert len(results[0]) == 19


# Malformed blocks only: the yardstick enforces no max_vars (a limit, not a format rule).
MALFORMED = [c for c in load_cases() if c.expect.get("error") == "MalformedPacket"]
MALFORMED = [c for c in MALFORMED if c.expect["fails_at"] == "block"]


@pytest.mark.parametrize("case", MALFORMED, ids=lambda c: c.id)
def test_struct_loop_refuses_what_the_codec_refuses(bench: ModuleType, case: Case) -> None:
    with pytest.raises((ValueError, struct.error)):
        bench.struct_loop(case.data)
