"""Turning the values of the uWSGI ini keys we read into config options (the keys are
:mod:`uwsgiapp.config.inikeys`'s; reading and expanding them is
:mod:`uwsgiapp.config.uwsgiini`'s)."""

from __future__ import annotations

import re
from collections.abc import Callable

from uwsgiapp.config.configload import IMPLIED_BY, Layer, Raw, option_specs, parse_bool
from uwsgiapp.config.inikeys import (
    ALWAYS_ON,
    APP_KEYS,
    FIXED_VALUES,
    LOGGER_KEYS,
    MAX_BUFFER,
    MULTI,
    PYTHON_PLUGINS,
    SIMPLE_KEYS,
    USED_KEYS,
)
from uwsgiapp.config.model import ConfigError

__all__ = ["OWN_KEYS", "Mapper", "map_app", "truthy"]

#: uwsgiapp's own option names that uWSGI has not (``uwsgi-allow-from``, ``graceful-timeout``
#: …): an ini may set them, for what uWSGI has no key.
OWN_KEYS = frozenset(spec.option for spec in option_specs()) - USED_KEYS


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
        self._request_log = False  # req-logger named the access log's file

    def apply(self, key: str, value: str, line: int, source: str) -> bool:
        """Map one key; False if its value is a form uwsgiapp does not take (then it is
        reported as unsupported)."""
        layer = self.layer
        if key in SIMPLE_KEYS:
            self._simple(key, SIMPLE_KEYS[key], value, source)
        elif key in LOGGER_KEYS:
            # logger = file:PATH / req-logger = file:PATH (unnamed); other loggers are not ours
            if not value.startswith("file:") or not value[5:].strip():
                return False
            self._simple(key, LOGGER_KEYS[key], value[5:].strip(), source)
        elif key in OWN_KEYS:
            layer[key.replace("-", "_")] = Raw(value, source)
        elif key in APP_KEYS:
            canonical = {"wsgi": "module", "w": "module", "file": "wsgi-file"}.get(key, key)
            self.app[canonical] = (value, line, key)
        elif key in ("disable-logging", "L"):
            flag = truthy(value)
            if flag is None:
                raise ConfigError("access_log", f"expected a boolean, got {value!r}", source)
            layer["access_log"] = Raw("off" if flag else "uwsgi", source)
        elif key in FIXED_VALUES:
            expected, why = FIXED_VALUES[key]
            if value.strip().lower() != expected:
                self.warn(f"'{key} = {value}' cannot be honoured: {why}")
        elif key in ALWAYS_ON:
            if truthy(value) is False:
                self.warn(f"'{key} = {value}' cannot be honoured: {ALWAYS_ON[key]}")
        else:  # plugins
            others = [p for p in re.split(r"[,\s]+", value) if p and p not in PYTHON_PLUGINS]
            if others:
                self.warn(f"plugins {', '.join(others)} are not supported, ignored")
        return True

    def _simple(self, key: str, name: str, value: str, source: str) -> None:
        layer = self.layer
        if name == "chmod_socket" and not value.strip():
            value = "666"  # a bare chmod-socket means 666 in uWSGI
        if name == "buffer_size" and value.strip().isdigit() and int(value) > MAX_BUFFER:
            self.warn(f"'{key} = {value}' is read as {MAX_BUFFER} (the most; uWSGI caps it too)")
            value = str(MAX_BUFFER)
        if name == "access_log_file":  # req-logger: the request lines' own file
            self._request_log = True
        if name == "error_log_file":  # uWSGI's logto takes stderr too, and the request lines
            if not self._request_log:  # unless req-logger gave them a file of their own
                layer["access_log_file"] = Raw(value, f"{IMPLIED_BY}{source}")
            layer["capture_output"] = Raw(True, f"{IMPLIED_BY}{source}")
        if name in MULTI:
            self._multi.setdefault(name, []).append(value)
            layer[name] = Raw(list(self._multi[name]), source)
        else:
            layer[name] = Raw(value, source)


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
