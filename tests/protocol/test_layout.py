"""uwsgiproto.layout: a compiled layout, finished by resume_var_block, parses as parse_var_block.

The property tests draw a layout and blocks near it (its own keys with any values, a prefix of
them followed by other vars, then cut, padded, overwritten or spliced) and require the same dict,
or the same construct error, as the generic parser.
"""

from __future__ import annotations

import gc
import inspect
import linecache
import struct
import traceback
from typing import Any

import pytest
from construct import ConstructError
from hypothesis import given
from hypothesis import strategies as st
from test_codec_properties import KEYS, VALUES, budget, hand_block

from uwsgiproto.layout import (
    KNOWN_MISSES,
    MAX_KNOWN_VALUE,
    MAX_LAYOUT_VARS,
    Layout,
    Partial,
    count_vars,
    key_signature,
)
from uwsgiproto.schema import MAX_BLOCK, TooManyVars, parse_var_block, resume_var_block

NGINX_GET = (
    b"\x0c\x00QUERY_STRING\x03\x00x=1\x0e\x00REQUEST_METHOD\x03\x00GET"
    b"\x0b\x00REQUEST_URI\x0a\x00/hello?x=1\x09\x00PATH_INFO\x06\x00/hello"
)


#: Both ways a layout runs: generated straight-line code, and the loop a compiled build uses.
RUNS = pytest.mark.parametrize("looped", [False, True], ids=["generated", "looped"])


def finish(layout: Layout, block: bytes | bytearray, max_vars: int = MAX_BLOCK) -> dict[str, Any]:
    """What a caller does: the layout's dict, or the generic parser from where it stopped."""
    text = block.decode("latin-1")
    result = layout.run(block, text)
    if type(result) is dict:
        return result
    matched, pos, values = result
    assert isinstance(result, tuple)
    assert len(values) == matched
    out = dict(zip(layout.keys[:matched], values, strict=True))
    return resume_var_block(block, text, pos, out, max_vars)[0]


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except TooManyVars:
        return "too many", None
    except ConstructError:
        return "error", None


LAYOUT_KEYS = st.lists(KEYS, min_size=1, max_size=10, unique=True)


@st.composite
def layout_and_block(draw: st.DrawFn) -> tuple[list[str], bytes]:
    keys = draw(LAYOUT_KEYS)
    kind = draw(st.sampled_from(["same", "prefix", "other", "bytes"]))
    if kind == "bytes":
        return keys, draw(st.binary(max_size=60))
    pairs = [(key, draw(VALUES)) for key in keys]
    if kind == "prefix":
        pairs = pairs[: draw(st.integers(0, len(pairs)))]
        pairs += draw(st.lists(st.tuples(KEYS, VALUES), max_size=4))
    elif kind == "other":
        pairs = draw(st.lists(st.tuples(KEYS, VALUES), max_size=8))
    block = hand_block(pairs)
    if block and draw(st.booleans()):
        at = draw(st.integers(0, len(block) - 1))
        op = draw(st.sampled_from(["cut", "pad", "poke", "splice"]))
        if op == "cut":
            block = block[:at]
        elif op == "pad":
            block += draw(st.binary(min_size=1, max_size=5))
        elif op == "poke":
            block = block[:at] + bytes([draw(st.integers(0, 255))]) + block[at + 1 :]
        else:
            block = block[:at] + draw(st.binary(min_size=1, max_size=6)) + block[at:]
    return keys, block


@RUNS
@budget(600)
@given(case=layout_and_block(), bytearray_input=st.booleans())
def test_layout_then_resume_equals_generic_parse(
    case: tuple[list[str], bytes], bytearray_input: bool, looped: bool
) -> None:
    keys, block = case
    layout = Layout(keys, looped=looped)
    data = bytearray(block) if bytearray_input else block
    assert outcome(finish, layout, data) == outcome(parse_var_block, block)


@RUNS
@budget(300)
@given(keys=LAYOUT_KEYS, data=st.data())
def test_a_block_of_the_layout_matches_in_full(
    keys: list[str], data: st.DataObject, looped: bool
) -> None:
    pairs = [(key, data.draw(VALUES)) for key in keys]
    result = Layout(keys, looped=looped).run(hand_block(pairs), hand_block(pairs).decode("latin-1"))
    assert result == dict(pairs)


