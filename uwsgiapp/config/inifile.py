"""Reading a uWSGI ini file: the ``--ini`` argument's file and section, and the section's
entries in order, in uWSGI's dialect (what they mean is :mod:`uwsgiapp.config.uwsgiini`'s)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from uwsgiapp.config.iniexpand import DEFAULT_SECTION, ExpansionError
from uwsgiapp.config.inilogic import IniEntry
from uwsgiapp.config.model import ConfigError
from uwsgiapp.config.readfile import MAX_INI_BYTES, read_bounded

__all__ = [
    "MAX_INCLUDE_DEPTH",
    "MAX_INI_BYTES",
    "include_sections",
    "parse_ini",
    "read_bounded",
    "read_section",
    "split_ini_arg",
]


def split_ini_arg(arg: str) -> tuple[str, str]:
    """``app.ini:section`` → ``("app.ini", "section")``; no section → the default ``uwsgi``."""
    path, sep, section = arg.rpartition(":")
    if sep and path and section and "/" not in section and os.sep not in section:
        return path, section
    return arg, DEFAULT_SECTION


def parse_ini(text: str, section: str) -> tuple[list[IniEntry], list[str]]:
    """The entries of ``[section]`` in order (repeats kept), and the names of all sections.

    uWSGI's ini dialect: ``#`` or ``;`` starts a comment line, values are taken verbatim (no
    inline comments, no quotes removed), a key without ``=`` is a boolean flag set to true.
    """
    entries: list[IniEntry] = []
    sections: list[str] = []
    current: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            sections.append(current)
            continue
        if current != section:
            continue
        key, eq, value = line.partition("=")
        entries.append(
            IniEntry(key=key.strip(), value=value.strip() if eq else "true", line=number)
        )
    return entries, sections


def read_section(path: str, section: str) -> list[IniEntry]:
    """The entries of ``[section]`` in the ini file ``path``; ConfigError if unreadable."""
    try:  # -sig: a byte-order mark (Windows editors write one) hid the first [section]
        text = read_bounded(path).decode("utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise ConfigError("ini", f"cannot read {path}: {exc.strerror}", "command line") from None
    entries, sections = parse_ini(text, section)
    # Only what is read must be UTF-8: uWSGI reads bytes, and an old file's Latin-1 comment
    # (# répertoire) stopped the start.
    bad = next((e for e in entries if _not_utf8(e.key + e.value)), None)
    if bad is not None:
        raise NotUtf8(
            "ini",
            f"{path} line {bad.line} ({bad.key}) is not UTF-8 text: save the file as UTF-8"
            " (iconv -f latin1 -t utf-8)",
            "command line",
        )
    if section not in sections and path.endswith(".py"):  # said: "sections: none"
        raise ConfigError(
            "ini",
            f"reads a uWSGI ini file, and {path} is Python (gunicorn's config?): give its "
            "settings as options (serve --help) or in a TOML file for --config",
            "command line",
        )
    if section not in sections:
        found = ", ".join(f"[{s}]" for s in sections) or "none"
        # uWSGI's FILE:SECTION reads another section: for an [app] only, "--ini FILE:app"
        other = f": name one, --ini {path}:{sections[0]}" if len(sections) == 1 else ""
        raise ConfigError(
            "ini", f"{path} has no [{section}] section (sections: {found}){other}", "command line"
        )
    return entries


class NotUtf8(ConfigError):
    """A line read is not UTF-8: it stops the start, in an included section too."""


def _not_utf8(text: str) -> bool:
    """Whether ``text`` holds bytes that were not UTF-8 (decoded with surrogateescape)."""
    return any("\udc80" <= char <= "\udcff" for char in text)


#: The keys that bring in another section's entries (uWSGI's): where they stand, or first.
_INCLUDE_KEYS = ("ini", "include", "inherit")


#: How deep includes nest (uWSGI sets no bound; a section read twice is skipped anyway).
MAX_INCLUDE_DEPTH = 10


def include_sections(
    path: str,
    section: str,
    entries: list[IniEntry],
    warn: Callable[[str], None],
    expand: Callable[[str, str], str],
    logic: Callable[[list[IniEntry], str], list[IniEntry]],
) -> list[IniEntry]:
    """``entries`` (of ``[section]``) with each ``ini = :other`` (a section of the same file),
    ``ini = other.ini[:section]`` or ``include = other.ini`` (another file's section, [uwsgi]
    by default; a relative path from the current directory, as uWSGI opens it) replaced by
    that section's entries where it stands, and ``inherit = base.ini`` 's after the whole
    config (uWSGI's order: its values win, ``--show-config`` lists them last), as uWSGI reads
    them, and so on in what they bring
    (:data:`MAX_INCLUDE_DEPTH` deep). ``entries`` went through the if-logic already (an include
    in a branch not taken is none); each value is ``expand``-ed first (value, its entry's
    ``origin``: ``%d/base.ini``), what is brought goes through ``logic`` (its file's if-blocks).
    A section already read is skipped with a warning (a loop, or one brought twice), as is a
    missing one of the file that names it (uWSGI warns); another file that cannot be read
    stops the start (what it sets would be missing)."""
    how = _Reading(path, warn, expand, logic, {(os.path.abspath(path), section)})
    return _included(path, entries, how, 0) + how.inherited


@dataclass
class _Reading:
    """What one ``--ini``'s includes share: its file, the callbacks, the sections read."""

    main: str
    warn: Callable[[str], None]
    expand: Callable[[str, str], str]
    logic: Callable[[list[IniEntry], str], list[IniEntry]]
    read: set[tuple[str, str]]
    #: What ``inherit`` keys brought, in order: it goes after everything else.
    inherited: list[IniEntry] = field(default_factory=list)

    def origin(self, file: str) -> str:
        """An entry's ``origin`` for ``file``: "" for the ``--ini`` file itself."""
        return "" if os.path.abspath(file) == os.path.abspath(self.main) else file


def _included(path: str, entries: list[IniEntry], how: _Reading, depth: int) -> list[IniEntry]:
    """``entries`` of a section of ``path`` with what their include keys bring."""
    out: list[IniEntry] = []
    for entry in entries:
        value = entry.value.strip()
        if entry.key not in _INCLUDE_KEYS:
            out.append(entry)
            continue
        if value in ("", ":"):
            how.warn(f"'{entry.key} = {value}' ({entry.at}) names no file nor section; ignored")
            continue
        try:
            value = how.expand(value, entry.origin).strip()
        except ExpansionError as exc:
            raise ConfigError("ini", f"the value of {entry.key!r} {exc}", entry.at) from None
        other, name = (path, value[1:]) if value.startswith(":") else split_ini_arg(value)
        said = f"'{entry.key} = {value}' ({entry.at})"
        if depth >= MAX_INCLUDE_DEPTH:
            raise ConfigError("ini", f"{said}: includes nest too deep", "command line")
        brought = _bring(path, other, name, entry.key, said, how)
        if brought is not None:
            brought = _included(other, brought, how, depth + 1)
            (how.inherited if entry.key == "inherit" else out).extend(brought)
    return out


def _bring(
    path: str, other: str, name: str, key: str, said: str, how: _Reading
) -> list[IniEntry] | None:
    """The entries of ``other``'s ``[name]`` after its if-logic, or None when skipped."""
    ident = (os.path.abspath(other), name)
    if ident in how.read:
        how.warn(f"{said}: [{name}] is already read; skipped")
        return None
    how.read.add(ident)
    if other != path and key != "ini" and other.endswith(_NOT_INI):
        raise ConfigError("ini", f"{said}: only ini files are read", "command line")
    try:
        brought = read_section(other, name)
    except NotUtf8:
        raise
    except ConfigError as exc:
        if other != path:
            raise ConfigError("ini", f"{said}: {exc.message}", "command line") from None
        how.warn(f"{said} skipped: {exc.message}")
        return None
    origin = how.origin(other)
    brought = [replace(e, origin=origin) for e in brought]
    return how.logic(brought, origin)


#: The other formats uWSGI reads by a file's extension (``include``, ``inherit``).
_NOT_INI = (".xml", ".yml", ".yaml", ".json", ".js", ".py")
