"""--ini: every supported uWSGI key, magic and env expansion, sections, warnings."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli.cli_testkit import run_cli

from uwsgiapp.cli import EXIT_USAGE
from uwsgiapp.config import ConfigError, make_config
from uwsgiapp.config.configload import (
    FALSE_WORDS,
    TRUE_WORDS,
    Raw,
    convert,
    resolve,
    spec_for,
)
from uwsgiapp.config.iniexpand import (
    MAX_EXPANDED_SIZE,
    MAX_PLACEHOLDER_DEPTH,
    ExpansionError,
    expand,
)
from uwsgiapp.config.uwsgiini import SIMPLE_KEYS, ini_layer, parse_ini, split_ini_arg

Loaded = tuple[Any, list[str], list[tuple[str, str]]]


def load(
    tmp_path: Path,
    body: str,
    *,
    section: str = "uwsgi",
    name: str = "site.ini",
    environ: dict[str, str] | None = None,
) -> Loaded:
    path = tmp_path / name
    path.write_text(f"[{section}]\n{body}\n")
    arg = str(path) if section == "uwsgi" else f"{path}:{section}"
    result = ini_layer(arg, environ=environ or {})
    config = resolve([result.layer]).config
    pairs = [item.partition("=") for item in config.env]
    return config, result.warnings, [(name, value) for name, _, value in pairs]


# (ini lines, {field: expected value}) — one row per uWSGI key we map.
KEYS: list[tuple[str, dict[str, Any]]] = [
    ("module = wsgi:app", {"app": "wsgi:app"}),
    ("module = wsgi", {"app": "wsgi:application"}),  # uWSGI's default callable
    ("module = wsgi\ncallable = app", {"app": "wsgi:app"}),
    ("wsgi = pkg.wsgi\ncallable = app", {"app": "pkg.wsgi:app"}),
    ("wsgi-file = myproject/wsgi.py", {"app": "myproject/wsgi.py:application"}),
    ("file = run.py\ncallable = app", {"app": "run.py:app"}),
    ("wsgi-file = run.py\ncallable = create_app()", {"app": "run.py:create_app()"}),
    ("chdir = /srv/app", {"chdir": "/srv/app"}),
    ("pythonpath = /a\npythonpath = /b", {"pythonpath": ("/a", "/b")}),
    ("python-path = /a", {"pythonpath": ("/a",)}),
    ("socket = /run/app.sock", {"socket": ("/run/app.sock",)}),
    ("socket = :3031\nsocket = /run/b.sock", {"socket": (":3031", "/run/b.sock")}),
    ("uwsgi-socket = 127.0.0.1:3031", {"socket": ("127.0.0.1:3031",)}),
    ("chmod-socket = 660", {"chmod_socket": 0o660}),
    ("chmod-socket = 0600", {"chmod_socket": 0o600}),
    ("chmod-socket =", {"chmod_socket": 0o666}),
    ("chown-socket = app:www-data", {"chown_socket": "app:www-data"}),
    ("processes = 4", {"workers": 4}),
    ("workers = 3", {"workers": 3}),
    ("threads = 8", {"threads": 8}),
    ("processes = 4\nthreads = 2\nenable-threads = true", {"workers": 4, "threads": 2}),
    ("harakiri = 30", {"harakiri": 30.0}),
    ("max-requests = 1000", {"max_requests": 1000}),
    ("max-requests-delta = 50", {"max_requests_jitter": 50}),
    ("reload-on-rss = 200", {"reload_on_rss": 200}),
    (
        "max-worker-lifetime = 3600\nmax-worker-lifetime-delta = 60",
        {"max_worker_lifetime": 3600.0, "max_worker_lifetime_delta": 60.0},
    ),
    ("py-callos-afterfork = true\npy-call-osafterfork = true", {}),  # what os.fork does
    ("buffer-size = 32768", {"buffer_size": 32768}),
    ("max-vars = 2000", {"max_vars": 2000}),
    ("limit-post = 1048576", {"limit_post": 1048576}),
    ("post-buffering = 8192", {"post_buffering": 8192}),
    ("listen = 128", {"listen": 128}),
    ("lazy-apps = true", {"lazy_apps": True}),
    ("lazy-apps = false", {"lazy_apps": False}),
    ("lazy-apps", {"lazy_apps": True}),  # a bare key is a true flag
    ("uid = www-data", {"uid": "www-data"}),
    ("gid = 33", {"gid": "33"}),
    # uWSGI's drop before the app's load: where --uid/--gid drop here (it was ignored: root)
    ("immediate-uid = www-data", {"uid": "www-data"}),
    ("immediate-gid = 33", {"gid": "33"}),
    ("pidfile = /run/app.pid", {"pidfile": "/run/app.pid"}),
    ("socket-timeout = 4", {"socket_timeout": 4.0}),
    ("reload-mercy = 20", {"graceful_timeout": 20.0}),
    ("worker-reload-mercy = 25", {"graceful_timeout": 25.0}),
    ("disable-logging = true", {"access_log": "off"}),
    ("disable-logging = false", {"access_log": "uwsgi"}),
    # uWSGI logs the requests these name in spite of disable-logging, and every one without it.
    (
        "disable-logging = true\nlog-4xx = true\nlog-5xx\nlog-slow = 800\nlog-big = 1000000",
        {
            "access_log": "uwsgi",
            "log_4xx": True,
            "log_5xx": True,
            "log_slow": 800,
            "log_big": 1000000,
        },
    ),
    ("log-5xx = true\nlog-slow = 800", {"access_log": "uwsgi", "log_5xx": False, "log_slow": 0}),
    ("disable-logging = true\nlog-5xx = false\nlog-slow = 0", {"access_log": "off"}),
    ("disable-logging = true\nlog-4xx =", {"access_log": "uwsgi", "log_4xx": True}),
    ("lazy-apps =", {"lazy_apps": True}),  # a flag given no value is set, as in uWSGI
    ("logto = /var/log/app.log", {"error_log_file": "/var/log/app.log", "capture_output": True}),
    ("logto2 = /var/log/app.log", {"error_log_file": "/var/log/app.log", "capture_output": True}),
    ("pidfile2 = /run/app.pid", {"pidfile": "/run/app.pid"}),
    ("safe-pidfile = /run/app.pid", {"pidfile": "/run/app.pid"}),
    ("safe-pidfile2 = /run/app.pid", {"pidfile": "/run/app.pid"}),
    # uWSGI's file loggers: the error log's and the request lines' files.
    (
        "logger = file:/var/log/e.log",
        {"error_log_file": "/var/log/e.log", "access_log_file": "/var/log/e.log"},
    ),
    (
        "req-logger = file:/var/log/r.log\nlogger = file:/var/log/e.log",
        {"error_log_file": "/var/log/e.log", "access_log_file": "/var/log/r.log"},
    ),
    (
        "logger = file:/var/log/e.log\nreq-logger = file:/var/log/r.log",
        {"error_log_file": "/var/log/e.log", "access_log_file": "/var/log/r.log"},
    ),
    # uwsgiapp's own options, for what uWSGI has no key (nginx in another container).
    (
        "uwsgi-allow-from = 10.0.0.0/8, 127.0.0.1\ngraceful-timeout = 7",
        {"uwsgi_allow_from": ("10.0.0.0/8", "127.0.0.1"), "graceful_timeout": 7.0},
    ),
    # uWSGI's placeholder arithmetic (integers; / truncates)
    (
        "base = 3\nprocesses = %(base * 2)\nthreads = %(7 / 2)\nlisten = %(20 - base)",
        {"workers": 6, "threads": 3, "listen": 17},
    ),
    # uWSGI's file logger's key=value form (its rotation options are warned of, below).
    (
        "logger = file:logfile=/var/log/e.log\nreq-logger = file:logfile=/var/log/r.log",
        {"error_log_file": "/var/log/e.log", "access_log_file": "/var/log/r.log"},
    ),
    # Our own options, as uWSGI reads keys: a later logto does not override what the section
    # set itself, a list accumulates, an empty flag is true, a number may carry a comment.
    (
        "access-log-file = /var/log/r.log\ncapture-output = false\nlogto = /var/log/e.log",
        {"access_log_file": "/var/log/r.log", "capture_output": False},
    ),
    (
        "uwsgi-allow-from = 10.0.0.0/8\nuwsgi-allow-from = 192.168.0.0/16, 127.0.0.1",
        {"uwsgi_allow_from": ("10.0.0.0/8", "192.168.0.0/16", "127.0.0.1")},
    ),
    ("request-titles =", {"request_titles": True}),
    (
        "touch-reload = /srv/app/reload\ntouch-chain-reload = /srv/app/wsgi.py",
        {"touch_reload": ("/srv/app/reload", "/srv/app/wsgi.py")},
    ),
    # Idioms for what uwsgiapp always does, and keys it always honours: no warning.
    ("hook-master-start = unix_signal:15   gracefully_kill_them_all", {}),
    ("no-orphans = true\nclose-on-exec = true", {}),
    ("log-master = true", {"log_master": True}),
    ("env = A=1\nenv = B=x,y", {"env": ("A=1", "B=x,y")}),
    ("mount = /app=myapp:app\nmanage-script-name = true", {"mount": "/app", "app": "myapp:app"}),
    ("mount = /blog=blog.py", {"mount": "/blog", "app": "blog.py:application"}),
    ("mount = /=main:app", {"mount": "", "app": "main:app"}),
    ("stats = 127.0.0.1:9191", {"stats": "127.0.0.1:9191", "stats_http": False}),
    (
        "stats-server = /run/stats.sock\nstats-http = true\nstats-minified = true",
        {"stats": "/run/stats.sock", "stats_http": True, "stats_minified": True},
    ),
    # Keys whose true value is what uwsgiapp always does: accepted, no warning.
    ("master = true\nvacuum = true\ndie-on-term = true\nenable-threads = true", {}),
    ("auto-procname = true", {"request_titles": False}),
    ("plugins = python3", {}),
    # The cheaper subsystem: processes is the most (and the busyness plugin is built in).
    (
        "processes = 16\ncheaper = 2\ncheaper-initial = 4\ncheaper-step = 2\n"
        "cheaper-overload = 5\ncheaper-algo = backlog\nplugins = python3,cheaper_busyness",
        {
            "workers": 16,
            "cheaper": 2,
            "cheaper_initial": 4,
            "cheaper_step": 2,
            "cheaper_overload": 5,
            "cheaper_algo": "backlog",
        },
    ),
    (
        "processes = 8\ncheaper = 1\ncheaper-algo = busyness\ncheaper-busyness-min = 10\n"
        "cheaper-busyness-max = 60\ncheaper-busyness-multiplier = 5\n"
        "cheaper-busyness-penalty = 1\ncheaper-busyness-backlog-alert = 8\n"
        "cheaper-busyness-backlog-step = 3\ncheaper-busyness-backlog-multiplier = 2\n"
        "cheaper-busyness-backlog-nonzero = 20",
        {
            "cheaper_busyness_min": 10,
            "cheaper_busyness_max": 60,
            "cheaper_busyness_multiplier": 5,
            "cheaper_busyness_penalty": 1,
            "cheaper_busyness_backlog_alert": 8,
            "cheaper_busyness_backlog_step": 3,
            "cheaper_busyness_backlog_multiplier": 2,
            "cheaper_busyness_backlog_nonzero": 20,
        },
    ),
]


@pytest.mark.parametrize(("body", "expected"), KEYS)
def test_each_key(tmp_path: Path, body: str, expected: dict[str, Any]) -> None:
    config, warnings, _ = load(tmp_path, body)
    for name, value in expected.items():
        assert getattr(config, name) == value, name
    assert warnings == []


def test_every_simple_key_is_covered() -> None:
    covered = {line.split("=")[0].strip() for body, _ in KEYS for line in body.splitlines()}
    short = {"s", "p", "b", "l", "z", "pp", "chmod", "lazy"}  # uWSGI's short aliases
    assert set(SIMPLE_KEYS) - short <= covered


@pytest.mark.parametrize("word", sorted(TRUE_WORDS | FALSE_WORDS))
def test_boolean_words_are_the_ones_env_and_toml_take(tmp_path: Path, word: str) -> None:
    """One list of true/false words: what an ini key takes is what UWSGIAPP_X takes."""
    lazy_apps = spec_for("lazy-apps")
    assert lazy_apps is not None
    expected = convert(lazy_apps, word.upper(), "env UWSGIAPP_LAZY_APPS")
    assert expected is (word in TRUE_WORDS)
    config, warnings, _ = load(tmp_path, f"lazy-apps = {word.upper()}\ndisable-logging = {word}")
    assert config.lazy_apps is expected
    assert config.access_log == ("off" if expected else "uwsgi")
    assert warnings == []


def test_env_key(tmp_path: Path) -> None:
    _, warnings, env = load(tmp_path, "env = DJANGO_SETTINGS_MODULE=site.settings\nenv = X=a=b")
    assert env == [("DJANGO_SETTINGS_MODULE", "site.settings"), ("X", "a=b")]
    assert warnings == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("http-socket = :8080", "'http-socket' is not supported"),
        ("stats-push = statsd:127.0.0.1:8125", "'stats-push' is not supported"),
        ("home = /venv", "the app imports the packages of /venv only if uwsgiapp runs from it"),
        ("frobnicate = 1", "'frobnicate' is not supported, ignored"),
        ("master = false", "'master = false' cannot be honoured"),
        ("die-on-term = false", "SIGTERM always stops gracefully"),
        ("plugins = python3,router_cache", "plugins router_cache are not supported"),
        ("pidfile = $(NOPE_UNSET)/x.pid", "$(NOPE_UNSET) is not set"),
        ("home = /venv\nenv = PATH=%(home)/bin", "(/venv/bin/uwsgiapp)"),
        ("callable = app", "'callable' without module or wsgi-file"),
        ("mount = /a=x:app\nmodule = y:app", "both mount and module/wsgi-file"),
    ],
)
def test_warnings(tmp_path: Path, body: str, fragment: str) -> None:
    _, warnings, _ = load(tmp_path, body)
    assert any(fragment in w for w in warnings), warnings
    assert all(w.startswith(f"ini {tmp_path / 'site.ini'} [uwsgi]: ") for w in warnings)


@pytest.mark.parametrize(
    "body",
    ["uid = $(APP_USER)", "gid = $(APP_GROUP)", "chmod-socket = $(SOCK_MODE)",
     "chown-socket = $(OWNER)", "harakiri = $(H)", "uid = $(EMPTY)"],
)  # fmt: skip
def test_a_key_an_unset_variable_leaves_empty_stops_the_start(tmp_path: Path, body: str) -> None:
    # uid = '' kept the server as root, chmod-socket = '' (read as a bare key) made the socket
    # 0666, each after a warning only; uWSGI keeps the text and refuses to start on it.
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"module = a:app\n{body}", environ={"EMPTY": ""})
    key, _, value = body.partition(" = ")
    assert f"{key} = {value} expands to nothing: {value} is not set" in str(caught.value)
    assert f"{key} (line 3)" in str(caught.value)
    # through a placeholder too (review: uid = %(user) with user = $(APP_USER) kept root)
    name = value[2:-1]
    for body2 in (f"user = {value}\n{key} = %(user)", f"set-ph = v={value}\n{key} = %(v)"):
        with pytest.raises(ConfigError, match=rf"expands to nothing: \$\({name}\) is not"):
            load(tmp_path, f"module = a:app\n{body2}", environ={"EMPTY": ""})
    # where the empty value adds nothing, a warning as before; set, it is used
    _, warnings, _ = load(tmp_path, "module = a:app\npythonpath = $(EXTRA)")
    assert any("$(EXTRA) is not set" in w for w in warnings)
    config, _, _ = load(tmp_path, f"module = a:app\n{body}", environ={value[2:-1]: "660"})
    assert getattr(config, key.replace("-", "_")) not in ("", 0)


def test_a_socket_naming_a_shared_socket_is_that_address(tmp_path: Path) -> None:
    # uWSGI's privileged-port idiom: the address was taken as a unix socket file named '=0'
    # (nginx: 502), after a warning that shared-socket is not supported.
    body = "module = a:app\nshared-socket = 127.0.0.1:80\nshared-socket = [::1]:81\n"
    config, warnings, _ = load(tmp_path, body + "socket = =1\nsocket = =0")
    assert config.socket == ("[::1]:81", "127.0.0.1:80") and warnings == []
    for bad, said in (("=2", "names shared-socket 2: 2 are defined"), ("=x", "shared-socket x")):
        with pytest.raises(ConfigError, match=said):
            load(tmp_path, body + f"socket = {bad}")
    with pytest.raises(ConfigError, match="names shared-socket 0: 0 are defined before it"):
        load(tmp_path, "module = a:app\nsocket = =0\nshared-socket = 127.0.0.1:80")
    with pytest.raises(ConfigError, match="uWSGI's =N names an ini's shared-socket"):
        make_config(app="a:app", socket=("=0",))


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("route = ^/admin basicauth:Admin,ops:s3cret", "has no internal router"),
        ("route-remote-addr = !^10\\.0\\. break:403", "has no internal router"),
        ("final-route = .* return:403", "has no internal router"),
        ("route-run = addheader:X-Frame-Options: DENY", "has no internal router"),
        ("chroot = /srv/jail", "does not confine itself"),
        ("cap = setgid,setuid", "does not confine itself"),
        ("unshare = net", "does not confine itself"),
    ],
)
def test_a_rule_that_would_guard_the_app_stops_the_start(
    tmp_path: Path, body: str, said: str
) -> None:
    # Ignored with a warning, /admin was served to anyone and the app ran unconfined.
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"module = a:app\n{body}")
    key = body.partition(" = ")[0]
    text = str(caught.value)
    # the rule is named by its key, line and action (a route's matcher and arguments may hold
    # a secret: a basicauth rule's password is not shown)
    assert f"cannot be applied: uwsgiapp {said}" in text and f"{key} (line 3)" in text
    assert f"'{key} = " in text
    assert "s3cret" not in text
    # a key of theirs used as a placeholder too (uWSGI still applies it): review
    with pytest.raises(ConfigError, match="cannot be applied"):
        load(tmp_path, f"module = a:app\n{body}\npidfile = /run/%({key})/x.pid")
    # headers are nginx's too, but serving without them is served: a warning that says how
    _, warnings, _ = load(tmp_path, "module = a:app\nadd-header = X-Frame-Options: DENY")
    assert any("add_header NAME VALUE always" in w for w in warnings), warnings


def test_warn_once_per_key(tmp_path: Path) -> None:
    _, warnings, _ = load(tmp_path, "frobnicate = 2\nfrobnicate = 4\nfrobnicate = 8")
    assert len(warnings) == 1


def test_magic_variables(tmp_path: Path) -> None:
    body = "\n".join(
        [
            "chdir = %d",
            "pidfile = %d%n.pid",
            "socket = /run/%c/%n.sock",
            "error-log-file-is-not-a-key = 1",
        ]
    )
    config, warnings, _ = load(tmp_path, body, name="myapp.ini")
    assert config.chdir == f"{tmp_path}/"
    assert config.pidfile == f"{tmp_path}/myapp.pid"
    assert config.socket == (f"/run/{tmp_path.name}/myapp.sock",)
    assert len(warnings) == 1
    full = str(tmp_path / "myapp.ini")
    assert expand("%p|%s|%e|%x|%%|%k", path=full, section="dev") == (
        f"{full}|myapp.ini|ini|dev|%|{os.cpu_count()}"
    )
    assert expand("%h", path=full) == socket.gethostname()


def test_a_placeholder_takes_the_magic_variables_of_the_file_that_defines_it(
    tmp_path: Path,
) -> None:
    # 20tab's template: `base = %d` in the main ini, `chdir = %(base)` in an included one.
    # uWSGI expands each file as it reads it: %d is the main ini's directory; it was the
    # included file's here (chdir pointed into the include's directory: exit 3).
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inc.ini").write_text("[uwsgi]\nchdir = %(base)\nmine = %d\n")
    main = tmp_path / "main.ini"
    main.write_text(
        "[uwsgi]\nmodule = app:app\nsocket = a.sock\nbase = %d\nini = %dsub/inc.ini\n"
        "pidfile = %(mine)x.pid\n"
    )
    config = resolve([ini_layer(str(main), environ={}).layer]).config
    assert config.chdir == f"{tmp_path}/"
    assert config.pidfile == f"{tmp_path}/sub/x.pid"  # the include's own, used in the main


def test_more_magic_variables(tmp_path: Path) -> None:
    """uid/gid and their names, the working directory, the path's components, the name as
    given; upper-case forms are the lower-case ones (uwsgiapp reads a single file)."""
    import grp
    import pwd

    full = str(tmp_path / "myapp.ini")
    got = expand("%u|%g|%U|%G|%v|%o|%D|%N", path=full, section="uwsgi").split("|")
    assert got[:2] == [str(os.getuid()), str(os.getgid())]
    assert got[2] == pwd.getpwuid(os.getuid()).pw_name
    assert got[3] == grp.getgrgid(os.getgid()).gr_name
    assert got[4:] == [os.getcwd(), full, f"{tmp_path}/", "myapp"]
    parts = [p for p in str(tmp_path).split("/") if p]
    assert expand("%0|%1", path=full) == f"{parts[0]}|{parts[1]}"
    assert expand("%9", path="/a/b.ini") == ""
    assert expand("%o", path="a.ini", section="dev") == "a.ini:dev"
    assert expand("%t", path=full).isdigit()


def test_start_time_magic_variables_stand_for_the_start_at_a_hup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A HUP reads the ini again after --chdir, by its absolute path, and later: %t %T %v %o
    keep what they stood for at the start, or every HUP would name options as changed."""
    from uwsgiapp.config import iniexpand

    (tmp_path / "app").mkdir()
    (tmp_path / "app.ini").write_text(
        "[uwsgi]\nmodule = app:app\nchdir = %v/app\nenv = T=%t\nenv = US=%T\nenv = O=%o\n"
    )
    monkeypatch.chdir(tmp_path)
    fixed: dict[str, str] = {}
    first = ini_layer("app.ini", environ={}, fixed=fixed).layer
    monkeypatch.chdir(tmp_path / "app")  # as the master did
    later = iniexpand.time.time() + 100
    monkeypatch.setattr(iniexpand.time, "time", lambda: later)
    again = ini_layer(str(tmp_path / "app.ini"), environ={}, fixed=fixed).layer
    assert {k: v.value for k, v in again.items()} == {k: v.value for k, v in first.items()}
    assert first["chdir"].value == f"{tmp_path}/app" and "O=app.ini" in first["env"].value
    # Without what was kept, each of them reads differently.
    fresh = ini_layer(str(tmp_path / "app.ini"), environ={}).layer
    assert fresh["chdir"].value == f"{tmp_path}/app/app"
    assert fresh["env"].value != first["env"].value