@RUNS
@budget(200)
@given(keys=LAYOUT_KEYS, extra=st.integers(0, 3), data=st.data())
def test_the_limit_on_vars_still_holds_after_a_full_match(
    keys: list[str], extra: int, data: st.DataObject, looped: bool
) -> None:
    # The layout matches all its keys, more vars follow: the count goes on from the layout's.
    pairs = [(key, data.draw(VALUES)) for key in keys]
    pairs += [(f"\x00extra{i}", "v") for i in range(extra)]
    block = hand_block(pairs)
    max_vars = len(keys) + data.draw(st.integers(0, 3))
    expected = outcome(parse_var_block, block, max_vars)
    assert outcome(finish, Layout(keys, looped=looped), block, max_vars) == expected
    assert expected[0] == ("ok" if len(pairs) <= max_vars else "too many")


@RUNS
def test_partial_says_where_the_block_left_the_layout(looped: bool) -> None:
    layout = Layout(["QUERY_STRING", "REQUEST_METHOD", "HTTP_HOST"], looped=looped)
    result = layout.run(NGINX_GET, NGINX_GET.decode("latin-1"))
    # The loop keeps no values from before a mismatch: the generic parser starts afresh.
    partial = (2, NGINX_GET.index(b"\x0b\x00REQUEST_URI"), ("x=1", "GET"))
    assert result == ((0, 0, ()) if looped else partial)
    other = Layout(["PATH_INFO"], looped=looped)
    assert other.run(NGINX_GET, NGINX_GET.decode("latin-1")) == (0, 0, ())


@RUNS
def test_more_vars_after_the_layout_are_a_partial_at_the_end_of_it(looped: bool) -> None:
    layout = Layout(["QUERY_STRING", "REQUEST_METHOD"], looped=looped)
    result: dict[str, Any] | Partial = layout.run(NGINX_GET, NGINX_GET.decode("latin-1"))
    partial = (2, NGINX_GET.index(b"\x0b\x00REQUEST_URI"), ("x=1", "GET"))
    assert result == ((0, 0, ()) if looped else partial)
    assert finish(layout, NGINX_GET) == parse_var_block(NGINX_GET)


@RUNS
def test_store_and_base_shape_the_result(looped: bool) -> None:
    keys = ["QUERY_STRING", "REQUEST_METHOD", "REQUEST_URI", "PATH_INFO"]
    marker = object()
    store = {"REQUEST_METHOD", "PATH_INFO"}
    layout = Layout(keys, store=store, base={"extra": marker}, looped=looped)
    text = NGINX_GET.decode("latin-1")
    first = layout.run(NGINX_GET, text)
    assert first == {"REQUEST_METHOD": "GET", "PATH_INFO": "/hello", "extra": marker}
    assert type(first) is dict
    first["PATH_INFO"] = "changed"
    assert layout.run(NGINX_GET, text) == {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/hello",
        "extra": marker,
    }, "each result is a fresh copy"
    # A cut block: a partial at the offset the last value claims to end at (past the end, which
    # the generic parser reports), carrying every value, stored or not.
    values = ("x=1", "GET", "/hello?x=1", "/he")
    partial = (4, len(NGINX_GET), values)
    assert layout.run(NGINX_GET[:-3], text[:-3]) == ((0, 0, ()) if looped else partial)


@pytest.mark.parametrize(
    "key",
    [
        "'",
        '"',
        "\\",
        "\n",
        "\x00",
        "'''",
        '"); import os; os._exit(1); ("',
        "{v0}",
        "\u00ff\u00e9",
        "x" * 300,
    ],
)
@RUNS
def test_any_latin1_key_is_only_data_in_the_generated_code(key: str, looped: bool) -> None:
    keys = ["A", key, "B"]
    pairs = [("A", "1"), (key, key), ("B", "\\'")]
    block = hand_block(pairs)
    assert Layout(keys, looped=looped).run(block, block.decode("latin-1")) == dict(pairs)


# --- known values ----------------------------------------------------------------------------

ASCII_VALUES = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=8)


