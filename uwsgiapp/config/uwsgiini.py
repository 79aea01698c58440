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
  ``set-placeholder = name=value``), else the environment variable ``UWSGI_NAME``.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from uwsgiapp.config.configload import IMPLIED_BY, Layer, Raw, parse_bool, spec_for
from uwsgiapp.config.iniexpand import (
    MAGIC_RE,
    ExpansionError,
    Placeholders,
    expand,
)
from uwsgiapp.config.inifile import parse_ini, read_section, split_ini_arg
from uwsgiapp.config.inikeys import (
    ADVICE,
    ALWAYS_ON,
    APP_KEYS,
    FIXED_VALUES,
    HTTP_KEYS,
    MAX_BUFFER,
    MULTI,
    PYTHON_PLUGINS,
    SIMPLE_KEYS,
    USED_KEYS,
)
from uwsgiapp.config.inilogic import IniEntry, apply_logic
from uwsgiapp.config.model import ConfigError

__all__ = [
    "HTTP_KEYS",
    "SIMPLE_KEYS",
    "IniResult",
    "check_http_only",
    "ini_layer",
    "parse_ini",
    "split_ini_arg",
]


def _truthy(value: str) -> bool | None:
    """A boolean key's value; empty (``master =``) means true, as a bare key does."""
    return True if not value.strip() else parse_bool(value)


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
) -> IniResult:
    """Read ``--ini`` ``arg`` (``file.ini`` or ``file.ini:section``) into an :class:`IniResult`.

    Raises :class:`ConfigError` (option ``ini``) when the file or section cannot be read or a
    key cannot be mapped (e.g. a malformed ``env`` or ``mount``). ``warnings``, when given, is
    the list the result's warnings are appended to as they are found, so that a caller still
    has them when an error follows.
    """
    path, section = split_ini_arg(arg)
    entries = read_section(path, section)
    result = IniResult(warnings=[] if warnings is None else warnings)
    where = f"ini {path} [{section}]"
    warn = _Warner(where, result.warnings)
    entries = apply_logic(
        entries,
        expand_test=lambda raw: expand(
            raw, path=path, section=section, placeholders={}, environ=environ, warn=warn
        ),
        environ=os.environ if environ is None else environ,
        warn=warn,
        where=where,
    )
    placeholders = Placeholders(
        _placeholder_definitions(entries, where),
        lambda raw, places: expand(
            raw, path=path, section=section, placeholders=places, environ=environ, warn=warn
        ),
    )
    referenced = {m.group(1) for e in entries for m in MAGIC_RE.finditer(e.value) if m.group(1)}
    mapper = _Mapper(result, where, warn)
    commented: set[str] = set()  # keys already warned of (one warning per key)
    for entry in entries:
        key = entry.key
        if key in ("set-placeholder", "set-ph"):
            continue  # expanded where a %(...) uses it
        if key not in USED_KEYS:
            # Not expanded: uWSGI features we do not have may hold their own %(...) syntax
            # (log-format's %(status)…), which must not be mistaken for placeholders.
            if key not in referenced or key in ADVICE:  # else a placeholder (project = shop)
                _unsupported(entry, result, where, warn)
            continue
        source = f"{where} {key} (line {entry.line})"
        raw = _inline_comment(key, entry.value, entry.line, warn, commented)
        try:
            value = placeholders.expand_value(raw)
        except ExpansionError as exc:
            raise ConfigError("ini", f"the value of {key!r} {exc}", source) from None
        mapper.apply(key, value, entry.line, source)
    _map_app(mapper.app, result.layer, where, warn)
    _check_strict(entries, result, where)
    if "access_log" not in result.layer:  # uWSGI logs every request unless told not to
        result.layer["access_log"] = Raw("uwsgi", f"{where} (uWSGI's default; disable-logging)")
    return result


def _check_strict(entries: list[IniEntry], result: IniResult, where: str) -> None:
    """uWSGI's ``strict`` refuses to start on an option it does not know; so does this, on
    the keys it would ignore (a mule or cron job that silently never runs)."""
    strict = [e for e in entries if e.key == "strict"]
    if strict and _truthy(strict[-1].value) and result.unsupported:
        raise ConfigError(
            "ini",
            f"'strict' is set and uwsgiapp does not support {', '.join(result.unsupported)}: "
            "remove them, or 'strict', to start with them ignored",
            f"{where} strict (line {strict[-1].line})",
        )


def _unsupported(
    entry: IniEntry, result: IniResult, where: str, warn: Callable[[str], None]
) -> None:
    """A key uwsgiapp does not take: said once (with advice where there is some); an HTTP
    key is also kept for the refusal of an HTTP-only ini."""
    advice = ADVICE.get(entry.key, "")
    warn(f"'{entry.key}' is not supported, ignored" + (f" ({advice})" if advice else ""))
    result.unsupported.append(f"{entry.key} (line {entry.line})")
    if entry.key in HTTP_KEYS:
        result.http.append((entry.key, entry.value, f"{where} {entry.key} (line {entry.line})"))


_COMMENT = re.compile(r"\s+[#;].*$")


