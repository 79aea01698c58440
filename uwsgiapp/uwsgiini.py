"""Read a uWSGI ini file (``--ini app.ini`` or ``--ini app.ini:section``) as a config layer.

The common keys map onto :class:`~uwsgiapp.config.Config` options; keys whose behaviour is ours
anyway (``master``, ``vacuum``…) are accepted; every other key is reported once as a warning,
never dropped silently. Values are expanded the way uWSGI does for the common cases:

* ``$(NAME)`` — the environment variable NAME (empty, with a warning, when unset);
* ``%d`` directory of the ini file (absolute, with a trailing slash), ``%p`` its absolute path,
  ``%s`` its file name, ``%n`` the name without extension, ``%e`` the extension, ``%c`` the name
  of the directory holding it, ``%x`` the section, ``%h`` hostname, ``%k`` CPU count,
  ``%t`` unix time, ``%%`` a literal ``%``;
* ``%(name)`` — the value of another key of the section (uWSGI "placeholders", including
  ``set-placeholder = name=value``), else the environment variable ``UWSGI_NAME``.

Repeated keys are kept (``socket``, ``pythonpath``, ``env`` may appear many times); for single
valued options the last one wins, as in uWSGI.

Expansion is bounded: a value may not grow past :data:`MAX_EXPANDED_SIZE` characters and
placeholders may nest :data:`MAX_PLACEHOLDER_DEPTH` deep; a placeholder that refers back to
itself, or a value past either bound (``x = %(x)%(x)`` would double forever), is a
:class:`ConfigError` naming the key and its line, never an endless or exponential expansion.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from uwsgiapp.config import ConfigError
from uwsgiapp.configload import Layer, Raw, parse_bool

__all__ = [
    "DEFAULT_SECTION",
    "MAX_EXPANDED_SIZE",
    "MAX_PLACEHOLDER_DEPTH",
    "SIMPLE_KEYS",
    "ExpansionError",
    "IniResult",
    "expand",
    "ini_layer",
    "parse_ini",
    "split_ini_arg",
]

DEFAULT_SECTION = "uwsgi"
#: The longest a value may become once expanded (characters); longer raw values are kept as is.
MAX_EXPANDED_SIZE: Final = 64 * 1024
#: How deep ``%(a)`` → ``%(b)`` → … may nest.
MAX_PLACEHOLDER_DEPTH: Final = 16

#: uWSGI key → Config field, for keys whose value carries over unchanged.
SIMPLE_KEYS: Mapping[str, str] = {
    "chdir": "chdir",
    "pythonpath": "pythonpath",
    "python-path": "pythonpath",
    "pp": "pythonpath",
    "socket": "socket",
    "uwsgi-socket": "socket",
    "s": "socket",
    "chmod-socket": "chmod_socket",
    "chmod": "chmod_socket",
    "processes": "workers",
    "workers": "workers",
    "p": "workers",
    "harakiri": "harakiri",
    "max-requests": "max_requests",
    "max-requests-delta": "max_requests_jitter",
    "reload-on-rss": "reload_on_rss",
    "buffer-size": "buffer_size",
    "b": "buffer_size",
    "limit-post": "limit_post",
    "listen": "listen",
    "l": "listen",
    "lazy-apps": "lazy_apps",
    "lazy": "lazy_apps",
    "uid": "uid",
    "gid": "gid",
    "pidfile": "pidfile",
    "socket-timeout": "socket_timeout",
    "z": "socket_timeout",
    "logto": "error_log_file",
}
#: Config fields that accept several values (repeated keys accumulate).
_MULTI = frozenset({"pythonpath", "socket"})
#: Keys that build the app spec, the mount, the environment, or define placeholders.
_APP_KEYS = frozenset({"module", "wsgi", "w", "wsgi-file", "file", "callable", "mount"})
_SPECIAL_KEYS = _APP_KEYS | {"env", "set-placeholder", "set-ph", "disable-logging", "L"}
#: Boolean keys whose true value is what uwsgiapp always does: accepted without a word.
#: A false value cannot be honoured and gets a warning (the text says what happens instead).
_ALWAYS_ON: Mapping[str, str] = {
    "master": "uwsgiapp always runs a master process",
    "vacuum": "uwsgiapp always removes the unix sockets and pidfile it created",
    "die-on-term": "SIGTERM always stops gracefully in uwsgiapp",
    "manage-script-name": "uwsgiapp always strips the mount point into SCRIPT_NAME",
    "need-app": "uwsgiapp always refuses to start without an app",
    "enable-threads": "threads started by the app always run in uwsgiapp",
    "single-interpreter": "uwsgiapp always has one interpreter per process",
    "strict": "uwsgiapp reports every unknown key",
    "thunder-lock": "uwsgiapp serializes accept() its own way",
}
#: Plugins that mean "Python WSGI": loading them is implicit.
_PYTHON_PLUGINS = frozenset({"python", "python3", "python2", "python3.x"})
#: Advice for unsupported keys users commonly have.
_ADVICE: Mapping[str, str] = {
    "http-socket": "uwsgiapp speaks only the uwsgi protocol: put nginx (uwsgi_pass) in front, "
    "or use 'uwsgiapp dev' for local HTTP",
    "http": "uwsgiapp speaks only the uwsgi protocol: put nginx (uwsgi_pass) in front",
    "https": "terminate TLS in nginx",
    "threads": "workers handle one request at a time; raise processes/workers instead",
    "home": "run uwsgiapp from that virtualenv instead",
    "virtualenv": "run uwsgiapp from that virtualenv instead",
    "venv": "run uwsgiapp from that virtualenv instead",
    "daemonize": "run uwsgiapp under systemd, Docker or another supervisor",
    "stats": "not available",
    "py-autoreload": "use 'uwsgiapp dev' for reloading on code changes",
    "cheaper": "uwsgiapp runs a fixed number of workers (TTIN/TTOU signals change it)",
    "ini": "nested ini files are not read; merge them into one",
    "include": "nested ini files are not read; merge them into one",
}

_MAGIC = re.compile(r"%\(([^)]*)\)|%(.)")
_ENV_REF = re.compile(r"\$\(([^)]*)\)")


class ExpansionError(ValueError):
    """A value cannot be expanded within the bounds (too large, too deep, or circular)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IniEntry:
    """One ``key = value`` line of the chosen section (value not yet expanded)."""

    key: str
    value: str
    line: int


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


