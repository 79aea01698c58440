"""Straight-line parsers for var blocks that repeat one sequence of keys.

nginx sends the keys of every request to a location in the same order: its ``uwsgi_params``,
then the client's headers. A worker therefore sees a few key sequences again and again, and for
one of them a :class:`Layout` parses a block without the generic loop: each key is compared as
bytes where it must be, each value is one slice, and the result is a copy of a prepared dict in
which every key already exists (no key is sliced or hashed, the dict is never resized). For the
real nginx GET capture it takes about a quarter less time than
:func:`~uwsgiproto.schema.parse_var_block` (``bench/bench_codec.py``).

A block that does not follow the layout is not an error here: :meth:`Layout.run` says how far
it matched, and :func:`~uwsgiproto.schema.resume_var_block` parses the rest (or reports the error)
exactly as the generic parser would.
"""

from __future__ import annotations

import itertools
import linecache
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # mypyc's machine integer; only an annotation, so no import at run time
    from mypy_extensions import i64

#: Most keys a layout is compiled for (its code grows with the square of this: one exit per key).
MAX_LAYOUT_VARS = 64
#: Most bytes of keys in one layout.
MAX_LAYOUT_KEY_BYTES = 8192
#: Most characters of a known value (see :class:`Layout`'s ``known``).
MAX_KNOWN_VALUE = 128
#: Blocks with another value for a known key before the layout stops expecting that value.
KNOWN_MISSES = 256

#: What :meth:`Layout.run` returns for a block it does not match in full: the number of vars
#: that matched, the offset after them, and their values (to resume the generic parser with).
Partial = tuple[int, int, tuple[str, ...]]

#: Numbers the generated sources: each layout's code has a file name of its own.
_serial = itertools.count(1)

#: Keeps a signature under 2**40, so that times the multiplier it stays within 64 bits.
_SIGNATURE_MASK: Final = (1 << 40) - 1


def can_be_known(value: str) -> bool:
    """Whether a layout may expect ``value`` (:class:`Layout`'s ``known``): ASCII, at most
    :data:`MAX_KNOWN_VALUE` characters."""
    return len(value) <= MAX_KNOWN_VALUE and value.isascii()


def key_signature(b: bytes | bytearray) -> int:
    """A number that is the same for every block with the same sequence of keys (-1 for a block
    that does not split into whole vars), found without making a single object.

    It hashes each key's length, its last byte and its sixth (the first after ``HTTP_``), so
    blocks with other keys may share it: it only picks which :class:`Layout` to try, and the
    layout's own match decides.
    """
    data = b if isinstance(b, bytes) else bytes(b)
    # i64: compiled, machine integers (a Python int is a tagged value checked at every step).
    end: i64 = len(data)
    q: i64 = 0
    h: i64 = 0
    while q < end:
        if q + 2 > end:
            return -1
        n: i64 = data[q] | data[q + 1] << 8
        q += 2
        mark: i64 = n << 16
        if n and q + n <= end:
            mark = mark | data[q + n - 1] << 8 | data[q + 5 if n > 5 else q + n - 1]
        h = (h * 1000003 + mark) & _SIGNATURE_MASK
        q += n
        if q + 2 > end:
            return -1
        q += 2 + (data[q] | data[q + 1] << 8)
    return h if q == end else -1


def count_vars(b: bytes | bytearray) -> int:
    """How many vars (key and value pairs) a well-formed var block holds: a walk over its
    length fields, no object made (the access log's count, as uWSGI prints it).

    The block must have parsed; a short tail is not counted.
    """
    data = b if isinstance(b, bytes) else bytes(b)
    end: i64 = len(data)
    q: i64 = 0
    count: i64 = 0
    while q + 2 <= end:
        q += 2 + (data[q] | data[q + 1] << 8)
        if q + 2 > end:
            break
        q += 2 + (data[q] | data[q + 1] << 8)
        count += 1
    return count


