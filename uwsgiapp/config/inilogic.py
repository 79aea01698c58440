"""uWSGI's option logic in an ini section: ``if-*`` … ``endif`` and ``for*`` … ``endfor``
blocks, resolved into the entries uWSGI would apply, in order.

As in uWSGI (core/config.c):

* ``if-env = VAR`` applies the block when VAR is set, ``if-env = VAR=value`` when it has that
  value; ``if-opt`` the same for a key set earlier in the section (its first value);
  ``if-exists`` (readable), ``if-file``, ``if-dir``, ``if-hostname``, ``if-hostname-match``
  (a regular expression), ``if-plugin`` (the Python plugins are the ones loaded), ``if-reload``
  (never: uwsgiapp reads the ini once, at start), each with its ``if-not-*`` form and uWSGI's
  other spellings (``ifenv``, ``ifexists``, ``ifdir``, ``if-directory``, ``ifplugin``);
* inside a block ``%(_)`` is the tested value (the variable's or option's value, the path,
  the hostname);
* ``for = a b c`` repeats each line of the block once per space-separated word, ``%(_)``
  being the word; ``for-times = N`` counts 1..N, ``for-glob`` takes the matching paths (the
  pattern itself when none match; directories end in ``/``), ``for-readline`` a file's lines;
* ``endif``, ``endfor``, ``end-if``, ``end-for`` and ``end`` close a block; ``else`` (uWSGI
  after 2.0; 2.0 has none) applies what follows when the last ``if-*`` failed.

The condition's value is expanded for ``$(VAR)`` and magic variables (uWSGI expands those
when it reads the file); a ``%(placeholder)`` in it is an error, since uWSGI would test the
text as written. uWSGI cannot nest blocks (it stops with "recursive logic"), so a block
opened inside another is a :class:`ConfigError` naming both lines.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from uwsgiapp.config.iniexpand import ExpansionError
from uwsgiapp.config.model import ConfigError

__all__ = ["LOGIC_KEYS", "MAX_LOGIC_ENTRIES", "IniEntry", "apply_logic"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IniEntry:
    """One ``key = value`` line of the chosen section (value not yet expanded)."""

    key: str
    value: str
    line: int
    #: The file it was read from, when another than the ``--ini`` one (``ini = other.ini``).
    origin: str = ""

    @property
    def at(self) -> str:
        """Where it stands, for a message: ``line 3``, or ``line 3 of base.ini``."""
        return f"line {self.line}" + (f" of {self.origin}" if self.origin else "")


#: ``if-*`` key → (what it tests, negated).
_IF_KEYS: Final[Mapping[str, tuple[str, bool]]] = {
    **{k: ("env", False) for k in ("if-env", "ifenv")},
    "if-not-env": ("env", True),
    "if-opt": ("opt", False),
    "if-not-opt": ("opt", True),
    **{k: ("exists", False) for k in ("if-exists", "ifexists")},
    "if-not-exists": ("exists", True),
    "if-file": ("file", False),
    "if-not-file": ("file", True),
    **{k: ("dir", False) for k in ("if-dir", "ifdir", "if-directory")},
    "if-not-dir": ("dir", True),
    "if-hostname": ("hostname", False),
    "if-not-hostname": ("hostname", True),
    "if-hostname-match": ("hostname-match", False),
    "if-not-hostname-match": ("hostname-match", True),
    **{k: ("plugin", False) for k in ("if-plugin", "ifplugin")},
    "if-not-plugin": ("plugin", True),
    "if-reload": ("reload", False),
    "if-not-reload": ("reload", True),
}
_FOR_KEYS: Final = frozenset({"for", "for-times", "for-glob", "for-readline"})
_END_KEYS: Final = frozenset({"end", "endif", "end-if", "endfor", "end-for"})
#: Every key that opens, turns or closes a block (none of them is an option of its own).
LOGIC_KEYS: Final = frozenset({*_IF_KEYS, *_FOR_KEYS, *_END_KEYS, "else"})
#: The most entries ``for`` blocks may produce in one section (``for-times = 100000000``).
MAX_LOGIC_ENTRIES: Final = 10_000
_PYTHON_PLUGINS: Final = frozenset({"python", "python3", "python2", "python3.x"})


@dataclass(slots=True)
class _Block:
    key: str
    line: int
    words: list[str | None] | None
    """What each line of the block is applied with (the ``%(_)`` value; None: no value), or
    None when the block is skipped."""


def apply_logic(
    entries: Sequence[IniEntry],
    *,
    expand_test: Callable[[str], str],
    environ: Mapping[str, str],
    warn: Callable[[str], None],
    where: str,
) -> list[IniEntry]:
    """The entries uWSGI applies: blocks resolved, logic keys dropped, ``%(_)`` substituted.

    ``expand_test`` expands a condition's value (``$(VAR)``, magic variables) and raises
    :class:`~uwsgiapp.config.iniexpand.ExpansionError`. Raises :class:`ConfigError` for a
    nested block, a condition that cannot be expanded or a bad ``if-hostname-match`` pattern.
    """
    out: list[IniEntry] = []
    block: _Block | None = None
    last_if_failed = False
    for entry in entries:
        key = entry.key
        if key in _END_KEYS:
            block, last_if_failed = None, False
            continue
        if key == "else":
            block = _Block(key, entry.line, [None] if last_if_failed else None)
            continue
        if key in _IF_KEYS or key in _FOR_KEYS:
            if block is not None:
                raise ConfigError(
                    "ini",
                    f"'{key}' ({entry.at}) opens a block inside the '{block.key}' block"
                    f" of line {block.line}: uWSGI cannot nest them (it stops with 'recursive"
                    " logic'); close the first with endif/endfor before",
                    f"{where} {key} ({entry.at})",
                )
            test = _test_value(entry, expand_test, where)
            if key in _IF_KEYS:
                found = _if(key, test, out, expand_test, environ, entry, where, warn)
                last_if_failed = found is None
                block = _Block(key, entry.line, None if found is None else [found[0]])
            else:
                block = _Block(key, entry.line, list(_for(key, test, entry, warn)))
            continue
        if block is None:
            out.append(entry)
        elif block.words is not None:
            for word in block.words:
                value = entry.value if word is None else entry.value.replace("%(_)", _as_text(word))
                out.append(replace(entry, value=value))
            if len(out) > MAX_LOGIC_ENTRIES:
                raise ConfigError(
                    "ini",
                    f"the '{block.key}' block makes the section more than {MAX_LOGIC_ENTRIES}"
                    " lines long",
                    f"{where} {block.key} (line {block.line})",
                )
    if block is not None and block.key != "else":
        end = "endfor" if block.key in _FOR_KEYS else "endif"
        warn(f"the '{block.key}' block of line {block.line} has no {end}: it runs to the end")
    return out


def _test_value(entry: IniEntry, expand_test: Callable[[str], str], where: str) -> str:
    try:
        return expand_test(entry.value)
    except ExpansionError as exc:
        raise ConfigError(
            "ini",
            f"the value of {entry.key!r} {exc}; placeholders are not expanded in a condition"
            " (uWSGI tests the text as written)",
            f"{where} {entry.key} ({entry.at})",
        ) from None


def _if(
    key: str,
    test: str,
    applied: Sequence[IniEntry],
    expand_test: Callable[[str], str],
    environ: Mapping[str, str],
    entry: IniEntry,
    where: str,
    warn: Callable[[str], None],
) -> tuple[str | None] | None:
    """``(the %(_) value,)`` when the block applies (None inside: no value to substitute),
    else None."""
    kind, negated = _IF_KEYS[key]
    if kind in ("env", "opt"):
        name, eq, wanted = test.partition("=")
        if kind == "env":
            current = environ.get(name)
        else:  # uWSGI looks at the first value set so far
            first = next((e.value for e in applied if e.key == name), None)
            current = None if first is None else _expanded_or_raw(first, expand_test)
        matches = current is not None and (not eq or current == wanted)
        if negated:  # unset: %(_) is the name tested, as in uWSGI
            return None if matches else (name if current is None else current,)
        return (current,) if matches else None
    if kind == "reload":
        if not negated:
            warn(
                f"the '{key}' block ({entry.at}) is never applied: uwsgiapp reads the ini"
                " once, at start (a HUP reloads the app, not the ini)"
            )
        return (None,) if negated else None
    holds: bool
    if kind == "exists":
        holds = os.access(test, os.R_OK)
    elif kind == "file":
        holds = os.path.isfile(test)
    elif kind == "dir":
        holds = os.path.isdir(test)
    elif kind == "hostname":
        holds = socket.gethostname() == test
    elif kind == "plugin":
        holds = test in _PYTHON_PLUGINS
    else:
        try:
            holds = re.search(test, socket.gethostname()) is not None
        except re.error as exc:
            raise ConfigError(
                "ini", f"{test!r} is not a regular expression: {exc}", f"{where} {key}"
            ) from None
    return (test,) if holds != negated else None


def _expanded_or_raw(value: str, expand_test: Callable[[str], str]) -> str:
    """An option's value as ``if-opt`` compares it: expanded where it can be (a placeholder
    it uses is not known yet at that point), else as written."""
    try:
        return expand_test(value)
    except ExpansionError:
        return value


def _as_text(word: str) -> str:
    """A ``%(_)`` word as the value's own text: each ``%`` that opens no ``%(name)`` doubled,
    so that the value's expansion gives it back as it was. uWSGI expands ``%x`` only as it
    reads the file: a .env line read by ``for-readline`` (``PASSWORD=ab%cd``) kept its ``%c``,
    and a comment's ``100% done`` stopped the start here."""
    return re.sub(r"%(?!\()", "%%", word)


def _for(key: str, test: str, entry: IniEntry, warn: Callable[[str], None]) -> list[str | None]:
    """The words a ``for*`` block repeats its lines with."""
    if key == "for":
        return [word for word in test.split(" ") if word]
    if key == "for-times":
        count = re.match(r"\s*([+-]?\d+)", test)  # uWSGI reads the number with atoi
        times = min(int(count.group(1)), MAX_LOGIC_ENTRIES + 1) if count else 0
        return [str(n) for n in range(1, times + 1)]
    if key == "for-glob":
        found = sorted(glob.glob(test))
        return [p + "/" if os.path.isdir(p) and not p.endswith("/") else p for p in found] or [test]
    try:
        with open(test, encoding="utf-8", errors="surrogateescape") as fh:
            lines = itertools.islice(fh, MAX_LOGIC_ENTRIES + 1)  # not all of /dev/zero
            return [line.rstrip("\r\n") for line in lines]
    except OSError as exc:
        warn(f"'{key} = {test}' ({entry.at}): cannot read it ({exc.strerror}): no lines")
        return []
