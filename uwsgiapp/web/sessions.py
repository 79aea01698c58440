"""Signed cookie sessions, in the cookie format of Flask's default session interface, with the
standard library only: a user moving between Flask and uwsgiapp.web (same ``SECRET_KEY``) stays
logged in, and the two can share a login on one domain.

The JSON is :mod:`uwsgiapp.web.tagjson`'s: plain JSON plus tuple, bytes, datetime, UUID and
Markup, tagged as Flask tags them. The cookie value is what itsdangerous'
``URLSafeTimedSerializer`` makes for Flask (salt ``cookie-session``, HMAC key derivation, SHA-1):
``payload "." b64(issued-at) "." b64(hmac)``, URL-safe base64 without padding, where the payload
is ``b64(json)``, or ``"." b64(zlib(json))`` when that is shorter. The MAC key is derived from
``SECRET_KEY`` and the salt, so the raw secret never signs anything an attacker can see. A bad
signature, a malformed value or an expired timestamp yields a new, empty session: the client
learns nothing beyond "not logged in".

Cookies of the format uwsgiapp.web used before (HMAC-SHA256, its own salt) are still read, and
re-sent in this one, so an upgrade logs nobody out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import typing as t
import zlib
from datetime import datetime, timedelta, timezone

from . import tagjson

if t.TYPE_CHECKING:
    from .app import App
    from .wrappers import Request, Response

__all__ = [
    "NullSession",
    "SecureCookieSession",
    "SessionInterface",
    "SessionMixin",
    "session_lifetime",
]

_NO_SECRET = (
    "The session is unavailable because no secret key was set. Set app.secret_key (or"
    " app.config['SECRET_KEY']) to a long random string, e.g. secrets.token_hex()."
)


def session_lifetime(value: timedelta | float) -> timedelta:
    """``PERMANENT_SESSION_LIFETIME`` as a timedelta: as in Flask, a number is seconds (what
    ``from_prefixed_env`` makes of ``FLASK_PERMANENT_SESSION_LIFETIME=3600``)."""
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


class SessionMixin(dict[str, t.Any]):
    """The session: a dict that remembers whether it was changed."""

    #: Set by every write; the cookie is only rewritten when this is true.
    modified: bool = False
    #: True when the request carried no valid session cookie.
    new: bool = False
    #: Reached through the request (``session``) in this request, as Flask's (whose response
    #: then varies by Cookie; here a response with a session always does).
    accessed: bool = False

    @property
    def permanent(self) -> bool:
        """Whether the cookie outlives the browser session (``PERMANENT_SESSION_LIFETIME``)."""
        return bool(self.get("_permanent", False))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self["_permanent"] = bool(value)

    # Flask's semantics (werkzeug's CallbackDict): a change marks the session modified once it
    # succeeded, and pop/setdefault only when they removed or inserted a key, so that the
    # usual ``session.pop("message", None)`` on each page does not rewrite the cookie.

    def __setitem__(self, key: str, value: t.Any) -> None:
        super().__setitem__(key, value)
        self.modified = True

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.modified = True

    def clear(self) -> None:
        """Remove every key."""
        super().clear()
        self.modified = True

    def pop(self, key: str, *default: t.Any) -> t.Any:
        """Remove and return ``key`` (``default`` if given and missing)."""
        found = key in self
        value = super().pop(key, *default)
        if found:
            self.modified = True
        return value

    def popitem(self) -> tuple[str, t.Any]:
        """Remove and return the last item."""
        item = super().popitem()
        self.modified = True
        return item

    def setdefault(self, key: str, default: t.Any = None) -> t.Any:
        """``session[key]``, first set to ``default`` if missing."""
        missing = key not in self
        value = super().setdefault(key, default)
        if missing:
            self.modified = True
        return value

    def update(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Update from a mapping or pairs, as ``dict.update``."""
        super().update(*args, **kwargs)
        self.modified = True

    def __ior__(self, other: t.Any) -> t.Self:  # type: ignore[override,misc]
        # dict's own |= does not go through update()
        super().update(other)
        self.modified = True
        return self


