"""Hand-built bytes as an oracle: packets packed with ``struct`` in this file, never the schema.

Also the encoder's refusals, the error classes' status hints, the event values' validation and
the decoder's small contract (one packet, body bytes held after the event).
"""

from __future__ import annotations

import ast
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from codec_testkit import CORPUS

import uwsgiapp
import uwsgiproto
from uwsgiproto import (
    BLOCK_START,
    NEED_DATA,
    PAUSED,
    Decoder,
    EncodeError,
    Limits,
    MalformedPacket,
    PacketTooLarge,
    Ping,
    ProtocolError,
    Request,
    UnsupportedModifier,
    build_header,
    build_ping,
    build_pong,
    build_request,
    decode,
    generic_vars,
    packet_end,
    parse_packet,
)
from uwsgiproto.schema import HEADER_STRUCT


def hand_var(key: bytes, value: bytes) -> bytes:
    return struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value


def hand_packet(
    pairs: list[tuple[bytes, bytes]], body: bytes = b"", modifier1: int = 0, modifier2: int = 0
) -> bytes:
    block = b"".join(hand_var(k, v) for k, v in pairs)
    return struct.pack("<BHB", modifier1, len(block), modifier2) + block + body


def struct_loop(block: bytes) -> list[tuple[str, str]]:
    """An independent reader: a plain loop over ``struct.unpack_from``."""
    pos, out = 0, []
    while pos < len(block):
        (klen,) = struct.unpack_from("<H", block, pos)
        key = block[pos + 2 : pos + 2 + klen]
        (vlen,) = struct.unpack_from("<H", block, pos + 2 + klen)
        start = pos + 4 + klen
        value = block[start : start + vlen]
        assert len(value) == vlen
        out.append((key.decode("latin-1"), value.decode("latin-1")))
        pos = start + vlen
    assert pos == len(block)
    return out


# --- decoding hand-built packets ------------------------------------------------------------


def test_minimal_request_from_literal_bytes() -> None:
    data = b"\x00\x0e\x00\x00" + b"\x04\x00PATH\x01\x00/" + b"\x01\x00A\x00\x00" + b"BODY"
    event, body = decode(data)
    assert event == Request(modifier1=0, modifier2=0, vars={"PATH": "/", "A": ""})
    assert body == b"BODY"


def test_hand_built_packet_with_everything() -> None:
    pairs = [
        (b"REQUEST_METHOD", b"POST"),
        (b"HTTP_COOKIE", b"a=1"),
        (b"HTTP_ACCEPT", b"x/y"),
        (b"HTTP_COOKIE", b"b=2"),
        (b"HTTP_ACCEPT", b"*/*"),
        (b"QUERY_STRING", b""),
        (b"PATH_INFO", b"/\xe9t\xe9"),
    ]
    event, body = decode(hand_packet(pairs, b"xyz", modifier1=30, modifier2=9))
    assert isinstance(event, Request)
    assert (event.modifier1, event.modifier2) == (30, 9)
    assert list(event.vars.items()) == [
        ("REQUEST_METHOD", "POST"),
        ("HTTP_COOKIE", "a=1; b=2"),
        ("HTTP_ACCEPT", "x/y, */*"),
        ("QUERY_STRING", ""),
        ("PATH_INFO", "/\u00e9t\u00e9"),
    ]
    assert body == b"xyz"


@pytest.mark.parametrize("name", ["nginx_get_hello.bin", "nginx_post_json.bin"])
def test_real_capture_matches_a_struct_loop(name: str) -> None:
    data = (CORPUS / "valid" / name).read_bytes()
    modifier1, datasize, modifier2 = struct.unpack_from("<BHB", data)
    expected = struct_loop(data[4 : 4 + datasize])
    event, body = decode(data)
    assert isinstance(event, Request)
    assert (event.modifier1, event.modifier2) == (modifier1, modifier2)
    assert list(event.vars.items()) == expected  # these captures repeat no key
    assert body == data[4 + datasize :]
    # And the encoder writes the very same bytes back.
    assert build_request(expected, body) == data


def test_ping_and_pong_bytes() -> None:
    assert build_ping() == b"\x64\x00\x00\x00"
    assert build_pong() == b"\x64\x00\x00\x01"
    assert decode(b"\x64\x00\x00\x00") == (Ping(modifier2=0), b"")
    # A ping's vars block, if any, is still checked, then dropped.
    assert decode(hand_packet([(b"A", b"b")], modifier1=100, modifier2=1)) == (
        Ping(modifier2=1),
        b"",
    )
    with pytest.raises(MalformedPacket):
        decode(b"\x64\x02\x00\x00\x00\x00")


