"""Session cookies move between Flask (the real one, in the venv) and uwsgiapp.web: an app of
each with the same SECRET_KEY reads the other's cookie, with the same values and types; a session
interface of the app's own, written against Flask's helpers, runs on both."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import typing as t
import uuid
from datetime import datetime, timedelta, timezone

import flask
import pytest
from markupsafe import Markup
from werkzeug.datastructures import CallbackDict

import uwsgiapp.web as web
from uwsgiapp.web import session
from uwsgiapp.web.sessions import SessionInterface

SECRET = "shared secret"

#: Values both frameworks store with their type (Flask's tags).
_SHARED: dict[str, t.Any] = {
    "plain": {"user": "ann", "ids": [1, 2.5, None, True], "empty": {}},
    "tuple": (1, "two", (3.0, None)),
    "bytes": b"\x00\xffbin",
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "markup": Markup("<b>bold</b>"),
    "utc datetime": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    "dict with a tag-like key": {" t": [1, 2], "nested": {" u": "x"}},
    "large (compressed)": ["the same words again"] * 200,
}


def _app(module: t.Any, secret: str = SECRET) -> t.Any:
    app = module.Flask(__name__) if module is flask else module.App(__name__)
    app.secret_key = secret
    return app


def _cookie_from(module: t.Any, data: dict[str, t.Any], secret: str = SECRET) -> str:
    """The session cookie an app of ``module`` sets for ``data``."""
    app = _app(module, secret)

    @app.route("/store")
    def store() -> str:
        module.session.update(data)
        return "stored"

    client = app.test_client()
    client.get("/store")
    cookie = client.get_cookie("session")
    assert cookie is not None
    return str(cookie.value)


def _read_by(module: t.Any, value: str) -> str:
    """The session an app of ``module`` reads from the cookie ``value``, with its types."""
    app = _app(module)

    @app.route("/load")
    def load() -> str:
        return repr(_typed(dict(module.session)))

    client = app.test_client()
    client.set_cookie("session", value)
    return str(client.get("/load").text)


def _typed(value: t.Any) -> t.Any:
    """``value`` with the type of every part beside it, so that (1,) != [1] and 1 != 1.0."""
    if isinstance(value, dict):
        return {key: _typed(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_typed(item) for item in value])
    return (type(value).__name__, value)


@pytest.mark.parametrize("kind", sorted(_SHARED))
def test_a_flask_cookie_reads_here_as_in_flask(kind: str) -> None:
    value = _cookie_from(flask, {"v": _SHARED[kind]})
    if kind.startswith("large"):
        assert value.startswith(".")  # Flask compressed it
    assert _read_by(web, value) == _read_by(flask, value) == repr(_typed({"v": _SHARED[kind]}))


@pytest.mark.parametrize("kind", sorted(_SHARED))
def test_our_cookie_reads_in_flask_as_here(kind: str) -> None:
    value = _cookie_from(web, {"v": _SHARED[kind]})
    if kind.startswith("large"):
        assert value.startswith(".")  # compressed as Flask does
    assert _read_by(flask, value) == _read_by(web, value) == repr(_typed({"v": _SHARED[kind]}))


def test_a_datetime_flask_would_change_is_kept_here_and_readable_there() -> None:
    # Flask's tag keeps UTC to the second: others keep our own tag (Flask reads it as a dict).
    naive = datetime(2024, 1, 2, 3, 4, 5, 678901)
    value = _cookie_from(web, {"at": naive, "user": "ann"})
    seen = _read_by(flask, value)
    assert "'user': ('str', 'ann')" in seen and "2024-01-02T03:04:05.678901" in seen
    assert _read_by(web, value) == repr(_typed({"at": naive, "user": "ann"}))


def test_flask_permanent_login_survives_the_switch_and_keeps_being_refreshed() -> None:
    flask_app, web_app = _app(flask), _app(web)

    @flask_app.route("/login")
    def login() -> str:
        flask.session["user"] = "ann"
        flask.session.permanent = True
        return "ok"

    flask_client = flask_app.test_client()
    flask_client.get("/login")
    cookie = flask_client.get_cookie("session")
    assert cookie is not None

    @web_app.route("/whoami")
    def whoami() -> str:
        return str(session.get("user"))

    client = web_app.test_client()
    client.set_cookie("session", cookie.value)
    response = client.get("/whoami")
    assert response.text == "ann"
    assert "Expires=" in response.headers["Set-Cookie"]  # refreshed, in Flask's format
    refreshed = client.get_cookie("session")
    assert refreshed is not None
    assert _read_by(flask, refreshed.value) == repr(_typed({"_permanent": True, "user": "ann"}))


def test_a_cookie_signed_with_another_key_or_dated_ahead_is_refused() -> None:
    value = _cookie_from(flask, {"user": "ann"}, secret="another secret")
    assert _read_by(web, value) == "{}"
    interface = SessionInterface()
    key = interface._key(_app(web))
    assert key is not None
    ahead = interface.sign(key, {"user": "ann"}, now=time.time() + 3600)
    assert interface.unsign(key, ahead, 1000) is None
    assert interface.unsign(key, interface.sign(key, {"user": "ann"}), 1000) == {"user": "ann"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_cookie_of_the_format_before_flasks_still_logs_in_and_is_rewritten() -> None:
    # Built by hand, as uwsgiapp.web signed sessions before: HMAC-SHA256 with a key derived
    # from the secret and "uwsgiapp.web.session", an 8-byte issue time.
    key = hmac.new(SECRET.encode(), b"uwsgiapp.web.session", hashlib.sha256).digest()
    message = (
        f"{_b64(json.dumps({'user': 'ann'}).encode())}.{_b64(int(time.time()).to_bytes(8, 'big'))}"
    )
    old = f"{message}.{_b64(hmac.new(key, message.encode(), hashlib.sha256).digest())}"
    web_app = _app(web)

    @web_app.route("/whoami")
    def whoami() -> str:
        return str(session.get("user"))

    client = web_app.test_client()
    client.set_cookie("session", old)
    assert client.get("/whoami").text == "ann"
    new = client.get_cookie("session")
    assert new is not None and new.value != old
    assert _read_by(flask, new.value) == repr(_typed({"user": "ann"}))
    assert "Set-Cookie" not in client.get("/whoami").headers  # rewritten once
    stale = timedelta(days=32).total_seconds()
    message = f"{message.partition('.')[0]}.{_b64(int(time.time() - stale).to_bytes(8, 'big'))}"
    expired = f"{message}.{_b64(hmac.new(key, message.encode(), hashlib.sha256).digest())}"
    client.set_cookie("session", expired)
    assert client.get("/whoami").text == "None"
    # Dated in the future (as the new format, and itsdangerous, refuse): not a session either.
    ahead = f"{message.partition('.')[0]}.{_b64(int(time.time() + 3600).to_bytes(8, 'big'))}"
    future = f"{ahead}.{_b64(hmac.new(key, ahead.encode(), hashlib.sha256).digest())}"
    client.set_cookie("session", future)
    assert client.get("/whoami").text == "None"


def test_a_cookie_of_the_format_before_flasks_reads_with_a_fallback_key_too() -> None:
    key = hmac.new(b"old", b"uwsgiapp.web.session", hashlib.sha256).digest()
    payload = _b64(json.dumps({"user": "ann"}).encode())
    message = f"{payload}.{_b64(int(time.time()).to_bytes(8, 'big'))}"
    old = f"{message}.{_b64(hmac.new(key, message.encode(), hashlib.sha256).digest())}"
    web_app = _app(web, secret="new")
    web_app.config["SECRET_KEY_FALLBACKS"] = ["old"]

    @web_app.route("/whoami")
    def whoami() -> str:
        return str(session.get("user"))

    client = web_app.test_client()
    client.set_cookie("session", old)
    assert client.get("/whoami").text == "ann"
    new = client.get_cookie("session")  # re-sent in Flask's format, with the current key
    assert new is not None and new.value != old
    assert _read_by(flask, new.value) == "{}"  # _read_by's app has the shared secret
    assert _read_by_with(new.value, "new") == repr({"user": "ann"})


def _read_by_with(value: str, secret: str) -> str:
    app = _app(flask, secret)

    @app.route("/read")
    def read() -> str:
        return repr(dict(flask.session))

    client = app.test_client()
    client.set_cookie("session", value)
    return client.get("/read").text


def test_a_tag_like_key_as_written_before_flasks_format_still_reads() -> None:
    from uwsgiapp.web import tagjson

    assert tagjson.loads('{"x": {" di": {" t": [1]}}}') == {"x": {" t": [1]}}
    assert tagjson.loads('{"x": {" di": {" t__": [1]}}}') == {"x": {" t": [1]}}


# -- a session interface of the app's own, written against Flask's helpers ---------------------


def _store_session_app(fw: t.Any, store: dict[str, dict[str, t.Any]], **config: t.Any) -> t.Any:
    """Server-side sessions as Flask's docs have them: the cookie holds an id, the store the
    values; every cookie setting comes from the interface's helpers."""
    base, mixin = (
        (flask.sessions.SessionInterface, flask.sessions.SessionMixin)
        if fw is flask
        else (web.SessionInterface, web.SessionMixin)
    )

    class StoredSession(CallbackDict, mixin):  # type: ignore[misc,valid-type,type-arg]
        sid = ""

    class StoreInterface(base):  # type: ignore[misc,valid-type]
        def open_session(self, app: t.Any, request: t.Any) -> t.Any:
            if request.args.get("broken"):
                return None  # the framework gives its null session
            sid = request.cookies.get(self.get_cookie_name(app)) or f"sid{len(store)}"
            session = StoredSession(store.get(sid, {}))
            session.sid = sid
            return session

        def save_session(self, app: t.Any, session: t.Any, response: t.Any) -> None:
            if self.is_null_session(session) or not session:
                return
            store[session.sid] = dict(session)
            response.set_cookie(
                self.get_cookie_name(app),
                session.sid,
                expires=self.get_expiration_time(app, session),
                domain=self.get_cookie_domain(app),
                path=self.get_cookie_path(app),
                secure=self.get_cookie_secure(app),
                httponly=self.get_cookie_httponly(app),
                samesite=self.get_cookie_samesite(app),
            )

    app = fw.Flask(__name__) if fw is flask else fw.App(__name__)
    app.config.update(config)
    app.session_interface = StoreInterface()

    @app.route("/login")
    def login() -> str:
        fw.session["user"] = "ann"
        fw.session.permanent = "remember" in fw.request.args
        return "in"

    @app.route("/me")
    def me() -> str:
        return f"{fw.session.get('user')} {fw.session.__class__.__name__}"

    return app


