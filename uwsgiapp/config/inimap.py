"""Turning the values of the uWSGI ini keys we read into config options (the keys are
:mod:`uwsgiapp.config.inikeys`'s; reading and expanding them is
:mod:`uwsgiapp.config.uwsgiini`'s)."""

from __future__ import annotations

import glob
import re
from collections.abc import Callable

from uwsgiapp.config.configload import IMPLIED_BY, Layer, Raw, option_specs, parse_bool, spec_for
from uwsgiapp.config.inikeys import (
    ALWAYS_ON,
    APP_KEYS,
    DAEMONIZE_KEYS,
    FIXED_VALUES,
    LOGGER_KEYS,
    MAX_BUFFER,
    MODE_KEYS,
    MULTI,
    PYTHON_PLUGINS,
    SIMPLE_KEYS,
    USED_KEYS,
)
from uwsgiapp.config.model import LOG_FILTERS, ConfigError

__all__ = ["OWN_KEYS", "Mapper", "map_app", "truthy"]

#: uwsgiapp's own option names that uWSGI has not (``uwsgi-allow-from``, ``graceful-timeout``
#: …): an ini may set them, for what uWSGI has no key.
OWN_KEYS = frozenset(spec.option for spec in option_specs()) - USED_KEYS


def _blank_or_comment(value: str) -> bool:
    """Whether an ``env`` value is a blank or comment line, which uWSGI hands to putenv (it
    sets nothing) and starts all the same; any other value without ``=`` stays an error."""
    text = value.strip()
    return not text or text[0] in "#;"


def truthy(value: str) -> bool | None:
    """A boolean key's value; empty (``master =``) means true, as a bare key does."""
    return True if not value.strip() else parse_bool(value)