def test_log_format_is_the_access_log_template(tmp_path: Path) -> None:
    """log-format holds uWSGI's own %(status)-style fields, not placeholders: the access log's
    template, as it is written (uWSGI keeps a %(name) no option defines as it is)."""
    body = 'log-format = %(addr) - %(user) [%(ltime)] "%(method) %(uri)" %(status)'
    config, warnings, _ = load(tmp_path, body)
    assert warnings == []
    assert config.access_log == body.partition(" = ")[2]
    # Expanded as uWSGI expands every option (review): $(VAR), the magic %n, an option's
    # %(name); the fields stay.
    body = "app-name = shop\nlog-format = $(REGION) %n %(app-name) %(addr) %(status)"
    config, warnings, _ = load(tmp_path, body, environ={"REGION": "eu"})
    assert config.access_log == "eu site shop %(addr) %(status)" and warnings == []
    # uWSGI's %% is a %: %%(status) is the text %(status), a field of the line (review).
    config, warnings, _ = load(tmp_path, "log-format = %%(status) 100%% %(uri)")
    assert config.access_log == "%(status) 100% %(uri)" and warnings == []
    # Without a field it is no template (uWSGI writes it as it is): said, and not ours.
    config, warnings, _ = load(tmp_path, "log-format = json")
    assert config.access_log == "uwsgi"
    assert warnings[-1].endswith(
        "'log-format = json' (line 2) has no %(name) field: ignored"
        " (uWSGI writes it as it is for every request)"
    ), warnings


