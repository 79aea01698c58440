"""Expanding uWSGI ini values: ``$(ENV)``, magic variables (``%d``, ``%k``…), ``%(name)``
placeholders and ``@(file)`` contents (the rules are listed in :mod:`uwsgiapp.config.uwsgiini`).

Expansion is bounded: a value may not grow past :data:`MAX_EXPANDED_SIZE` characters and
placeholders may nest :data:`MAX_PLACEHOLDER_DEPTH` deep; a placeholder that refers back to
itself, or a value past either bound (``x = %(x)%(x)`` would double forever), is a
:class:`ConfigError` naming the key and its line, never an endless or exponential expansion.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from functools import partial
from typing import Final

from uwsgiapp.config.inikeys import MAGIC_BY_NAME, PASTE_NAMES
from uwsgiapp.config.model import ConfigError
from uwsgiapp.config.readfile import read_bounded

__all__ = [
    "DEFAULT_SECTION",
    "MAGIC_RE",
    "MAGIC_VARIABLES",
    "MAX_EXPANDED_SIZE",
    "MAX_PLACEHOLDER_DEPTH",
    "ExpansionError",
    "Placeholders",
    "environ_names",
    "expand",
    "placeholder_env",
    "referenced_names",
]

#: The section read when ``--ini`` names none.
DEFAULT_SECTION: Final = "uwsgi"
#: The longest a value may become once expanded (characters); longer raw values are kept as is.
MAX_EXPANDED_SIZE: Final = 64 * 1024
#: How deep ``%(a)`` → ``%(b)`` → … may nest.
MAX_PLACEHOLDER_DEPTH: Final = 16


#: ``%(name)`` (group 1) or ``%x`` (group 2).
MAGIC_RE: Final = re.compile(r"%\(([^)]*)\)|%(.)")
_ENV_REF = re.compile(r"\$\(([^)]*)\)")
_FILE_REF = re.compile(r"@\(([^)]*)\)")


class ExpansionError(ValueError):
    """A value cannot be expanded: too large, or it names a placeholder or magic variable that
    has no value. The message follows "the value of 'key' …"."""


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)  # as uWSGI: the number when the id has no name


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _magic_table(
    path: str, section: str, fixed: MutableMapping[str, str] | None
) -> dict[str, Callable[[], str]]:
    """uWSGI's magic variables, each computed when first met. Upper-case forms (``%D``…)
    mean "of the first non-template file" in uWSGI; uwsgiapp reads one file, so they are
    the lower-case ones. ``fixed`` keeps what the start time (``%t %T``), the working
    directory (``%v``) and the file's name as given (``%o``) were the first time: a HUP
    reads the file again after ``--chdir``, by its absolute path and later, and these must
    stand for the start's, or every HUP would see options changed."""
    full = os.path.abspath(path)
    directory = os.path.dirname(full)
    name = os.path.basename(full)
    stem, ext = os.path.splitext(name)
    parts = [part for part in directory.split("/") if part]
    as_given = path if section == DEFAULT_SECTION else f"{path}:{section}"
    started = time.time()
    table: dict[str, Callable[[], str]] = {
        "d": lambda: directory.rstrip("/") + "/",
        "p": lambda: full,
        "s": lambda: name,
        "n": lambda: stem,
        "e": lambda: ext.lstrip("."),
        "c": lambda: os.path.basename(directory),
        "x": lambda: section,
        "o": lambda: as_given,
        "v": os.getcwd,
        "h": socket.gethostname,
        "k": lambda: str(os.cpu_count() or 1),
        "u": lambda: str(os.getuid()),
        "U": lambda: _user_name(os.getuid()),
        "g": lambda: str(os.getgid()),
        "G": lambda: _group_name(os.getgid()),
        "t": lambda: str(int(started)),
        "T": lambda: str(int(started * 1_000_000)),
        "[": lambda: "\033",
        "%": lambda: "%",
    }
    if fixed is not None:
        for letter in "tTvo":
            table[letter] = _kept(fixed, letter, table[letter])
    for letter in "dpsnecxo":
        table[letter.upper()] = table[letter]
    for index in range(10):  # %0..%9: the directory's path components ("" past the last)
        table[str(index)] = _constant(parts[index] if index < len(parts) else "")
    return table


def _constant(value: str) -> Callable[[], str]:
    return lambda: value


def _kept(
    fixed: MutableMapping[str, str], letter: str, now: Callable[[], str]
) -> Callable[[], str]:
    def value() -> str:
        if letter not in fixed:
            fixed[letter] = now()
        return fixed[letter]

    return value


#: The magic variables, for error messages.
MAGIC_VARIABLES: Final = "%d %p %s %n %e %c %x %o %v %h %k %u %U %g %G %t %T %0..%9 %%"


