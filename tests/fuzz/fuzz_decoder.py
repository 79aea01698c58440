"""Coverage-guided fuzz target for the uwsgi decoder (atheris, i.e. libFuzzer for Python).

A long run by hand (needs the ``fuzz`` extra, atheris)::

    make fuzz FUZZ_SECONDS=600
    python tests/fuzz/fuzz_decoder.py -max_total_time=60 tests/corpus/valid tests/corpus/invalid

The seed directories are only read: new inputs go to ``tests/fuzz/corpus_out/`` (or
``$FUZZ_OUT_DIR``) and crash files to ``tests/fuzz/artifacts/``, both ignored by git. CI runs
:func:`check` over a bounded set of mutated inputs without atheris (``test_fuzz_decoder_ci.py``).

Every input is checked for:

* nothing but :class:`uwsgiproto.ProtocolError` escaping the decoder;
* the same outcome fed whole and in chunks (the chunk size is derived from the input);
* the fast var block and fast packet schema agreeing with the reference schema;
* a decoded request re-encoding to a packet that decodes to the same request.
"""

from __future__ import annotations

import contextlib
import os
import sys
import zlib
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    import atheris

    # Coverage feedback from the codec and construct only: instrument_all() would take ~17 s
    # instrumenting every loaded module before the first execution.
    _instrumented: contextlib.AbstractContextManager[Any] = atheris.instrument_imports(
        include=["uwsgiproto", "construct"]
    )
else:
    _instrumented = contextlib.nullcontext()

with _instrumented:
    from construct import ConstructError

    from uwsgiproto import (
        NEED_DATA,
        Decoder,
        Limits,
        Ping,
        ProtocolError,
        Request,
        build_request,
        decode,
    )
    from uwsgiproto.schema import (
        PACKET,
        REFERENCE_PACKET,
        REFERENCE_VAR_BLOCK,
        join_pairs,
        parse_var_block,
    )

HERE = Path(__file__).resolve().parent

# The input picks its limits and chunk size through its checksum, so every byte of a seed file
# stays part of the packet (a control byte would shift the real captures out of shape).
LIMITS = (
    Limits(),
    Limits(buffer_size=65535, max_vars=65535),
    Limits(buffer_size=64, max_vars=3),
)
# The reference schema is slow (plain construct); beyond this it is compared on a prefix only.
REFERENCE_MAX = 2048

Outcome = tuple[str, Any]


def run_decoder(data: bytes, step: int, limits: Limits) -> Outcome:
    """Feed ``data`` in ``step``-byte chunks; only ProtocolError is caught, the rest escapes."""
    decoder = Decoder(limits)
    try:
        for start in range(0, len(data), step):
            decoder.receive_data(data[start : start + step])
            event = decoder.next_event()
            if event is not NEED_DATA:
                decoder.receive_data(data[start + step :])
                return "event", (event, decoder.trailing_data)
        decoder.eof()
    except ProtocolError as exc:
        if not isinstance(exc.status_hint, int) or not 400 <= exc.status_hint <= 599:
            raise AssertionError(f"bad status_hint on {exc!r}") from None
        return "error", (type(exc).__name__, str(exc))
    return "need-data", None


def construct_outcome(fn: Any, arg: bytes) -> Outcome:
    try:
        return "ok", fn(arg)
    except ConstructError:
        return "error", None


def reference_vars(block: bytes) -> dict[str, str]:
    return join_pairs((v.key, v.value) for v in REFERENCE_VAR_BLOCK.parse(block).vars)


def compare_schemas(data: bytes) -> None:
    """The fast path and the reference schema agree (value, or both refusing)."""
    block = data[4 : 4 + REFERENCE_MAX]
    fast = construct_outcome(parse_var_block, block)
    ref = construct_outcome(reference_vars, block)
    if fast != ref:
        raise AssertionError(f"var block: fast {fast!r} != reference {ref!r}")
    packet = data[: 4 + REFERENCE_MAX]
    fast_p = construct_outcome(PACKET.parse, packet)
    ref_p = construct_outcome(REFERENCE_PACKET.parse, packet)
    if fast_p[0] != ref_p[0]:
        raise AssertionError(f"packet: fast {fast_p[0]} != reference {ref_p[0]}")
    if fast_p[0] == "ok":
        ref_vars = join_pairs((v.key, v.value) for v in ref_p[1].block.vars)
        if fast_p[1].vars != ref_vars:
            raise AssertionError("packet: fast vars != reference vars")


def check(data: bytes) -> None:
    """The fuzz entry: raise (anything but ProtocolError) only if the codec misbehaves."""
    digest = zlib.crc32(data)
    limits = LIMITS[digest % len(LIMITS)]
    step = 1 + (digest >> 8) % 16
    whole = run_decoder(data, max(1, len(data)), limits)
    chunked = run_decoder(data, step, limits)
    if whole != chunked:
        raise AssertionError(f"whole {whole!r} != {step}-byte chunks {chunked!r}")
    compare_schemas(data)
    if whole[0] == "event":
        event, body = whole[1]
        if isinstance(event, Request):
            # Re-encoding joined vars never grows the block or the var count, so it must fit.
            packet = build_request(event.vars, body, event.modifier1, event.modifier2)
            try:
                again: Any = decode(packet, limits)
            except ProtocolError as exc:
                again = exc
            if again != (event, body):
                raise AssertionError(f"re-encoded {event!r} decodes to {again!r}")
        elif not isinstance(event, Ping):
            raise AssertionError(f"unexpected event {event!r}")
    elif whole[0] == "need-data" and data:
        raise AssertionError("the decoder neither decided nor refused at eof")


def _fuzz_argv(argv: list[str]) -> list[str]:
    """Put a scratch corpus first (libFuzzer writes new inputs to the first directory)."""
    out = Path(os.environ.get("FUZZ_OUT_DIR", HERE / "corpus_out"))
    out.mkdir(parents=True, exist_ok=True)
    args = list(argv[1:])
    if not any(a.startswith("-artifact_prefix=") for a in args):
        artifacts = HERE / "artifacts"
        artifacts.mkdir(exist_ok=True)
        args.insert(0, f"-artifact_prefix={artifacts}{os.sep}")
    first_dir = next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))
    args.insert(first_dir, str(out))
    return [argv[0], *args]


def main() -> None:
    import atheris

    atheris.Setup(_fuzz_argv(sys.argv), check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