@pytest.mark.parametrize(
    ("keys", "access"),
    [
        # disable-logging wins in either order, as in uWSGI; log-5xx's lines take the template
        ("disable-logging = true\nlog-format = %(uri)", "off"),
        ("logformat = %(uri)\ndisable-logging = true", "off"),
        ("logformat = %(uri)\ndisable-logging = true\nlog-5xx = true", "%(uri)"),
        ("disable-logging = false\nlog-format = %(uri)", "%(uri)"),
    ],
)
def test_log_format_beside_disable_logging(tmp_path: Path, keys: str, access: str) -> None:
    config, _, _ = load(tmp_path, keys)
    assert config.access_log == access


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "processes = %(cores)",
            "the value of 'processes' uses %(cores), which is not defined (no 'cores =' or"
            " 'set-placeholder = cores=…' in [uwsgi], no UWSGI_CORES in the environment);"
            " uWSGI's magic variable for it is %k",
        ),
        ("pidfile = %(nothing)/x.pid", "the value of 'pidfile' uses %(nothing), which is not"),
        ("env = F=%(asctime)s", "environment); write %%(asctime) to keep it as it is"),
        (
            "pidfile = /run/%Z.pid",
            "the value of 'pidfile' uses %Z, which is not a magic variable uwsgiapp knows (%d ",
        ),
        ("a = %(hostname)\nchdir = %(a)", "placeholder %(a) uses %(hostname), which is not"),
    ],
)
def test_unknown_placeholders_are_named(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, body)
    assert info.value.option == "ini"
    assert message in str(info.value)