class Mapper:
    """Turns the used keys' expanded values into the config layer."""

    def __init__(self, layer: Layer, where: str, warn: Callable[[str], None]) -> None:
        self.layer = layer
        self.where = where
        self.warn = warn
        self.app: dict[str, tuple[str, int, str]] = {}  # module / wsgi-file / callable / mount
        self._multi: dict[str, list[str]] = {}
        self._explicit: set[str] = set()  # options a key of the section set (not implied)
        self._shared: list[str] = []  # shared-socket's addresses, which a socket's =N names
        #: log-format's template, read unexpanded (its %(status)… are uWSGI's fields).
        self.log_format: Raw | None = None

    def apply(self, key: str, value: str, line: int, source: str) -> bool:
        """Map one key; False if its value is a form uwsgiapp does not take (then it is
        reported as unsupported)."""
        layer = self.layer
        if SIMPLE_KEYS.get(key) == "env" and _blank_or_comment(value):
            self.warn(
                f"'{key} = {value}' (line {line}) sets nothing: ignored, as uWSGI's putenv"
                " ignores it (a for-readline over a .env file reads its blank and comment lines)"
            )
        elif key in SIMPLE_KEYS:
            self._simple(key, SIMPLE_KEYS[key], value, source)
        elif key in LOGGER_KEYS:
            # logger = file:PATH / req-logger = file:PATH (unnamed); other loggers are not ours
            path = self._log_file(key, value) if value.startswith("file:") else ""
            if not path:
                return False
            self._simple(key, LOGGER_KEYS[key], path, source)
        elif key in OWN_KEYS:
            self._own(key, value, source)
        elif key in APP_KEYS:
            canonical = {"wsgi": "module", "w": "module", "file": "wsgi-file"}.get(key, key)
            if canonical == "mount" and "mount" in self.app:
                _one_mount(self.app["mount"], (value, line, key), source)
            self.app[canonical] = (value, line, key)
        elif key == "shared-socket":  # bound only where a socket = =N names it, as in uWSGI
            self._shared.append(value.strip())
        elif key in ("disable-logging", "L"):
            flag = truthy(value)
            if flag is None:
                raise ConfigError("access_log", f"expected a boolean, got {value!r}", source)
            layer["access_log"] = Raw("off" if flag else "uwsgi", source)
        elif key in FIXED_VALUES:
            expected, why = FIXED_VALUES[key]
            if value.strip().lower() != expected:  # every request would fail: no start
                raise ConfigError("ini", f"'{key} = {value}' cannot be honoured: {why}", source)
        elif key in ALWAYS_ON:
            if truthy(value) is False:
                self.warn(f"'{key} = {value}' cannot be honoured: {ALWAYS_ON[key]}")
        elif key in DAEMONIZE_KEYS:
            self._daemonize(key, value, source)
        elif key in MODE_KEYS:
            pass  # strict: true refuses unsupported keys (uwsgiini), false is what we do
        else:  # plugins
            others = [p for p in re.split(r"[,\s]+", value) if p and p not in PYTHON_PLUGINS]
            if others:
                self.warn(f"plugins {', '.join(others)} are not supported, ignored")
        return True

    def _daemonize(self, key: str, value: str, source: str) -> None:
        """uWSGI's ``daemonize = FILE`` detaches and logs to FILE: we stay in the foreground,
        but log there (unless a ``logto`` of the section names the log file)."""
        logto = "error_log_file" in self._explicit
        target = "" if logto or not value.strip() else value.strip()
        self.warn(
            f"'{key} = {value}': uwsgiapp does not daemonize, it stays in the foreground (run it"
            " under systemd, Docker or another supervisor)"
            + (f"; {target} is its log file, as in uWSGI" if target else "")
            + ("; the log file is logto's" if logto else "")
        )
        if target:
            self._simple(key, "error_log_file", target, source)

    def _pythonpath(self, key: str, value: str) -> list[str]:
        """uWSGI expands a glob in ``pythonpath`` (sorted; no match: the pattern as is)."""
        if not glob.has_magic(value):
            return [value]
        chdir = self.layer.get("chdir")
        root = str(chdir.value) if chdir is not None and not value.startswith("/") else None
        found = sorted(glob.glob(value, root_dir=root))
        if not found:
            self.warn(f"'{key} = {value}' matches nothing: the pattern is used as it is")
        return found or [value]

    def _log_file(self, key: str, value: str) -> str:
        """The file of uWSGI's ``file:PATH`` or ``file:logfile=PATH,maxsize=N,...`` logger
        ('' if there is none)."""
        arg = value[5:].strip()
        if "=" not in arg:
            return arg
        options = dict(item.partition("=")[::2] for item in arg.split(","))
        others = sorted(k.strip() for k in options if k.strip() != "logfile")
        if others:
            self.warn(
                f"'{key} = {value}': {', '.join(others)} not honoured (uwsgiapp does not rotate "
                "its logs: logrotate, then SIGUSR1 to reopen them)"
            )
        return options.get("logfile", "").strip()

    def _simple(self, key: str, name: str, value: str, source: str) -> None:
        layer = self.layer
        spec = spec_for(name)
        if spec is not None and spec.kind == "bool" and not value.strip():
            value = "true"  # 'lazy-apps =': a flag given no value is set, as uWSGI reads it
        if name == "chmod_socket" and not value.strip():
            value = "666"  # a bare chmod-socket means 666 in uWSGI
        if name == "buffer_size" and value.strip().isdigit() and int(value) > MAX_BUFFER:
            self.warn(f"'{key} = {value}' is read as {MAX_BUFFER} (the most; uWSGI caps it too)")
            value = str(MAX_BUFFER)
        if name == "socket" and value.strip().startswith("="):
            value = self._shared_socket(key, value, source)
        if name == "pythonpath":
            for path in self._pythonpath(key, value):
                self._set(name, path, source, multi=True)
            return
        if name == "error_log_file":  # uWSGI's logto takes stderr too, and the request lines
            # unless a key of the section said otherwise (req-logger, access-log-file …)
            for implied, what in (("access_log_file", value), ("capture_output", True)):
                if implied not in self._explicit:
                    layer[implied] = Raw(what, f"{IMPLIED_BY}{source}")
        self._set(name, value, source, multi=name in MULTI)

    def _shared_socket(self, key: str, value: str, source: str) -> str:
        """uWSGI's ``socket = =N``: the Nth ``shared-socket`` (from 0) before it, which uWSGI
        binds as root before the drop (a port under 1024); here every socket is bound so."""
        index = value.strip()[1:].strip()
        if not index.isdigit() or int(index) >= len(self._shared):
            defined = f"{len(self._shared)} are" if len(self._shared) != 1 else "1 is"
            raise ConfigError(
                "ini",
                f"'{key} = {value}' names shared-socket {index or '?'}: {defined} defined before "
                "it (uWSGI's =N is the Nth shared-socket, from 0)",
                source,
            )
        return self._shared[int(index)]

    def _own(self, key: str, value: str, source: str) -> None:
        """One of uwsgiapp's own options, read as uWSGI reads its keys: a flag is true when
        empty, a list accumulates over repeated keys."""
        spec = spec_for(key)
        assert spec is not None
        if spec.kind == "bool":
            flag = truthy(value)
            if flag is None:
                raise ConfigError(spec.name, f"expected a boolean, got {value!r}", source)
            self._set(spec.name, flag, source)
        else:
            self._set(spec.name, value, source, multi=spec.kind == "list")

    def _set(self, name: str, value: object, source: str, *, multi: bool = False) -> None:
        self._explicit.add(name)
        if multi:
            self._multi.setdefault(name, []).append(str(value))
            value = list(self._multi[name])
        self.layer[name] = Raw(value, source)


