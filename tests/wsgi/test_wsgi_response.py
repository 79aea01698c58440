"""render_head and FileWrapper: pure tests."""

from __future__ import annotations

import enum
import io
import sys
import threading
from typing import Any

import pytest

from uwsgiapp.wsgi.response import _HEADS, FileWrapper, HeaderError, render, render_head


def test_head_layout() -> None:
    head = render_head("HTTP/1.1", "200 OK", [("Content-Type", "text/plain"), ("X-A", "b")])
    assert head == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: b\r\n\r\n"


def test_no_headers() -> None:
    assert render_head("HTTP/1.0", "204 No Content", []) == b"HTTP/1.0 204 No Content\r\n\r\n"


def test_an_empty_protocol_is_answered_as_http_1_0() -> None:
    # nginx sends SERVER_PROTOCOL "" for an HTTP/0.9 request ("GET /x" alone): " 200 OK" was
    # no head to nginx, which answered 502 after the app had run.
    assert render_head("", "200 OK", []) == b"HTTP/1.0 200 OK\r\n\r\n"
    assert render_head("", "404", [("X-A", "b")]) == b"HTTP/1.0 404 Not Found\r\nX-A: b\r\n\r\n"


def test_headers_kept_in_order_and_repeated() -> None:
    headers = [("Set-Cookie", "a=1"), ("X", "1"), ("Set-Cookie", "b=2")]
    head = render_head("HTTP/1.1", "200 OK", headers)
    assert head.split(b"\r\n")[1:4] == [b"Set-Cookie: a=1", b"X: 1", b"Set-Cookie: b=2"]


def test_never_adds_headers() -> None:
    head = render_head("HTTP/1.1", "200 OK", [])
    assert b"chunked" not in head.lower()
    assert b"content-length" not in head.lower()


def test_latin1_values_are_sent_as_latin1() -> None:
    head = render_head("HTTP/1.1", "200 Ça va", [("X-Name", "café ÿ")])
    assert "Ça va".encode("latin-1") in head
    assert "café ÿ".encode("latin-1") in head


def test_empty_value_is_fine() -> None:
    assert b"X-Empty: \r\n" in render_head("HTTP/1.1", "200 OK", [("X-Empty", "")])


@pytest.mark.parametrize(
    "status",
    [
        "200 OK",
        "404 Not Found",
        "500 Internal Server Error",
        "299 Custom reason with spaces",
        "200 ",
        "599 x",
    ],
)
def test_good_status(status: str) -> None:
    assert render_head("HTTP/1.1", status, []).startswith(f"HTTP/1.1 {status}\r\n".encode())


@pytest.mark.parametrize(
    ("status", "sent"),
    [
        ("200", "200 OK"),
        ("404", "404 Not Found"),
        ("299", "299 "),
        ("500", "500 Internal Server Error"),
    ],
)
def test_a_bare_code_gets_its_reason(status: str, sent: str) -> None:
    # PEP 3333 asks for a reason; uWSGI and gunicorn accept the bare code, and apps send it.
    assert render_head("HTTP/1.1", status, []) == f"HTTP/1.1 {sent}\r\n\r\n".encode()


@pytest.mark.parametrize("name", ["X Bad", "X-Bad:", "", "X-B\u00e9", "(x)", "X\tBad", "a/b"])
def test_a_header_name_must_be_a_token(name: str) -> None:
    # nginx answers 502 for a space in a name, and sends "X-Bad: : v" for a colon.
    with pytest.raises(HeaderError, match="is not an HTTP token"):
        render_head("HTTP/1.1", "200 OK", [(name, "v")])


def test_token_names_pass() -> None:
    name = "X-Custom_Header.1!#$%&'*+^`|~"
    assert render_head("HTTP/1.1", "200 OK", [(name, "v")]).endswith(f"{name}: v\r\n\r\n".encode())


@pytest.mark.parametrize(
    "status",
    [
        "2000",
        "20",
        "OK",
        "",
        "20 OK",
        "2000 OK",
        "200OK",
        " 200 OK",
        "abc OK",
        "\uff12\uff10\uff10 OK",
        "²³¹ OK",
        "200\tOK",
        "-20 OK",
    ],
)
def test_bad_status_format(status: str) -> None:
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", status, [])


@pytest.mark.parametrize("status", [200, b"200 OK", None, ("200", "OK")])
def test_non_str_status(status: Any) -> None:
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", status, [])


@pytest.mark.parametrize(
    "header",
    [
        ("X-A\r\nInjected", "v"),
        ("X-A", "v\r\nSet-Cookie: evil=1"),
        ("X-A", "v\nInjected: 1"),
        ("X-A", "v\rInjected: 1"),
        ("X-A\n", "v"),
        ("X-A", "\r\n"),
        ("X-A", "v\r"),
    ],
)
def test_cr_lf_in_headers_refused(header: tuple[str, str]) -> None:
    with pytest.raises(HeaderError) as info:
        render_head("HTTP/1.1", "200 OK", [("Content-Type", "text/plain"), header])
    assert "CR or LF" in str(info.value)