def test_unknown_placeholder_on_the_command_line(tmp_path: Path) -> None:
    """It used to expand to '' and fail as "--workers: expected an integer, got ''"."""
    (tmp_path / "app.ini").write_text("[uwsgi]\nmodule = app:app\nprocesses = %(cores)\n")
    r = run_cli("serve", "--ini", "app.ini", cwd=tmp_path)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert r.stderr.decode() == (
        "uwsgiapp serve: error: --ini (from ini app.ini [uwsgi] processes (line 3)):"
        " the value of 'processes' uses %(cores), which is not defined (no 'cores =' or"
        " 'set-placeholder = cores=…' in [uwsgi], no UWSGI_CORES in the environment);"
        " uWSGI's magic variable for it is %k\n"
    )
    (tmp_path / "app.ini").write_text("[uwsgi]\nmodule = app:app\nprocesses = %k\n")
    r = run_cli("serve", "--ini", "app.ini", "--print-config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"workers = {os.cpu_count()} " in r.stdout.decode()


def test_log_format_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "app.ini").write_text(
        "[uwsgi]\nmodule = app:app\nlog-format = %(addr) %(method) %(uri) %(status) %(werr)\n"
    )
    r = run_cli("serve", "--ini", "app.ini", "--print-config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode() == (
        "uwsgiapp serve: warning: --access-log: the field %(werr) is always 0 here: write"
        " errors are not counted a request\n"
    )
    assert 'access-log = "%(addr) %(method) %(uri) %(status) %(werr)"' in r.stdout.decode()


