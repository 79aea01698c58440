"""app.config, and signed cookie sessions."""

from __future__ import annotations

import base64
import json
import time
import typing as t
import uuid
from datetime import datetime, timedelta, timezone
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from markupsafe import Markup
from werkzeug.utils import ImportStringError

from uwsgiapp.web import App, session
from uwsgiapp.web.config import Config
from uwsgiapp.web.sessions import SessionInterface


def test_config_defaults_and_from_mapping() -> None:
    config = Config({"DEBUG": False})
    assert config.from_mapping({"SECRET_KEY": "s", "lower": 1}, TESTING=True) is True
    assert config["SECRET_KEY"] == "s" and config["TESTING"] is True
    assert "lower" not in config
    app = App(__name__)
    assert app.config["SESSION_COOKIE_NAME"] == "session" and app.debug is False


def test_config_from_object_and_namespace() -> None:
    class Settings:
        MAIL_HOST = "mx"
        MAIL_PORT = 25
        private = "no"

    config = Config()
    config.from_object(Settings)
    assert config == {"MAIL_HOST": "mx", "MAIL_PORT": 25}
    assert config.get_namespace("MAIL_") == {"host": "mx", "port": 25}


class ProductionSettings:
    """Loaded by its import path in the test below (the Flask idiom)."""

    DATABASE_URL = "postgres://db/prod"
    lower = "not copied"


@pytest.mark.parametrize("separator", [".", ":"])
def test_config_from_object_imports_a_dotted_path(separator: str) -> None:
    config = Config()
    config.from_object(f"{__name__}{separator}ProductionSettings")
    assert config == {"DATABASE_URL": "postgres://db/prod"}
    config.from_object("json")  # a module by name: its upper-case attributes (none here)
    assert config == {"DATABASE_URL": "postgres://db/prod"}


@pytest.mark.parametrize("name", ["no_such_module_here.Config", f"{__name__}.NoSuchClass"])
def test_config_from_object_with_a_bad_import_path_raises(name: str) -> None:
    with pytest.raises(ImportStringError, match=name.rpartition(".")[2]):
        Config().from_object(name)


def test_config_from_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAPP_SECRET_KEY", "from-env")
    monkeypatch.setenv("MYAPP_PORT", "8080")
    monkeypatch.setenv("MYAPP_DEBUG", "true")
    monkeypatch.setenv("MYAPP_DB__HOST", "db.local")
    monkeypatch.setenv("MYAPP_DB__POOL", "[1, 2]")
    monkeypatch.setenv("OTHER_THING", "ignored")
    app = App(__name__)
    app.config.from_prefixed_env("MYAPP")
    assert app.config["SECRET_KEY"] == "from-env"
    assert app.config["PORT"] == 8080
    assert app.config["DEBUG"] is True and app.debug is True
    assert app.config["DB"] == {"HOST": "db.local", "POOL": [1, 2]}
    assert "THING" not in app.config


def test_config_from_prefixed_env_default_is_flasks_not_the_servers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # UWSGIAPP_* are the server's options (serve reads them): not the app's settings.
    monkeypatch.setenv("FLASK_SECRET_KEY", "ported")
    monkeypatch.setenv("UWSGIAPP_WORKERS", "4")
    monkeypatch.setenv("UWSGIAPP_HARAKIRI", "30")
    config = Config()
    config.from_prefixed_env()
    assert config == {"SECRET_KEY": "ported"}


def session_app(secret: str | None = "top secret") -> App:
    app = App(__name__)
    app.secret_key = secret

    @app.route("/set/<value>")
    def set_value(value: str) -> str:
        session["value"] = value
        session["count"] = session.get("count", 0) + 1
        return "set"

    @app.route("/get")
    def get_value() -> dict[str, t.Any]:
        return {"value": session.get("value"), "count": session.get("count"), "new": session.new}

    @app.route("/clear")
    def clear() -> str:
        session.clear()
        return "cleared"

    @app.route("/permanent")
    def permanent() -> str:
        session.permanent = True
        session["p"] = 1
        return "permanent"

    @app.route("/plain")
    def plain() -> str:
        return "no session touched"

    return app


def _cookie(response: t.Any) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(response.headers["Set-Cookie"])
    return cookie


def test_session_round_trip() -> None:
    client = session_app().test_client()
    assert client.get("/get").json == {"value": None, "count": None, "new": True}
    response = client.get("/set/abc")
    morsel = _cookie(response)["session"]
    assert morsel["httponly"] and morsel["path"] == "/"
    assert not morsel["expires"]  # a browser-session cookie unless permanent
    assert response.headers["Vary"] == "Cookie"
    client.get("/set/def")
    assert client.get("/get").json == {"value": "def", "count": 2, "new": False}


