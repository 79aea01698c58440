"""What one reading of a uWSGI ini tests and expands with: the if-logic of each file read
(the ``--ini`` one and what ``include`` brings), the placeholders in each file's terms (its
own magic variables, ``%d``...), and the keys and environment variables the section reads;
and how uWSGI reads some terms: a routing rule's action, a number (C's atoi)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from uwsgiapp.config.iniexpand import (
    ExpansionError,
    Placeholders,
    environ_names,
    placeholder_env,
    referenced_names,
)
from uwsgiapp.config.inikeys import ROUTE_PREFIXES, SIMPLE_KEYS
from uwsgiapp.config.inilogic import IniEntry, apply_logic

__all__ = [
    "Terms",
    "atoi_hint",
    "placeholder_definitions",
    "quoted_rule",
    "route_action",
    "variables",
    "virtualenv_advice",
]


@dataclass
class Terms:
    """What one reading tests and expands with: each file's own magic variables (``%d``...)
    for its entries; and the keys used as variables, seen before the if-logic consumes its
    tests (:func:`variables`), and the environment variables read (into ``environ_read``)."""

    path: str
    where: str
    expand_in: Callable[..., str]
    environ: Mapping[str, str]
    warn: Callable[[str], None]
    environ_read: set[str]
    referenced: set[str] = field(default_factory=set)

    def logic(self, entries: list[IniEntry], file: str) -> list[IniEntry]:
        """``entries`` (of ``file``; "": the ``--ini`` one) through the if-logic."""
        names, env_read = variables(entries)
        self.referenced.update(names)
        self.environ_read.update(env_read)
        test = partial(self.expand_in, path=file or self.path, placeholders={})
        return apply_logic(
            entries, expand_test=test, environ=self.environ, warn=self.warn, where=self.where
        )

    def placeholders(self, entries: list[IniEntry]) -> Callable[[str], Placeholders]:
        """The placeholders ``entries`` define, by the file that uses them: a key's value is
        expanded in its file's terms, a placeholder's definition in its own file's (as uWSGI
        expands each file as it reads it: ``base = %d`` in the main ini is its directory in
        an included one too; it was the included file's)."""
        definitions, made = placeholder_definitions(entries, self.where), {}
        origins = _definition_files(entries)

        def defined(name: str, raw: str, places: Mapping[str, str]) -> str:
            return self.expand_in(raw, path=origins.get(name) or self.path, placeholders=places)

        def of(file: str) -> Placeholders:
            if file not in made:
                expand_one = partial(_expand_places, self.expand_in, file or self.path)
                made[file] = Placeholders(definitions, expand_one, defined)
            return made[file]

        return of


def _expand_places(
    expand_in: Callable[..., str], file: str, raw: str, places: Mapping[str, str]
) -> str:
    return expand_in(raw, path=file, placeholders=places)


_OPT_TESTS = frozenset({"if-opt", "if-not-opt"})


def variables(entries: list[IniEntry]) -> tuple[set[str], set[str]]:
    """What the section's keys read: the keys used as variables (by ``%(name)``, an
    arithmetic's operands too, and the options ``if-opt`` tests: uWSGI takes any key as a
    variable, without a word); and the environment variables (``$(NAME)``, and ``UWSGI_NAME``
    for a ``%(name)`` no key of the section defines: the placeholder's fallback)."""
    used = {name for e in entries for name in referenced_names(e.value)}
    tested = {e.value.partition("=")[0].strip() for e in entries if e.key in _OPT_TESTS}
    defined = set(placeholder_definitions(entries, ""))
    read = {name for e in entries for name in environ_names(e.value)}
    return used | tested, read | {placeholder_env(n) for n in used - defined}


def _definition_files(entries: list[IniEntry]) -> dict[str, str]:
    """The file (an entry's ``origin``) of each definition :func:`placeholder_definitions`
    takes."""
    files: dict[str, str] = {}
    for entry in entries:
        name, eq, _ = entry.value.partition("=")
        if entry.key not in ("set-placeholder", "set-ph"):
            files.setdefault(entry.key, entry.origin)
        elif eq:
            files.setdefault(name.strip(), entry.origin)
    return files


def placeholder_definitions(entries: list[IniEntry], where: str) -> dict[str, tuple[str, str]]:
    """Every key's first raw value (uWSGI lets any key be referenced as %(key), and takes
    the first value a repeated key has, though the option takes the last), and the
    ``set-placeholder`` entries among them: name → (raw value, where it is defined)."""
    raw: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if entry.key in ("set-placeholder", "set-ph"):
            name, eq, value = entry.value.partition("=")
            if eq:
                defined_at = f"{where} {entry.key} {name.strip()} ({entry.at})"
                raw.setdefault(name.strip(), (value.strip(), defined_at))
        else:
            raw.setdefault(entry.key, (entry.value, f"{where} {entry.key} ({entry.at})"))
    return raw


def route_action(key: str, value: str) -> str:
    """The action of uWSGI routing rule ``key = value``, lower-case (``route = ^/health
    donotlog:`` → ``donotlog``): after the matcher, up to its colon, as uWSGI splits it
    (``route-run`` has no matcher); "" for another key, or a rule with none (``route-label``)."""
    if not key.startswith(ROUTE_PREFIXES):
        return ""
    text = value.strip()
    if not key.endswith("-run"):
        text = text.partition(" ")[2]
    name, colon, _ = text.strip().partition(":")
    return name.strip().lower() if colon else ""


#: A rule is quoted up to this many characters of its value.
RULE_QUOTED = 60
#: uWSGI's routing actions a quoted rule may name: any other word where the action would be
#: is left out (a matcher with a space and a colon put a token there).
_ACTIONS = frozenset(
    [
        "break",
        "continue",
        "last",
        "goto",
        "return",
        "redirect",
        "redirect-301",
        "redirect-302",
        "rewrite",
        "rewrite-last",
        "setvar",
        "addheader",
        "delheader",
        "remheader",
        "clearheaders",
        "disableheaders",
        "basicauth",
        "basicauth-next",
        "ldapauth",
        "htpasswd",
        "chdir",
        "log",
        "logvar",
        "donotlog",
        "send",
        "uwsgi",
        "http",
        "static",
        "file",
        "fixpathinfo",
        "setapp",
        "setscriptname",
        "setmethod",
        "seturi",
        "setremoteaddr",
        "setpathinfo",
        "setdocroot",
        "setuser",
        "sethome",
        "setfile",
        "setprocname",
        "cache",
        "cachestore",
        "cachevar",
        "cacheset",
        "memcached",
        "rpc",
        "harakiri",
        "signal",
        "spool",
        "flush",
        "serve_static",
        "xsendfile",
        "x-sendfile",
    ]
)
#: Keys whose values may carry credentials (an emperor's amqp://user:password@ URL).
_SECRET_PREFIXES = ("emperor", "vassals")


def quoted_rule(key: str, value: str) -> str:
    """``key = value`` for a message (its line is said beside it): a routing rule by its
    action alone (``route-if = … break:…``), as its matcher and arguments may hold a secret
    (a token compared with a header, a basicauth password, an Authorization header); another
    key's value with its control characters escaped, shortened when long."""
    text = value.strip()
    if key.startswith(ROUTE_PREFIXES):
        action = route_action(key, text)
        matcher = "" if key.endswith("-run") else "… "
        return f"{key} = {matcher}{action}:…" if action in _ACTIONS else f"{key} = …"
    if key.startswith(_SECRET_PREFIXES):
        return f"{key} = …"
    if len(text) > RULE_QUOTED:
        text = text[: RULE_QUOTED - 1] + "…"
    return f"{key} = " + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


#: What C's atoi reads of a value (its leading digits), and a decimal point after them.
_ATOI = re.compile(r"\s*([-+]?[0-9]*)(\.?)")
#: The options an ini's uWSGI keys fill: uWSGI reads their numbers with C's atoi.
_UWSGI_FILLED = frozenset(SIMPLE_KEYS.values())


def atoi_hint(option: str, value: object, source: str) -> str:
    """For a number an ini's uWSGI key gives that is not one (``threads = true``, ``harakiri =
    60s``), what uWSGI made of it (C's atoi: the leading digits, else 0) and what to write;
    "" for another source or option. The value is still refused: uWSGI's reading is a guess."""
    if not (source.startswith("ini ") and option in _UWSGI_FILLED and isinstance(value, str)):
        return ""
    leading, point = _ATOI.match(value).groups()  # type: ignore[union-attr]  # always matches
    if len(leading) > 10:
        return ""  # past C's int: atoi's result is undefined (and int() refuses 4300 digits)
    number = int(leading) if leading.lstrip("+-") else 0
    if abs(number) > 2**31 - 1:
        return ""
    if option == "threads" and number == 0:
        return (
            f"; uWSGI reads {value!r} as 0 (threads off): write 'threads = 1' for that, or a "
            "number of threads"
        )
    if option == "cheaper" and number == 0:  # `cheaper = true` (label-studio's ini)
        return f"; uWSGI reads {value!r} as 0 (cheaper off): write 'cheaper = 0', or remove it"
    # Not "write 1" for "1.5s": a fraction may be what was meant (and is taken here).
    write = number and not point
    return f"; uWSGI reads {value!r} as {number}" + (f": write {number}" if write else "")


def virtualenv_advice(raw: str, placeholders: Placeholders) -> str:
    """What to do about a virtualenv named in the ini: "" when this uwsgiapp runs from it."""
    try:
        path = placeholders.expand_value(raw).strip()
    except ExpansionError:
        path = raw.strip()
    if os.path.realpath(os.path.expanduser(path)) == os.path.realpath(sys.prefix):
        return ""
    return (
        f"this uwsgiapp runs from {sys.prefix}: the app imports the packages of {path} only "
        f"if uwsgiapp runs from it ({path}/bin/uwsgiapp)"
    )