@pytest.mark.parametrize("key", ["http", "http-socket", "https"])
def test_http_only_ini_refuses_to_start(tmp_path: Path, key: str) -> None:
    """It used to warn, then serve the uwsgi protocol on 127.0.0.1:3031 where the user
    expected HTTP on :8000."""
    (tmp_path / "app.ini").write_text(f"[uwsgi]\nmodule = app:app\n{key} = :8000\nmaster = 1\n")
    r = run_cli("serve", "--ini", "app.ini", cwd=tmp_path)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert r.stderr.decode() == (
        f"uwsgiapp serve: error: --ini (from ini app.ini [uwsgi] {key} (line 3)): '{key} = :8000'"
        " asks for an HTTP server, but uwsgiapp speaks only nginx's uwsgi protocol. Put nginx"
        " in front (uwsgi_pass) and give uwsgiapp a uwsgi socket ('socket = 127.0.0.1:3031' in"
        " the ini, or --socket), or run 'uwsgiapp dev APP' for local HTTP\n"
    )
    assert r.stdout == b""


@pytest.mark.parametrize(
    ("ini_socket", "args", "env"),
    [
        ("socket = 127.0.0.1:3031\n", [], {}),
        ("", ["--socket", "127.0.0.1:3031"], {}),
        ("", [], {"UWSGIAPP_SOCKET": "127.0.0.1:3031"}),
    ],
    ids=["ini", "cli", "env"],
)
def test_http_beside_a_uwsgi_socket_is_a_warning(
    tmp_path: Path, ini_socket: str, args: list[str], env: dict[str, str]
) -> None:
    (tmp_path / "app.ini").write_text(
        f"[uwsgi]\nmodule = app:app\nhttp-socket = :8000\n{ini_socket}"
    )
    r = run_cli("serve", "--ini", "app.ini", "--print-config", *args, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert b"'http-socket' is not supported, ignored (uwsgiapp speaks only" in r.stderr


def test_env_and_placeholders(tmp_path: Path) -> None:
    body = "\n".join(
        [
            "base = /srv/%(project)",
            "project = shop",
            "set-placeholder = sockdir=/run/sockets",
            "chdir = %(base)",
            "socket = %(sockdir)/$(APP_NAME).sock",
            "pidfile = %(from_env)/x.pid",
        ]
    )
    environ = {"APP_NAME": "web", "UWSGI_FROM_ENV": "/srv/e"}
    config, warnings, _ = load(tmp_path, body, environ=environ)
    assert config.chdir == "/srv/shop"
    assert config.socket == ("/run/sockets/web.sock",)
    assert config.pidfile == "/srv/e/x.pid"
    assert warnings == []  # base and project are placeholders, referenced with %(...)


def test_a_repeated_key_as_a_placeholder_is_its_first_value(tmp_path: Path) -> None:
    # uWSGI 2.0.31 serves this from /srv/a with 2 threads: %(key) is the first value a key
    # has (the option itself takes the last); uwsgiapp took the last, /srv/b and 3.
    body = "base = /srv/a\nbase = /srv/b\nchdir = %(base)\nprocesses = 2\nprocesses = 3\n"
    body += "threads = %(processes)\nset-ph = dir=/x\nset-ph = dir=/y\npidfile = %(dir)/p"
    config, _, _ = load(tmp_path, body)
    assert (config.chdir, config.workers, config.threads) == ("/srv/a", 3, 2)
    assert config.pidfile == "/x/p"


def test_a_file_reference_is_the_file_text(tmp_path: Path) -> None:
    # uWSGI 2.0.31 puts the file's text in place of @(path), less its last newline; uwsgiapp
    # passed '@(...)' on as the value: the app's SECRET_KEY was the path, without a word.
    (tmp_path / "secret").write_text("s3%cr3t\n")
    (tmp_path / "n").write_text("3")
    body = "env = SECRET_KEY=@(%dsecret)\nprocesses = @($(DIR)/n)\nenv = B=[@(%dn)]"
    config, _, env = load(tmp_path, body, environ={"DIR": str(tmp_path)})
    assert env == [("SECRET_KEY", "s3%cr3t"), ("B", "[3]")]  # the text is not expanded
    assert config.workers == 3
    with pytest.raises(ConfigError, match=re.escape("uses @(/nonexistent/x), which cannot")):
        load(tmp_path, "env = A=@(/nonexistent/x)")
    # The bytes as they are (uWSGI strips one byte, the last newline); a source that is not a
    # file is named, not "No such file or directory".
    (tmp_path / "crlf").write_bytes(b"a\r\nb\r\n")
    _, _, env = load(tmp_path, "env = C=@(%dcrlf)")
    assert env == [("C", "a\r\nb\r")]
    with pytest.raises(ConfigError, match=re.escape("uWSGI's exec:// source is not read here")):
        load(tmp_path, "env = A=@(exec://cat /etc/hostname)")


def test_sections(tmp_path: Path) -> None:
    path = tmp_path / "multi.ini"
    path.write_text("[uwsgi]\nprocesses = 2\n\n[staging]\nprocesses = 8\n# c\n; c\n")
    assert resolve([ini_layer(str(path), environ={}).layer]).config.workers == 2
    assert resolve([ini_layer(f"{path}:staging", environ={}).layer]).config.workers == 8
    with pytest.raises(ConfigError, match=re.escape("has no [prod] section (sections: [uwsgi]")):
        ini_layer(f"{path}:prod", environ={})
    # One section of another name: the way to read it is said (uWSGI's FILE:SECTION)
    (tmp_path / "app.ini").write_text("[app]\nprocesses = 2\n")
    with pytest.raises(ConfigError, match=re.escape("(sections: [app]): name one, --ini ")):
        ini_layer(str(tmp_path / "app.ini"), environ={})


def test_a_gunicorn_conf_py_is_named_as_python(tmp_path: Path) -> None:
    # It said "gunicorn.conf.py has no [uwsgi] section (sections: none)".
    path = tmp_path / "gunicorn.conf.py"
    path.write_text("import multiprocessing\nbind = 'unix:/run/app/g.sock'\nworkers = 2\n")
    with pytest.raises(ConfigError, match=re.escape("gunicorn.conf.py is Python (gunicorn's")):
        ini_layer(str(path), environ={})


def test_a_byte_order_mark_does_not_hide_the_first_section(tmp_path: Path) -> None:
    # Saved by a Windows editor: "has no [uwsgi] section (sections: none)" for a file that
    # shows [uwsgi] on its first line (uWSGI cannot find it either).
    path = tmp_path / "bom.ini"
    path.write_bytes(b"\xef\xbb\xbf[uwsgi]\r\nprocesses = 3\r\n")
    assert resolve([ini_layer(str(path), environ={}).layer]).config.workers == 3


def test_only_the_lines_read_must_be_utf8(tmp_path: Path) -> None:
    # uWSGI reads bytes: a Latin-1 comment (or another section) does not matter to it, and it
    # stopped uwsgiapp's start ("is not UTF-8 text: ... position 11").
    path = tmp_path / "latin1.ini"
    path.write_bytes(b"[uwsgi]\n# r\xe9pertoire\nprocesses = 3\n[other]\nx = \xe9\n")
    assert resolve([ini_layer(str(path), environ={}).layer]).config.workers == 3
    path.write_bytes(b"[uwsgi]\nprocesses = 3\nchdir = /srv/r\xe9pertoire\n")
    with pytest.raises(ConfigError, match=re.escape("line 3 (chdir) is not UTF-8 text: save")):
        ini_layer(str(path), environ={})
    # In a section it includes too: the section's keys were dropped with a warning.
    path.write_bytes(b"[uwsgi]\nini = :base\nprocesses = 2\n[base]\nchdir = /srv/r\xe9p\n")
    with pytest.raises(ConfigError, match=re.escape("line 5 (chdir) is not UTF-8 text: save")):
        ini_layer(str(path), environ={})


def test_split_ini_arg() -> None:
    assert split_ini_arg("app.ini") == ("app.ini", "uwsgi")
    assert split_ini_arg("app.ini:dev") == ("app.ini", "dev")
    assert split_ini_arg("/etc/a:b/app.ini") == ("/etc/a:b/app.ini", "uwsgi")


def test_parse_ini_keeps_repeats_and_verbatim_values() -> None:
    entries, sections = parse_ini("[uwsgi]\na = 1 ; not a comment\na = 2\n[x]\na = 3\n", "uwsgi")
    assert [(e.key, e.value) for e in entries] == [("a", "1 ; not a comment"), ("a", "2")]
    assert sections == ["uwsgi", "x"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("processes = many", "--workers (from ini"),
        ("env = NOEQUALS", "--env (from ini"),
        ("env = =value", "expected NAME=VALUE, got no name (values not shown)"),
        ("mount = app", "expected /point=app"),
        ("buffer-size = 0", "--buffer-size (from ini"),
        ("max-vars = 20000", "--max-vars (from ini"),
        ("processes = %(%h * 2)", "uses %(%h * 2): '%h' is"),
        ("processes = %(%k / 0)", "uses %(%k / 0): division by zero"),
    ],
)
def test_bad_values_name_the_ini_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, body)