@RUNS
@budget(300)
@given(case=layout_and_block(), data=st.data())
def test_known_values_change_nothing_but_the_work(
    case: tuple[list[str], bytes], data: st.DataObject, looped: bool
) -> None:
    keys, near = case
    known = {k: data.draw(ASCII_VALUES) for k in keys if data.draw(st.booleans())}
    expecting = Layout(keys, known=known, looped=looped)
    plain = Layout(keys, looped=looped)
    # Blocks of the layout carrying the known values or others, and blocks near it.
    same = hand_block(
        [
            (k, known[k] if k in known and data.draw(st.booleans()) else data.draw(VALUES))
            for k in keys
        ]
    )
    for block in (same, near, same):
        assert outcome(finish, expecting, block) == outcome(finish, plain, block)


def test_a_known_value_is_the_prototype_s_own_string() -> None:
    keys = ["QUERY_STRING", "REQUEST_METHOD", "REQUEST_URI", "PATH_INFO"]
    layout = Layout(keys, known={"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, looped=True)
    assert layout.known == {"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}
    result = layout.run(NGINX_GET, NGINX_GET.decode("latin-1"))
    assert result == {
        "QUERY_STRING": "x=1",
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": "/hello?x=1",
        "PATH_INFO": "/hello",
    }
    assert isinstance(result, dict) and result["REQUEST_METHOD"] is layout.known["REQUEST_METHOD"]


def test_long_non_ascii_and_unstored_values_are_not_known() -> None:
    layout = Layout(
        ["A", "B", "C", "D"],
        store={"A", "B", "C"},
        known={"A": "x" * (MAX_KNOWN_VALUE + 1), "B": "\xe9", "C": "ok", "D": "d", "E": "e"},
    )
    assert layout.known == {"C": "ok"}


def test_a_value_that_keeps_changing_is_no_longer_expected() -> None:
    layout = Layout(["A", "B"], known={"A": "same", "B": "old"}, looped=True)
    runner = layout.runner
    assert runner is not None
    for i in range(KNOWN_MISSES + 3):
        block = hand_block([("A", "same"), ("B", f"new{i}")])
        assert layout.run(block, block.decode("latin-1")) == {"A": "same", "B": f"new{i}"}
    wholes = {name: whole for _, name, whole in runner.vars}
    assert wholes["B"] == b"" and wholes["A"] == hand_block([("A", "same")])
    assert runner.misses == {"B": KNOWN_MISSES}  # counted until dropped, then never compared


def test_consecutive_known_vars_are_compared_as_one_run() -> None:
    layout = Layout(["A", "B", "C", "D"], known={"A": "1", "B": "2", "D": "4"}, looped=True)
    runner = layout.runner
    assert runner is not None
    a, b, c, d = runner.vars
    assert runner.steps == (
        (hand_block([("A", "1"), ("B", "2")]), (a, b)),
        (b"", (c,)),
        (hand_block([("D", "4")]), (d,)),
    )
    # B differs inside the run: the run's vars are then looked at one by one.
    block = hand_block([("A", "1"), ("B", "x"), ("C", "3"), ("D", "4")])
    assert layout.run(block, block.decode("latin-1")) == {"A": "1", "B": "x", "C": "3", "D": "4"}
    assert runner.misses == {"B": 1}
    for i in range(KNOWN_MISSES):
        block = hand_block([("A", "1"), ("B", f"x{i}"), ("C", "3"), ("D", "4")])
        assert layout.run(block, block.decode("latin-1"))["B"] == f"x{i}"  # type: ignore[index]
    # B no longer expected: the run is cut where it was, and the others stay known.
    b_unknown = (b[0], "B", b"")
    assert runner.steps == (
        (hand_block([("A", "1")]), (a,)),
        (b"", (b_unknown, c)),
        (hand_block([("D", "4")]), (d,)),
    )
    block = hand_block([("A", "1"), ("B", "y"), ("C", "z"), ("D", "4")])
    assert layout.run(block, block.decode("latin-1")) == {"A": "1", "B": "y", "C": "z", "D": "4"}


def test_a_block_of_another_key_sequence_is_no_miss() -> None:
    # Clients with other headers take turns with this layout's: their blocks leave it where
    # their keys differ, which says nothing about the values it expects.
    layout = Layout(["A", "B"], known={"A": "same", "B": "old"}, looped=True)
    runner = layout.runner
    assert runner is not None
    other = hand_block([("A", "same"), ("C", "old")])
    for _ in range(KNOWN_MISSES + 1):
        assert layout.run(other, other.decode("latin-1")) == (0, 0, ())
    assert runner.misses == {}
    assert all(whole for _, _, whole in runner.vars)


@pytest.mark.parametrize(
    ("keys", "kwargs", "message"),
    [
        ([], {}, "1 to 64 keys"),
        ([f"K{i}" for i in range(MAX_LAYOUT_VARS + 1)], {}, "1 to 64 keys"),
        (["A", "A"], {}, "distinct"),
        (["A", ""], {}, "non-empty"),
        (["A" * 9000], {}, "8192 bytes"),
        (["A", "B"], {"base": {"B": 1}}, "base entries"),
    ],
)
def test_impossible_layouts_are_refused(keys: list[str], kwargs: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Layout(keys, **kwargs)


def test_non_latin1_key_is_refused() -> None:
    with pytest.raises(UnicodeEncodeError):
        Layout(["\u20ac"])


@RUNS
def test_lengths_read_little_endian(looped: bool) -> None:
    value = "v" * 300  # a length over 255 uses the high byte
    block = hand_block([("K", value), ("L", "")])
    assert struct.unpack_from("<H", block, 3)[0] == 300
    layout = Layout(["K", "L"], looped=looped)
    assert layout.run(block, block.decode("latin-1")) == {"K": value, "L": ""}


# --- generated source, visible to tracebacks and debuggers ---------------------------------------


def test_a_traceback_through_a_layout_shows_its_source_line() -> None:
    layout = Layout(["QUERY_STRING", "REQUEST_METHOD"], looped=False)
    try:
        layout.run(None, "")  # type: ignore[arg-type]  # fails on the layout's first line
    except TypeError as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
    else:
        pytest.fail("a layout ran on None")
    assert frame.filename.startswith("<uwsgi var layout ")
    assert frame.line == r"if b[0:14] != b'\x0c\x00QUERY_STRING': return 0, 0, ()"
    assert "return d" in inspect.getsource(layout.run)


def test_each_layout_has_its_own_source_and_drops_it_when_collected() -> None:
    first, second = Layout(["A"], looped=False), Layout(["B"], looped=False)
    assert first.run.__code__.co_filename != second.run.__code__.co_filename
    assert "b'\\x01\\x00A'" in "".join(linecache.getlines(first.run.__code__.co_filename))
    name = second.run.__code__.co_filename
    assert "b'\\x01\\x00B'" in "".join(linecache.getlines(name))
    del second
    gc.collect()
    assert name not in linecache.cache


@given(st.lists(st.tuples(KEYS, VALUES), max_size=12), st.lists(VALUES, min_size=12, max_size=12))
def test_a_key_signature_depends_on_the_keys_only(
    pairs: list[tuple[str, str]], other_values: list[str]
) -> None:
    block = hand_block(pairs)
    same_keys = hand_block([(k, v) for (k, _), v in zip(pairs, other_values, strict=False)])
    assert key_signature(block) == key_signature(same_keys) == key_signature(bytearray(block))
    assert key_signature(block) >= 0
    if block:
        # A block cut short is no sequence of whole vars.
        assert key_signature(block[:-1]) == -1


@given(st.lists(st.tuples(KEYS, VALUES), max_size=40))
def test_count_vars_counts_each_key_and_value_pair(pairs: list[tuple[str, str]]) -> None:
    # Repeated keys and empty values included: the packet's count, not the environ's.
    block = hand_block(pairs + pairs[:2] + [("EMPTY", "")])
    assert count_vars(block) == count_vars(bytearray(block)) == len(pairs) + min(len(pairs), 2) + 1


def test_a_key_signature_tells_the_usual_sequences_apart() -> None:
    base = [("REQUEST_METHOD", "GET"), ("PATH_INFO", "/"), ("HTTP_HOST", "h")]
    blocks = [
        hand_block(base),
        hand_block([*base, ("HTTP_COOKIE", "c")]),
        hand_block([*base, ("HTTP_ACCEPT", "*/*")]),
        hand_block(list(reversed(base))),
        hand_block(base[:2]),
    ]
    assert len({key_signature(b) for b in blocks}) == len(blocks)
    assert key_signature(b"\x05\x00ab") == -1  # a key running past the end