#: uWSGI's placeholder arithmetic: two operands and an operator, separated by blanks.
_ARITHMETIC = re.compile(r"\s*(\S+)\s+([-+*/])\s+(\S+)\s*")


def _arithmetic(name: str, operand: Callable[[str], str]) -> str | None:
    """``%(a + b)`` as uWSGI computes it (integers; ``/`` truncates), or None if ``name`` is
    not arithmetic. ``operand`` gives an operand's text (a magic variable, a placeholder, or
    the number itself)."""
    match = _ARITHMETIC.fullmatch(name)
    if match is None:
        return None
    left, op, right = match.groups()
    values: list[int] = []
    for text in (left, right):
        value = operand(text).strip()
        try:
            values.append(int(value))
        except ValueError:
            raise ExpansionError(f"uses %({name}): {text!r} is {value!r}, not an integer") from None
    a, b = values
    if op == "/" and b == 0:
        raise ExpansionError(f"uses %({name}): division by zero")
    if op == "/":
        return str(int(a / b))  # C's division, as uWSGI's
    return str(a + b if op == "+" else a - b if op == "-" else a * b)


def placeholder_env(name: str) -> str:
    """The environment variable a ``%(name)`` no key defines falls back to (``UWSGI_NAME``)."""
    return "UWSGI_" + name.upper().replace("-", "_")


def _is_number(text: str) -> bool:
    return text.lstrip("-").isdigit()


def environ_names(value: str) -> set[str]:
    """The environment variables ``value`` reads: each ``$(NAME)``."""
    return {match.group(1) for match in _ENV_REF.finditer(value)}


def referenced_names(value: str) -> set[str]:
    """The placeholder names ``value`` uses: each ``%(name)``, and the operands of a
    ``%(a + b)`` that are not numbers or magic variables."""
    names: set[str] = set()
    for match in MAGIC_RE.finditer(value):
        name = match.group(1)
        if not name:
            continue
        arithmetic = _ARITHMETIC.fullmatch(name)
        if arithmetic is None:
            names.add(name)
            continue
        for operand in arithmetic.group(1, 3):
            if not operand.startswith("%") and not _is_number(operand):
                names.add(operand)
    return names


def _unknown_placeholder(name: str, section: str) -> str:
    env_name = placeholder_env(name)
    message = (
        f"uses %({name}), which is not defined (no '{name} =' or 'set-placeholder = {name}=…'"
        f" in [{section}], no {env_name} in the environment)"
    )
    letter = MAGIC_BY_NAME.get(name.lower())
    if name in PASTE_NAMES:  # not a logging format's, to keep as it is
        message += f"; %({name})s is paste's placeholder for {PASTE_NAMES[name]}"
    elif letter is not None:
        message += f"; uWSGI's magic variable for it is %{letter}"
    else:  # a logging format's %(asctime)s in an env value, say: uWSGI keeps it as written
        message += f"; write %%({name}) to keep it as it is"
    return message


