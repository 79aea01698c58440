"""``app.config``: a dict of upper-case settings with a few ways to fill it."""

from __future__ import annotations

import errno
import json
import os
import types
import typing as t
from datetime import timedelta

from werkzeug.utils import import_string

__all__ = ["DEFAULT_CONFIG", "Config", "debug_flag"]


def debug_flag() -> bool:
    """``FLASK_DEBUG`` as Flask reads it when an app is made: set, and not 0, false or no
    (``flask run --debug`` and ``uwsgiapp dev`` set it before the app's import)."""
    value = os.environ.get("FLASK_DEBUG", "")
    return bool(value) and value.lower() not in ("0", "false", "no")


#: Settings every app starts with; anything upper-case can be added.
DEFAULT_CONFIG: t.Final[t.Mapping[str, t.Any]] = {
    "DEBUG": False,
    "TESTING": False,
    "PROPAGATE_EXCEPTIONS": None,
    "TRAP_HTTP_EXCEPTIONS": False,
    "TRAP_BAD_REQUEST_ERRORS": None,
    "SECRET_KEY": None,
    "SECRET_KEY_FALLBACKS": None,
    "TRUSTED_HOSTS": None,
    "SESSION_COOKIE_NAME": "session",
    "SESSION_COOKIE_DOMAIN": None,
    "SESSION_COOKIE_PATH": None,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SECURE": False,
    "SESSION_COOKIE_SAMESITE": None,
    "SESSION_COOKIE_PARTITIONED": False,
    "PERMANENT_SESSION_LIFETIME": timedelta(days=31),
    "SESSION_REFRESH_EACH_REQUEST": True,
    "SERVER_NAME": None,
    "APPLICATION_ROOT": "/",
    "PREFERRED_URL_SCHEME": "http",
    "MAX_CONTENT_LENGTH": None,
    "MAX_FORM_MEMORY_SIZE": 500_000,
    "MAX_FORM_PARTS": 1_000,
    "JSON_SORT_KEYS": True,
    "PROVIDE_AUTOMATIC_OPTIONS": True,
    "SEND_FILE_MAX_AGE_DEFAULT": None,
}


class Config(dict[str, t.Any]):
    """The app's settings. Only upper-case keys are taken from mappings, objects, files and
    the environment; a relative file name is relative to ``root_path`` (the app's)."""

    def __init__(
        self, defaults: t.Mapping[str, t.Any] | None = None, root_path: str | None = None
    ) -> None:
        super().__init__(defaults or {})
        self.root_path = root_path

    def from_envvar(self, variable_name: str, silent: bool = False) -> bool:
        """:meth:`from_pyfile` the file the environment variable ``variable_name`` names.

        An unset or empty variable raises ``RuntimeError``, or returns ``False`` if ``silent``
        (which also covers a missing file); else returns :meth:`from_pyfile`'s result.
        """
        filename = os.environ.get(variable_name)
        if not filename:
            if silent:
                return False
            raise RuntimeError(
                f"The environment variable {variable_name!r} is not set (or is empty): set it"
                " to the path of a configuration file, or pass silent=True to go without."
            )
        return self.from_pyfile(filename, silent=silent)

    def from_pyfile(self, filename: str | os.PathLike[str], silent: bool = False) -> bool:
        """Run the Python file ``filename`` and copy its upper-case names in (as
        :meth:`from_object` with a module). Returns ``True``; ``False`` if ``silent`` and the
        file does not exist. The file is code: only load trusted files."""
        path = self._path(filename)
        module = types.ModuleType("config")
        module.__file__ = path
        try:
            with open(path, "rb") as f:
                code = compile(f.read(), path, "exec")
        except OSError as e:
            if silent and e.errno in (errno.ENOENT, errno.EISDIR, errno.ENOTDIR):
                return False
            e.strerror = f"Unable to load configuration file ({e.strerror})"
            raise
        exec(code, module.__dict__)  # the app names this file: it is trusted code, as Flask
        self.from_object(module)
        return True

    def from_file(
        self,
        filename: str | os.PathLike[str],
        load: t.Callable[[t.IO[t.Any]], t.Mapping[str, t.Any]],
        silent: bool = False,
        text: bool = True,
    ) -> bool:
        """Read ``filename`` with ``load`` (``json.load``, ``tomllib.load`` with
        ``text=False``) and :meth:`from_mapping` the result. Returns ``True``; ``False`` if
        ``silent`` and the file does not exist."""
        path = self._path(filename)
        try:
            with open(path, "r" if text else "rb") as f:
                data = load(f)
        except OSError as e:
            if silent and e.errno in (errno.ENOENT, errno.EISDIR):
                return False
            e.strerror = f"Unable to load configuration file ({e.strerror})"
            raise
        return self.from_mapping(data)

    def _path(self, filename: str | os.PathLike[str]) -> str:
        return os.path.join(self.root_path or "", os.fspath(filename))

    def from_mapping(self, mapping: t.Mapping[str, t.Any] | None = None, **kwargs: t.Any) -> bool:
        """Copy the upper-case keys of ``mapping`` and ``kwargs`` in. Always returns ``True``."""
        items: dict[str, t.Any] = {}
        if mapping is not None:
            items.update(mapping)
        items.update(kwargs)
        for key, value in items.items():
            if key.isupper():
                self[key] = value
        return True

    def from_object(self, obj: object | str) -> None:
        """Copy the upper-case attributes of ``obj`` (a module or class) in.

        A string is an import path, ``"pkg.settings"`` or ``"pkg.settings.Production"`` (also
        ``"pkg.settings:Production"``), imported first; one that does not import raises
        :class:`werkzeug.utils.ImportStringError`.
        """
        if isinstance(obj, str):
            obj = import_string(obj)
        for key in dir(obj):
            if key.isupper():
                self[key] = getattr(obj, key)

    def from_prefixed_env(
        self, prefix: str = "FLASK", *, loads: t.Callable[[str], t.Any] = json.loads
    ) -> bool:
        """Load every ``{prefix}_KEY`` environment variable as ``KEY``. Always returns ``True``.

        The default prefix is Flask's, so a ported app reads the variables its deployment
        already sets; it is never ``UWSGIAPP``, whose variables are the server's own options
        (``UWSGIAPP_WORKERS`` is not app config). Pass the app's own prefix to change it.

        Values go through ``loads`` (JSON by default, so ``42``/``true`` become int/bool) and
        stay strings when that fails. ``{prefix}_A__B`` sets ``config["A"]["B"]``, creating the
        inner dict if needed.
        """
        start = f"{prefix}_"
        for env_key in sorted(os.environ):
            if not env_key.startswith(start):
                continue
            raw = os.environ[env_key]
            value: t.Any
            try:
                value = loads(raw)
            except Exception:
                value = raw
            key = env_key[len(start) :]
            if "__" not in key:
                self[key] = value
                continue
            *parents, leaf = key.split("__")
            current: dict[str, t.Any] = self
            for part in parents:
                nested = current.get(part)
                if not isinstance(nested, dict):
                    nested = current[part] = {}
                current = nested
            current[leaf] = value
        return True

    def get_namespace(
        self, namespace: str, lowercase: bool = True, trim_namespace: bool = True
    ) -> dict[str, t.Any]:
        """The settings whose key starts with ``namespace``, e.g. ``"SESSION_COOKIE_"``."""
        found: dict[str, t.Any] = {}
        for key, value in self.items():
            if not key.startswith(namespace):
                continue
            name = key[len(namespace) :] if trim_namespace else key
            found[name.lower() if lowercase else name] = value
        return found

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {dict.__repr__(self)}>"