def test_header_struct_is_the_wire_format() -> None:
    assert HEADER_STRUCT.format == "<BHB"
    assert build_header(0, 586, 0) == b"\x00\x4a\x02\x00"
    assert build_header(30, 0xFFFF, 255) == b"\x1e\xff\xff\xff"


# --- encoder: bytes and refusals --------------------------------------------------------------


def test_encoder_writes_hand_built_bytes() -> None:
    pairs = [("A", "1"), ("HTTP_X", ""), ("A", "2"), ("\u00ff", "\u00e9")]
    hand = hand_packet(
        [(b"A", b"1"), (b"HTTP_X", b""), (b"A", b"2"), (b"\xff", b"\xe9")], b"body", 30, 4
    )
    assert build_request(pairs, b"body", modifier1=30, modifier2=4) == hand
    assert build_request({"A": "1"}) == hand_packet([(b"A", b"1")])
    assert build_request([]) == b"\x00\x00\x00\x00"


def test_largest_block_encodes_and_one_more_byte_is_refused() -> None:
    data = build_request([("K", "x" * 65530)])
    assert data[:4] == b"\x00\xff\xff\x00"
    assert decode(data, Limits(buffer_size=65535))[0] == Request(
        modifier1=0, vars={"K": "x" * 65530}
    )
    with pytest.raises(EncodeError, match="65536"):
        build_request([("K", "x" * 65531)])


@pytest.mark.parametrize(
    ("pairs", "fragment"),
    [
        ([("K" * 65536, "")], "65536 bytes"),
        ([("K", "v" * 65536)], "65536 bytes"),
        ([("A", "v" * 40000), ("B", "v" * 40000)], "max 65535"),
        ([("A", "")] * 13108, "max 65535"),  # 13108 * 5 bytes: no single var is large
        ([("", "x")], "empty key"),
        ([("PATH_INFO", "/\u20ac")], "latin-1"),
        ([("\u0100", "x")], "latin-1"),
    ],
    ids=["key", "value", "block", "many-small", "empty-key", "euro-value", "wide-key"],
)
def test_encoder_refuses_what_cannot_be_encoded(
    pairs: list[tuple[str, str]], fragment: str
) -> None:
    with pytest.raises(EncodeError, match=fragment) as info:
        build_request(pairs)
    assert not isinstance(info.value, ProtocolError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [((256, 0, 0), "0..255"), ((0, 0, 256), "0..255"), ((-1, 0, 0), "0..255"), ((0, 65536), "max")],
)
def test_build_header_range_checks(args: tuple[int, ...], fragment: str) -> None:
    with pytest.raises(EncodeError, match=fragment):
        build_header(*args)


def test_build_request_range_checks_modifiers() -> None:
    with pytest.raises(EncodeError):
        build_request({"A": "b"}, modifier1=300)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (({"CONTENT_LENGTH": 5},), "got int 5 (in 'CONTENT_LENGTH')"),  # AttributeError before
        (({b"A": "1"},), "got bytes b'A'"),
        (([("A",)],), "vars must be (key, value) pairs"),
        (([1],), "vars must be (key, value) pairs"),
        (({"A": "1"}, "text"), "body must be bytes, got str"),  # TypeError before
        (({"A": "1"}, 5), "body must be bytes, got int"),  # five NUL bytes before
        (({"A": "1"}, b"", 1.5), "modifier1 must be an int"),  # struct.error before
        (({"A": "1"}, b"", 0, True), "modifier2 must be an int"),
    ],
)
def test_build_request_refuses_wrong_types_with_encode_error(
    args: tuple[Any, ...], fragment: str
) -> None:
    with pytest.raises(EncodeError, match=re.escape(fragment)):
        build_request(*args)


def test_build_request_takes_any_bytes_like_body() -> None:
    packet = build_request([["A", "1"]], bytearray(b"xy"))  # type: ignore[list-item]
    assert (
        packet == build_request({"A": "1"}, b"xy") == build_request({"A": "1"}, memoryview(b"xy"))
    )


# --- errors, events, limits ------------------------------------------------------------------