@pytest.mark.parametrize(
    "status", ["200 OK\r\nX-Evil: 1", "200 OK\n", "200 OK\r", "200 \r\n\r\nbody"]
)
def test_cr_lf_in_status_refused(status: str) -> None:
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", status, [("A", "b")])


def test_cr_lf_balanced_across_headers_still_refused() -> None:
    # One header with a lone CR and another with a lone LF: counting both characters is not
    # enough if only totals were compared.
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", "200 OK", [("A", "x\r"), ("B", "\ny")])


@pytest.mark.parametrize(
    ("status", "header", "named"),
    [
        (
            "200 OK",
            ("X-A", "a\x00b"),
            "header ('X-A', 'a\\x00b') contains the control character '\\x00'",
        ),
        ("200 OK", ("X-A", "a\x0bb"), "'\\x0b'"),
        ("200 OK", ("X-A", "a\x7f"), "'\\x7f'"),
        ("200 OK", ("X-A", "\x1b[31m"), "'\\x1b'"),
        ("200 O\x00K", ("X-A", "v"), "status '200 O\\x00K' contains the control character"),
    ],
)
def test_control_characters_in_status_and_values_refused(
    status: str, header: tuple[str, str], named: str
) -> None:
    # nginx passes a NUL in the status line on to the browser (curl: "Nul byte in header") and
    # answers 502 for one in a value while our access log said 200; gunicorn refuses both.
    with pytest.raises(HeaderError) as info:
        render_head("HTTP/1.1", status, [("Content-Type", "text/plain"), header])
    assert named in str(info.value)


def test_a_tab_in_a_value_or_the_reason_is_sent() -> None:
    head = render_head("HTTP/1.1", "200 O\tK", [("X-A", "a\tb")])
    assert head == b"HTTP/1.1 200 O\tK\r\nX-A: a\tb\r\n\r\n"


@pytest.mark.parametrize(
    "header",
    [("X-A", "snow ☃"), ("X-☃", "v"), ("X-A", "\u0100"), ("X-A", "\udcff")],
)
def test_non_latin1_refused(header: tuple[str, str]) -> None:
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", "200 OK", [header])


def test_non_latin1_status_refused() -> None:
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", "200 ☃", [])


@pytest.mark.parametrize(
    "header",
    [(b"X-A", "v"), ("X-A", b"v"), ("X-A", 1), (None, "v"), ("X-A", None)],
)
def test_non_str_header_refused(header: Any) -> None:
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", "200 OK", [header])


class StrSub(str):
    """A str subclass whose own __str__, __hash__ and __eq__ say something else."""

    def __str__(self) -> str:
        return "lie"

    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)


class ContentType(str, enum.Enum):
    JSON = "application/json"


@pytest.mark.parametrize("order", ["subclass first", "plain first"])
def test_a_str_subclass_is_written_as_the_text_it_holds_whatever_came_before(
    order: str,
) -> None:
    # As uWSGI and gunicorn take them (a StrEnum's Content-Type is common). It was refused
    # unless an equal plain head was cached: a 500 or a 200 by what the worker served before.
    plain = ("200 OK", [("Content-Type", "application/json"), ("X-A", "v")])
    subclass = (StrSub("200 OK"), [("Content-Type", ContentType.JSON), (StrSub("X-A"), "v")])
    expected = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-A: v\r\n\r\n"
    heads = [plain, subclass, subclass, plain] if order == "plain first" else [subclass, plain]
    _HEADS.clear()
    for status, headers in heads:
        assert render_head("HTTP/1.1", status, headers) == expected
    for key in _HEADS:  # only heads of exact str are kept
        assert all(type(text) is str for text in (key[1], *(t for h in key[2:] for t in h)))


def test_a_str_subclass_content_length_bounds_the_body_by_the_text_it_holds() -> None:
    # Read through its own methods, a lying one gave another bound than the head it wrote
    # (and the pure build another than the compiled one).
    class Lying(str):
        def strip(self, chars: str | None = None) -> str:
            return "999"

        def lower(self) -> str:
            return "x"

    rendered = render("HTTP/1.1", "200 OK", [(Lying("Content-Length"), Lying("5"))])
    assert rendered.length == 5 and rendered.head.endswith(b"Content-Length: 5\r\n\r\n")


@pytest.mark.parametrize("item", [("X-A",), ("X-A", "v", "w"), "ab", "abc", None, 5])
def test_malformed_header_items_refused(item: Any) -> None:
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", "200 OK", [item])


@pytest.mark.parametrize("headers", [None, "X-A: v", 5])
def test_headers_not_a_list_refused(headers: Any) -> None:
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", "200 OK", headers)


# -- FileWrapper -------------------------------------------------------------------------------


class Tracked(io.BytesIO):
    closed_calls = 0

    def close(self) -> None:
        self.closed_calls += 1
        super().close()


