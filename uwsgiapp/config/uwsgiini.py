"""Read a uWSGI ini file (``--ini app.ini`` or ``--ini app.ini:section``) as a config layer.

The common keys map onto :class:`~uwsgiapp.config.Config` options; keys whose behaviour is ours
anyway (``master``, ``vacuum``…) are accepted; every other key is reported once as a warning,
never dropped silently, with advice where there is some (the tables are in
:mod:`uwsgiapp.config.inikeys`; the value of such a key is not expanded: ``log-format`` holds
uWSGI's own ``%(status)``-style variables). The values of the keys we read are expanded as
uWSGI does:

* ``$(NAME)`` — the environment variable NAME (empty, with a warning, when unset);
* uWSGI's magic variables: ``%d`` directory of the ini file (absolute, with a trailing slash),
  ``%p`` its absolute path, ``%s`` its file name, ``%n`` the name without extension, ``%e`` the
  extension, ``%c`` the name of the directory holding it, ``%0``..``%9`` that directory's path
  components, ``%o`` the ``--ini`` argument as given, ``%x`` the section, ``%v`` the working
  directory, ``%h`` hostname, ``%k`` CPU count, ``%u``/``%g`` uid/gid, ``%U``/``%G`` user and
  group names, ``%t``/``%T`` unix time in seconds/microseconds, ``%%`` a literal ``%``
  (upper-case ``%D``, ``%P``… are the lower-case ones: there are no templates here);
* ``%(name)`` — the value of another key of the section (uWSGI "placeholders", including
  ``set-placeholder = name=value``; a repeated key's first value, as in uWSGI), else the
  environment variable ``UWSGI_NAME``;
* ``@(path)`` — the file's text without its last newline (a file that cannot be read is a
  :class:`ConfigError`, as it stops uWSGI).

A ``%(name)`` or ``%x`` with no value is a :class:`ConfigError` naming it (uWSGI would leave it
or make it empty, and the option would fail later on a value the user never wrote).

``if-env``/``if-exists``/… ``endif`` and ``for`` … ``endfor`` blocks are resolved first, as
uWSGI resolves them (:mod:`uwsgiapp.config.inilogic`).

uWSGI has no inline comments: in ``harakiri = 20 # respawn`` uWSGI reads the number (atoi)
and ignores the rest, and a flag is on unless its value is a false word, so for number and
flag keys the text from a blank followed by ``#`` or ``;`` is dropped, with a warning; a string
(``socket``, ``pidfile``, ``env``…) keeps it, as in uWSGI, with a warning naming the line.

Repeated keys are kept (``socket``, ``pythonpath``, ``env`` may appear many times; ``env`` fills
the ``env`` option, ``--env`` on the command line); for single valued options the last one
wins, as in uWSGI.

Expansion (:mod:`uwsgiapp.config.iniexpand`) is bounded in size and depth: a placeholder bomb
or loop is a :class:`ConfigError` naming the key and its line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import partial

from uwsgiapp.config.configload import Layer, Raw, spec_for
from uwsgiapp.config.iniexpand import (
    ExpansionError,
    Placeholders,
    expand,
)
from uwsgiapp.config.inifile import include_sections, parse_ini, read_section, split_ini_arg
from uwsgiapp.config.inikeys import (
    ADVICE,
    ADVICE_PREFIXES,
    ALWAYS_ON,
    GUARD_PREFIXES,
    HTTP_KEYS,
    IDIOMS,
    LOG_FORMAT_KEYS,
    ROUTE_IGNORED,
    SIMPLE_KEYS,
    USED_KEYS,
    VENV_KEYS,
)
from uwsgiapp.config.inilogic import IniEntry
from uwsgiapp.config.inimap import (
    OWN_KEYS,
    Mapper,
    access_log_layer,
    map_app,
    relative_to_chdir,
    truthy,
)
from uwsgiapp.config.initerms import Terms, quoted_rule, route_action, virtualenv_advice
from uwsgiapp.config.model import ConfigError
from uwsgiapp.logfields import FIELD, is_template

__all__ = [
    "HTTP_KEYS",
    "SIMPLE_KEYS",
    "IniResult",
    "check_http_only",
    "ini_layer",
    "parse_ini",
    "split_ini_arg",
]


@dataclass(slots=True)
class IniResult:
    """What an ini section contributes: a config layer, warnings, HTTP listeners asked for."""

    layer: Layer = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    http: list[tuple[str, str, str]] = field(default_factory=list)
    """``(key, value, source)`` of the HTTP listeners asked for (``http = :8000``…): with no
    uwsgi socket from any source, serving must refuse to start (see :func:`check_http_only`)."""
    unsupported: list[str] = field(default_factory=list)
    """``key (line N)`` of each key uwsgiapp does not take (fatal under ``strict``)."""
    environ_read: set[str] = field(default_factory=set)
    """The environment variables the section reads: ``$(NAME)``, and ``UWSGI_NAME`` for a
    ``%(name)`` (no ``UWSGI_*`` warning for those: they are read)."""


def check_http_only(result: IniResult, socket_source: str, default_source: str) -> None:
    """Raise :class:`ConfigError` when the ini asks for HTTP and no source (ini ``socket``,
    ``--socket``, ``UWSGIAPP_SOCKET``, ``--config``) names a uwsgi socket: uwsgiapp would
    otherwise start on the default uwsgi socket where the user expects an HTTP server."""
    if not result.http or socket_source != default_source:
        return
    # The error says what the warnings on the HTTP keys say: they are not shown beside it.
    said = tuple(f": '{key}' is not supported" for key, _, _ in result.http)
    result.warnings[:] = [w for w in result.warnings if not any(s in w for s in said)]
    key, value, source = result.http[0]
    raise ConfigError(
        "ini",
        f"'{key} = {value}' asks for an HTTP server, but uwsgiapp speaks only nginx's uwsgi"
        " protocol. Put nginx in front (uwsgi_pass) and give uwsgiapp a uwsgi socket"
        " ('socket = 127.0.0.1:3031' in the ini, or --socket), or run 'uwsgiapp dev APP'"
        " for local HTTP",
        source,
    )


def ini_layer(
    arg: str,
    *,
    environ: Mapping[str, str] | None = None,
    warnings: list[str] | None = None,
    fixed: MutableMapping[str, str] | None = None,
) -> IniResult:
    """Read ``--ini`` ``arg`` (``file.ini`` or ``file.ini:section``) into an :class:`IniResult`.

    Raises :class:`ConfigError` (option ``ini``) when the file or section cannot be read or a
    key cannot be mapped (e.g. a malformed ``env`` or ``mount``). ``warnings``, when given, is
    the list the result's warnings are appended to as they are found, so that a caller still
    has them when an error follows. ``fixed``: the start-time magic variables, kept between
    readings (:func:`~uwsgiapp.config.iniexpand.expand`).
    """
    path, section = split_ini_arg(arg)
    result = IniResult(warnings=[] if warnings is None else warnings)
    where = f"ini {path} [{section}]"
    warn = _Warner(where, result.warnings)
    terms = Terms(
        path,
        where,
        partial(expand, section=section, environ=environ, warn=warn, fixed=fixed),
        os.environ if environ is None else environ,
        warn,
        result.environ_read,
    )
    entries = terms.logic(read_section(path, section), "")
    # Taken branches only, their values expanded (uWSGI's `include = %d/base.ini`).
    places = terms.placeholders(entries)
    entries = include_sections(
        path, section, entries, warn, lambda v, f: places(f).expand_value(v), terms.logic
    )
    places_of, referenced = terms.placeholders(entries), terms.referenced
    mapper = Mapper(result.layer, where, warn)
    commented = _Comments(warn)
    for entry in entries:
        key = entry.key
        if key in ("set-placeholder", "set-ph") or IDIOMS.get(key) == " ".join(entry.value.split()):
            continue  # a placeholder is expanded where a %(...) uses it; an idiom is ours
        if key in LOG_FORMAT_KEYS:  # uWSGI's %(status)… fields are no placeholders
            mapper.log_format = _log_format(entry, places_of(entry.origin), where, warn)
            continue
        if key not in USED_KEYS and key not in OWN_KEYS:
            # Not expanded: uWSGI features we do not have may hold a %(...) of their own.
            _not_ours(entry, result, where, warn, key in referenced, places_of(entry.origin))
            continue
        source = f"{where} {key} ({entry.at})"
        raw = commented.strip(key, entry.value, entry.line)
        value = _expanded(key, raw, places_of(entry.origin), source)
        if not mapper.apply(key, value, entry.line, source):
            _unsupported(entry, result, where, warn)
    commented.finish()
    map_app(mapper.app, result.layer, where, warn)
    relative_to_chdir(result.layer, where, warn)
    _check_strict(entries, result, where)
    access_log_layer(result.layer, where, mapper.log_format)
    return result


#: A ``%(name)`` field that an even run of ``%`` (none included) precedes.
_FIELD_AFTER_EVEN = re.compile(r"(?<!%)((?:%%)*)" + FIELD.pattern)


def _log_format(
    entry: IniEntry, places: Placeholders, where: str, warn: Callable[[str], None]
) -> Raw | None:
    """``log-format``'s template, expanded as uWSGI expands it: ``$(VAR)``, ``%d``… and the
    placeholders the ini defines; any other ``%(name)`` is a field of the line. None (said)
    for a value without one: uWSGI would write it as it is on every line."""
    source = f"{where} {entry.key} ({entry.at})"
    # A %(name) after an odd run of % is the text %(name) already ("%%(status)" keeps it).
    raw = _FIELD_AFTER_EVEN.sub(
        lambda m: m[0] if m[2] in places else f"{m[1]}%%({m[2]})", entry.value.strip()
    )
    value = _expanded(entry.key, raw, places, source)
    if is_template(value):
        return Raw(value, source)
    warn(
        f"'{entry.key} = {value}' ({entry.at}) has no %(name) field: ignored (uWSGI writes it "
        "as it is for every request)"
    )
    return None


def _expanded(key: str, raw: str, places: Placeholders, source: str) -> str:
    """``raw`` (the value of ``key``) with its placeholders and variables expanded; a bad
    expansion, or one an unset variable leaves empty, is a :class:`ConfigError`."""
    try:
        value = places.expand_value(raw)
    except ExpansionError as exc:
        raise ConfigError("ini", f"the value of {key!r} {exc}", source) from None
    if value.strip() or key in _EMPTY_IS_NOTHING:
        return value
    used = places.env_names(raw)  # its own $(VAR)s, and those of the placeholders it uses
    if used:
        # An unset $(APP_USER): uid = '' kept root, chmod-socket = '' (a bare key) made the
        # socket 0666, processes = '' is uWSGI's 0: it starts with no worker, serving nothing.
        names = ", ".join(f"$({name})" for name in sorted(used))
        raise ConfigError(
            "ini",
            f"{key} = {raw.strip()} expands to nothing: {names} is not set in the "
            f"environment, or is empty{_EMPTY_IN_UWSGI.get(key, '')}: set it, or remove the key",
            source,
        )
    return value


#: What uWSGI does with an empty value, where it starts on it (what it makes of others varies).
_EMPTY_IN_UWSGI = dict.fromkeys(
    ("processes", "workers", "p"),
    " (uWSGI reads it as 0 and starts with no worker: it serves nothing)",
)
#: Keys whose empty value adds nothing (an unset $(VAR) there is only warned of).
_EMPTY_IS_NOTHING = frozenset({"env", "pythonpath", "python-path", "pp"})


def _check_strict(entries: list[IniEntry], result: IniResult, where: str) -> None:
    """uWSGI's ``strict`` refuses to start on an option it does not know; so does this, on
    the keys it would ignore (a mule or cron job that silently never runs)."""
    strict = [e for e in entries if e.key == "strict"]
    if strict and truthy(strict[-1].value) and result.unsupported:
        raise ConfigError(
            "ini",
            f"'strict' is set and uwsgiapp does not support {', '.join(result.unsupported)}: "
            "remove them, or 'strict', to start with them ignored",
            f"{where} strict (line {strict[-1].line})",
        )


def _unsupported(
    entry: IniEntry,
    result: IniResult,
    where: str,
    warn: Callable[[str], None],
    advice: str = "",
) -> None:
    """A key uwsgiapp does not take: said once (with advice where there is some, else the
    key it may be a typo of); an HTTP key is also kept for the refusal of an HTTP-only ini."""
    guard = _guard(entry.key)
    rule = quoted_rule(entry.key, entry.value)  # a basicauth password left out
    ignored = ROUTE_IGNORED.get(route_action(entry.key, entry.value)) if guard else None
    if guard and ignored is None:
        raise ConfigError(
            "ini", f"'{rule}' cannot be applied: {guard}", f"{where} {entry.key} ({entry.at})"
        )
    if ignored is not None:  # a rule that only logs, or does what uwsgiapp does anyway
        warn(f"'{rule}' ({entry.at}) is ignored: uwsgiapp has no internal router; {ignored}")
        result.unsupported.append(f"{entry.key} ({entry.at})")
        return
    advice = advice or _advice(entry.key)
    if not advice:  # a typo of a key we take (not of one we only advise about)
        import difflib  # only for a key that is not known

        near = difflib.get_close_matches(entry.key, _KNOWN, n=1, cutoff=0.8)
        advice = f"did you mean '{near[0]}'?" if near else ""
    warn(f"'{entry.key}' is not supported, ignored" + (f" ({advice})" if advice else ""))
    result.unsupported.append(f"{entry.key} ({entry.at})")
    if entry.key in HTTP_KEYS:
        result.http.append((entry.key, entry.value, f"{where} {entry.key} ({entry.at})"))


def _not_ours(
    entry: IniEntry,
    result: IniResult,
    where: str,
    warn: Callable[[str], None],
    referenced: bool,
    placeholders: Placeholders,
) -> None:
    """A key neither used nor ours: said to be unsupported, but a virtualenv only if it is
    not the one running (nothing is lost), and a placeholder (``project = shop``) not at all."""
    if entry.key in VENV_KEYS:
        advice = virtualenv_advice(entry.value, placeholders)
        if advice:
            _unsupported(entry, result, where, warn, advice)
    elif not referenced or _advice(entry.key) or _guard(entry.key):  # chroot: uWSGI's still
        _unsupported(entry, result, where, warn)


#: The keys a typo may be meant for.
_KNOWN = sorted(USED_KEYS | OWN_KEYS)


def _guard(key: str) -> str:
    """Why ``key``, a rule guarding the app that uwsgiapp cannot apply, stops start-up (or
    '')."""
    if key in _KNOWN:
        return ""
    return next((a for start, a in GUARD_PREFIXES.items() if key.startswith(start)), "")


def _advice(key: str) -> str:
    """What to do instead of ``key`` ('' when there is nothing to say)."""
    if key in ADVICE:
        return ADVICE[key]
    return next((a for start, a in ADVICE_PREFIXES.items() if key.startswith(start)), "")


_COMMENT = re.compile(r"\s+[#;].*$")


def _numeric_or_flag(key: str) -> bool:
    """Whether uWSGI reads ``key``'s value as a number (atoi) or a flag: then text after the
    number or word changes nothing in uWSGI."""
    if key in SIMPLE_KEYS or key in OWN_KEYS:
        spec = spec_for(SIMPLE_KEYS.get(key, key))
        return spec is not None and (spec.kind in ("int", "float", "bool") or spec.octal)
    return key in ALWAYS_ON or key in ("disable-logging", "L", "strict")


class _Comments:
    """uWSGI has no inline comments: what looks like one (``20 # respawn``) is dropped where
    uWSGI would ignore it anyway, after a number or a flag (said in one line for the section:
    a production ini with twenty wrote twenty lines); elsewhere the value is kept whole, as
    in uWSGI, and said once per key (it changes the value)."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self._warn = warn
        self._said: set[str] = set()
        self._dropped: dict[str, int] = {}

    def strip(self, key: str, raw: str, line: int) -> str:
        """``raw`` without a trailing comment uWSGI would ignore; else ``raw`` as is."""
        comment = _COMMENT.search(raw)
        if comment is None:
            return raw
        if _numeric_or_flag(key):
            self._dropped.setdefault(key, line)
            return raw[: comment.start()]
        if key not in self._said:
            self._said.add(key)
            self._warn(
                f"'{key} = {raw}' (line {line}) contains what looks like a comment, but uWSGI "
                "has no inline comments: the whole text is the value, as in uWSGI; put the "
                "comment on a line of its own"
            )
        return raw

    def finish(self) -> None:
        """Say the comments dropped after numbers and flags, in one line."""
        if self._dropped:
            keys = ", ".join(f"{key} (line {line})" for key, line in self._dropped.items())
            self._warn(
                "uWSGI has no inline comments: the text after the number or flag of "
                f"{keys} is ignored, as uWSGI ignores it; put comments on lines of their own"
            )


class _Warner:
    """Collects warnings, each once, prefixed with the file and section."""

    def __init__(self, where: str, warnings: list[str]) -> None:
        self._where = where
        self._warnings = warnings
        self._seen: set[str] = set()

    def __call__(self, message: str) -> None:
        if message not in self._seen:
            self._seen.add(message)
            self._warnings.append(f"{self._where}: {message}")