class Layout:
    """A parser for var blocks holding exactly ``keys``, in that order, each once.

    ``store``: the keys whose values go into the result (default: all). ``base``: entries every
    result starts with (constants); its keys must not be stored ones. ``looped``: parse with one
    loop over the keys (:class:`_Runner`) rather than generated straight-line code; the default
    is the loop in a compiled build, where it is the faster of the two, and the code otherwise.

    ``known``: values that stored keys are expected to carry (nginx sends the same
    ``SERVER_NAME``, ``DOCUMENT_ROOT``, ``HTTP_HOST``... on every request to a location). The
    loop compares such a var whole, key and value, with one slice, and the result keeps the
    value already in its prototype: no key check, no new string, no store. A block with another
    value is parsed as usual; after :data:`KNOWN_MISSES` of them the value is no longer expected.
    Only ASCII values of up to :data:`MAX_KNOWN_VALUE` characters are kept.
    """

    __slots__ = ("base", "keys", "known", "run", "runner", "store")

    def __init__(
        self,
        keys: Sequence[str],
        *,
        store: Collection[str] | None = None,
        base: Mapping[str, Any] | None = None,
        looped: bool | None = None,
        known: Mapping[str, str] | None = None,
    ) -> None:
        keys = tuple(keys)
        if not keys or len(keys) > MAX_LAYOUT_VARS:
            raise ValueError(f"a layout has 1 to {MAX_LAYOUT_VARS} keys, not {len(keys)}")
        if len(set(keys)) != len(keys):
            raise ValueError("a layout's keys must be distinct")
        encoded = [key.encode("latin-1") for key in keys]
        if not all(encoded) or sum(map(len, encoded)) > MAX_LAYOUT_KEY_BYTES:
            raise ValueError(f"layout keys must be non-empty, {MAX_LAYOUT_KEY_BYTES} bytes in all")
        stored = keys if store is None else tuple(key for key in keys if key in store)
        base = dict(base or {})
        if not base.keys().isdisjoint(stored):
            raise ValueError("base entries cannot be stored keys")
        #: The keys, in wire order.
        self.keys = keys
        #: The keys whose values the result holds.
        self.store = stored
        #: The constant entries of every result.
        self.base = base
        #: The values expected for stored keys (the eligible part of ``known``).
        self.known = {
            key: value
            for key, value in (known or {}).items()
            if key in stored and can_be_known(value)
        }
        #: ``run(block, text)``: the result dict when the block is exactly this layout, else a
        #: :data:`Partial`. ``text`` is ``block.decode("latin-1")``.
        # Known values are in the prototype: a var that matches its known value whole is not
        # stored again (the generated code stores every value, so it ignores them).
        prototype = dict.fromkeys(stored) | base | self.known
        self.run: Callable[[bytes | bytearray, str], dict[str, Any] | Partial]
        #: The loop that is ``run`` (None where ``run`` is generated code): compiled, a call to
        #: ``runner.run`` is native where one through the ``run`` attribute is generic.
        self.runner: _Runner | None = None
        if COMPILED if looped is None else looped:
            self.runner = _Runner(keys, encoded, stored, prototype, self.known)
            self.run = self.runner.run
        else:
            self.run = _compile(keys, encoded, stored, prototype)


#: Whether this module was compiled by mypyc: then a loop over the keys (native code) beats
#: straight-line generated Python, which mypyc cannot compile (exec'd at run time).
COMPILED = not __file__.endswith(".py")
#: Whether :func:`key_signature` runs compiled (about 0.2 µs for nginx's vars); as Python it
#: costs about what parsing the block does.
FAST_KEY_SIGNATURE = COMPILED


#: A layout's var: its marker on the wire (length and name), its name in the result ("" for a key
#: whose value is not stored), the whole var (marker, value length, value) when its value is
#: known, else b"".
_Var = tuple[bytes, str, bytes]
#: Consecutive vars, and the known ones joined as on the wire (b"" if they have no known value).
_Run = tuple[bytes, tuple[_Var, ...]]