def test_file_wrapper_iterates_in_blocks() -> None:
    f = Tracked(b"a" * 10)
    w = FileWrapper(f, 4)
    assert list(w) == [b"aaaa", b"aaaa", b"aa"]
    assert w.filelike is f
    assert w.blksize == 4


def test_file_wrapper_default_block_size() -> None:
    data = bytes(200000)
    assert [len(b) for b in FileWrapper(io.BytesIO(data))] == [65536, 65536, 65536, 3392]


def test_file_wrapper_starts_at_the_current_position() -> None:
    f = io.BytesIO(b"0123456789")
    f.seek(6)
    assert b"".join(FileWrapper(f)) == b"6789"


def test_file_wrapper_empty_file() -> None:
    assert list(FileWrapper(io.BytesIO(b""))) == []


def test_file_wrapper_close_closes_the_file() -> None:
    f = Tracked(b"x")
    w = FileWrapper(f)
    w.close()
    assert f.closed_calls == 1


def test_file_wrapper_close_without_a_close_method() -> None:
    class Reader:
        def __init__(self) -> None:
            self.data = [b"ab", b""]

        def read(self, n: int) -> bytes:
            return self.data.pop(0)

    w = FileWrapper(Reader())
    assert list(w) == [b"ab"]
    w.close()


def test_file_wrapper_real_file(tmp_path: Any) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"hello" * 1000)
    with open(path, "rb") as f:
        w = FileWrapper(f, 1000)
        assert b"".join(w) == b"hello" * 1000
        w.close()
        assert f.closed


def test_head_cache_returns_the_same_bytes_and_still_refuses_bad_heads() -> None:
    from uwsgiapp.wsgi import response

    headers = [("Content-Type", "text/plain"), ("X-A", "1")]
    first = render_head("HTTP/1.1", "200 OK", headers)
    assert render_head("HTTP/1.1", "200 OK", list(headers)) is first
    assert render_head("HTTP/1.0", "200 OK", headers) == first.replace(b"1.1", b"1.0", 1)
    # Close to a cached head, but bad: never served from the cache.
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", "200 OK", [("Content-Type", "text/plain"), ("X-A", "1\r\nX: y")])
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", "200 OK", [("Content-Type", "text/plain"), ["X-A", "1"]])  # type: ignore[list-item]

    class Sneaky(str):
        pass

    # A str subclass is served as its text, but its head is not kept (its own == decides).
    assert render_head("HTTP/1.1", "200 OK", [("X-B", Sneaky("v"))]).endswith(b"X-B: v\r\n\r\n")
    assert ("HTTP/1.1", "200 OK", ("X-B", "v")) not in response._HEADS
    for i in range(response.HEAD_CACHE_SIZE + 10):
        render_head("HTTP/1.1", "200 OK", [("Content-Length", str(i))])
    assert len(response._HEADS) <= response.HEAD_CACHE_SIZE


def test_the_last_head_is_compared_with_a_copy_of_its_headers() -> None:
    # An app may hand over its own list, then change it for the next response.
    headers = [("Content-Type", "text/plain")]
    assert render_head("HTTP/1.1", "200 OK", headers).endswith(b"text/plain\r\n\r\n")
    headers.append(("X-A", "1"))
    assert render_head("HTTP/1.1", "200 OK", headers).endswith(b"X-A: 1\r\n\r\n")
    headers[1] = ("X-A", "2")
    assert render_head("HTTP/1.1", "200 OK", headers).endswith(b"X-A: 2\r\n\r\n")
    assert render_head("HTTP/1.1", "404 Not Found", headers).startswith(b"HTTP/1.1 404 ")
    assert render_head("HTTP/1.0", "404 Not Found", headers).startswith(b"HTTP/1.0 404 ")


def test_a_bad_head_right_after_the_same_good_one_is_still_refused() -> None:
    good = [("Content-Type", "text/plain"), ("X-A", "1")]
    render_head("HTTP/1.1", "200 OK", good)
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", "200 OK", [("Content-Type", "text/plain"), ["X-A", "1"]])  # type: ignore[list-item]
    render_head("HTTP/1.1", "200 OK", good)
    with pytest.raises(HeaderError):
        render_head("HTTP/1.1", b"200 OK", good)


def test_threads_rendering_other_heads_each_get_their_own() -> None:
    # Two heads that differ in the status alone, in turns: a thread that saw one head's status
    # beside the other's bytes would send the wrong one.
    headers = [("Content-Type", "text/plain")]
    expected = {
        status: f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n\r\n".encode()
        for status in ("200 OK", "404 Not Found")
    }
    wrong: list[tuple[str, bytes]] = []

    def render(n: int) -> None:
        for i in range(3000):
            status = "200 OK" if (i + n) % 2 else "404 Not Found"
            head = render_head("HTTP/1.1", status, list(headers))
            if head != expected[status]:
                wrong.append((status, head))

    threads = [threading.Thread(target=render, args=(n,)) for n in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []
