"""Flask 3.1's security settings, honoured the same way: each test builds its app once on Flask
(the real one, in the venv) and once on uwsgiapp.web, and expects the same answers.

``TRUSTED_HOSTS`` (a 400 for any other Host, so that ``url_for(_external=True)`` never names
the attacker's host), ``SERVER_NAME`` (the host such URLs name, whatever Host the request
carried), ``MAX_FORM_PARTS`` and ``MAX_FORM_MEMORY_SIZE`` (a 413),
``SESSION_COOKIE_PARTITIONED`` (and the Secure it implies), ``SECRET_KEY_FALLBACKS`` (key
rotation that logs nobody out).
"""

from __future__ import annotations

import hashlib
import hmac
import typing as t
from datetime import datetime, timedelta, timezone

import flask
import pytest

import uwsgiapp.web as web
from uwsgiapp.web.sessions import SessionInterface

FRAMEWORKS = pytest.mark.parametrize("fw", [flask, web], ids=["flask", "uwsgiapp.web"])


def _app(fw: t.Any, **config: t.Any) -> t.Any:
    app = fw.Flask(__name__) if fw is flask else fw.App(__name__)
    app.config.update(config)
    return app


# -- TRUSTED_HOSTS ----------------------------------------------------------------------------


def _host_app(fw: t.Any, **config: t.Any) -> t.Any:
    app = _app(fw, **config)

    @app.route("/reset")
    def reset() -> str:
        return fw.url_for("user", _external=True)

    @app.route("/u")
    def user() -> str:
        return f"host {fw.request.host}"

    return app


@FRAMEWORKS
@pytest.mark.parametrize(
    ("host", "status", "body"),
    [
        ("good.example", 200, b"http://good.example/u"),
        ("good.example:8080", 200, b"http://good.example:8080/u"),
        ("www.sub.example", 200, b"http://www.sub.example/u"),
        ("evil.example", 400, None),
        ("good.example.evil.example", 400, None),
        ("sub.example.evil", 400, None),
    ],
)
def test_trusted_hosts_refuse_any_other_host(
    fw: t.Any, host: str, status: int, body: bytes | None
) -> None:
    app = _host_app(fw, TRUSTED_HOSTS=["good.example", ".sub.example"])
    response = app.test_client().get("/reset", headers={"Host": host})
    assert response.status_code == status
    if body is not None:
        assert response.data == body
    else:
        assert b"http://" not in response.data  # no URL was built on the host


@FRAMEWORKS
def test_untrusted_host_reaches_the_400_handler_and_never_the_view(fw: t.Any) -> None:
    app = _host_app(fw, TRUSTED_HOSTS=["good.example"])
    seen: list[str] = []

    @app.errorhandler(400)
    def bad_request(e: t.Any) -> tuple[str, int]:
        seen.append(type(e).__name__)
        return "refused", 400

    client = app.test_client()
    assert client.get("/reset", headers={"Host": "evil.example"}).data == b"refused"
    assert client.get("/u", headers={"Host": "evil.example"}).data == b"refused"
    assert seen == ["SecurityError", "SecurityError"]
    # A trusted host after an untrusted one: nothing of the refusal was kept.
    assert client.get("/u", headers={"Host": "good.example"}).data == b"host good.example"


@FRAMEWORKS
def test_without_trusted_hosts_any_host_is_served(fw: t.Any) -> None:
    app = _host_app(fw)
    response = app.test_client().get("/reset", headers={"Host": "any.example"})
    assert response.data == b"http://any.example/u"


@FRAMEWORKS
def test_trusted_hosts_set_after_a_first_request_still_apply(fw: t.Any) -> None:
    app = _host_app(fw)
    client = app.test_client()
    assert client.get("/reset", headers={"Host": "evil.example"}).status_code == 200
    app.config["TRUSTED_HOSTS"] = ["good.example"]
    assert client.get("/reset", headers={"Host": "evil.example"}).status_code == 400


@FRAMEWORKS
def test_request_host_is_checked_in_a_test_request_context(fw: t.Any) -> None:
    app = _host_app(fw, TRUSTED_HOSTS=["good.example"])
    with app.test_request_context("/u", headers={"Host": "good.example"}):
        assert fw.request.host == "good.example"
    with app.test_request_context("/u", headers={"Host": "evil.example"}):
        with pytest.raises(Exception) as caught:
            _ = fw.request.host
        assert type(caught.value).__name__ == "SecurityError"
        assert getattr(caught.value, "code", None) == 400


@FRAMEWORKS
@pytest.mark.parametrize("host", ["evil.example", "canon.example", "www.canon.example"])
def test_server_name_is_the_host_of_the_urls_a_request_builds(fw: t.Any, host: str) -> None:
    # The other defence against a forged Host in mailed links: the links name SERVER_NAME.
    app = _host_app(fw, SERVER_NAME="canon.example")

    @app.route("/dir/")
    def directory() -> str:
        return "dir"

    client = app.test_client()
    headers = {"Host": host}
    assert client.get("/reset", headers=headers).data == b"http://canon.example/u"
    assert client.get("/u", headers=headers).data == f"host {host}".encode()  # still served
    assert client.get("/dir", headers=headers).location == "http://canon.example/dir/"


# -- MAX_FORM_PARTS, MAX_FORM_MEMORY_SIZE -----------------------------------------------------


def _multipart(*fields: tuple[str, bytes]) -> bytes:
    parts = [
        b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (name.encode(), value)
        for name, value in fields
    ]
    return b"".join(parts) + b"--B--\r\n"


def _form_app(fw: t.Any, **config: t.Any) -> t.Any:
    app = _app(fw, **config)

    @app.route("/f", methods=["POST"])
    def form() -> dict[str, int]:
        if "per_view" in fw.request.args:
            fw.request.max_form_parts = 2
        return {"fields": len(fw.request.form)}

    return app


_TEN_PARTS = _multipart(*((f"k{i}", b"v") for i in range(10)))
_BIG_FIELD = _multipart(("k", b"v" * 5000))


@FRAMEWORKS
@pytest.mark.parametrize(
    ("config", "body", "status"),
    [
        ({"MAX_FORM_PARTS": 5}, _TEN_PARTS, 413),
        ({"MAX_FORM_PARTS": 20}, _TEN_PARTS, 200),
        ({"MAX_FORM_PARTS": None}, _multipart(*((f"k{i}", b"v") for i in range(1500))), 200),
        ({}, _multipart(*((f"k{i}", b"v") for i in range(1500))), 413),  # default 1,000
        ({"MAX_FORM_MEMORY_SIZE": 1000}, _BIG_FIELD, 413),
        ({"MAX_FORM_MEMORY_SIZE": 10_000}, _BIG_FIELD, 200),
        ({"MAX_FORM_MEMORY_SIZE": None}, _multipart(("k", b"v" * 600_000)), 200),
        ({}, _multipart(("k", b"v" * 600_000)), 413),  # default 500,000
    ],
)
def test_multipart_form_limits(
    fw: t.Any, config: dict[str, t.Any], body: bytes, status: int
) -> None:
    app = _form_app(fw, **config)
    response = app.test_client().post(
        "/f", data=body, content_type="multipart/form-data; boundary=B"
    )
    assert response.status_code == status


@FRAMEWORKS
def test_urlencoded_forms_are_bounded_by_max_content_length_only(fw: t.Any) -> None:
    # werkzeug reads a urlencoded body whole, so the two form limits do not apply to it (in
    # Flask either): MAX_CONTENT_LENGTH is what bounds it.
    app = _form_app(fw, MAX_FORM_PARTS=5, MAX_FORM_MEMORY_SIZE=1000)
    client = app.test_client()
    kind = "application/x-www-form-urlencoded"
    many, big = "&".join(f"a{i}=1" for i in range(10)), "a=" + "x" * 2000
    assert client.post("/f", data=many, content_type=kind).get_json() == {"fields": 10}
    assert client.post("/f", data=big, content_type=kind).status_code == 200
    app.config["MAX_CONTENT_LENGTH"] = 1000
    assert client.post("/f", data=big, content_type=kind).status_code == 413


