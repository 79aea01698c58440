"""InputStream / EMPTY_INPUT: bounded by CONTENT_LENGTH, fed by a scripted reader."""

from __future__ import annotations

import random
import time
import tracemalloc

import pytest

from uwsgiapp.wsgi.input import CHUNK, EMPTY_INPUT, MAX_PULL, ClientDisconnected, InputStream


class Script:
    """A reader serving ``data`` in pieces of at most ``piece`` bytes; EOF → ClientDisconnected."""

    def __init__(self, data: bytes, piece: int = 1 << 30) -> None:
        self.data = data
        self.piece = piece
        self.pos = 0
        self.calls: list[int] = []

    def __call__(self, n: int) -> bytes:
        assert n >= 1
        self.calls.append(n)
        if self.pos >= len(self.data):
            raise ClientDisconnected("client closed the connection before sending all it promised")
        chunk = self.data[self.pos : self.pos + min(n, self.piece)]
        self.pos += len(chunk)
        return chunk


def stream(
    body: bytes, split: int = 0, piece: int = 1 << 30, length: int | None = None
) -> tuple[InputStream, Script]:
    """``body[:split]`` arrived with the head, the rest comes from the reader."""
    reader = Script(body[split:], piece)
    return InputStream(reader, body[:split], len(body) if length is None else length), reader


BODY = b"line one\nline two\n\nlast line without newline"
SPLITS = [0, 1, 9, 10, len(BODY) - 1, len(BODY)]
PIECES = [1, 3, 7, 1 << 30]


SHAPES = [(s, p) for s in SPLITS for p in PIECES]


@pytest.fixture(params=SHAPES, ids=[f"split{s}-piece{p}" for s, p in SHAPES])
def shape(request: pytest.FixtureRequest) -> tuple[int, int]:
    return request.param  # type: ignore[no-any-return]


# -- read ----------------------------------------------------------------------------------------


def test_read_all(shape: tuple[int, int]) -> None:
    s, _ = stream(BODY, *shape)
    assert s.read() == BODY
    assert s.read() == b""
    assert s.read(10) == b""
    assert s.remaining == 0


@pytest.mark.parametrize("arg", [None, -1, -5])
def test_read_none_and_negative_read_all(arg: int | None) -> None:
    s, _ = stream(BODY, 5, 3)
    assert s.read(arg) == BODY


def test_read_n(shape: tuple[int, int]) -> None:
    for n in (1, 2, 5, 13, 100):
        s, _ = stream(BODY, *shape)
        parts = []
        while True:
            part = s.read(n)
            assert len(part) <= n
            if not part:
                break
            parts.append(part)
        assert b"".join(parts) == BODY
        # read(n) returns exactly n until the end: short reads only at EOF.
        assert all(len(p) == n for p in parts[:-1])


def test_read_zero() -> None:
    s, reader = stream(BODY, 0)
    assert s.read(0) == b""
    assert reader.calls == []
    assert s.read() == BODY


def test_read_does_not_pull_more_than_the_body() -> None:
    body = b"x" * 10
    reader = Script(body + b"NEXT REQUEST BYTES")
    s = InputStream(reader, b"", 10)
    assert s.read() == body
    assert all(n <= 10 for n in reader.calls)
    assert s.read() == b""


def test_prefix_longer_than_length_is_cut() -> None:
    s = InputStream(Script(b""), b"hello world", 5)
    assert s.remaining == 0
    assert s.read() == b"hello"
    assert s.read() == b""
    s = InputStream(Script(b""), b"ab\ncd\nef", 4)
    assert list(s) == [b"ab\n", b"c"]


def test_zero_length_never_reads() -> None:
    s = InputStream(Script(b"junk"), b"junk", 0)
    assert s.read() == b""
    assert s.readline() == b""
    assert s.readlines() == []
    assert list(s) == []


def test_big_body_read_in_one_call() -> None:
    body = random.Random(1).randbytes(3 * CHUNK + 17)
    s, _ = stream(body, 100, 5000)
    assert s.read() == body
    assert s.remaining == 0


class Generated:
    """A reader making ``length`` bytes on demand (fresh objects, as os.read gives them)."""

    def __init__(self, length: int) -> None:
        self.left = length

    def __call__(self, n: int) -> bytes:
        n = min(n, self.left)
        if n <= 0:
            raise ClientDisconnected("client closed the connection before sending all it promised")
        self.left -= n
        return b"x" * n


