"""EnvironBuilder: the same environ as build_environ(parse_vars(...)), whatever it has learnt.

One builder is fed a stream of blocks drawn from a few key sequences (so it learns layouts and
switches between them) with the vars that build_environ treats specially: HTTP_CONTENT_*, UWSGI_*,
missing required keys, HTTPS, SCRIPT_NAME and wsgi.* keys, repeated keys, broken blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.procs import UWSGI_PARAMS

from uwsgiapp.wsgi.environ import (
    LEARN_AFTER,
    MAX_LAYOUTS,
    EnvironBuilder,
    EnvironSettings,
    build_environ,
)
from uwsgiproto import Limits, ProtocolError, key_signature, parse_vars
from uwsgiproto.layout import MAX_LAYOUT_VARS
from uwsgiproto.schema import build_var_block

GET_HELLO = Path(__file__).resolve().parents[1] / "corpus" / "valid" / "nginx_get_hello.bin"

#: The keys nginx sends in these tests, in its order (the uwsgi_params of support.procs).
NGINX_KEYS = [line.split()[1] for line in UWSGI_PARAMS.splitlines() if line]
SPECIAL_KEYS = [
    "HTTP_CONTENT_TYPE",
    "HTTP_CONTENT_LENGTH",
    "UWSGI_SCRIPT",
    "UWSGI_SCHEME",
    "SCRIPT_NAME",
    "wsgi.url_scheme",
    "werkzeug.debug.preserve_context",
    "HTTP_COOKIE",
    "HTTP_HOST",
    "HTTP_X_A",
]
VALUES = st.one_of(
    st.sampled_from(["", "on", "ON", "1", "off", "https", "http", "/app", "/app/x", "/apple"]),
    st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=12),
)


def reference(block: bytes, template: dict[str, Any], mount: str, limits: Limits) -> Any:
    try:
        return build_environ(parse_vars(block, limits), template, mount, True)
    except ProtocolError as exc:
        return type(exc)


def built(builder: EnvironBuilder, block: bytes) -> Any:
    try:
        return builder.build(block)
    except ProtocolError as exc:
        return type(exc)


@st.composite
def sequences(draw: st.DrawFn) -> list[str]:
    """A key sequence: some of nginx's params, then some special or repeated keys."""
    keys = [k for k in NGINX_KEYS if draw(st.integers(0, 5))]  # most of them, some missing
    keys += draw(st.lists(st.sampled_from(SPECIAL_KEYS), max_size=4))
    return keys


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shapes=st.lists(sequences(), min_size=1, max_size=3),
    picks=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 9)), min_size=1, max_size=40),
    mount=st.sampled_from(["", "/app"]),
    data=st.data(),
)
def test_builder_equals_build_environ_on_any_stream(
    shapes: list[list[str]],
    picks: list[tuple[int, int]],
    mount: str,
    data: st.DataObject,
) -> None:
    template = EnvironSettings().template()
    limits = Limits(max_vars=data.draw(st.sampled_from([8, 100])))
    builder = EnvironBuilder(template, limits, mount)
    for shape_index, how in picks:
        keys = shapes[shape_index % len(shapes)]
        block = build_var_block((k, data.draw(VALUES)) for k in keys)
        # Each shape is sent many times so that layouts get learnt; some blocks are then broken.
        for _ in range(LEARN_AFTER + 1 if how < 3 else 1):
            if how == 9 and block:
                block = block[: data.draw(st.integers(0, len(block) - 1))]
            expected = reference(block, template, mount, limits)
            assert built(builder, block) == expected


def test_a_real_nginx_packet_is_learnt_and_then_parsed_by_its_layout() -> None:
    block = GET_HELLO.read_bytes()[4:]
    template = EnvironSettings().template()
    builder = EnvironBuilder(template, Limits())
    expected = build_environ(parse_vars(block), template, "", True)
    for _ in range(LEARN_AFTER):
        assert builder._active is None
        assert builder.build(block) == expected
    assert builder._active is not None
    first = builder.build(block)
    assert first == expected
    first["PATH_INFO"] = "changed"
    assert builder.build(block) == expected, "every environ is a fresh dict"


def test_a_clients_dotted_key_never_reaches_the_environ() -> None:
    # werkzeug.debug.preserve_context from a raw uwsgi client made every Flask request a 500;
    # nginx sends no dotted key: the server's and the app's namespace (gunicorn drops them too).
    template = EnvironSettings().template()
    builder = EnvironBuilder(template, Limits())
    variables = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "werkzeug.debug.preserve_context": "x"}
    block = build_var_block({**variables, "uwsgi.node": "y"}.items())
    for _ in range(LEARN_AFTER + 2):  # the generic parser, then the learnt layout
        environ = builder.build(block)
        assert not {k for k in environ if "." in k} - template.keys(), environ
    assert builder._active is not None


def test_two_shapes_taking_turns_each_get_their_own_layout() -> None:
    # Browsers and API clients send other headers: a worker sees key sequences take turns.
    a = GET_HELLO.read_bytes()[4:]
    b = build_var_block([*parse_vars(a).items(), ("HTTP_COOKIE", "s=1")])
    template = EnvironSettings().template()
    builder = EnvironBuilder(template, Limits())
    for _ in range(LEARN_AFTER):
        builder.build(a)
        builder.build(b)
    assert len(builder._layouts) == 2
    for block in (a, b, a, a, b, b, a):
        assert builder.build(block) == reference(block, template, "", Limits())
        active = builder._active
        assert active is not None and active.keys == tuple(parse_vars(block))
        assert builder._by_signature[key_signature(block)] is active