def test_untouched_session_sets_no_cookie() -> None:
    client = session_app().test_client()
    client.get("/set/x")
    response = client.get("/plain")
    assert "Set-Cookie" not in response.headers and "Vary" not in response.headers
    assert "Set-Cookie" not in client.get("/get").headers  # read only: no rewrite


_SESSION_OPERATIONS: dict[str, t.Callable[[t.Any], object]] = {
    "setitem": lambda s: s.__setitem__("a", 1),
    "setitem same value": lambda s: s.__setitem__("user", "ann"),
    "delitem present": lambda s: s.__delitem__("user"),
    "delitem missing": lambda s: s.__delitem__("nope"),
    "pop present": lambda s: s.pop("user"),
    "pop present with default": lambda s: s.pop("user", None),
    "pop missing with default": lambda s: s.pop("nope", None),
    "pop missing": lambda s: s.pop("nope"),
    "setdefault present": lambda s: s.setdefault("user", "bob"),
    "setdefault missing": lambda s: s.setdefault("nope", "x"),
    "setdefault missing no default": lambda s: s.setdefault("nope"),
    "update": lambda s: s.update(a=1),
    "update nothing": lambda s: s.update(),
    "ior": lambda s: s.__ior__({"a": 1}),
    "clear": lambda s: s.clear(),
    "popitem": lambda s: s.popitem(),
    "get": lambda s: s.get("user"),
    "getitem": lambda s: s["user"],
    "permanent read": lambda s: s.permanent,
    "permanent set": lambda s: setattr(s, "permanent", True),
}


@pytest.mark.parametrize("start", [{}, {"user": "ann"}], ids=["empty", "logged-in"])
@pytest.mark.parametrize("operation", sorted(_SESSION_OPERATIONS))
def test_session_marks_itself_modified_exactly_as_flasks(
    operation: str, start: dict[str, t.Any]
) -> None:
    from flask.sessions import SecureCookieSession as FlaskSession

    from uwsgiapp.web.sessions import SecureCookieSession

    outcomes = []
    for session_class in (FlaskSession, SecureCookieSession):
        data = session_class(start)
        try:
            _SESSION_OPERATIONS[operation](data)
            error = None
        except KeyError:
            error = "KeyError"
        outcomes.append((data.modified, error, dict(data)))
    assert outcomes[1] == outcomes[0]


def test_one_time_message_pop_sets_no_cookie() -> None:
    app = session_app()

    @app.route("/page")
    def page() -> str:
        return f"message={session.pop('message', None)}"

    @app.route("/default")
    def default() -> str:
        return str(session.setdefault("value", "other"))

    client = app.test_client()
    assert "Set-Cookie" not in client.get("/page").headers  # anonymous: no deleting cookie
    client.get("/set/ann")
    for path in ("/page", "/default"):
        assert "Set-Cookie" not in client.get(path).headers, path
    assert client.get("/get").json["value"] == "ann"


_KEPT_VALUES: dict[str, t.Any] = {
    "tuple": (1, "two", (3.0, None)),
    "bytes": b"\x00\xffbin",
    "naive datetime": datetime(2024, 1, 2, 3, 4, 5, 678901),
    "aware datetime": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "markup": Markup("<b>bold</b>"),
    "dict of them": {"at": datetime(2020, 5, 6), "ids": [uuid.UUID(int=1), (b"x",)]},
    "dict with a tag-like key": {" t": [1, 2]},
    "dict with a tag-like key, nested": {"a": {" di": {" u": "x"}}},
    "plain": {"list": [1, 2.5, "s", True, None], "empty": {}},
}


@pytest.mark.parametrize("kind", sorted(_KEPT_VALUES))
def test_session_keeps_the_types_flask_keeps(kind: str) -> None:
    value = _KEPT_VALUES[kind]
    app = session_app()

    @app.route("/store")
    def store() -> str:
        session["v"] = value
        return "stored"

    @app.route("/load")
    def load() -> str:
        return str(_typed(session["v"]) == _typed(value))

    client = app.test_client()
    assert client.get("/store").status_code == 200
    assert client.get("/load").text == "True"