def _numeric_or_flag(key: str) -> bool:
    """Whether uWSGI reads ``key``'s value as a number (atoi) or a flag: then text after the
    number or word changes nothing in uWSGI."""
    if key in SIMPLE_KEYS:
        spec = spec_for(SIMPLE_KEYS[key])
        return spec is not None and (spec.kind in ("int", "float", "bool") or spec.octal)
    return key in ALWAYS_ON or key in ("disable-logging", "L")


def _inline_comment(
    key: str, raw: str, line: int, warn: Callable[[str], None], warned: set[str]
) -> str:
    """``raw`` without what looks like a trailing comment (``20 # respawn``) where uWSGI
    would ignore it anyway; elsewhere ``raw`` as is (uWSGI keeps it). Either is said once per
    key (``warned`` holds the keys said)."""
    comment = _COMMENT.search(raw)
    if comment is None:
        return raw
    first = key not in warned
    warned.add(key)
    if _numeric_or_flag(key):
        kept = raw[: comment.start()]
        if first:
            warn(f"'{key} = {raw}' (line {line}): uWSGI has no inline comments: read as {kept}")
        return kept
    if first:
        warn(
            f"'{key} = {raw}' (line {line}) contains what looks like a comment, but uWSGI has"
            " no inline comments: the whole text is the value, as in uWSGI; put the comment on"
            " a line of its own"
        )
    return raw


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


def _placeholder_definitions(entries: list[IniEntry], where: str) -> dict[str, tuple[str, str]]:
    """Every key's last raw value (uWSGI lets any key be referenced as %(key)), plus the
    ``set-placeholder`` entries: name → (raw value, where it is defined)."""
    raw: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if entry.key in ("set-placeholder", "set-ph"):
            name, eq, value = entry.value.partition("=")
            if eq:
                defined_at = f"{where} {entry.key} {name.strip()} (line {entry.line})"
                raw[name.strip()] = (value.strip(), defined_at)
        else:
            raw[entry.key] = (entry.value, f"{where} {entry.key} (line {entry.line})")
    return raw


class _Mapper:
    """Turns the used keys' expanded values into the config layer."""

    def __init__(self, result: IniResult, where: str, warn: Callable[[str], None]) -> None:
        self.result = result
        self.where = where
        self.warn = warn
        self.app: dict[str, tuple[str, int, str]] = {}  # module / wsgi-file / callable / mount
        self._multi: dict[str, list[str]] = {}

    def apply(self, key: str, value: str, line: int, source: str) -> None:
        layer = self.result.layer
        if key in SIMPLE_KEYS:
            name = SIMPLE_KEYS[key]
            if name == "chmod_socket" and not value.strip():
                value = "666"  # a bare chmod-socket means 666 in uWSGI
            if name == "buffer_size" and value.strip().isdigit() and int(value) > MAX_BUFFER:
                self.warn(
                    f"'{key} = {value}' is read as {MAX_BUFFER} (the most; uWSGI caps it too)"
                )
                value = str(MAX_BUFFER)
            if name == "error_log_file":  # uWSGI's logto takes the request lines and stderr too
                layer["access_log_file"] = Raw(value, f"{IMPLIED_BY}{source}")
                layer["capture_output"] = Raw(True, f"{IMPLIED_BY}{source}")
            if name in MULTI:
                self._multi.setdefault(name, []).append(value)
                layer[name] = Raw(list(self._multi[name]), source)
            else:
                layer[name] = Raw(value, source)
        elif key in APP_KEYS:
            canonical = {"wsgi": "module", "w": "module", "file": "wsgi-file"}.get(key, key)
            self.app[canonical] = (value, line, key)
        elif key in ("disable-logging", "L"):
            flag = _truthy(value)
            if flag is None:
                raise ConfigError("access_log", f"expected a boolean, got {value!r}", source)
            layer["access_log"] = Raw("off" if flag else "uwsgi", source)
        elif key in FIXED_VALUES:
            expected, why = FIXED_VALUES[key]
            if value.strip().lower() != expected:
                self.warn(f"'{key} = {value}' cannot be honoured: {why}")
        elif key in ALWAYS_ON:
            if _truthy(value) is False:
                self.warn(f"'{key} = {value}' cannot be honoured: {ALWAYS_ON[key]}")
        else:  # plugins
            others = [p for p in re.split(r"[,\s]+", value) if p and p not in PYTHON_PLUGINS]
            if others:
                self.warn(f"plugins {', '.join(others)} are not supported, ignored")


def _with_callable(spec: str, callable_name: str) -> str:
    return spec if ":" in spec else f"{spec}:{callable_name}"


def _as_path(file: str) -> str:
    """A wsgi-file value as a path the app spec cannot read as a module (``site.wsgi`` would
    be module ``site``'s submodule ``wsgi``)."""
    return file if "/" in file or file.endswith(".py") else f"./{file}"


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
        if "wsgi-file" in app:
            (module, m_line, m_key), (file, f_line, f_key) = app["module"], app["wsgi-file"]
            warn(
                f"both '{m_key} = {module}' (line {m_line}) and '{f_key} = {file}' (line"
                f" {f_line}) are given: uwsgiapp serves one app, the module's, and ignores"
                f" {f_key} (uWSGI too loads the module first and skips the file's app, whose"
                " mount point is taken); remove the one you do not mean"
            )
    elif "wsgi-file" in app:
        spec, keys = _as_path(app["wsgi-file"][0]), ["wsgi-file"]
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
