"""Property tests: round trips, fast path == reference schema, and no exception but ProtocolError.

Budgets are per test (``settings(max_examples=...)``) so the whole directory stays well under a
minute; raise them for a long run by hand with ``CODEC_EXAMPLES_SCALE=20``.
"""

from __future__ import annotations

import itertools
import os
import struct
from typing import Any

from construct import ConstructError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from uwsgiproto import (
    NEED_DATA,
    Decoder,
    EncodeError,
    Limits,
    PacketTooLarge,
    Ping,
    ProtocolError,
    Request,
    build_request,
    decode,
)
from uwsgiproto.schema import (
    HEADER,
    HEADER_STRUCT,
    PACKET,
    REFERENCE_PACKET,
    REFERENCE_VAR_BLOCK,
    VAR_BLOCK,
    join_pairs,
    parse_var_block,
)

SCALE = max(1, int(os.environ.get("CODEC_EXAMPLES_SCALE", "1")))


def budget(n: int) -> settings:
    # deadline=None: construct's reference schema is slow and its timing is noisy.
    return settings(
        max_examples=n * SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


LATIN1 = st.characters(min_codepoint=0, max_codepoint=255)
# Keys from a small pool as well as free text, so repeated keys (and HTTP_COOKIE) are common.
KEYS = st.one_of(
    st.sampled_from(
        [
            "HTTP_COOKIE",
            "HTTP_ACCEPT",
            "HTTP_HOST",
            "HTTP_X_FORWARDED_PROTO",
            "PATH_INFO",
            "A",
            "\u00e9",
        ]
    ),
    st.text(LATIN1, min_size=1, max_size=12),
)
VALUES = st.text(LATIN1, max_size=24)
PAIRS = st.lists(st.tuples(KEYS, VALUES), max_size=12)
MODIFIER1 = st.sampled_from([0, 30])
BYTE = st.integers(0, 255)


CONFIG_SET = {"HTTP_HOST", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_REAL_IP"}
CONFIG_SET |= {"HTTP_X_FORWARDED_" + k for k in ("PORT", "PREFIX", "SSL", "SCHEME")}
CONFIG_SET.add("HTTP_X_SCHEME")


def fold(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The rule for repeats, written again here: headers (HTTP_*, but Host and the proxy
    headers a config sets) are joined with ", ", cookies with "; "; any other key keeps its
    last value."""
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return {
        k: ("; " if k == "HTTP_COOKIE" else ", ").join(v)
        if k.startswith("HTTP_") and k not in CONFIG_SET
        else v[-1]
        for k, v in out.items()
    }


def hand_block(pairs: list[tuple[str, str]]) -> bytes:
    out = b""
    for key, value in pairs:
        kb, vb = key.encode("latin-1"), value.encode("latin-1")
        out += struct.pack("<H", len(kb)) + kb + struct.pack("<H", len(vb)) + vb
    return out


# --- round trips ----------------------------------------------------------------------------


@budget(300)
@given(pairs=PAIRS, body=st.binary(max_size=40), modifier1=MODIFIER1, modifier2=BYTE)
def test_decode_of_encode_is_identity(
    pairs: list[tuple[str, str]], body: bytes, modifier1: int, modifier2: int
) -> None:
    data = build_request(pairs, body, modifier1=modifier1, modifier2=modifier2)
    # The encoder's bytes are the hand-packed ones: an oracle that shares no code with it.
    block = hand_block(pairs)
    assert data == struct.pack("<BHB", modifier1, len(block), modifier2) + block + body
    event, rest = decode(data)
    assert event == Request(modifier1=modifier1, modifier2=modifier2, vars=fold(pairs))
    assert list(event.vars) == list(fold(pairs))  # first-seen order
    assert rest == body


@budget(150)
@given(vars=st.dictionaries(st.text(LATIN1, min_size=1, max_size=20), VALUES, max_size=20))
def test_unique_keys_round_trip_exactly(vars: dict[str, str]) -> None:
    event, _ = decode(build_request(vars))
    assert isinstance(event, Request)
    assert list(event.vars.items()) == list(vars.items())


@budget(100)
@given(modifier2=BYTE)
def test_ping_round_trip(modifier2: int) -> None:
    data = struct.pack("<BHB", 100, 0, modifier2)
    assert decode(data) == (Ping(modifier2=modifier2), b"")


@budget(150)
@given(
    key=st.text(min_size=1, max_size=8),
    value=st.text(max_size=8),
    where=st.sampled_from(["key", "value"]),
)
def test_encoder_refuses_non_latin1(key: str, value: str, where: str) -> None:
    wide = "\u0100\u20ac\U0001f600"
    if where == "key":
        key += wide[len(key) % 3]
    else:
        value = wide[len(value) % 3] + value
    try:
        build_request([(key, value)])
    except EncodeError as exc:
        assert "latin-1" in str(exc)
    else:
        raise AssertionError("a non-latin-1 var was encoded")


# --- fast path == reference schema ----------------------------------------------------------


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    """("ok", value) or ("error", None) for a construct error; anything else propagates."""
    try:
        return "ok", fn(*args)
    except ConstructError:
        return "error", None


def reference_vars(block: bytes) -> dict[str, str]:
    parsed = REFERENCE_VAR_BLOCK.parse(block)
    return join_pairs((v.key, v.value) for v in parsed.vars)


@st.composite
def var_blocks(draw: st.DrawFn) -> bytes:
    """Var blocks near the valid ones: valid, then maybe cut, padded, overwritten or spliced."""
    block = hand_block(draw(PAIRS))
    if not block or draw(st.booleans()):
        return block
    op = draw(st.sampled_from(["cut", "pad", "poke", "splice"]))
    if op == "cut":
        return block[: draw(st.integers(0, len(block) - 1))]
    if op == "pad":
        return block + draw(st.binary(min_size=1, max_size=5))
    at = draw(st.integers(0, len(block) - 1))
    if op == "poke":
        return block[:at] + bytes([draw(BYTE)]) + block[at + 1 :]
    return block[:at] + draw(st.binary(min_size=1, max_size=6)) + block[at:]


BLOCKS = st.one_of(var_blocks(), st.binary(max_size=48))


@budget(400)
@given(block=BLOCKS)
def test_fast_var_block_equals_reference(block: bytes) -> None:
    fast = outcome(parse_var_block, block)
    assert outcome(reference_vars, block) == fast
    assert outcome(VAR_BLOCK.parse, block) == fast
    assert outcome(parse_var_block, bytearray(block)) == fast


@budget(200)
@given(
    modifier1=BYTE,
    modifier2=BYTE,
    block=BLOCKS,
    delta=st.integers(-3, 3),
    extra=st.binary(max_size=6),
)
def test_fast_packet_equals_reference(
    modifier1: int, modifier2: int, block: bytes, delta: int, extra: bytes
) -> None:
    # datasize sometimes lies about the block's length, so FixedSized itself is exercised.
    datasize = max(0, len(block) + delta)
    data = struct.pack("<BHB", modifier1, datasize, modifier2) + block + extra
    fast = outcome(PACKET.parse, data)
    ref = outcome(REFERENCE_PACKET.parse, data)
    assert fast[0] == ref[0]
    if fast[0] == "ok":
        for field in ("modifier1", "datasize", "modifier2"):
            assert fast[1][field] == ref[1][field]
        assert fast[1].vars == join_pairs((v.key, v.value) for v in ref[1].block.vars)


@budget(150)
@given(pairs=PAIRS, modifier1=BYTE, modifier2=BYTE)
def test_fast_and_reference_build_the_same_bytes(
    pairs: list[tuple[str, str]], modifier1: int, modifier2: int
) -> None:
    assume(all(k for k, _ in pairs))
    size = len(hand_block(pairs))
    head = {"modifier1": modifier1, "datasize": size, "modifier2": modifier2}
    fast = PACKET.build({**head, "vars": pairs})
    ref = REFERENCE_PACKET.build(
        {**head, "block": {"vars": [{"key": k, "value": v} for k, v in pairs]}}
    )
    assert fast == ref
    assert VAR_BLOCK.build(dict(pairs)) == REFERENCE_VAR_BLOCK.build(
        {"vars": [{"key": k, "value": v} for k, v in dict(pairs).items()]}
    )


@budget(200)
@given(head=st.binary(min_size=4, max_size=4))
def test_header_struct_equals_header_schema(head: bytes) -> None:
    parsed = HEADER.parse(head)
    assert HEADER_STRUCT.unpack(head) == (parsed.modifier1, parsed.datasize, parsed.modifier2)
    assert HEADER.build(parsed) == HEADER_STRUCT.pack(*HEADER_STRUCT.unpack(head)) == head


# --- arbitrary bytes: an event, NEED_DATA or ProtocolError, whatever the chunking -----------


def feed(data: bytes, cuts: list[int], limits: Limits) -> tuple[str, Any]:
    """Feed ``data`` split at ``cuts``; summarise what happened (raising anything unexpected)."""
    decoder = Decoder(limits)
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < len(data)), len(data)]
    try:
        for start, stop in itertools.pairwise(bounds):
            decoder.receive_data(data[start:stop])
            event = decoder.next_event()
            if event is not NEED_DATA:
                decoder.receive_data(data[stop:])
                return "event", (event, decoder.trailing_data)
        decoder.eof()
    except ProtocolError as exc:
        return "error", (type(exc), str(exc))
    return "need-data", None


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    """Mostly plausible packets: a real modifier, a datasize near the block, a body."""
    block = draw(BLOCKS)
    modifier1 = draw(st.one_of(st.sampled_from([0, 30, 100]), BYTE))
    datasize = max(0, len(block) + draw(st.sampled_from([0, 0, 0, -1, 1, -4, 7])))
    head = struct.pack("<BHB", modifier1, min(datasize, 0xFFFF), draw(BYTE))
    return head + block + draw(st.binary(max_size=8))


LIMITS = st.builds(Limits, buffer_size=st.integers(1, 200), max_vars=st.integers(1, 8))


@budget(400)
@given(
    data=st.one_of(packets(), st.binary(max_size=64)),
    cuts=st.lists(st.integers(0, 80), max_size=10),
    limits=st.one_of(st.just(Limits()), LIMITS),
)
def test_any_bytes_any_chunking_only_protocol_error(
    data: bytes, cuts: list[int], limits: Limits
) -> None:
    whole = feed(data, [], limits)
    assert whole == feed(data, cuts, limits)  # the chunking never changes the outcome
    assert whole == feed(data, list(range(len(data))), limits)  # byte by byte
    if whole[0] == "event":
        event, body = whole[1]
        assert isinstance(event, Request | Ping)
        assert len(data) - len(body) == 4 + struct.unpack_from("<H", data, 1)[0]
    if whole[0] == "need-data":
        assert data == b""  # anything else is either a packet, or refused at eof at the latest


@budget(200)
@given(
    pairs=st.lists(st.tuples(st.sampled_from(["A", "B", "HTTP_COOKIE", "LONGER_KEY"]), VALUES)),
    buffer_size=st.integers(1, 400),
    max_vars=st.integers(1, 12),
)
def test_limits_decide_exactly_as_counted(
    pairs: list[tuple[str, str]], buffer_size: int, max_vars: int
) -> None:
    block = hand_block(pairs)
    assume(len(block) <= 0xFFFF)
    data = struct.pack("<BHB", 0, len(block), 0) + block
    fits = len(block) <= buffer_size and len(pairs) <= max_vars
    try:
        event, _ = decode(data, Limits(buffer_size=buffer_size, max_vars=max_vars))
    except PacketTooLarge:
        assert not fits
    else:
        assert fits
        assert event == Request(modifier1=0, vars=fold(pairs))