@pytest.mark.parametrize("fw", [flask, web], ids=["flask", "uwsgiapp.web"])
def test_an_own_session_interface_uses_the_cookie_helpers(fw: t.Any) -> None:
    store: dict[str, dict[str, t.Any]] = {}
    app = _store_session_app(
        fw, store, SESSION_COOKIE_NAME="sid", SESSION_COOKIE_SAMESITE="Lax", APPLICATION_ROOT="/a"
    )
    client = app.test_client()
    cookie = client.get("/login").headers["Set-Cookie"]
    assert cookie == "sid=sid0; HttpOnly; Path=/a; SameSite=Lax"
    assert store == {"sid0": {"user": "ann", "_permanent": False}}
    assert client.get("/me").text == "ann StoredSession"
    assert "Expires=" in client.get("/login?remember=1").headers["Set-Cookie"]
    assert client.get("/me?broken=1").text == "None NullSession"


@pytest.mark.parametrize("fw", [flask, web], ids=["flask", "uwsgiapp.web"])
def test_the_signed_cookie_follows_an_overridden_helper(fw: t.Any) -> None:
    base = flask.sessions.SecureCookieSessionInterface if fw is flask else web.SessionInterface

    class PerTenant(base):  # type: ignore[misc,valid-type]
        def get_cookie_name(self, app: t.Any) -> str:
            return "tenant_session"

    app = _app(fw)
    app.session_interface = PerTenant()

    @app.route("/login")
    def login() -> str:
        fw.session["user"] = "ann"
        return "in"

    @app.route("/me")
    def me() -> str:
        return str(fw.session.get("user"))

    client = app.test_client()
    assert client.get("/login").headers["Set-Cookie"].startswith("tenant_session=")
    assert client.get("/me").text == "ann"


@pytest.mark.parametrize("fw", [flask, web], ids=["flask", "uwsgiapp.web"])
def test_session_accessed_is_flasks(fw: t.Any) -> None:
    # session.accessed raised AttributeError here (a 500).
    app = fw.Flask(__name__) if fw is flask else fw.App(__name__)
    app.secret_key = "k"

    @app.route("/<how>")
    def view(how: str) -> str:
        before = fw.session.accessed
        if how == "get":
            fw.session.get("x")
        elif how == "item":
            fw.session.setdefault("x", 1)
            _ = fw.session["x"]
        elif how == "set":
            fw.session["y"] = 2
        return f"{before} {fw.session.accessed}"

    client = app.test_client()
    got = {how: client.get(f"/{how}").text for how in ("none", "get", "item", "set")}
    assert got == dict.fromkeys(("none", "get", "item", "set"), "True True")  # reached: accessed