def expand(
    value: str,
    *,
    path: str,
    section: str = DEFAULT_SECTION,
    placeholders: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
    max_size: int = MAX_EXPANDED_SIZE,
    fixed: MutableMapping[str, str] | None = None,
) -> str:
    """Expand ``$(ENV)``, ``%x``, ``%(name)`` and ``@(file)`` in one value (see module doc).

    ``fixed``, when given, keeps the start-time variables from one call to the next.

    Raises :class:`ExpansionError` as soon as the result would grow past ``max_size``
    characters (before building it), and for a ``%(name)`` or ``%x`` that has no value (uWSGI
    would leave it, or expand it to nothing, and the option would fail later on a value the
    user never wrote), or an ``@(file)`` that cannot be read.
    """
    env = os.environ if environ is None else environ
    places = placeholders or {}
    table = _magic_table(path, section, fixed)

    def env_ref(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env and warn is not None:
            warn(f"$({name}) is not set in the environment; expanded to ''")
        return env.get(name, "")

    def named(name: str) -> str:  # a placeholder, else UWSGI_NAME, else arithmetic
        if name in places:
            return places[name]
        env_name = placeholder_env(name)
        if env_name in env:
            return env[env_name]
        computed = _arithmetic(name, operand)
        if computed is not None:
            return computed
        raise ExpansionError(_unknown_placeholder(name, section))

    def operand(text: str) -> str:  # a magic variable, a number, or a name (as in %(name))
        if text.startswith("%"):
            return MAGIC_RE.sub(magic, text)
        return text if _is_number(text) else named(text)

    def magic(match: re.Match[str]) -> str:
        name, letter = match.group(1), match.group(2)
        if name is not None:
            return named(name)
        if letter in table:
            return table[letter]()
        raise ExpansionError(
            f"uses %{letter}, which is not a magic variable uwsgiapp knows"
            f" ({MAGIC_VARIABLES}; write %% for a literal %)"
        )

    expanded = _bounded(_ENV_REF, env_ref, value, max_size)
    expanded = _bounded(MAGIC_RE, magic, expanded, max_size)  # before: a file's text stays
    return _bounded(_FILE_REF, partial(_file_text, max_size=max_size), expanded, max_size)


def _file_text(match: re.Match[str], *, max_size: int) -> str:
    """``@(path)``: the file's text without its last newline, as uWSGI reads it (a secret
    from a file, ``env = SECRET_KEY=@(/run/secrets/key)``)."""
    path = match.group(1)
    scheme, sep, _ = path.partition("://")
    if sep and scheme.isalpha():
        raise ExpansionError(
            f"uses @({path}): uWSGI's {scheme}:// source is not read here (only a file's "
            "path); put the value in a file, or in the environment and use $(NAME)"
        )
    try:  # a FIFO hung the start; as root, a link the app user planted was followed
        text = read_bounded(path).decode("utf-8", errors="surrogateescape")[: max_size + 2]
    except OSError as exc:
        raise ExpansionError(f"uses @({path}), which cannot be read ({exc.strerror})") from None
    return text[:-1] if text.endswith(("\n", "\r")) else text


def _bounded(
    pattern: re.Pattern[str],
    replace: Callable[[re.Match[str]], str],
    text: str,
    max_size: int,
) -> str:
    """``pattern.sub(replace, text)``, raising :class:`ExpansionError` as soon as the result
    would be longer than ``max_size`` (before it is built)."""
    grown = 0

    def checked(match: re.Match[str]) -> str:
        nonlocal grown
        replacement = replace(match)
        grown += len(replacement) - (match.end() - match.start())
        if grown > 0 and len(text) + grown > max_size:
            raise ExpansionError(f"expands to more than {max_size} characters")
        return replacement

    return pattern.sub(checked, text)


class Placeholders(Mapping[str, str]):
    """The section's placeholders, each expanded on first use (then remembered).

    Expanding one may expand others; a name met again on the way is a loop, and the chain may
    not get deeper than :data:`MAX_PLACEHOLDER_DEPTH`: both raise :class:`ConfigError` naming
    the definition's key and line.
    """

    def __init__(
        self,
        raw: Mapping[str, tuple[str, str]],
        expand_one: Callable[[str, Mapping[str, str]], str],
        expand_defined: Callable[[str, str, Mapping[str, str]], str] | None = None,
    ) -> None:
        self._raw = raw  # name → (raw value, "key (line N)" of its definition)
        self._expand_one = expand_one
        # A definition's own expansion (name, raw, these): in its own file's terms, where
        # uWSGI expands it as it reads that file (%d of the file that defines it).
        self._expand_defined = expand_defined
        self._done: dict[str, str] = {}
        self._chain: list[str] = []

    def __getitem__(self, name: str) -> str:
        done = self._done.get(name)
        if done is not None:
            return done
        raw, defined_at = self._raw[name]
        chain = self._chain
        if name in chain:
            loop = chain[chain.index(name) :]
            if len(loop) == 1:
                message = f"placeholder %({name}) refers to itself"
            else:
                path = " -> ".join(f"%({n})" for n in [*loop, name])
                message = f"placeholder %({name}) refers back to itself: {path}"
            raise ConfigError("ini", message, defined_at)
        if len(chain) > MAX_PLACEHOLDER_DEPTH:  # links between placeholders, not the key
            raise ConfigError(
                "ini",
                f"placeholders nest more than {MAX_PLACEHOLDER_DEPTH} deep"
                f" ({' -> '.join(f'%({n})' for n in [*chain, name])})",
                defined_at,
            )
        chain.append(name)
        try:
            if self._expand_defined is not None:
                value = self._expand_defined(name, raw, self)
            else:
                value = self._expand_one(raw, self)
        except ExpansionError as exc:
            raise ConfigError("ini", f"placeholder %({name}) {exc}", defined_at) from None
        finally:
            chain.pop()
        self._done[name] = value
        return value

    def expand_value(self, raw: str) -> str:
        """Expand one key's value with these placeholders."""
        return self._expand_one(raw, self)

    def env_names(self, raw: str, seen: frozenset[str] = frozenset()) -> set[str]:
        """The environment variables ``raw`` reads, itself or through its placeholders."""
        names = environ_names(raw)
        for name in (referenced_names(raw) - seen) & self._raw.keys():
            names |= self.env_names(self._raw[name][0], seen | {name})
        return names

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)