def test_status_hints_live_on_the_exception() -> None:
    assert MalformedPacket("x").status_hint == 400
    assert PacketTooLarge("x").status_hint == 431
    assert PacketTooLarge("x", limit="buffer_size", status_hint=413).status_hint == 413
    assert UnsupportedModifier("x").status_hint == 501
    assert ProtocolError("x", status_hint=413).status_hint == 413
    assert PacketTooLarge("x").status_hint == 431  # the override did not leak into the class
    err = MalformedPacket("empty key")
    assert err.message == "empty key" == str(err)
    for cls in (MalformedPacket, PacketTooLarge, UnsupportedModifier):
        assert issubclass(cls, ProtocolError)


def test_events_validate_and_are_frozen() -> None:
    with pytest.raises(ValueError, match="modifier1"):
        Request(modifier1=256)
    with pytest.raises(ValueError, match="modifier2"):
        Request(modifier1=0, modifier2=-1)
    with pytest.raises(ValueError, match="modifier2"):
        Ping(modifier2=300)
    with pytest.raises(TypeError):
        Request(0)  # type: ignore[call-arg]  # keyword-only
    ping = Ping()
    with pytest.raises(AttributeError):
        ping.modifier2 = 1  # type: ignore[misc]
    assert repr(NEED_DATA) == "NEED_DATA"


@pytest.mark.parametrize(
    "kwargs", [{"buffer_size": 0}, {"buffer_size": 65536}, {"max_vars": 0}, {"buffer_size": -1}]
)
def test_limits_refuse_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Limits(**kwargs)


def test_buffer_size_bound_is_inclusive() -> None:
    data = hand_packet([(b"A", b"x" * 95)])  # a 100-byte block
    assert decode(data, Limits(buffer_size=100))[0] == Request(modifier1=0, vars={"A": "x" * 95})
    with pytest.raises(PacketTooLarge, match=r"invalid request block size: 100 \(max 99\)"):
        decode(data, Limits(buffer_size=99))


def test_max_vars_counts_vars_on_the_wire() -> None:
    three = hand_packet([(b"HTTP_A", b"1"), (b"B", b"2"), (b"HTTP_A", b"3")])
    assert decode(three, Limits(max_vars=3))[0] == Request(
        modifier1=0, vars={"HTTP_A": "1, 3", "B": "2"}
    )
    with pytest.raises(PacketTooLarge, match="too many vars"):
        decode(three, Limits(max_vars=2))
    distinct = hand_packet([(b"A", b"1"), (b"B", b"2"), (b"C", b"3")])
    with pytest.raises(PacketTooLarge, match=r"too many vars: 3 \(max 2\)"):
        decode(distinct, Limits(max_vars=2))


# --- the decoder's contract ------------------------------------------------------------------


def test_decoder_holds_the_body_and_serves_one_packet() -> None:
    data = hand_packet([(b"CONTENT_LENGTH", b"10")], b"0123")
    decoder = Decoder()
    assert decoder.next_event() is NEED_DATA
    decoder.receive_data(data[:3])
    assert decoder.next_event() is NEED_DATA
    assert decoder.trailing_data == decoder.var_block == b""
    decoder.receive_data(data[3:])
    event = decoder.next_event()
    assert event == Request(modifier1=0, vars={"CONTENT_LENGTH": "10"})
    assert decoder.trailing_data == b"0123"
    assert decoder.var_block == data[4:-4]  # the block as it came, for the access log
    decoder.receive_data(b"456789")
    assert decoder.trailing_data == b"0123456789"
    assert decoder.buffered == 10
    # One packet per connection: afterwards the decoder answers PAUSED, as h11 does, and what
    # it receives stays body (a second packet's bytes are not parsed).
    decoder.receive_data(build_ping())
    assert decoder.next_event() is PAUSED
    assert decoder.next_event() is PAUSED
    assert decoder.trailing_data == b"0123456789" + build_ping()
    assert repr(PAUSED) == "PAUSED"
    decoder.eof()


def test_eof_before_anything_is_a_clean_close() -> None:
    decoder = Decoder()
    decoder.eof()
    decoder.receive_data(b"")
    decoder.eof()
    assert decoder.next_event() is NEED_DATA


def test_decode_refuses_incomplete_input() -> None:
    with pytest.raises(MalformedPacket, match="empty packet"):
        decode(b"")
    with pytest.raises(MalformedPacket, match="mid-packet after 5 bytes"):
        decode(hand_packet([(b"A", b"b")])[:5])


def test_decoder_needs_only_the_header_to_refuse_a_huge_block() -> None:
    decoder = Decoder()
    decoder.receive_data(b"\x00\xff\xff")
    assert decoder.next_event() is NEED_DATA
    decoder.receive_data(b"\x00")
    with pytest.raises(PacketTooLarge, match="65535"):
        decoder.next_event()