# -- expansion is bounded: no placeholder bomb, no endless loop ---------------------------------


def run_cli_capped(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """``run_cli`` with the address space capped at 1 GiB."""
    return run_cli(*args, cwd=cwd, timeout=60, memory_cap=1 << 30)


def test_placeholder_bomb_is_a_config_error_on_the_command_line(tmp_path: Path) -> None:
    """60 bytes that used to mean 2**32 references and a MemoryError traceback."""
    (tmp_path / "bomb.ini").write_text("[uwsgi]\nmodule = app:app\nx = %(x)%(x)\nchdir = %(x)\n")
    r = run_cli_capped("serve", "--ini", "bomb.ini", "app:app", cwd=tmp_path)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert r.stderr.decode() == (
        "uwsgiapp serve: error: --ini (from ini bomb.ini [uwsgi] x (line 3)):"
        " placeholder %(x) refers to itself\n"
    )
    assert r.stdout == b""


def test_placeholder_growth_is_bounded_on_the_command_line(tmp_path: Path) -> None:
    """No loop, but every level quadruples: 16 characters become 16 Mi ten levels up (64 Ki,
    exactly the bound, at a4; a3 is the first placeholder past it)."""
    lines = [f"a{i} = " + f"%(a{i + 1})" * 4 for i in range(10)] + ["a10 = " + "x" * 16]
    (tmp_path / "grow.ini").write_text("[uwsgi]\npidfile = %(a0)\n" + "\n".join(lines) + "\n")
    r = run_cli_capped("serve", "--ini", "grow.ini", "app:app", cwd=tmp_path)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert r.stderr.decode() == (
        "uwsgiapp serve: error: --ini (from ini grow.ini [uwsgi] a3 (line 6)):"
        f" placeholder %(a3) expands to more than {MAX_EXPANDED_SIZE} characters\n"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "one = %(two)\ntwo = x%(three)\nthree = %(one)\npidfile = /run/%(one).pid",
            "ini {path} [uwsgi] one (line 2)): placeholder %(one) refers back to itself:"
            " %(one) -> %(two) -> %(three) -> %(one)",
        ),
        (
            "set-placeholder = me=%(me)/x\nchdir = %(me)",
            "ini {path} [uwsgi] set-placeholder me (line 2)): placeholder %(me) refers to itself",
        ),
        (
            "\n".join(f"p{i} = %(p{i + 1})" for i in range(20)) + "\np20 = end\nchdir = %(p0)",
            "ini {path} [uwsgi] p17 (line 19)): placeholders nest more than"
            f" {MAX_PLACEHOLDER_DEPTH} deep (%(p0) -> %(p1) -> ",
        ),
        (
            "big = " + "y" * 60_000 + "\nchdir = %(big)%(big)",
            "ini {path} [uwsgi] chdir (line 3)): the value of 'chdir' expands to more than"
            f" {MAX_EXPANDED_SIZE} characters",
        ),
        (
            "chdir = " + "$(BIG)" * 1000,
            "ini {path} [uwsgi] chdir (line 2)): the value of 'chdir' expands to more than",
        ),
    ],
    ids=["loop", "set-placeholder-loop", "too-deep", "too-large", "env-too-large"],
)
def test_expansion_bounds_name_the_key_and_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, body, environ={"BIG": "z" * 100})
    assert info.value.option == "ini"
    assert message.format(path=tmp_path / "site.ini") in str(info.value)