def _magic_table(path: str, section: str) -> dict[str, Callable[[], str]]:
    full = os.path.abspath(path)
    directory = os.path.dirname(full)
    name = os.path.basename(full)
    stem, ext = os.path.splitext(name)
    return {
        "d": lambda: directory.rstrip("/") + "/",
        "p": lambda: full,
        "s": lambda: name,
        "n": lambda: stem,
        "e": lambda: ext.lstrip("."),
        "c": lambda: os.path.basename(directory),
        "x": lambda: section,
        "h": socket.gethostname,
        "k": lambda: str(os.cpu_count() or 1),
        "t": lambda: str(int(time.time())),
        "%": lambda: "%",
    }


def expand(
    value: str,
    *,
    path: str,
    section: str = DEFAULT_SECTION,
    placeholders: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
    max_size: int = MAX_EXPANDED_SIZE,
) -> str:
    """Expand ``$(ENV)``, ``%x`` magic and ``%(placeholder)`` in one value (see module doc).

    Raises :class:`ExpansionError` as soon as the result would grow past ``max_size``
    characters (before building it).
    """
    env = os.environ if environ is None else environ
    places = placeholders or {}
    table = _magic_table(path, section)

    def note(message: str) -> None:
        if warn is not None:
            warn(message)

    def env_ref(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            note(f"$({name}) is not set in the environment; expanded to ''")
        return env.get(name, "")

    def magic(match: re.Match[str]) -> str:
        name, letter = match.group(1), match.group(2)
        if name is not None:
            if name in places:
                return places[name]
            env_name = "UWSGI_" + name.upper().replace("-", "_")
            if env_name in env:
                return env[env_name]
            note(f"placeholder %({name}) is not defined; expanded to ''")
            return ""
        if letter in table:
            return table[letter]()
        note(f"magic variable %{letter} is not supported; left as is")
        return match.group(0)

    def bounded(
        pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str], text: str
    ) -> str:
        grown = 0

        def checked(match: re.Match[str]) -> str:
            nonlocal grown
            replacement = replace(match)
            grown += len(replacement) - (match.end() - match.start())
            if grown > 0 and len(text) + grown > max_size:
                raise ExpansionError(f"expands to more than {max_size} characters")
            return replacement

        return pattern.sub(checked, text)

    return bounded(_MAGIC, magic, bounded(_ENV_REF, env_ref, value))