def _typed(value: t.Any) -> t.Any:
    """``value`` with the type of every part beside it, so that (1,) != [1] and 1 != 1.0."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return (type(value), [_typed(item) for item in value])
    return (type(value), value)


def test_session_cookie_of_plain_values_is_plain_json() -> None:
    # Cookies written before other types were supported must read the same, and vice versa.
    from uwsgiapp.web import tagjson

    data = {"user": "ann", "cart": [1, 2], "prefs": {"a": None}}
    assert json.loads(tagjson.dumps(data)) == data
    assert tagjson.loads(json.dumps(data)) == data


def test_session_value_of_another_type_is_one_clear_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = session_app()

    @app.route("/store")
    def store() -> str:
        session["cart"] = {"items": [1, {2, 3}]}
        return "stored"

    client = app.test_client()
    response = client.get("/store")
    assert response.status_code == 500 and "Set-Cookie" not in response.headers
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # not again for the 500
    assert errors[0].exc_info is not None
    message = str(errors[0].exc_info[1])
    assert "session['cart']['items'][1] is a builtins.set" in message
    app.testing = True
    with pytest.raises(TypeError, match=r"session\['cart'\]\['items'\]\[1\]"):
        client.get("/store")


def test_clearing_the_session_deletes_the_cookie() -> None:
    client = session_app().test_client()
    client.get("/set/x")
    response = client.get("/clear")
    morsel = _cookie(response)["session"]
    assert morsel.value == "" and "1970" in morsel["expires"]
    assert client.get("/get").json["value"] is None


def test_permanent_session_has_an_expiry() -> None:
    client = session_app().test_client()
    response = client.get("/permanent")
    assert _cookie(response)["session"]["expires"]


def test_permanent_session_lifetime_set_on_the_app_is_the_cookies() -> None:
    # Flask's app.permanent_session_lifetime is its config key: set on uwsgiapp.web's app it
    # was a plain attribute, and the cookie kept the 31-day default (logins lasted a month).
    app = session_app()
    app.permanent_session_lifetime = timedelta(minutes=30)
    assert app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(minutes=30)
    before = datetime.now(timezone.utc)
    expires = _cookie(app.test_client().get("/permanent"))["session"]["expires"]
    left = datetime.strptime(expires, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=timezone.utc)
    assert timedelta(minutes=29) < left - before <= timedelta(minutes=31)
    app.config["PERMANENT_SESSION_LIFETIME"] = 60  # seconds, as from_prefixed_env gives
    assert app.permanent_session_lifetime == timedelta(seconds=60)


@pytest.mark.parametrize("path", ["/get", "/plain"], ids=["session read", "session unused"])
def test_permanent_session_is_refreshed_by_each_request(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SESSION_REFRESH_EACH_REQUEST (Flask's default): a user active every day stays logged in
    # past PERMANENT_SESSION_LIFETIME after login, on any page.
    now = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    client = session_app().test_client()
    client.get("/permanent")
    for _ in range(3):
        now[0] += timedelta(days=20).total_seconds()
        response = client.get(path)
        assert _cookie(response)["session"]["expires"], "refreshed with a new expiry"
    assert client.get("/get").json["new"] is False  # 60 days after login, 20 after the last


@pytest.mark.parametrize(
    ("setup", "path"),
    [
        pytest.param({"SESSION_REFRESH_EACH_REQUEST": False}, "/permanent", id="setting off"),
        pytest.param({}, "/set/x", id="not permanent"),
    ],
)
def test_session_is_not_refreshed_unless_permanent_and_on(
    setup: dict[str, t.Any], path: str
) -> None:
    app = session_app()
    app.config.update(setup)
    client = app.test_client()
    client.get(path)
    for read in ("/get", "/plain"):
        assert "Set-Cookie" not in client.get(read).headers, read
    fresh = session_app().test_client()
    fresh.set_cookie("other", "1")
    response = fresh.get("/plain")  # a cookie, but no session: nothing to refresh
    assert "Set-Cookie" not in response.headers and "Cookie" not in response.vary


def _forge(client: t.Any, value: str) -> None:
    client.set_cookie("session", value)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda v: v[:-2] + ("A" if v[-2] != "A" else "B") + v[-1], id="signature"),
        pytest.param(
            lambda v: (
                base64.urlsafe_b64encode(b'{"value":"admin"}').decode().rstrip("=")
                + v[v.index(".") :]
            ),
            id="payload",
        ),
        pytest.param(lambda v: "garbage", id="garbage"),
        pytest.param(lambda v: "a.b.c", id="bad-base64"),
        pytest.param(lambda v: "", id="empty"),
        pytest.param(lambda v: v.replace(".", "", 1), id="missing-part"),
    ],
)
def test_tampered_cookie_gives_an_empty_session(mutate: t.Callable[[str], str]) -> None:
    client = session_app().test_client()
    good = _cookie(client.get("/set/user")).get("session")
    assert good is not None
    _forge(client, mutate(good.value))
    assert client.get("/get").json == {"value": None, "count": None, "new": True}


def test_cookie_signed_with_another_key_is_rejected() -> None:
    other = session_app("another secret").test_client()
    value = _cookie(other.get("/set/x"))["session"].value
    client = session_app().test_client()
    _forge(client, value)
    assert client.get("/get").json["value"] is None


def test_expired_cookie_is_rejected() -> None:
    app = session_app()
    interface = SessionInterface()
    key = interface._key(app)
    assert key is not None
    lifetime = timedelta(days=31).total_seconds()
    old = interface.sign(key, {"value": "old"}, now=time.time() - lifetime - 10)
    fresh = interface.sign(key, {"value": "fresh"})
    assert interface.unsign(key, old, lifetime) is None
    assert interface.unsign(key, fresh, lifetime) == {"value": "fresh"}
    client = app.test_client()
    _forge(client, old)
    assert client.get("/get").json["value"] is None


def test_cookie_payload_is_readable_json_but_not_forgeable() -> None:
    # Signed, not encrypted: document that the data is visible to the client.
    client = session_app().test_client()
    value = _cookie(client.get("/set/visible"))["session"].value
    payload = value.split(".")[0]
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert data == {"count": 1, "value": "visible"}


def test_no_secret_key_reading_is_empty_and_writing_fails_clearly() -> None:
    app = session_app(secret=None)
    client = app.test_client()
    assert client.get("/get").json["value"] is None
    app.testing = True
    with pytest.raises(RuntimeError, match="no secret key was set"):
        client.get("/set/x")


def test_session_cookie_settings_are_honoured() -> None:
    app = session_app()
    app.config.update(
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/app",
    )
    header = app.test_client().get("/set/x").headers["Set-Cookie"]
    assert header.startswith("sid=")
    assert "Secure" in header and "SameSite=Lax" in header and "Path=/app" in header


@pytest.mark.parametrize(
    "text",
    ['{" u": 5}', '{" dt": 5}', '{" dt": "not a date"}', '{" b": "!!"}', '{" t": 5}', '{" di": 1}'],
)
def test_malformed_tagged_session_json_is_a_value_error(text: str) -> None:
    from uwsgiapp.web import tagjson

    with pytest.raises(ValueError):
        tagjson.loads(text)


def test_config_from_envvar_and_from_pyfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "settings.py").write_text(
        "import datetime\nSECRET_KEY = 'from file'\nLIFETIME = datetime.timedelta(hours=1)\n"
        "lower = 'ignored'\n"
    )
    app = App(__name__, root_path=str(tmp_path))
    monkeypatch.setenv("APP_SETTINGS", "settings.py")  # relative to the app's root_path
    assert app.config.from_envvar("APP_SETTINGS") is True
    assert app.secret_key == "from file" and app.config["LIFETIME"] == timedelta(hours=1)
    assert "lower" not in app.config and "datetime" not in app.config
    monkeypatch.setenv("APP_SETTINGS", str(tmp_path / "missing.py"))
    with pytest.raises(FileNotFoundError, match="Unable to load configuration file"):
        app.config.from_envvar("APP_SETTINGS")
    assert app.config.from_envvar("APP_SETTINGS", silent=True) is False
    monkeypatch.delenv("APP_SETTINGS")
    with pytest.raises(RuntimeError, match="'APP_SETTINGS' is not set"):
        app.config.from_envvar("APP_SETTINGS")
    assert app.config.from_envvar("APP_SETTINGS", silent=True) is False
    (tmp_path / "broken.py").write_text("SECRET_KEY = 1 +\n")
    with pytest.raises(SyntaxError):
        app.config.from_pyfile("broken.py", silent=True)  # silent only covers a missing file


def test_config_from_file(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text('{"MAIL_PORT": 25, "lower": 1}')
    (tmp_path / "more.json").write_text('{"MAIL_HOST": "mx"}')
    config = Config(root_path=str(tmp_path))
    assert config.from_file("settings.json", load=json.load) is True
    assert config.from_file(tmp_path / "more.json", load=json.load, text=False) is True
    assert config == {"MAIL_PORT": 25, "MAIL_HOST": "mx"}
    assert config.from_file("nope.json", load=json.load, silent=True) is False
    with pytest.raises(FileNotFoundError):
        config.from_file("nope.json", load=json.load)