def test_parse_packet_is_the_decoders_entry_for_a_whole_head() -> None:
    data = hand_packet([(b"CONTENT_LENGTH", b"3"), (b"A", b"b")], b"xyz", 30, 2)
    limits = Limits()
    parse = generic_vars(limits)
    for cut in range(len(data) - 3):
        assert parse_packet(data[:cut], limits, parse) is NEED_DATA
    modifier1, modifier2, variables, end = parse_packet(data, limits, parse)  # type: ignore[misc]
    assert (modifier1, modifier2, data[end:]) == (30, 2, b"xyz")
    assert variables == {"CONTENT_LENGTH": "3", "A": "b"}
    event, body = decode(data)
    assert event == Request(modifier1=30, modifier2=2, vars=variables) and body == b"xyz"
    # The caller's own var-block parser gets the block and modifier1 (as the server's does).
    seen: list[tuple[bytes, int]] = []
    parse_packet(data, limits, lambda block, m1: seen.append((bytes(block), m1)))
    assert seen == [(data[4:end], 30)]


def test_parse_packet_refuses_on_the_header_alone() -> None:
    with pytest.raises(PacketTooLarge, match="65535"):
        parse_packet(b"\x00\xff\xff\x00", Limits(), generic_vars(Limits()))
    with pytest.raises(UnsupportedModifier, match="modifier1 7"):
        parse_packet(b"\x07\x00\x00\x00", Limits(), generic_vars(Limits()))


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_packet_end_is_where_parse_packet_ends(kind: type[bytes] | type[bytearray]) -> None:
    data = kind(hand_packet([(b"CONTENT_LENGTH", b"3"), (b"A", b"b")], b"xyz", 30, 2))
    limits = Limits()
    for cut in range(len(data) - 3):
        assert packet_end(data[:cut], limits.buffer_size) == -1
    end = packet_end(data, limits.buffer_size)
    found = parse_packet(data, limits, lambda block, m1: (bytes(block), m1))
    assert found == (30, 2, (bytes(data[BLOCK_START:end]), 30), end) and data[end:] == b"xyz"
    assert packet_end(data, end - BLOCK_START) == end  # a block of exactly buffer_size is fine
    with pytest.raises(PacketTooLarge, match=f"size: {end - BLOCK_START} \\(max {end - 5}\\)"):
        packet_end(data, end - BLOCK_START - 1)
    with pytest.raises(PacketTooLarge, match="uwsgi_pass, not proxy_pass"):
        packet_end(kind(b"GET / HTTP/1.1\r\n"), limits.buffer_size)
    with pytest.raises(UnsupportedModifier, match="modifier1 7"):
        packet_end(kind(b"\x07\x00\x00\x00"), limits.buffer_size)


# --- layering --------------------------------------------------------------------------------


def test_the_package_uses_only_the_codecs_public_names() -> None:
    # One codec path: the server and the WSGI layer import from ``uwsgiproto`` itself, never its
    # modules, so what they call is what the codec exports (and its tests cover).
    root = Path(uwsgiapp.__file__).resolve().parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                assert not node.module.startswith("uwsgiproto."), f"{path.name}: {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("uwsgiproto."), f"{path.name}: {alias.name}"


FORBIDDEN = {"socket", "selectors", "asyncio", "ssl", "os", "io", "logging", "uwsgiapp"}


@pytest.mark.parametrize(
    "path", sorted(Path(uwsgiproto.__file__).parent.glob("*.py")), ids=lambda p: p.name
)
def test_protocol_imports_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_fast_schema_builds_hand_built_bytes() -> None:
    # Regression: VarBlock._build passed length -1 to construct's stream_write, so building
    # through VAR_BLOCK / PACKET always raised StreamError.
    from uwsgiproto.schema import PACKET, VAR_BLOCK

    pairs = [(b"A", b"1"), (b"HTTP_X", b"")]
    block = b"".join(hand_var(k, v) for k, v in pairs)
    assert VAR_BLOCK.build({"A": "1", "HTTP_X": ""}) == block
    assert VAR_BLOCK.build([("A", "1"), ("HTTP_X", "")]) == block
    head = {"modifier1": 30, "datasize": len(block), "modifier2": 2}
    assert PACKET.build({**head, "vars": {"A": "1", "HTTP_X": ""}}) == hand_packet(
        pairs, b"", 30, 2
    )
    assert VAR_BLOCK.build({}) == b""
