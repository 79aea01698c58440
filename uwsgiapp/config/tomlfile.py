"""A ``--config`` TOML file as a config layer: a ``[tool.uwsgiapp]`` table (pyproject.toml),
an ``[uwsgiapp]`` table, or the top-level keys; an ``env`` table sets environment variables.

The file is checked before :mod:`tomllib` sees it: nesting deeper than
:data:`MAX_TOML_NESTING` or a dotted key longer than :data:`MAX_TOML_KEY_PARTS` is a
:class:`~uwsgiapp.config.ConfigError` naming the key and line, not a RecursionError or
gigabytes of memory.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Final

from uwsgiapp.config.configload import Layer, Raw, option_specs, spec_for, suggest
from uwsgiapp.config.model import ConfigError
from uwsgiapp.config.readfile import read_bounded

__all__ = ["MAX_TOML_KEY_PARTS", "MAX_TOML_NESTING", "toml_layer"]

#: How deep arrays and inline tables may nest in a TOML file (tomllib recurses on each level,
#: so a file nested thousands deep would end in RecursionError).
MAX_TOML_NESTING: Final = 32
#: How many parts one dotted key (``a.b.c = 1``, ``[a.b.c]``) may have (tomllib's memory grows
#: with the square of it: 100k parts would take tens of GB).
MAX_TOML_KEY_PARTS: Final = 32

# What starts a string or a comment, and where each ends (an unterminated one runs to the end
# of the line or file: tomllib reports it). Multi-line strings may end with up to two extra
# quotes, which belong to the content.
_TOML_OPENERS: Final = re.compile(r"\"\"\"|'''|[\"'#]")
_TOML_CLOSERS: Final = {
    '"""': re.compile(r'(?:[^"\\]|\\.|"(?!""))*(?:"""(?:""|")?|\Z)', re.DOTALL),
    "'''": re.compile(r"(?:[^']|'(?!''))*(?:'''(?:''|')?|\Z)"),
    '"': re.compile(r'(?:[^"\\\n]|\\.)*"?'),
    "'": re.compile(r"[^'\n]*'?"),
    "#": re.compile(r"[^\n]*"),
}
_TOML_NESTING_CHARS: Final = re.compile(r"[\[\]{}=\n]")
_TOML_DOTTED_KEY: Final = re.compile(
    rf'(?:[A-Za-z0-9_-]+|"")(?:[ \t]*\.[ \t]*(?:[A-Za-z0-9_-]+|"")){{{MAX_TOML_KEY_PARTS},}}'
)


def _toml_skeleton(text: str, *, strings: bool = False) -> str:
    """``text`` with every string replaced by ``""`` (its newlines kept after it, so line
    numbers stay right; with ``strings``, a quoted key kept as written) and comments removed:
    what is left is structure."""
    parts: list[str] = []
    pos = 0
    while (opener := _TOML_OPENERS.search(text, pos)) is not None:
        parts.append(text[pos : opener.start()])
        token = opener.group()
        end = _TOML_CLOSERS[token].match(text, opener.end())
        pos = end.end() if end is not None else len(text)
        if token != "#":
            # With ``strings``, a key's (followed by "=" or "."), not a value's.
            key = strings and text[pos:].lstrip(" \t")[:1] in ("=", ".")
            kept = text[opener.start() : pos] if key else None
            parts.append(kept or '""' + "\n" * text.count("\n", opener.start(), pos))
    parts.append(text[pos:])
    return "".join(parts)


def _check_toml_nesting(text: str, source: str) -> None:
    """Refuse TOML nested past :data:`MAX_TOML_NESTING` or with a dotted key longer than
    :data:`MAX_TOML_KEY_PARTS`, naming the key and line, before tomllib sees it."""
    skeleton = _toml_skeleton(text)
    depth = 0
    line = 1
    statement = 0
    key: tuple[str, int] | None = None  # the top-level key being assigned, and its line
    for match in _TOML_NESTING_CHARS.finditer(skeleton):
        char = match.group()
        if char == "\n":
            line += 1
            if depth == 0:
                statement, key = match.end(), None
        elif char == "=":
            if depth == 0 and key is None:
                key = (skeleton[statement : match.start()].strip(), line)
        elif char in "[{":
            depth += 1
            if depth > MAX_TOML_NESTING:
                what = f"the value of {key[0]!r} (line {key[1]})" if key else f"line {line}"
                raise ConfigError(
                    "config",
                    f"{what} nests arrays or tables more than {MAX_TOML_NESTING} deep",
                    source,
                )
        else:
            depth = max(depth - 1, 0)
    dotted = _TOML_DOTTED_KEY.search(skeleton)
    if dotted is not None:
        line = skeleton.count("\n", 0, dotted.start()) + 1
        raise ConfigError(
            "config",
            f"the dotted key on line {line} ({dotted.group()[:30]}…) has more than"
            f" {MAX_TOML_KEY_PARTS} parts",
            source,
        )


def _load_toml(path: str) -> tuple[dict[str, Any], str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the same parser, as a package (a dependency on Python 3.10)
        import tomli as tomllib
    source = f"config file {path}"
    if path.endswith(".py"):  # gunicorn.conf.py, whose first line TOML cannot parse
        raise ConfigError(
            "config",
            f"reads TOML, and {path} is Python (gunicorn's config?): give its settings as "
            "options (serve --help) or in a TOML file (--print-config writes one); the README "
            "says where gunicorn's hooks go (post_fork: @uwsgiapp.postfork)",
            "command line",
        )
    try:
        text = read_bounded(path).decode("utf-8")
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}", "command line") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("config", f"invalid TOML: not UTF-8 text ({exc})", source) from None
    _check_toml_nesting(text, source)
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"invalid TOML: {exc}", source) from None


#: What an unknown table (``[uwsgi]``, ``[server]``) is told: where the options are read.
_TABLES = (
    " (a table: the options are read from [uwsgiapp], [tool.uwsgiapp] in a pyproject.toml, "
    "or the top level)"
)


def toml_layer(path: str) -> Layer:
    """Options from a TOML file: a ``[tool.uwsgiapp]`` table (pyproject.toml), else an
    ``[uwsgiapp]`` table, else the top-level keys. Unknown keys are errors."""
    data, text = _load_toml(path)
    source = f"config file {path}"
    tool = data.get("tool")
    table: Any
    if isinstance(tool, dict) and "uwsgiapp" in tool:
        table, where = tool["uwsgiapp"], "[tool.uwsgiapp]"
    elif os.path.basename(path) == "pyproject.toml":
        raise ConfigError("config", "pyproject.toml has no [tool.uwsgiapp] table", source)
    elif isinstance(data.get("uwsgiapp"), dict):
        table, where = data["uwsgiapp"], "[uwsgiapp]"
    else:
        table, where = data, "top level"
    if not isinstance(table, dict):
        raise ConfigError("config", f"{where} must be a table", source)
    if where != "top level" and os.path.basename(path) != "pyproject.toml":
        _check_outside(data, where, source)
    options = [s.option for s in option_specs()]
    # Each unknown key at once: a file written from gunicorn.conf.py has a dozen of them.
    tables = where == "top level"  # a [uwsgi] table where ours was looked for
    unknown = [
        (
            repr(key),
            suggest(key, options) or (_TABLES if tables and isinstance(table[key], dict) else ""),
        )
        for key in table
        if spec_for(key) is None
    ]
    if len(unknown) == 1:
        (key, hint), *_ = unknown
        raise ConfigError("config", f"unknown option {key} in {where}{hint}", source)
    if unknown:
        each = "; ".join(key + hint for key, hint in unknown)
        raise ConfigError("config", f"unknown options in {where}: {each}", source)
    return {
        spec.name: Raw(_octal_as_written(text, key, value) if spec.octal else value, source)
        for key, value in table.items()
        if (spec := spec_for(key))
    }


def _octal_as_written(text: str, key: str, value: Any) -> Any:
    """A mode written as a plain TOML integer (``chmod-socket = 440``) as its digits' text.

    tomllib reads ``440`` and ``0o670`` as the same int: taken as the mode's value, a plain 440
    was 0o670 (a plain 660 or 666 only came out right for being over 0o777). The file's own
    spelling tells them apart; ``0o440`` stays the value it is."""
    if not isinstance(value, int) or isinstance(value, bool) or value > 0o777:
        return value
    pattern = rf"""(?:^|[\s.{{,])["']?{re.escape(key)}["']?\s*=\s*(\+?[0-9_]+)(?![0-9_xob.eE])"""
    # Not in a comment ("# chmod-socket = 440" above a "chmod-socket = 0o670").
    structure = _toml_skeleton(text, strings=True)
    plain = (m.group(1) for m in re.finditer(pattern, structure, re.MULTILINE))
    if any(literal.lstrip("+").replace("_", "") == str(value) for literal in plain):
        return str(value)
    return value


def _check_outside(data: dict[str, Any], where: str, source: str) -> None:
    """Options beside the table that holds them would be ignored without a word: a key with
    an option's name and a value it could take (an ``[env]`` table; not an app's own
    ``[app]`` table), or an ``[uwsgiapp]`` table beside ``[tool.uwsgiapp]``."""
    for key, value in data.items():
        if key == "uwsgiapp" and where == "[tool.uwsgiapp]":
            raise ConfigError(
                "config", f"[uwsgiapp] is ignored beside {where}: move its keys there", source
            )
        if key in ("uwsgiapp", "tool") or (spec := spec_for(key)) is None:
            continue
        if isinstance(value, dict) and spec.kind != "pairs":
            continue  # a table of the app's own, named like an option
        inside = f"{where[:-1]}.{key}]" if isinstance(value, dict) else where
        raise ConfigError(
            "config",
            f"{key!r} is outside {where}, which holds the options when the file has one: "
            f"move it to {inside}",
            source,
        )