@FRAMEWORKS
def test_a_view_can_set_a_tighter_limit_for_its_request(fw: t.Any) -> None:
    client = _form_app(fw, MAX_FORM_PARTS=20).test_client()
    kind = "multipart/form-data; boundary=B"
    assert client.post("/f", data=_TEN_PARTS, content_type=kind).status_code == 200
    assert client.post("/f?per_view", data=_TEN_PARTS, content_type=kind).status_code == 413


# -- SESSION_COOKIE_PARTITIONED ---------------------------------------------------------------


def _session_app(fw: t.Any, **config: t.Any) -> t.Any:
    app = _app(fw, **config)

    @app.route("/set")
    def set_value() -> str:
        fw.session["user"] = fw.request.args.get("user", "ann")
        return "set"

    @app.route("/me")
    def me() -> dict[str, t.Any]:
        return {"user": fw.session.get("user")}

    @app.route("/out")
    def log_out() -> str:
        fw.session.clear()
        return "out"

    return app


def _attributes(set_cookie: str) -> list[str]:
    return sorted(part.strip() for part in set_cookie.split(";")[1:])


@FRAMEWORKS
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"SESSION_COOKIE_PARTITIONED": True}, ["HttpOnly", "Partitioned", "Path=/", "Secure"]),
        (
            {"SESSION_COOKIE_PARTITIONED": True, "SESSION_COOKIE_SAMESITE": "None"},
            ["HttpOnly", "Partitioned", "Path=/", "SameSite=None", "Secure"],
        ),
        ({}, ["HttpOnly", "Path=/"]),
    ],
)
def test_partitioned_session_cookie(
    fw: t.Any, config: dict[str, t.Any], expected: list[str]
) -> None:
    client = _session_app(fw, SECRET_KEY="k", **config).test_client()
    assert _attributes(client.get("/set").headers["Set-Cookie"]) == expected
    deleted = client.get("/out").headers["Set-Cookie"]  # deleting one says it too
    assert ("Partitioned" in deleted) is ("SESSION_COOKIE_PARTITIONED" in config)


# -- PERMANENT_SESSION_LIFETIME -------------------------------------------------------------


@FRAMEWORKS
@pytest.mark.parametrize("lifetime", [3600, 3600.0, timedelta(hours=1)], ids=repr)
def test_permanent_session_lifetime_may_be_seconds(fw: t.Any, lifetime: t.Any) -> None:
    # Flask takes a number of seconds, as FLASK_PERMANENT_SESSION_LIFETIME=3600 and
    # from_prefixed_env() set it: a number made every request carrying a session cookie a 500.
    app = _session_app(fw, SECRET_KEY="k", PERMANENT_SESSION_LIFETIME=lifetime)

    @app.route("/permanent")
    def permanent() -> str:
        fw.session.permanent = True
        fw.session["user"] = "ann"
        return "set"

    client = app.test_client()
    response = client.get("/permanent")
    assert response.status_code == 200
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.expires is not None
    left = cookie.expires - datetime.now(timezone.utc)
    assert timedelta(minutes=58) < left <= timedelta(hours=1)
    assert client.get("/me").get_json() == {"user": "ann"}


# -- SECRET_KEY_FALLBACKS ---------------------------------------------------------------------


def _login(fw: t.Any, secret: str, user: str = "ann") -> str:
    """The session cookie an app of ``fw`` signed with ``secret`` for ``user``."""
    client = _session_app(fw, SECRET_KEY=secret).test_client()
    client.get(f"/set?user={user}")
    cookie = client.get_cookie("session")
    assert cookie is not None
    return str(cookie.value)


def _reader(fw: t.Any, value: str, **config: t.Any) -> t.Any:
    client = _session_app(fw, **config).test_client()
    client.set_cookie("session", value)
    return client