def test_a_layout_expects_the_values_every_learning_block_carried() -> None:
    # REMOTE_PORT differs per connection; the rest of this nginx capture is the same each time.
    pairs = list(parse_vars(GET_HELLO.read_bytes()[4:]).items())
    template = EnvironSettings().template()
    builder = EnvironBuilder(template, Limits())

    def block(port: int, method: str = "GET") -> bytes:
        return build_var_block(
            (k, str(port) if k == "REMOTE_PORT" else method if k == "REQUEST_METHOD" else v)
            for k, v in pairs
        )

    for port in range(LEARN_AFTER):
        builder.build(block(40000 + port))
    layout = builder._active
    assert layout is not None
    constant = {k: v for k, v in pairs if k in layout.store and k != "REMOTE_PORT"}
    assert layout.known == constant
    # Known or not, each value is the block's own.
    for other in (block(50000), block(50001, "POST"), block(50002)):
        assert builder.build(other) == reference(other, template, "", Limits())


def test_repeated_keys_are_never_learnt() -> None:
    block = build_var_block([("PATH_INFO", "/"), ("HTTP_X", "a"), ("HTTP_X", "b")])
    builder = EnvironBuilder(EnvironSettings().template(), Limits())
    for _ in range(3 * LEARN_AFTER):
        assert builder.build(block)["HTTP_X"] == "a, b"
    assert builder._active is None
    assert not builder._layouts


def test_a_param_sent_again_by_the_config_is_replaced_a_header_sent_twice_is_joined() -> None:
    # `include uwsgi_params;` then `uwsgi_param REMOTE_ADDR $http_x_real_ip;` (and HTTP_HOST,
    # REQUEST_SCHEME): nginx sends both; the app must see the second, as under uWSGI. A header
    # the client sent twice (nginx < 1.23 sends each) is one list.
    block = build_var_block(
        [
            ("PATH_INFO", "/"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_HOST", "shop.example.com"),
            ("REQUEST_SCHEME", "http"),
            ("HTTP_X_FORWARDED_PROTO", "http"),
            ("HTTP_X_FORWARDED_FOR", "10.0.0.1"),
            ("HTTP_COOKIE", "a=1"),
            ("REMOTE_ADDR", "203.0.113.7"),
            ("HTTP_HOST", "shop.example.com:8443"),
            ("REQUEST_SCHEME", "https"),
            ("HTTP_X_FORWARDED_PROTO", "https"),  # a site's override of a shared snippet's
            ("HTTP_X_FORWARDED_FOR", "10.0.0.2"),
            ("HTTP_COOKIE", "b=2"),
        ]
    )
    environ = EnvironBuilder(EnvironSettings().template(), Limits()).build(block)
    assert environ["REMOTE_ADDR"] == "203.0.113.7"
    assert environ["HTTP_HOST"] == "shop.example.com:8443"
    assert (environ["REQUEST_SCHEME"], environ["wsgi.url_scheme"]) == ("https", "https")
    assert environ["HTTP_X_FORWARDED_PROTO"] == "https"
    assert environ["HTTP_X_FORWARDED_FOR"] == "10.0.0.1, 10.0.0.2"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"


def test_keys_of_the_template_are_never_learnt() -> None:
    block = build_var_block([("PATH_INFO", "/app/x"), ("SCRIPT_NAME", "/app")])
    builder = EnvironBuilder(EnvironSettings().template(), Limits())
    for _ in range(3 * LEARN_AFTER):
        environ = builder.build(block)
        assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "/x")
    assert not builder._layouts


def test_the_number_of_layouts_is_bounded() -> None:
    builder = EnvironBuilder(EnvironSettings().template(), Limits())
    for n in range(MAX_LAYOUTS + 5):
        block = build_var_block([("PATH_INFO", "/"), (f"HTTP_X_{n}", "v")])
        for _ in range(LEARN_AFTER):
            assert builder.build(block)[f"HTTP_X_{n}"] == "v"
    assert len(builder._layouts) == MAX_LAYOUTS


@pytest.mark.parametrize("max_vars", [1, 2])
def test_a_layout_is_never_wider_than_max_vars(max_vars: int) -> None:
    block = build_var_block([("PATH_INFO", "/"), ("HTTP_X", "v")])
    builder = EnvironBuilder(EnvironSettings().template(), Limits(max_vars=max_vars))
    for _ in range(2 * LEARN_AFTER):
        result = built(builder, block)
        if max_vars == 1:
            assert result is not dict and issubclass(result, ProtocolError)
        else:
            assert result["HTTP_X"] == "v"
    assert bool(builder._layouts) == (max_vars == 2)


def test_sequences_too_big_for_a_layout_are_not_even_counted() -> None:
    builder = EnvironBuilder(EnvironSettings().template(), Limits(max_vars=200))
    wide = build_var_block([(f"HTTP_X_{n}", "v") for n in range(MAX_LAYOUT_VARS + 1)])
    long_keys = build_var_block([("K" * 5000, "v"), ("L" * 5000, "v")])
    for _ in range(2 * LEARN_AFTER):
        assert builder.build(wide)["HTTP_X_0"] == "v"
        assert builder.build(long_keys)["K" * 5000] == "v"
    assert not builder._counts
    assert not builder._layouts
