"""build_environ, strip_script_name, parse_content_length and EnvironSettings: pure tests."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest

from uwsgiapp.wsgi.environ import (
    REQUIRED_DEFAULTS,
    BadRequest,
    EnvironSettings,
    build_environ,
    parse_content_length,
    strip_script_name,
)

# What nginx 1.22 sends for `GET /hello?x=1` with `include uwsgi_params` (see the corpus).
NGINX_GET: dict[str, str] = {
    "QUERY_STRING": "x=1",
    "REQUEST_METHOD": "GET",
    "CONTENT_TYPE": "",
    "CONTENT_LENGTH": "",
    "REQUEST_URI": "/hello?x=1",
    "PATH_INFO": "/hello",
    "DOCUMENT_ROOT": "/usr/share/nginx/html",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REQUEST_SCHEME": "http",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "51234",
    "SERVER_PORT": "8080",
    "SERVER_NAME": "localhost",
    "HTTP_HOST": "localhost:8080",
    "HTTP_USER_AGENT": "curl/8.0",
}


def env(
    variables: dict[str, str] | None = None,
    *,
    mount: str = "",
    settings: EnvironSettings | None = None,
    has_magic: bool = True,
) -> dict[str, Any]:
    template = (settings or EnvironSettings()).template()
    return build_environ(
        dict(NGINX_GET if variables is None else variables), template, mount, has_magic
    )


# -- template / settings ---------------------------------------------------------------------


def test_template_has_the_pep3333_keys() -> None:
    t = EnvironSettings().template()
    assert t["wsgi.version"] == (1, 0)
    assert t["wsgi.url_scheme"] == "http"
    assert t["wsgi.errors"] is sys.stderr
    assert t["wsgi.multithread"] is False
    assert t["wsgi.multiprocess"] is True
    assert t["wsgi.run_once"] is False
    assert "wsgi.input_terminated" not in t  # werkzeug looks at its presence: see test_flask_input
    assert t["SCRIPT_NAME"] == ""


def test_template_uses_the_settings() -> None:
    errors = io.StringIO()

    def wrapper(f: Any, blksize: int = 8192) -> Any:
        return f

    t = EnvironSettings(errors=errors, file_wrapper=wrapper, multiprocess=False).template()
    assert t["wsgi.errors"] is errors
    assert t["wsgi.file_wrapper"] is wrapper
    assert t["wsgi.multiprocess"] is False


def test_settings_are_frozen() -> None:
    s = EnvironSettings(mount="/app", limit_post=10)
    with pytest.raises(AttributeError):
        s.mount = "/x"  # type: ignore[misc]


def test_each_environ_is_a_fresh_dict_and_the_template_is_untouched() -> None:
    template = EnvironSettings().template()
    before = dict(template)
    a = build_environ(dict(NGINX_GET), template)
    a["wsgi.url_scheme"] = "https"
    b = build_environ(dict(NGINX_GET), template)
    assert b["wsgi.url_scheme"] == "http"
    assert template == before


# -- what is kept, dropped, defaulted ----------------------------------------------------------


def test_nginx_vars_are_kept() -> None:
    e = env()
    for key, value in NGINX_GET.items():
        assert e[key] == value
    assert e["wsgi.url_scheme"] == "http"
    assert e["SCRIPT_NAME"] == ""


def test_http_content_type_and_length_are_dropped() -> None:
    e = env(
        {
            **NGINX_GET,
            "HTTP_CONTENT_TYPE": "text/plain",
            "HTTP_CONTENT_LENGTH": "3",
            "CONTENT_TYPE": "text/plain",
            "CONTENT_LENGTH": "3",
        }
    )
    assert "HTTP_CONTENT_TYPE" not in e
    assert "HTTP_CONTENT_LENGTH" not in e
    assert e["CONTENT_TYPE"] == "text/plain"
    assert e["CONTENT_LENGTH"] == "3"


@pytest.mark.parametrize("key", ["UWSGI_SCRIPT", "UWSGI_CHDIR", "UWSGI_POSTFILE", "UWSGI_"])
def test_magic_uwsgi_vars_are_dropped(key: str) -> None:
    e = env({**NGINX_GET, key: "/etc/passwd"})
    assert key not in e
    assert not [k for k in e if k.startswith("UWSGI_")]


@pytest.mark.parametrize(
    ("value", "extra", "scheme"),
    [
        ("https", {}, "https"),  # uwsgi_param UWSGI_SCHEME $http_x_forwarded_proto
        ("HTTPS", {}, "https"),  # a load balancer that upper-cases it
        ("http", {"HTTPS": "on", "REQUEST_SCHEME": "https"}, "http"),  # it rules, as in uWSGI
        ("ftp", {}, "http"),  # anything else is not a scheme for the app
        ("", {"HTTPS": "on"}, "https"),
    ],
)
def test_uwsgi_scheme_sets_the_url_scheme_then_is_dropped(
    value: str, extra: dict[str, str], scheme: str
) -> None:
    e = env({**NGINX_GET, **extra, "UWSGI_SCHEME": value})
    assert e["wsgi.url_scheme"] == scheme
    assert "UWSGI_SCHEME" not in e


def test_only_the_uwsgi_prefix_is_magic() -> None:
    e = env({**NGINX_GET, "HTTP_X_UWSGI_THING": "1", "uwsgi_lower": "2"})
    assert e["HTTP_X_UWSGI_THING"] == "1"
    assert e["uwsgi_lower"] == "2"


def test_has_magic_false_skips_the_scan() -> None:
    # The caller promises there is no UWSGI_ key (it checked the raw block); nothing else changes.
    e = env(has_magic=False)
    assert e["PATH_INFO"] == "/hello"


def test_missing_required_keys_are_defaulted() -> None:
    e = env({})
    for key, value in REQUIRED_DEFAULTS.items():
        assert e[key] == value
    assert e["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert e["REQUEST_METHOD"] == "GET"


def test_present_required_keys_are_not_overwritten() -> None:
    e = env({"REQUEST_METHOD": "POST", "PATH_INFO": "/p"})
    assert e["REQUEST_METHOD"] == "POST"
    assert e["PATH_INFO"] == "/p"
    assert e["SERVER_NAME"] == "localhost"


def test_client_cannot_override_wsgi_keys() -> None:
    e = env({**NGINX_GET, "wsgi.url_scheme": "gopher", "wsgi.version": "9", "wsgi.run_once": "1"})
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.version"] == (1, 0)
    assert e["wsgi.run_once"] is False


# -- url scheme ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "scheme"),
    [
        ({"HTTPS": "on"}, "https"),
        ({"HTTPS": "ON"}, "https"),
        ({"HTTPS": "1"}, "https"),
        ({"HTTPS": "off"}, "http"),
        ({"HTTPS": ""}, "http"),
        ({"REQUEST_SCHEME": "https"}, "https"),
        ({"REQUEST_SCHEME": "http"}, "http"),
        ({"REQUEST_SCHEME": "http", "HTTPS": "on"}, "https"),
        # a non-empty HTTPS decides, as in uWSGI: "off" is http whatever $scheme said
        ({"REQUEST_SCHEME": "https", "HTTPS": "off"}, "http"),
        ({"REQUEST_SCHEME": "https", "HTTPS": "0"}, "http"),
        ({"REQUEST_SCHEME": "https", "HTTPS": ""}, "https"),
        ({}, "http"),
    ],
)
def test_url_scheme(extra: dict[str, str], scheme: str) -> None:
    base = {k: v for k, v in NGINX_GET.items() if k != "REQUEST_SCHEME"}
    assert env({**base, **extra})["wsgi.url_scheme"] == scheme


# -- SCRIPT_NAME -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "path", "expected"),
    [
        # nginx sends the full path: the prefix comes off PATH_INFO.
        ("/app", "/app/x", ("/app", "/x")),
        ("/app/", "/app/x", ("/app", "/x")),
        ("/app", "/app", ("/app", "")),
        # nginx rewrote the prefix away (`rewrite ^/app(/.*)$ $1 break;`): both kept, as uWSGI.
        ("/app", "/x", ("/app", "/x")),
        ("/app", "/apple", ("/app", "/apple")),
        # "/" names no prefix.
        ("/", "/x", ("", "/x")),
    ],
)
def test_script_name_from_nginx_is_honoured(
    sent: str, path: str, expected: tuple[str, str]
) -> None:
    e = env({**NGINX_GET, "SCRIPT_NAME": sent, "PATH_INFO": path})
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == expected


@pytest.mark.parametrize(
    ("uri", "path", "expected"),
    [
        # The client asked for /app/app/x; nginx took /app off (a rewrite, or a regex
        # location's PATH_INFO $1): what is left is the app's path, though it starts with /app.
        ("/app/app/x?q=1", "/app/x", ("/app", "/app/x")),
        ("/app/app", "/app", ("/app", "/app")),
        ("/app/%61pp/x", "/app/x", ("/app", "/app/x")),  # REQUEST_URI is as the client sent it
        # ... however the client spells it: nginx's $uri is decoded and normalised (a deny on
        # /app/admin, the app's /admin, must not be passed by /app//app/admin).
        ("/app//app/admin", "/app/admin", ("/app", "/app/admin")),
        ("/app/y/../app/x", "/app/x", ("/app", "/app/x")),
        ("/app/./app/x", "/app/x", ("/app", "/app/x")),
        # nginx sent the whole path: the prefix comes off.
        ("/app/x", "/app/x", ("/app", "/x")),
        ("/app/%78", "/app/x", ("/app", "/x")),
        ("/app//x", "/app/x", ("/app", "/x")),  # nginx merged the slashes: still the whole path
    ],
)
def test_a_prefix_nginx_took_off_is_not_taken_off_again(
    uri: str, path: str, expected: tuple[str, str]
) -> None:
    e = env({**NGINX_GET, "SCRIPT_NAME": "/app", "PATH_INFO": path, "REQUEST_URI": uri})
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == expected


@pytest.mark.parametrize(
    ("script", "path", "expected"),
    [
        ("/app", "/app/x", ("/app", "/x")),
        ("/app", "/app/", ("/app", "/")),
        ("/app", "/app", ("/app", "")),
        ("/app", "/apple", ("", "/apple")),
        ("/app", "/ap", ("", "/ap")),
        ("/app", "/other/app/x", ("", "/other/app/x")),
        ("/app", "", ("", "")),
        ("/app/", "/app/x", ("/app", "/x")),
        ("/", "/x", ("", "/x")),
        ("", "/x", ("", "/x")),
        ("/a/b", "/a/b/c", ("/a/b", "/c")),
        ("/a/b", "/a/bc", ("", "/a/bc")),
    ],
)
def test_strip_script_name(script: str, path: str, expected: tuple[str, str]) -> None:
    assert strip_script_name(script, path) == expected


def test_an_empty_script_name_from_nginx_falls_back_to_mount() -> None:
    e = env({**NGINX_GET, "SCRIPT_NAME": "", "PATH_INFO": "/app/x"}, mount="/app")
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/app", "/x")


def test_nginx_script_name_rules_over_mount() -> None:
    # The location's uwsgi_param is the more specific of the two.
    e = env({**NGINX_GET, "SCRIPT_NAME": "/b", "PATH_INFO": "/b/x"}, mount="/a")
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/b", "/x")


@pytest.mark.parametrize(
    ("path", "script", "rest"),
    [("/app/x", "/app", "/x"), ("/app", "/app", ""), ("/apple", "", "/apple"), ("/", "", "/")],
)
def test_mount_strips_a_real_prefix(path: str, script: str, rest: str) -> None:
    e = env({**NGINX_GET, "PATH_INFO": path}, mount="/app")
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == (script, rest)


def test_mount_with_missing_path_info() -> None:
    e = env({"REQUEST_METHOD": "GET"}, mount="/app")
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("", "")


# -- CONTENT_LENGTH ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "length"),
    [("", 0), (None, 0), ("0", 0), ("12", 12), ("0012", 12), ("1048576", 1048576)],
)
def test_content_length_ok(value: str | None, length: int) -> None:
    assert parse_content_length(value) == length


@pytest.mark.parametrize(
    "value",
    [
        "-1",
        "+1",
        "1e3",
        " 12",
        "12 ",
        "\uff11\uff12",
        "٣",
        "²",
        "12abc",
        "0x10",
        "1_000",
        "1.0",
        "abc",
        "\t1",
        "12\n",
    ],
)
def test_content_length_bad_is_400(value: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_content_length(value, 1000)
    assert info.value.status == "400 Bad Request"
    assert info.value.status.startswith("400 ")
    assert info.value.reason


def test_content_length_over_limit_is_413() -> None:
    assert parse_content_length("100", 100) == 100
    with pytest.raises(BadRequest) as info:
        parse_content_length("101", 100)
    assert info.value.status == "413 Request Entity Too Large"


def test_content_length_limit_0_means_none() -> None:
    assert parse_content_length("99999999999", 0) == 99999999999


@pytest.mark.parametrize("limit", [0, 1000])
def test_content_length_with_thousands_of_digits_is_refused_not_a_crash(limit: int) -> None:
    # int() refuses strings over 4300 digits with a ValueError: that must not escape.
    with pytest.raises(BadRequest) as info:
        parse_content_length("9" * 5000, limit)
    # Digits only, so not a 400: more than 18 significant digits is too large, whatever the limit.
    assert info.value.status == "413 Request Entity Too Large"
    assert info.value.reason == "CONTENT_LENGTH of 5000 digits"


def test_content_length_leading_zeros_are_just_digits() -> None:
    assert parse_content_length("0" * 5000 + "7", 10) == 7


def test_bad_request_reason_is_short() -> None:
    with pytest.raises(BadRequest) as info:
        parse_content_length("x" * 10000)
    assert len(info.value.reason) < 200


@pytest.mark.parametrize(("workers", "threads"), [(1, 1), (2, 1), (1, 4), (3, 2)])
def test_multiprocess_and_multithread_say_what_the_server_runs(workers: int, threads: int) -> None:
    # uWSGI and gunicorn say multiprocess only with more than one worker; werkzeug's
    # interactive debugger refuses to run when it is true.
    from uwsgiapp.config import make_config
    from uwsgiapp.supervisor.boot import build_handler

    config = make_config(app="x:y", workers=workers, threads=threads)
    template = build_handler(lambda e, s: [], config).template
    assert template["wsgi.multiprocess"] is (workers > 1)
    assert template["wsgi.multithread"] is (threads > 1)