@FRAMEWORKS
@pytest.mark.parametrize("signer", [flask, web], ids=["signed by flask", "signed by uwsgiapp.web"])
def test_a_rotated_key_keeps_sessions_signed_with_a_fallback(fw: t.Any, signer: t.Any) -> None:
    value = _login(signer, "old")
    rotated = {"SECRET_KEY": "new", "SECRET_KEY_FALLBACKS": ["older", "old"]}
    client = _reader(fw, value, **rotated)
    response = client.get("/me")
    assert response.get_json() == {"user": "ann"}
    assert "Set-Cookie" not in response.headers  # only read: re-signed when next written
    assert _reader(fw, value, SECRET_KEY="new").get("/me").get_json() == {"user": None}

    client.get("/set?user=bob")  # written again: signed with the current key
    cookie = client.get_cookie("session")
    assert cookie is not None
    for app_fw in (flask, web):
        assert _reader(app_fw, cookie.value, SECRET_KEY="new").get("/me").get_json() == {
            "user": "bob"
        }
        assert _reader(app_fw, cookie.value, SECRET_KEY="old").get("/me").get_json() == {
            "user": None
        }


@FRAMEWORKS
def test_fallbacks_take_bytes_and_sign_nothing_without_a_secret_key(fw: t.Any) -> None:
    value = _login(fw, "old")
    client = _reader(fw, value, SECRET_KEY="new", SECRET_KEY_FALLBACKS=[b"old"])
    assert client.get("/me").get_json() == {"user": "ann"}
    # No SECRET_KEY: no session at all, whatever the fallbacks (a null session).
    client = _reader(fw, value, SECRET_KEY=None, SECRET_KEY_FALLBACKS=["old"])
    assert client.get("/me").get_json() == {"user": None}
    assert client.get("/set").status_code == 500


@FRAMEWORKS
@pytest.mark.parametrize("secret", [20240517, True], ids=["a number", "true"])
def test_a_secret_key_that_is_not_text_fails_closed(fw: t.Any, secret: object) -> None:
    # FLASK_SECRET_KEY=true through from_prefixed_env() is True; bytes(True) was one NUL byte:
    # uwsgiapp.web signed with that and read a cookie anyone could forge. Flask answers 500.
    nul_key = b"\0" * 20240517 if secret == 20240517 else b"\0"
    forged = SessionInterface().sign(
        hmac.new(nul_key, b"cookie-session", hashlib.sha1).digest(), {"user": "admin"}
    )
    client = _reader(fw, forged, SECRET_KEY=secret)
    assert client.get("/me").status_code == 500
    assert client.get("/set").status_code == 500


@pytest.mark.parametrize(
    "fallbacks",
    ["old", bytearray(b"old"), [""], [0], [None]],
    ids=["one string", "one bytearray", "empty", "zero", "none"],
)
def test_fallback_keys_that_anyone_could_sign_with_are_refused(
    fallbacks: object, caplog: pytest.LogCaptureFixture
) -> None:
    # A string of fallbacks made each of its characters a key (Flask too); an empty key is
    # anyone's. Refused, naming the setting, and never showing a key's value in the log.
    value = _login(web, "o")
    client = _reader(web, value, SECRET_KEY="new", SECRET_KEY_FALLBACKS=fallbacks)
    assert client.get("/me").status_code == 500
    assert "SECRET_KEY_FALLBACKS" in caplog.text and "'old'" not in caplog.text


def test_a_session_is_written_where_set_cookie_has_no_partitioned_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # werkzeug 3.0 (which the package allows) has no partitioned= in set_cookie: passing it
    # always made every response that writes a session a 500 there.
    import inspect

    real = web.Response.set_cookie

    def set_cookie_3_0(self: t.Any, key: str, value: str = "", **options: t.Any) -> None:
        assert "partitioned" not in options, options
        real(self, key, value, **options)

    monkeypatch.setattr(web.Response, "set_cookie", set_cookie_3_0)
    app = web.App(__name__)
    app.secret_key = "k"

    @app.route("/")
    def index() -> str:
        web.session["n"] = 1
        return "ok"

    response = app.test_client().get("/")
    assert response.status_code == 200 and "session=" in response.headers["Set-Cookie"]
    assert "partitioned" in inspect.signature(real).parameters  # the werkzeug installed here