@pytest.mark.parametrize("how", ["read()", "read(n)", "prefix", "readline()", "readline(n)"])
def test_a_big_read_holds_about_the_body_once(how: str) -> None:
    # A 100 MB upload read() took a 227 MB peak in the worker (uWSGI 219, gunicorn 129): the
    # pulled pieces and their join were alive together, so a 1 GB body needed 2 GB (and a
    # line as long, read by readline()).
    length = 32 * 1024 * 1024
    prefix = b"p" * 1000 if how == "prefix" else b""
    s = InputStream(Generated(length - len(prefix)), prefix, length)
    tracemalloc.start()
    try:
        if how.startswith("readline"):
            data = s.readline(length if how == "readline(n)" else -1)  # no newline: all of it
        else:
            data = s.read(length if how == "read(n)" else -1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data) == length
    assert data[:1000] == (prefix or b"x" * 1000) and data[-1] == ord("x")
    assert peak < 1.3 * length, peak / length


def test_reads_that_a_pull_fills_or_overfills_keep_the_rest() -> None:
    s, reader = stream(b"a" * 3 * CHUNK)
    first = s.read(CHUNK)
    assert first == b"a" * CHUNK
    assert len(reader.calls) == 1
    s, reader = stream(b"b" * 3 * CHUNK, piece=CHUNK)
    assert s.read(CHUNK) == b"b" * CHUNK
    assert s.read(CHUNK + 7) == b"b" * (CHUNK + 7)
    assert s.read() == b"b" * (CHUNK - 7)


def test_remaining_counts_what_is_still_on_the_socket() -> None:
    s, _ = stream(b"0123456789", 4, 2)
    assert s.remaining == 6
    assert s.read(4) == b"0123"
    assert s.remaining == 6
    s.read(5)
    assert s.remaining <= 5


# -- readline / readlines / iteration ------------------------------------------------------------


def test_readline(shape: tuple[int, int]) -> None:
    s, _ = stream(BODY, *shape)
    assert s.readline() == b"line one\n"
    assert s.readline() == b"line two\n"
    assert s.readline() == b"\n"
    assert s.readline() == b"last line without newline"
    assert s.readline() == b""


@pytest.mark.parametrize("limit", [1, 2, 4, 8, 9, 10, 100])
def test_readline_with_limit(shape: tuple[int, int], limit: int) -> None:
    s, _ = stream(BODY, *shape)
    lines = []
    while True:
        line = s.readline(limit)
        assert len(line) <= limit
        if not line:
            break
        lines.append(line)
    assert b"".join(lines) == BODY
    # every piece ends at a newline or is exactly `limit` long (or is the last one)
    for line in lines[:-1]:
        assert line.endswith(b"\n") or len(line) == limit


@pytest.mark.parametrize("arg", [None, -1])
def test_readline_none_or_negative_is_unlimited(arg: int | None) -> None:
    s, _ = stream(BODY, 3, 2)
    assert s.readline(arg) == b"line one\n"


def test_readline_zero() -> None:
    s, _ = stream(BODY, 0, 2)
    assert s.readline(0) == b""
    assert s.readline() == b"line one\n"


def test_readline_then_read_mix(shape: tuple[int, int]) -> None:
    s, _ = stream(BODY, *shape)
    assert s.readline(4) == b"line"
    assert s.read(3) == b" on"
    assert s.readline() == b"e\n"
    assert s.read(5) == b"line "
    assert s.readlines() == [b"two\n", b"\n", b"last line without newline"]


def test_readlines(shape: tuple[int, int]) -> None:
    s, _ = stream(BODY, *shape)
    assert s.readlines() == BODY.splitlines(keepends=True)


@pytest.mark.parametrize(
    ("hint", "count"),
    [(-1, 4), (0, 4), (None, 4), (1, 1), (9, 1), (10, 2), (18, 2), (19, 3), (1000, 4)],
)
def test_readlines_hint(hint: int | None, count: int) -> None:
    s, _ = stream(BODY, 0, 3)
    lines = s.readlines(hint)
    assert lines == BODY.splitlines(keepends=True)[:count]
    assert s.read() == b"".join(BODY.splitlines(keepends=True)[count:])


def test_iteration(shape: tuple[int, int]) -> None:
    s, _ = stream(BODY, *shape)
    assert iter(s) is s
    assert list(s) == BODY.splitlines(keepends=True)
    assert next(iter(s), None) is None


def test_long_line_spanning_many_chunks() -> None:
    body = b"a" * (3 * CHUNK + 5) + b"\nb\n"
    s, _ = stream(body, 10, 1000)
    assert s.readline() == body[: 3 * CHUNK + 6]
    assert s.readline() == b"b\n"
    assert s.readline() == b""


