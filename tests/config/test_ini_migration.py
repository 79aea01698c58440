"""What an operator moving from uWSGI meets: the lines of theirs that uwsgiapp refuses, or
ignores, each with what uWSGI did with it and what to write instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from uwsgiapp.config import ConfigError
from uwsgiapp.config.configload import Raw, resolve
from uwsgiapp.config.initerms import quoted_rule
from uwsgiapp.config.uwsgiini import IniResult, ini_layer

HEAD = "[uwsgi]\nmodule = app:app\nsocket = /tmp/app.sock\n"


def read(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> IniResult:
    path = tmp_path / "site.ini"
    path.write_text(HEAD + body + "\n")
    return ini_layer(str(path), environ={} if environ is None else environ)


def refusal(tmp_path: Path, body: str) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve([read(tmp_path, body).layer])
    return str(caught.value)


def said(result: IniResult) -> list[str]:
    return [w.partition("]: ")[2] for w in result.warnings]


@pytest.mark.parametrize("key", ["protocol", "socket-protocol"])
@pytest.mark.parametrize("value", ["http", "https", "HTTP", "fastcgi"])
def test_a_socket_protocol_other_than_uwsgi_stops_the_start(
    tmp_path: Path, key: str, value: str
) -> None:
    # Docker images' "socket = :8000" + "protocol = http": uWSGI serves HTTP there; ours spoke
    # uwsgi on it after a warning ("'socket-protocol' is not supported, ignored" for the
    # other spelling), and every request failed (curl: empty reply; nginx: 502).
    text = refusal(tmp_path, f"{key} = {value}")
    assert (
        f"'{key} = {value}' cannot be honoured: uwsgiapp speaks only nginx's uwsgi"
        " protocol: put nginx (uwsgi_pass) in front" in text
    )
    assert f"{key} (line 4)" in text


def test_socket_protocol_uwsgi_is_what_uwsgiapp_does(tmp_path: Path) -> None:
    result = read(tmp_path, "socket-protocol = uwsgi\nstrict = true")
    assert result.warnings == [] and result.unsupported == []


@pytest.mark.parametrize(
    ("body", "shown", "instead"),
    [
        ("route = ^/health donotlog:", "route = … donotlog:…", "nginx's 'access_log off;'"),
        (
            "route-if = equal:${HTTP_X_KEY};s3cret donotlog:",
            "route-if = … donotlog:…",
            "'disable-logging = true'",
        ),
        ("route-uri = ^/ping$ log:pinged ${REMOTE_ADDR}", "route-uri = … log:…", "in nginx"),
        (
            "final-route = .* logvar:user ${REMOTE_USER}",
            "final-route = … logvar:…",
            "a log-format's %(var.NAME)",
        ),
        ("route-run = fixpathinfo:", "route-run = fixpathinfo:…", "'mount = /app=module:app'"),
        ("route = ^/app fixpathinfo:", "route = … fixpathinfo:…", "use mount, then remove"),
    ],
)
def test_a_rule_that_only_logs_or_fixes_path_info_is_ignored(
    tmp_path: Path, body: str, shown: str, instead: str
) -> None:
    # Start-up stopped on them ("uwsgiapp has no internal router ... put it in nginx"), but
    # serving without them serves the same, to the same clients.
    result = read(tmp_path, f"{body}\n{body}")  # one warning per rule (a line each)
    warnings = said(result)
    assert len(warnings) == 2, warnings
    for line, warning in zip((4, 5), warnings, strict=True):
        start = f"'{shown}' (line {line}) is ignored: uwsgiapp has no internal router; "
        assert warning.startswith(start) and instead in warning, warning
        assert "s3cret" not in warning
    assert result.unsupported == [f"{body.partition(' = ')[0]} (line {n})" for n in (4, 5)]
    resolve([result.layer])  # it starts


def test_strict_refuses_an_ignored_rule_as_any_ignored_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'strict' is set .* support route \(line 4\)"):
        read(tmp_path, "route = ^/health donotlog:\nstrict = true")


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("route = ^/admin break:403", "route = … break:…'"),
        ("route-if = equal:${PATH_INFO};/x return:404", "route-if = … return:…'"),
        ("route = ^/old redirect-301:/new", "route = … redirect-301:…'"),
        ("route = ^/(.*) rewrite:/index.php/$1", "route = … rewrite:…'"),
        ("route-run = setvar:x=1", "route-run = setvar:…'"),
        # by its action alone: a matcher or an argument may hold a secret (review)
        ("route-run = addheader:Authorization: Bearer s3cret", "route-run = addheader:…'"),
        ("route = ^/admin basicauth:Admin,ops:s3cret", "route = … basicauth:…'"),
        ("route-if = notequal:${HTTP_X_KEY};s3cret break:403", "route-if = … break:…'"),
        # a matcher with a space and a colon: no such action, nothing of it shown (review)
        ("route-if = equal:${HTTP_AUTHORIZATION};Bearer s3cret:abc break:403", "route-if = …'"),
        ("route-host = ^example\\.com$ " + "x" * 80 + " break:", "route-host = …'"),
        ("route-run = donotlog:\nroute-label = after", "route-label = …'"),
    ],
)
def test_a_rule_that_would_change_what_is_served_is_refused_quoted(
    tmp_path: Path, body: str, shown: str
) -> None:
    text = refusal(tmp_path, body)
    assert f"'{shown}" in text and "cannot be applied: uwsgiapp has no internal router" in text
    assert "s3cret" not in text and "x" * 60 not in text


def test_a_quoted_value_has_its_control_characters_escaped() -> None:
    assert quoted_rule("chroot", "/a\x1b[31m\tb") == "chroot = /a\\x1b[31m\\tb"
    long = quoted_rule("chroot", "/" + "a" * 100)
    assert long.endswith("…") and len(long) == len("chroot = ") + 60
    assert quoted_rule("route", "^/a\x1b[31m break\x1b:403") == "route = …"  # no such action


@pytest.mark.parametrize(
    ("body", "uwsgi_reads"),
    [
        # a Flask tutorial's
        (
            "threads = true",
            "uWSGI reads 'true' as 0 (threads off): write 'threads = 1' for that, or a number"
            " of threads",
        ),
        ("harakiri = 60s", "uWSGI reads '60s' as 60: write 60"),
        # label-studio's
        ("cheaper = true", "uWSGI reads 'true' as 0 (cheaper off): write 'cheaper = 0', or "),
        ("processes = 4 workers", "uWSGI reads '4 workers' as 4: write 4"),
        ("max-requests = 1e4", "uWSGI reads '1e4' as 1: write 1"),
        ("listen = -", "uWSGI reads '-' as 0"),  # and no "write 0": seldom a value
        ("threads = " + "9" * 5000 + "x", ""),  # past C's int: no hint (it raised: review)
        ("processes = 5000000000x", ""),  # past C's int too: atoi's value is undefined
        ("harakiri = 1.5s", "uWSGI reads '1.5s' as 1"),  # no "write 1": 1.5 is taken here
    ],
)
def test_a_number_uwsgi_would_read_says_what_it_read(
    tmp_path: Path, body: str, uwsgi_reads: str
) -> None:
    # Still refused (uWSGI's reading is seldom what was meant), but the message says it.
    text = refusal(tmp_path, body)
    key = body.partition(" = ")[0]
    assert "(line 4)): expected a" in text, text
    assert f"; {uwsgi_reads}" in text if uwsgi_reads else "uWSGI reads" not in text, text
    assert f"{key} (line 4)" in text
    assert not text.endswith("write 0"), text


def test_a_number_from_another_source_has_no_word_of_uwsgi() -> None:
    for source in ("env UWSGIAPP_THREADS", "config app.toml", "--threads"):
        with pytest.raises(ConfigError) as caught:
            resolve([{"threads": Raw("true", source)}])
        assert "uWSGI" not in str(caught.value)
    # nor a flag: uWSGI does not read those with atoi
    with pytest.raises(ConfigError) as caught:
        resolve([{"lazy_apps": Raw("maybe", "ini x.ini [uwsgi] lazy-apps (line 2)")}])
    assert "uWSGI reads" not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "advice"),
    [
        (
            "logto = %(here)s/uwsgi.log",
            "%(here)s is paste's placeholder for the ini's directory: uWSGI's is %d, which ends"
            " with a slash (%(here)s/app.py is %dapp.py)",
        ),
        (
            "pidfile = %(__file__)s.pid",
            "%(__file__)s is paste's placeholder for the ini's path: uWSGI's is %p",
        ),
    ],
)
def test_paste_placeholders_name_uwsgi_magic_variables(
    tmp_path: Path, body: str, advice: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        read(tmp_path, body)
    assert str(caught.value).endswith(advice) and "to keep it as it is" not in str(caught.value)


def test_an_unset_variable_emptying_processes_says_what_uwsgi_does(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read(tmp_path, "processes = $(WORKERS)")
    text = str(caught.value)
    assert "refuses to start" not in text
    assert (
        "processes = $(WORKERS) expands to nothing: $(WORKERS) is not set in the environment,"
        " or is empty (uWSGI reads it as 0 and starts with no worker: it serves nothing): set"
        " it, or remove the key" in text
    )
    with pytest.raises(ConfigError) as caught:
        read(tmp_path, "uid = $(APP_USER)")
    assert "refuses to start" not in str(caught.value)
    assert "is not set in the environment, or is empty: set it" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        "master = true\nemperor = /etc/uwsgi/vassals",
        "emperor-tyrant = true\nemperor = /etc/uwsgi/vassals/*.ini",
        "vassals-inherit = /etc/uwsgi/base.ini",
        "emperor = amqp://guest:S3CRET@rabbit/",
    ],
)
def test_an_emperor_ini_is_refused_up_front(tmp_path: Path, body: str) -> None:
    # It warned "'emperor' is not supported, ignored", then of the default socket, then
    # stopped on "no app given": nothing said why, nor what to do.
    path = tmp_path / "emperor.ini"
    path.write_text(f"[uwsgi]\n{body}\n")
    with pytest.raises(ConfigError) as caught:
        ini_layer(str(path), environ={})
    text = str(caught.value)
    first = body.splitlines()[-1] if body.startswith("master") else body.splitlines()[0]
    # by its key alone: an emperor's URL may carry a password (review)
    key = first.partition(" = ")[0]
    assert f"'{key} = …' cannot be applied: emperor mode is not supported" in text
    assert "S3CRET" not in text
    assert "run one uwsgiapp per vassal ini (e.g. one systemd unit or container each" in text


def test_wsgi_disable_file_wrapper_says_what_uwsgiapp_does(tmp_path: Path) -> None:
    assert said(read(tmp_path, "wsgi-disable-file-wrapper = true")) == [
        "'wsgi-disable-file-wrapper' is not supported, ignored (uwsgiapp always offers"
        " wsgi.file_wrapper: a regular file is sent with sendfile from where it stands (no more"
        " than the Content-Length), anything else (BytesIO, a gzip file) by iterating it, as a"
        " plain body)"
    ]


@pytest.mark.parametrize(
    ("body", "advice"),
    [
        ("py-auto-reload = 2", "use 'uwsgiapp dev' for reloading on code changes"),
        ("python-autoreload = 2", "use 'uwsgiapp dev' for reloading on code changes"),
        ("static-gzip-all = true", "serve static files from nginx"),
        ("static-expires-type-mtime = text/css=3600", "serve static files from nginx"),
    ],
)
def test_uwsgis_spellings_of_a_key_get_its_advice(tmp_path: Path, body: str, advice: str) -> None:
    # Real inis' spellings (20tab's, ocw-studio's, searxng's) got no advice.
    result = read(tmp_path, body)
    found = [*said(result), *(str(u) for u in result.unsupported)]
    assert any(advice in w for w in found), found


def test_logger_req_is_req_logger(tmp_path: Path) -> None:
    # uWSGI's alias (atv's ini): 'logger-req = file:...' was dropped as an unknown key.
    result = read(tmp_path, "logger-req = file:/var/log/app/access.log")
    assert result.layer["access_log_file"].value == "/var/log/app/access.log"
    assert result.warnings == [] and result.unsupported == []