def _one_mount(first: tuple[str, int, str], then: tuple[str, int, str], source: str) -> None:
    """uWSGI mounts an app on each ``mount`` line; uwsgiapp serves one app: a second line
    mounting something else is refused (taking the last dropped a whole app, its URLs going
    to the other one)."""
    if first[0].strip() == then[0].strip():
        return
    raise ConfigError(
        "mount",
        f"'mount = {first[0]}' (line {first[1]}) and 'mount = {then[0]}' (line {then[1]}):"
        " uwsgiapp serves one app at one mount point, uWSGI would mount both. Keep one mount"
        " line here and serve the other app with another uwsgiapp (its own socket, an nginx"
        " location per mount point)",
        source,
    )


def _with_callable(spec: str, callable_name: str) -> str:
    return spec if ":" in spec else f"{spec}:{callable_name}"


def _as_path(file: str) -> str:
    """A wsgi-file value as a path the app spec cannot read as a module (``site.wsgi`` would
    be module ``site``'s submodule ``wsgi``)."""
    return file if "/" in file or file.endswith(".py") else f"./{file}"


def map_app(
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
                f" {f_key} (uWSGI loads the module first and skips the file's app, whose"
                " mount point is taken, but serves the file's where the module does not"
                " import: not here); remove the one you do not mean"
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


def relative_to_chdir(layer: Layer, where: str, warn: Callable[[str], None]) -> None:
    """Say where a relative pidfile or log file goes beside a ``chdir``: uwsgiapp takes it from
    that directory (gunicorn's rule), uWSGI from the one it started in. An ini written for
    uWSGI moved them silently (a ``kill -HUP $(cat run/app.pid)`` or a logrotate rule then
    missed them), or stopped the start where the directory is not there."""
    chdir = layer.get("chdir")
    if chdir is None:
        return
    said: set[str] = set()  # logto's file is the access log's too: said once
    for name in ("pidfile", "error_log_file", "access_log_file"):
        raw = layer.get(name)
        if raw is None or not isinstance(raw.value, str) or raw.value in said:
            continue
        if raw.value and not raw.value.startswith(("/", "-")):
            said.add(raw.value)
            warn(
                f"{raw.source.removeprefix(where).strip()}: the relative path {raw.value!r} is "
                f"taken from chdir ({chdir.value}), where uWSGI takes it from the directory it "
                "starts in: make it absolute to keep it where it was"
            )


def access_log_layer(layer: Layer, where: str, template: Raw | None) -> None:
    """The access log an ini asks for: on unless ``disable-logging`` (but for the requests its
    ``log-4xx``… name), as uWSGI's; its lines ``log-format``'s ``template``, if any."""
    if "access_log" not in layer:  # uWSGI logs every request unless told not to
        layer["access_log"] = Raw("uwsgi", f"{where} (uWSGI's default; disable-logging)")
    request_log_filters(layer)
    if template is not None and layer["access_log"].value == "uwsgi":
        layer["access_log"] = template  # whatever its line beside disable-logging


def request_log_filters(layer: Layer) -> None:
    """uWSGI's ``log-4xx``, ``log-5xx``, ``log-slow``, ``log-big`` name the requests logged
    in spite of ``disable-logging``: with it, the access log is on for those alone; without
    it every request is logged, and the keys change nothing."""
    named = [name for name in LOG_FILTERS if name in layer]
    access = layer["access_log"]
    if any(map(_filters, (layer[name].value for name in named))) and access.value == "off":
        keys = ", ".join(name.replace("_", "-") for name in named)
        layer["access_log"] = Raw("uwsgi", f"{access.source} with {keys}")
    elif named:
        for name in named:
            del layer[name]


def _filters(value: object) -> bool:
    """A filter key's value names some requests: anything but false or 0 (a bad one is then
    named by the option's validation; an empty one is true, as uWSGI reads a bare key)."""
    text = str(value).strip()
    return truthy(text) is not False and text != "0"