class _Placeholders(Mapping[str, str]):
    """The section's placeholders, each expanded on first use (then remembered).

    Expanding one may expand others; a name met again on the way is a loop, and the chain may
    not get deeper than :data:`MAX_PLACEHOLDER_DEPTH`: both raise :class:`ConfigError` naming
    the definition's key and line.
    """

    def __init__(
        self,
        raw: Mapping[str, tuple[str, str]],
        expand_one: Callable[[str, Mapping[str, str]], str],
    ) -> None:
        self._raw = raw  # name → (raw value, "key (line N)" of its definition)
        self._expand_one = expand_one
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
        if len(chain) >= MAX_PLACEHOLDER_DEPTH:
            raise ConfigError(
                "ini",
                f"placeholders nest more than {MAX_PLACEHOLDER_DEPTH} deep"
                f" ({' -> '.join(f'%({n})' for n in [*chain, name])})",
                defined_at,
            )
        chain.append(name)
        try:
            value = self._expand_one(raw, self)
        except ExpansionError as exc:
            raise ConfigError("ini", f"placeholder %({name}) {exc}", defined_at) from None
        finally:
            chain.pop()
        self._done[name] = value
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def _truthy(value: str) -> bool | None:
    """A boolean key's value; empty (``master =``) means true, as a bare key does."""
    return True if not value.strip() else parse_bool(value)


@dataclass(slots=True)
class IniResult:
    """What an ini section contributes: a config layer, environment settings, warnings."""

    layer: Layer = field(default_factory=dict)
    env: list[tuple[str, str, str]] = field(default_factory=list)
    """``(name, value, source)`` from ``env = NAME=VALUE`` keys."""
    warnings: list[str] = field(default_factory=list)