class _Runner:
    """A layout's ``run`` as one loop over its keys: what a compiled build uses.

    The same dict as the code :func:`_compile` generates for a block of the layout; for any
    other block, the partial ``(0, 0, ())``: the generic parser starts again from the top (the
    values are stored as they are found, so those before a mismatch are not kept).

    Consecutive vars with known values are compared as one run: nginx sends most of them one
    after the other (its params, then the client's fixed headers), so a request takes a few
    slices and compares instead of one per var.
    """

    __slots__ = ("misses", "prototype", "steps", "vars")

    def __init__(
        self,
        keys: tuple[str, ...],
        encoded: list[bytes],
        stored: tuple[str, ...],
        prototype: dict[str, Any],
        known: Mapping[str, str],
    ) -> None:
        #: The keys' vars, in wire order.
        self.vars: tuple[_Var, ...] = tuple(
            (marker, key if key in stored else "", _whole(marker, known.get(key)))
            for key, raw in zip(keys, encoded, strict=True)
            for marker in (len(raw).to_bytes(2, "little") + raw,)
        )
        #: What the loop walks: the vars cut into runs.
        self.steps = _runs(self.vars)
        self.prototype = prototype
        #: Blocks that carried another value, by known key.
        self.misses: dict[str, int] = {}

    def run(self, b: bytes | bytearray, t: str) -> dict[str, Any] | Partial:
        """The result dict when ``b`` is exactly this layout, else ``(0, 0, ())``."""
        # Compiled, indexing and slicing are native for a `bytes` argument only.
        return self._match(b if isinstance(b, bytes) else bytes(b), t)

    def _match(self, b: bytes, t: str) -> dict[str, Any] | Partial:
        end = len(b)
        d = self.prototype.copy()
        q = 0
        for run, part in self.steps:
            n = len(run)  # compiled, a length is native where a truth test is a call
            if n and b[q : q + n] == run:  # keys and values as expected: the prototype has them
                q += n
                continue
            for marker, name, whole in part:
                n = len(whole)
                if n and b[q : q + n] == whole:
                    q += n
                    continue
                n = len(marker)
                if b[q : q + n] != marker:  # compiled, a slice beats startswith (a method call)
                    return 0, 0, ()
                if len(whole):  # the key, with another value (another key sequence is no miss)
                    self._missed(name)
                p = q + n + 2
                if p > end:
                    return 0, 0, ()
                q = p + (b[p - 2] | b[p - 1] << 8)
                if name:
                    d[name] = t[p:q]
        if q != end:
            return 0, 0, ()
        return d

    def _missed(self, name: str) -> None:
        """A block carried another value for known key ``name``."""
        count = self.misses.get(name, 0) + 1
        self.misses[name] = count
        if count >= KNOWN_MISSES:  # not so constant after all: compare the key alone
            self.vars = tuple(
                (marker, key, b"" if key == name else whole) for marker, key, whole in self.vars
            )
            # The loop in _match goes on over the tuple it started with.
            self.steps = _runs(self.vars)


def _runs(flat: tuple[_Var, ...]) -> tuple[_Run, ...]:
    """A layout's vars cut into runs of consecutive vars that all have a known value or none
    has, each with the known vars joined as on the wire (b"" for the others)."""
    return tuple(
        (b"".join(whole for _, _, whole in part), part)
        for part in (
            tuple(group) for _, group in itertools.groupby(flat, key=lambda var: bool(var[2]))
        )
    )


def _whole(marker: bytes, value: str | None) -> bytes:
    """A var as it is on the wire (marker, value length, value); b"" for no known value."""
    if value is None:
        return b""
    raw = value.encode("latin-1")
    return marker + len(raw).to_bytes(2, "little") + raw


def _compile(
    keys: tuple[str, ...], encoded: list[bytes], stored: tuple[str, ...], prototype: dict[str, Any]
) -> Callable[[bytes | bytearray, str], dict[str, Any] | Partial]:
    # Keys reach the source only through repr() of str/bytes, which always gives a literal.
    # ``p`` is where the current value starts, ``q`` where it ends (the next var's offset).
    lines = ["def run(b, t):", "    try:"]
    emit = lines.append
    for i, raw in enumerate(encoded):
        marker = len(raw).to_bytes(2, "little") + raw
        n = len(marker)
        done = "".join(f"v{j}, " for j in range(i))
        if i == 0:
            emit(f"        if b[0:{n}] != {marker!r}: return 0, 0, ()")
            emit(f"        p = {n + 2}")
        else:
            emit(f"        if b[q:q + {n}] != {marker!r}: return {i}, q, ({done})")
            emit(f"        p = q + {n + 2}")
        emit("        q = p + (b[p - 2] | b[p - 1] << 8)")
        emit(f"        v{i} = t[p:q]")
    emit("    except IndexError:")  # a length past the end: let the generic parser say where
    emit("        return 0, 0, ()")
    values = "".join(f"v{j}, " for j in range(len(keys)))
    emit(f"    if q != len(b): return {len(keys)}, q, ({values})")
    emit("    d = PROTOTYPE.copy()")
    for i, key in enumerate(keys):
        if key in stored:
            emit(f"    d[{key!r}] = v{i}")
    emit("    return d")
    source = "\n".join(lines) + "\n"
    # No key in the name: keys come from the wire, and the name is printed in tracebacks.
    filename = f"<uwsgi var layout {next(_serial)} ({len(keys)} keys)>"
    namespace: dict[str, Any] = {"PROTOTYPE": prototype}
    exec(compile(source, filename, "exec"), namespace)
    run: Callable[[bytes | bytearray, str], dict[str, Any] | Partial] = namespace["run"]
    _register_source(filename, source, run)
    return run


def _register_source(filename: str, source: str, owner: Callable[..., Any]) -> None:
    """Let tracebacks, pdb and inspect show generated code (as attrs does for its methods).

    A ``None`` mtime keeps ``linecache.checkcache`` from dropping the entry (there is no file to
    compare with); it is dropped when the function it belongs to is collected.
    """
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    weakref.finalize(owner, linecache.cache.pop, filename, None)