def test_expansion_within_the_bounds_still_works(tmp_path: Path) -> None:
    depth = MAX_PLACEHOLDER_DEPTH
    chain = "\n".join(f"p{i} = %(p{i + 1})" for i in range(depth)) + f"\np{depth} = /srv"
    raw = "/" + "r" * (MAX_EXPANDED_SIZE + 10)  # long as written: kept, nothing to expand
    config, warnings, _ = load(tmp_path, f"{chain}\nchdir = %(p0)/app\npidfile = {raw}")
    assert config.chdir == "/srv/app" and config.pidfile == raw
    assert warnings == []
    assert expand("%(a)%(a)", path="x.ini", placeholders={"a": "b" * 10}, max_size=20) == "b" * 20
    with pytest.raises(ExpansionError, match="more than 19 characters"):
        expand("%(a)%(a)", path="x.ini", placeholders={"a": "b" * 10}, max_size=19)


def test_a_buffer_size_over_64k_is_capped_as_uwsgi_does(tmp_path: Path) -> None:
    # Common in real ini files (65536): uWSGI caps it, so starting must not fail on it.
    config, warnings, _ = load(tmp_path, "buffer-size = 65536")
    assert config.buffer_size == 65535
    assert any("'buffer-size = 65536' is read as 65535" in w for w in warnings), warnings