def test_many_short_lines_are_linear_time() -> None:
    # 4 MB of 8-byte lines, half with the head and half from the socket: the per-line cost
    # must not grow with the buffer (copying the rest of the buffer per line is quadratic:
    # about 10 s here, against well under 1 s).
    body = b"1234567\n" * 524288
    s, _ = stream(body, len(body) // 2, CHUNK)
    started = time.perf_counter()
    n = sum(1 for _ in s)
    assert n == 524288
    assert time.perf_counter() - started < 4.0


def test_small_reads_are_linear_time() -> None:
    body = b"x" * (4 << 20)  # quadratic: ~13 s; linear: well under 0.5 s
    s, _ = stream(body, len(body))
    started = time.perf_counter()
    got = 0
    while s.read(16):
        got += 16
    assert got == len(body)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("seed", range(20))
def test_random_operations_match_bytesio(seed: int) -> None:
    import io

    rnd = random.Random(seed)
    body = b"".join(
        rnd.choice([b"\n", b"ab", b"cdef\n", b"x" * rnd.randrange(50)]) for _ in range(200)
    )
    s, _ = stream(body, rnd.randrange(len(body) + 1), rnd.choice([1, 5, 64, 1 << 30]))
    ref = io.BytesIO(body)
    for _ in range(300):
        op = rnd.randrange(4)
        if op == 0:
            n = rnd.choice([-1, 0, 1, 3, 17, 100])
            assert s.read(n) == ref.read(n)
        elif op == 1:
            n = rnd.choice([-1, 0, 1, 3, 17, 100])
            assert s.readline(n) == ref.readline(n)
        elif op == 2:
            h = rnd.choice([0, 1, 30])
            assert s.readlines(h) == ref.readlines(h)
        else:
            assert next(s, b"") == next(ref, b"")


# -- short clients -------------------------------------------------------------------------------


def test_short_client_raises_not_hangs_or_returns_short() -> None:
    reader = Script(b"only half")
    s = InputStream(reader, b"", 100)
    with pytest.raises(ClientDisconnected):
        s.read()


@pytest.mark.parametrize("op", ["read", "read_n", "readline", "readlines", "iter"])
def test_short_client_raises_for_every_operation(op: str) -> None:
    s = InputStream(Script(b"abc"), b"pre", 100)
    with pytest.raises(ClientDisconnected) as info:
        if op == "read":
            s.read()
        elif op == "read_n":
            s.read(50)
        elif op == "readline":
            s.readline()
        elif op == "readlines":
            s.readlines()
        else:
            list(s)
    assert isinstance(info.value, OSError)


def test_after_a_failure_the_stream_stays_broken_without_reading_again() -> None:
    reader = Script(b"abc")
    s = InputStream(reader, b"", 100)
    with pytest.raises(ClientDisconnected) as first:
        s.read()
    calls = len(reader.calls)
    # kept, and marked as the body's (the server tells one the app caught from one let through)
    assert s.failure is first.value and first.value.from_body
    with pytest.raises(ClientDisconnected) as again:
        s.read()
    assert again.value.from_body
    with pytest.raises(ClientDisconnected):
        s.readline()
    assert len(reader.calls) == calls  # no second wait on a dead (or stalled) client


def test_bytes_before_the_failure_are_still_served_in_order() -> None:
    s = InputStream(Script(b"b\nc"), b"a\n", 100)
    assert s.readline() == b"a\n"
    assert s.readline() == b"b\n"
    with pytest.raises(ClientDisconnected):
        s.readline()


def test_client_disconnected_is_an_oserror() -> None:
    assert issubclass(ClientDisconnected, OSError)


def test_close_is_harmless() -> None:
    s, _ = stream(BODY, 5)
    s.close()


def test_huge_content_length_never_asks_for_it_at_once() -> None:
    # Found by live fuzzing: CONTENT_LENGTH 99999999999999999 without limit-post made read()
    # ask os.read for that many bytes: a MemoryError (an app traceback and a 500), not the
    # ClientDisconnected of a short body.
    s, reader = stream(b"x" * 100, length=10**17)
    with pytest.raises(ClientDisconnected):
        s.read(10**17)
    assert max(reader.calls) <= MAX_PULL
    s, reader = stream(b"x" * 100, length=10**17)
    with pytest.raises(ClientDisconnected):
        s.readline(10**17)
    assert max(reader.calls) <= MAX_PULL


# -- EMPTY_INPUT ---------------------------------------------------------------------------------


def test_empty_input() -> None:
    assert EMPTY_INPUT.read() == b""
    assert EMPTY_INPUT.read(10) == b""
    assert EMPTY_INPUT.read(None) == b""
    assert EMPTY_INPUT.readline() == b""
    assert EMPTY_INPUT.readline(5) == b""
    assert EMPTY_INPUT.readlines() == []
    assert EMPTY_INPUT.readlines(10) == []
    assert list(EMPTY_INPUT) == []
    assert EMPTY_INPUT.remaining == 0
    assert EMPTY_INPUT.failure is None
    EMPTY_INPUT.close()
    assert EMPTY_INPUT.read() == b""  # stateless: shared by every request


def test_after_end_a_read_gets_the_buffered_bytes_then_raises_without_reading_again() -> None:
    s, reader = stream(BODY, split=9)
    s.end()
    assert s.read(9) == BODY[:9]
    with pytest.raises(ClientDisconnected, match="after its request ended"):
        s.read()
    assert reader.calls == []  # the descriptor may be the next request's by now