def ini_layer(arg: str, *, environ: Mapping[str, str] | None = None) -> IniResult:
    """Read ``--ini`` ``arg`` (``file.ini`` or ``file.ini:section``) into an :class:`IniResult`.

    Raises :class:`ConfigError` (option ``ini``) when the file or section cannot be read or a
    key cannot be mapped (e.g. a malformed ``env`` or ``mount``).
    """
    path, section = split_ini_arg(arg)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError("ini", f"cannot read {path}: {exc.strerror}", "command line") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("ini", f"{path} is not UTF-8 text: {exc}", "command line") from None
    entries, sections = parse_ini(text, section)
    if section not in sections:
        found = ", ".join(f"[{s}]" for s in sections) or "none"
        raise ConfigError(
            "ini", f"{path} has no [{section}] section (sections: {found})", "command line"
        )

    result = IniResult()
    warned: set[str] = set()
    where = f"ini {path} [{section}]"

    def warn(message: str) -> None:
        if message not in warned:
            warned.add(message)
            result.warnings.append(f"{where}: {message}")

    # Placeholders: every key's last raw value (uWSGI lets any key be referenced as %(key)),
    # plus explicit set-placeholder entries; expanded when first used, within the bounds.
    raw_placeholders: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if entry.key in ("set-placeholder", "set-ph"):
            name, eq, value = entry.value.partition("=")
            if eq:
                raw_placeholders[name.strip()] = (
                    value.strip(),
                    f"{where} {entry.key} {name.strip()} (line {entry.line})",
                )
        else:
            raw_placeholders[entry.key] = (entry.value, f"{where} {entry.key} (line {entry.line})")
    referenced = {m.group(1) for e in entries for m in _MAGIC.finditer(e.value) if m.group(1)}

    def expand_value(raw: str, places: Mapping[str, str]) -> str:
        return expand(
            raw, path=path, section=section, placeholders=places, environ=environ, warn=warn
        )

    placeholders = _Placeholders(raw_placeholders, expand_value)

    app: dict[str, tuple[str, int, str]] = {}  # module / wsgi-file / callable / mount
    layer = result.layer
    multi: dict[str, list[str]] = {}
    for entry in entries:
        key = entry.key
        source = f"{where} {key} (line {entry.line})"
        try:
            value = expand_value(entry.value, placeholders)
        except ExpansionError as exc:
            raise ConfigError("ini", f"the value of {key!r} {exc}", source) from None
        if key in SIMPLE_KEYS:
            name = SIMPLE_KEYS[key]
            if name == "chmod_socket" and not value.strip():
                value = "666"  # a bare chmod-socket means 666 in uWSGI
            if name in _MULTI:
                multi.setdefault(name, []).append(value)
                layer[name] = Raw(list(multi[name]), source)
            else:
                layer[name] = Raw(value, source)
        elif key in _APP_KEYS:
            canonical = {"wsgi": "module", "w": "module", "file": "wsgi-file"}.get(key, key)
            app[canonical] = (value, entry.line, key)
        elif key == "env":
            name, eq, env_value = value.partition("=")
            if not eq or not name.strip():
                raise ConfigError("ini", f"env must be NAME=VALUE, got {value!r}", source)
            result.env.append((name.strip(), env_value, source))
        elif key in ("disable-logging", "L"):
            flag = _truthy(value)
            if flag is None:
                raise ConfigError("access_log", f"expected a boolean, got {value!r}", source)
            layer["access_log"] = Raw("off" if flag else "uwsgi", source)
        elif key in ("set-placeholder", "set-ph") or (key in referenced and key not in _ALWAYS_ON):
            pass  # a placeholder definition, used by %(...) above
        elif key in _ALWAYS_ON:
            if _truthy(value) is False:
                warn(f"'{key} = {value}' cannot be honoured: {_ALWAYS_ON[key]}")
        elif key in ("plugins", "plugin", "plugins-list"):
            others = [p for p in re.split(r"[,\s]+", value) if p and p not in _PYTHON_PLUGINS]
            if others:
                warn(f"plugins {', '.join(others)} are not supported, ignored")
        else:
            advice = _ADVICE.get(key, "")
            warn(f"'{key}' is not supported, ignored" + (f" ({advice})" if advice else ""))

    _map_app(app, layer, where, warn)
    return result


def _with_callable(spec: str, callable_name: str) -> str:
    return spec if ":" in spec else f"{spec}:{callable_name}"


def _map_app(
    app: dict[str, tuple[str, int, str]],
    layer: Layer,
    where: str,
    warn: Callable[[str], None],
) -> None:
    """Turn module / wsgi-file / callable / mount into our ``app`` and ``mount`` options."""
    callable_name = app["callable"][0] if "callable" in app else "application"
    spec = ""
    keys: list[str] = []
    if "mount" in app:
        value, line, _ = app["mount"]
        point, eq, target = value.partition("=")
        if not eq or not point.startswith("/") or not target:
            raise ConfigError("mount", f"expected /point=app, got {value!r}", f"{where} mount")
        layer["mount"] = Raw(point.rstrip("/") or "", f"{where} mount (line {line})")
        spec, keys = target, ["mount"]
        other = app.get("module", app.get("wsgi-file", ("", 0, "")))[0]
        if other and _with_callable(other, callable_name) != _with_callable(target, callable_name):
            warn("both mount and module/wsgi-file given: uwsgiapp serves one app, the mounted one")
    elif "module" in app:
        spec, keys = app["module"][0], ["module"]
    elif "wsgi-file" in app:
        spec, keys = app["wsgi-file"][0], ["wsgi-file"]
    elif "callable" in app:
        warn("'callable' without module or wsgi-file is ignored")
        return
    else:
        return
    if ":" not in spec:
        spec = f"{spec}:{callable_name}"
        if "callable" in app:
            keys.append("callable")
    lines = [app[k][1] for k in keys]
    layer["app"] = Raw(spec, f"{where} {'+'.join(keys)} (line {', '.join(map(str, lines))})")