def test_logto_takes_the_request_lines_and_the_output_too(tmp_path: Path) -> None:
    config, _, _ = load(tmp_path, f"logto = {tmp_path}/app.log")
    assert config.error_log_file == config.access_log_file == f"{tmp_path}/app.log"
    assert config.access_log == "uwsgi"  # uWSGI logs requests unless told not to
    assert config.capture_output  # and its logto takes the process's stdout and stderr
    config, _, _ = load(tmp_path, f"logto = {tmp_path}/app.log\ndisable-logging = true")
    assert config.access_log == "off"
    assert config.capture_output
    # No file for a log that is off: start-up warned that the file logto implied was not
    # written, and asked for the log the ini turned off.
    assert config.access_log_file == "-"
    # The command line sends the error log back to stderr: the implied capture goes with it
    # (it would need a file); asked for in its own right, it is still an error that says so.
    (tmp_path / "logto.ini").write_text(f"[uwsgi]\nlogto = {tmp_path}/app.log\n")
    ini = ini_layer(str(tmp_path / "logto.ini")).layer
    back = {"error_log_file": Raw("-", "command line --error-log-file")}
    config = resolve([ini, back]).config
    assert (config.error_log_file, config.capture_output, config.access_log_file) == (
        "-",
        False,
        "-",
    )
    assert config.access_log == "uwsgi"  # still on, as the ini asks: on stdout
    # Asked for in its own right: ignored with a warning (gunicorn ignores it with errorlog -).
    resolved = resolve(
        [ini, {**back, "capture_output": Raw(True, "command line --capture-output")}]
    )
    assert not resolved.config.capture_output
    assert any("--capture-output is ignored" in w for w in resolved.warnings)


def test_an_ini_logs_requests_unless_told_not_to(tmp_path: Path) -> None:
    # uWSGI's default, with or without logto; --access-log off (a higher layer) still rules.
    config, _, _ = load(tmp_path, "processes = 2")
    assert (config.access_log, config.access_log_file, config.capture_output) == (
        "uwsgi",
        "-",
        False,
    )
    config, _, _ = load(tmp_path, "processes = 2\ndisable-logging = true")
    assert config.access_log == "off"
    (tmp_path / "plain.ini").write_text("[uwsgi]\nprocesses = 2\n")
    layers = [ini_layer(str(tmp_path / "plain.ini")).layer, {"access_log": Raw("off", "cli")}]
    assert resolve(layers).config.access_log == "off"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("touch-workers-reload = /srv/app/reload", "send SIGHUP to the master"),
        ("static-map = /static=/srv/static", "serve static files from nginx"),
        # Its strftime value is not expanded: %Y is no magic variable, and it must not stop us.
        ("log-date = %Y-%m-%d %H:%M:%S", "start with the date; %(ftime) keeps its format"),
        # The cheaper keys uwsgiapp has not (cheaper itself and its main ones are honoured).
        ("cheaper-rss-limit-soft = 100000000", "--reload-on-rss recycles a worker"),
        ("cheaper-idle = 30", "spare2 algorithm, which uwsgiapp has not"),
        ("cheaper-algo-list = true", "cheaper subsystem that uwsgiapp has not"),
        ("mule-reload-mercy = 300", "runs no mules: a reload has none to wait for"),  # not jobs
        ("logdate = true", "start with the date; %(ftime) keeps its format"),
        ("procname = %(project)-http-%n\nproject = x", "names its processes"),
        ("log-x-forwarded-for = true", "real_ip_header X-Forwarded-For"),  # said nothing more
        # uWSGI's read size while it spools a body: ours is our own
        ("post-buffering-bufsize = 65536", "post-buffering alone says what is held in memory"),
    ],
)
def test_common_unsupported_keys_say_what_to_do_instead(
    tmp_path: Path, body: str, says: str
) -> None:
    _, warnings, _ = load(tmp_path, body)
    key = body.split()[0]
    assert any(f"'{key}' is not supported, ignored" in w and says in w for w in warnings), warnings


@pytest.mark.parametrize("key", ["harakiri-verbose", "log-reopen", "ignore-sigpipe"])
def test_keys_that_describe_what_uwsgiapp_does_anyway_pass_quietly(
    tmp_path: Path, key: str
) -> None:
    _, warnings, _ = load(tmp_path, f"{key} = true")
    assert warnings == []


def test_an_arithmetic_operand_falls_back_to_the_environment(tmp_path: Path) -> None:
    # As %(name) does: a name no key defines is UWSGI_NAME's value.
    config, _, _ = load(tmp_path, "processes = %(workers * 2)", environ={"UWSGI_WORKERS": "3"})
    assert config.workers == 6
    with pytest.raises(ConfigError, match=re.escape("uses %(workers), which is not defined")):
        load(tmp_path, "processes = %(workers * 2)")


def test_the_virtualenv_uwsgiapp_runs_from_is_no_warning(tmp_path: Path) -> None:
    # home = the venv this uwsgiapp runs from: nothing is lost, and "run uwsgiapp from that
    # virtualenv instead" was said all the same; another one names both.
    _, warnings, _ = load(tmp_path, f"home = {sys.prefix}")
    assert not [w for w in warnings if "home" in w], warnings
    _, warnings, _ = load(tmp_path, f"virtualenv = {tmp_path}/other")
    (said,) = [w for w in warnings if "virtualenv" in w]
    assert f"this uwsgiapp runs from {sys.prefix}: the app imports the packages of" in said


def test_the_logfile_plugin_is_no_warning(tmp_path: Path) -> None:
    # Its logger = file:PATH is read here: "plugins logfile are not supported" misled.
    _, warnings, _ = load(tmp_path, f"plugins = python3,logfile\nlogger = file:{tmp_path}/a.log")
    assert not [w for w in warnings if "plugins" in w], warnings
