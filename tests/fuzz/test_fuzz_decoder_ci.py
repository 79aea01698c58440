"""The fuzz target in CI: its entry function over the corpus and seeded mutations of it.

This needs no atheris, so it always runs; the coverage-guided run is ``make fuzz`` (by hand,
long) and :func:`test_atheris_target_runs` (a few hundred executions when atheris is installed).
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import fuzz_decoder
import pytest

from uwsgiproto import Decoder, Request, build_request, decode
from uwsgiproto.schema import parse_var_block

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
SEEDS = sorted(p.read_bytes() for p in (CORPUS / "valid").iterdir() if p.suffix == ".bin") + sorted(
    p.read_bytes() for p in (CORPUS / "invalid").iterdir() if p.suffix == ".bin"
)
MUTATIONS = 1500


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three libFuzzer-style edits; the header is a favoured target."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(8)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a bit
            i = min(at, len(buf) - 1)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert random bytes
            buf[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 2 and buf:  # erase a run
            del buf[at : at + rng.randint(1, 8)]
        elif op == 3:  # truncate
            del buf[at:]
        elif op == 4 and len(buf) >= 4:  # a new datasize, near the real one or anywhere
            (size,) = struct.unpack_from("<H", buf, 1)
            size = rng.choice([size + rng.randint(-3, 3), rng.randrange(65536)]) % 65536
            struct.pack_into("<H", buf, 1, size)
        elif op == 5 and buf:  # a new modifier1
            buf[0] = rng.choice([0, 30, 100, rng.randrange(256)])
        elif op == 6:  # splice in part of another seed
            other = rng.choice(SEEDS)
            start = rng.randrange(len(other) + 1)
            buf[at:at] = other[start : start + rng.randint(1, 32)]
        elif op == 7 and len(buf) > 5:  # poke a length field inside the block
            i = rng.randrange(4, len(buf) - 1)
            struct.pack_into("<H", buf, i, rng.choice([0, 1, 0xFFFF, rng.randrange(64)]))
    return bytes(buf)


def small_seeds() -> list[bytes]:
    # The 64 KiB packet is checked as a seed; its mutations would only slow CI down.
    return [s for s in SEEDS if len(s) < 8192]


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_every_seed_passes_the_fuzz_checks(index: int) -> None:
    fuzz_decoder.check(SEEDS[index])


def test_seeded_mutations_pass_the_fuzz_checks() -> None:
    rng = random.Random(20240611)
    seeds = small_seeds()
    outcomes: set[str] = set()
    for _ in range(MUTATIONS):
        data = mutate(rng.choice(seeds), rng)
        try:
            fuzz_decoder.check(data)
        except Exception as exc:
            raise AssertionError(f"fuzz check failed on {data!r}") from exc
        outcomes.add(fuzz_decoder.run_decoder(data, len(data) or 1, fuzz_decoder.LIMITS[0])[0])
    # The mutations reach both ends: packets that still decode and packets that are refused.
    assert {"event", "error"} <= outcomes


def test_random_bytes_pass_the_fuzz_checks() -> None:
    rng = random.Random(7)
    for _ in range(500):
        fuzz_decoder.check(rng.randbytes(rng.randint(0, 40)))


# --- the checks can fail: each one is shown catching a planted fault -------------------------


def test_check_lets_a_foreign_exception_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(Decoder):
        def next_event(self):  # type: ignore[no-untyped-def]
            raise KeyError("planted")

    monkeypatch.setattr(fuzz_decoder, "Decoder", Broken)
    with pytest.raises(KeyError, match="planted"):
        fuzz_decoder.check(SEEDS[0])


def test_check_catches_fast_and_reference_disagreeing(monkeypatch: pytest.MonkeyPatch) -> None:
    def drops_a_var(block: bytes) -> dict[str, str]:
        out = parse_var_block(block)
        out.pop(next(iter(out)), None)
        return out

    monkeypatch.setattr(fuzz_decoder, "parse_var_block", drops_a_var)
    with pytest.raises(AssertionError, match="fast"):
        fuzz_decoder.check((CORPUS / "valid" / "nginx_get_hello.bin").read_bytes())


def test_check_catches_a_chunking_dependent_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    class ForgetsEarlyBytes(Decoder):
        def receive_data(self, data: bytes) -> None:
            if len(data) < 8:  # loses small chunks: wrong only when fed piecemeal
                data = data[:-1]
            super().receive_data(data)

    monkeypatch.setattr(fuzz_decoder, "Decoder", ForgetsEarlyBytes)
    with pytest.raises(AssertionError, match="chunks"):
        fuzz_decoder.check((CORPUS / "valid" / "nginx_get_hello.bin").read_bytes())


def test_check_catches_a_lossy_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    def lossy(vars: dict[str, str], body: bytes, m1: int, m2: int) -> bytes:
        return build_request({**vars, "EXTRA": "1"}, body, m1, m2)

    monkeypatch.setattr(fuzz_decoder, "build_request", lossy)
    data = (CORPUS / "valid" / "modifier30.bin").read_bytes()
    assert isinstance(decode(data)[0], Request)
    with pytest.raises(AssertionError, match="re-encoded"):
        fuzz_decoder.check(data)


# --- the real coverage-guided target, briefly -------------------------------------------------


def test_atheris_target_runs(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris (the fuzz extra) is not installed")
    script = Path(fuzz_decoder.__file__)
    env = {**os.environ, "FUZZ_OUT_DIR": str(tmp_path / "out")}
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            "-runs=400",
            "-max_total_time=20",
            f"-artifact_prefix={tmp_path}{os.sep}",
            str(CORPUS / "valid"),
            str(CORPUS / "invalid"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 400 runs" in proc.stderr
    # Seeds were read from the corpus; anything new went to the scratch directory.
    assert "files found in " + str(CORPUS / "valid") in proc.stderr
    assert not list(tmp_path.glob("crash-*"))