class SecureCookieSession(SessionMixin):
    """A session loaded from (and saved to) a signed cookie."""


class NullSession(SessionMixin):
    """The empty, read-only session given when no ``SECRET_KEY`` is configured."""

    def _fail(self, *args: t.Any, **kwargs: t.Any) -> t.NoReturn:
        raise RuntimeError(_NO_SECRET)

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _fail


def _key_bytes(name: str, key: object) -> bytes:
    """A signing key of the setting ``name`` as bytes; TypeError (naming it) for anything but a
    non-empty str or bytes."""
    if isinstance(key, str | bytes | bytearray) and key:
        return key.encode() if isinstance(key, str) else bytes(key)
    what = "an empty one" if isinstance(key, str | bytes | bytearray) else type(key).__name__
    raise TypeError(f"{name}: a key must be a non-empty str or bytes, not {what}")  # not its value


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionInterface:
    """Opens and saves sessions as signed cookies; replace ``app.session_interface`` to change.

    A replacement (a server-side store, say) overrides :meth:`open_session` and
    :meth:`save_session` and may use the helpers Flask's interface offers: the ``get_cookie_*``
    settings, :meth:`get_expiration_time`, :meth:`should_set_cookie`, :meth:`is_null_session`.
    """

    #: Salt mixed into the MAC key so the key is specific to session cookies (Flask's).
    salt: bytes = b"cookie-session"
    #: The salt of the format uwsgiapp.web wrote before it wrote Flask's (read only).
    legacy_salt: bytes = b"uwsgiapp.web.session"
    session_class: type[SecureCookieSession] = SecureCookieSession
    null_session_class: type[NullSession] = NullSession

    def make_null_session(self, app: App) -> NullSession:
        """The read-only session used when no real one can be opened (no ``SECRET_KEY``)."""
        return self.null_session_class()

    def is_null_session(self, obj: object) -> bool:
        """Whether ``obj`` is such a read-only stand-in, which is never saved."""
        return isinstance(obj, self.null_session_class)

    def get_cookie_name(self, app: App) -> str:
        """The session cookie's name: ``SESSION_COOKIE_NAME``."""
        return t.cast(str, app.config["SESSION_COOKIE_NAME"])

    def get_cookie_domain(self, app: App) -> str | None:
        """Its ``Domain``: ``SESSION_COOKIE_DOMAIN`` (None: the request's host only)."""
        return t.cast("str | None", app.config["SESSION_COOKIE_DOMAIN"] or None)

    def get_cookie_path(self, app: App) -> str:
        """Its ``Path``: ``SESSION_COOKIE_PATH``, else ``APPLICATION_ROOT``, else ``/``."""
        config = app.config
        return t.cast(str, config["SESSION_COOKIE_PATH"] or config["APPLICATION_ROOT"] or "/")

    def get_cookie_httponly(self, app: App) -> bool:
        """Whether it is ``HttpOnly``: ``SESSION_COOKIE_HTTPONLY``."""
        return bool(app.config["SESSION_COOKIE_HTTPONLY"])

    def get_cookie_secure(self, app: App) -> bool:
        """Whether it is ``Secure``: ``SESSION_COOKIE_SECURE``."""
        return bool(app.config["SESSION_COOKIE_SECURE"])

    def get_cookie_samesite(self, app: App) -> str | None:
        """Its ``SameSite``: ``SESSION_COOKIE_SAMESITE``."""
        return t.cast("str | None", app.config["SESSION_COOKIE_SAMESITE"])

    def get_cookie_partitioned(self, app: App) -> bool:
        """Whether it is ``Partitioned``: ``SESSION_COOKIE_PARTITIONED``."""
        return bool(app.config["SESSION_COOKIE_PARTITIONED"])

    def get_expiration_time(self, app: App, session: SessionMixin) -> datetime | None:
        """When a permanent session's cookie expires (``PERMANENT_SESSION_LIFETIME`` from now);
        None for another session (its cookie ends with the browser session)."""
        if not session.permanent:
            return None
        lifetime = session_lifetime(app.config["PERMANENT_SESSION_LIFETIME"])
        return datetime.now(timezone.utc) + lifetime

    def _secrets(self, app: App) -> list[bytes]:
        """``SECRET_KEY`` then each of ``SECRET_KEY_FALLBACKS`` (Flask 3.1's key rotation: older
        keys whose cookies still read); none without a ``SECRET_KEY``, whatever the fallbacks.

        ``TypeError`` for a key that is not a non-empty str or bytes: ``FLASK_SECRET_KEY=true``
        through ``from_prefixed_env`` is ``True``, whose ``bytes()`` is a NUL byte anyone could
        sign with (Flask fails there too, in itsdangerous); a str of fallbacks made each of its
        characters a key (as in Flask)."""
        secret = app.config["SECRET_KEY"]
        if not secret:
            return []
        fallbacks = app.config.get("SECRET_KEY_FALLBACKS") or ()
        if isinstance(fallbacks, str | bytes | bytearray):
            raise TypeError("SECRET_KEY_FALLBACKS must be a list of keys, not one key")
        return [
            _key_bytes(name, k)
            for name, k in (
                ("SECRET_KEY", secret),
                *(("SECRET_KEY_FALLBACKS", k) for k in fallbacks),
            )
        ]

    def _derive(self, secret: bytes, salt: bytes | None = None) -> bytes:
        if salt is None:
            return hmac.new(secret, self.salt, hashlib.sha1).digest()
        return hmac.new(secret, salt, hashlib.sha256).digest()  # the legacy format's

    def _key(self, app: App, salt: bytes | None = None) -> bytes | None:
        """The MAC key that signs new cookies (from ``SECRET_KEY``), or ``None`` without one."""
        secrets = self._secrets(app)
        return self._derive(secrets[0], salt) if secrets else None

    def sign(self, key: bytes, data: t.Mapping[str, t.Any], now: float | None = None) -> str:
        """The cookie value for ``data``, signed with ``key`` (:meth:`_key`), as Flask's.

        ``TypeError`` (naming the key) for a value :mod:`~uwsgiapp.web.tagjson` cannot store.
        """
        text = tagjson.dumps(data).encode()
        packed = zlib.compress(text)
        payload = f".{_b64encode(packed)}" if len(packed) < len(text) - 1 else _b64encode(text)
        issued = int(time.time() if now is None else now)
        stamp = _b64encode(issued.to_bytes((issued.bit_length() + 7) // 8 or 1, "big"))
        message = f"{payload}.{stamp}"
        mac = hmac.new(key, message.encode("ascii"), hashlib.sha1).digest()
        return f"{message}.{_b64encode(mac)}"

    def unsign(self, key: bytes, value: str, max_age: float | None) -> dict[str, t.Any] | None:
        """The data in a cookie value, or ``None`` if it is forged, malformed or too old (or
        dated in the future)."""
        try:
            message, _, mac_text = value.rpartition(".")
            expected = hmac.new(key, message.encode("ascii"), hashlib.sha1).digest()
            if not hmac.compare_digest(expected, _b64decode(mac_text)):
                return None
            payload, _, issued_text = message.rpartition(".")
            age = time.time() - int.from_bytes(_b64decode(issued_text), "big")
            if max_age is not None and not 0 <= age <= max_age:
                return None
            if payload[:1] == ".":  # only decompressed once the signature is known good
                data = tagjson.loads(zlib.decompress(_b64decode(payload[1:])))
            else:
                data = tagjson.loads(_b64decode(payload))
        except (ValueError, UnicodeError, binascii.Error, zlib.error):
            return None
        return data if isinstance(data, dict) else None

    def _unsign_legacy(self, key: bytes, value: str, max_age: float) -> dict[str, t.Any] | None:
        """The data in a cookie of the format uwsgiapp.web wrote before Flask's, or ``None``."""
        try:
            message, _, mac_text = value.rpartition(".")
            expected = hmac.new(key, message.encode("ascii"), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _b64decode(mac_text)):
                return None
            payload, _, issued_text = message.partition(".")
            issued = int.from_bytes(_b64decode(issued_text), "big")
            if not 0 <= time.time() - issued <= max_age:
                return None
            data = tagjson.loads(_b64decode(payload))
        except (ValueError, UnicodeError, binascii.Error):
            return None
        return data if isinstance(data, dict) else None

    def open_session(self, app: App, request: Request) -> SessionMixin | None:
        """The session carried by ``request``'s cookie, or a new empty one (a replacement may
        return None: the request then has :meth:`make_null_session`'s)."""
        secrets = self._secrets(app)
        if not secrets:
            return self.make_null_session(app)
        value = request.cookies.get(self.get_cookie_name(app))
        if value:
            max_age = session_lifetime(app.config["PERMANENT_SESSION_LIFETIME"]).total_seconds()
            # The current key, then the fallbacks. As in Flask, a cookie read with a fallback
            # is signed with the current key when it is next written, not at once.
            for secret in secrets:
                data = self.unsign(self._derive(secret), value, max_age)
                if data is not None:
                    return self.session_class(data)
            for secret in secrets:
                legacy_key = self._derive(secret, self.legacy_salt)
                data = self._unsign_legacy(legacy_key, value, max_age)
                if data is not None:
                    session = self.session_class(data)
                    session.modified = True  # re-sent in Flask's format
                    return session
        session = self.session_class()
        session.new = True
        return session

    def should_set_cookie(self, app: App, session: SessionMixin) -> bool:
        """Whether to send the (non-empty) session's cookie: it changed, or it is permanent
        and ``SESSION_REFRESH_EACH_REQUEST`` (default true) extends its life by each request."""
        if session.modified:
            return True
        return session.permanent and bool(app.config["SESSION_REFRESH_EACH_REQUEST"])

    def session_to_refresh(self, app: App, request: Request) -> SessionMixin | None:
        """For a request whose code did not use the session: the session to save anyway, a
        permanent one when ``SESSION_REFRESH_EACH_REQUEST`` is on, so that a user active on
        any page stays logged in; else ``None``."""
        if not app.config["SESSION_REFRESH_EACH_REQUEST"]:
            return None
        if self.get_cookie_name(app) not in request.cookies:
            return None
        session = self.open_session(app, request)
        return session if session and session.permanent else None

    def save_session(self, app: App, session: SessionMixin, response: Response) -> None:
        """Write, refresh or delete the session cookie on ``response`` as needed."""
        if self.is_null_session(session):
            return
        name = self.get_cookie_name(app)
        options: dict[str, t.Any] = {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "httponly": self.get_cookie_httponly(app),
            "samesite": self.get_cookie_samesite(app),
        }
        if self.get_cookie_partitioned(app):
            # CHIPS: a cookie kept per top-level site; werkzeug adds the Secure it requires.
            # Only when asked: werkzeug 3.0 (which the package allows) has no such argument.
            options["partitioned"] = True
        # The body may depend on the cookie, so shared caches must key on it.
        response.vary.add("Cookie")
        if not session:
            if session.modified:
                response.delete_cookie(name, **options)
            return
        if not self.should_set_cookie(app, session):
            return
        key = self._key(app)
        assert key is not None  # a real session is only opened with a secret
        expires = self.get_expiration_time(app, session)
        try:
            value = self.sign(key, session)
        except TypeError:
            # The error response is saved again: unmarked, it is not refused (and logged) twice.
            session.modified = False
            raise
        response.set_cookie(name, value, expires=expires, **options)
