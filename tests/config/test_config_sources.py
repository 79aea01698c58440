"""Config sources: conversion by type, precedence CLI > env > --config > --ini > defaults,
bad values naming option and source, --print-config, --help, --version."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli.cli_testkit import run_cli

from uwsgiapp.cli import EXIT_USAGE, build_parser
from uwsgiapp.config import Config, ConfigError, make_config
from uwsgiapp.config.configload import (
    Raw,
    convert,
    default_env_layer,
    env_layer,
    option_specs,
    resolve,
    spec_for,
)
from uwsgiapp.config.serve import resolve_serve_config
from uwsgiapp.config.tomlfile import MAX_TOML_KEY_PARTS, MAX_TOML_NESTING, toml_layer


def spec(name: str) -> Any:
    found = spec_for(name)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("option", "raw", "expected"),
    [
        ("lazy-apps", "true", True),
        ("lazy_apps", "Yes", True),
        ("lazy-apps", "off", False),
        ("lazy-apps", "0", False),
        ("lazy-apps", False, False),
        ("workers", "4", 4),
        ("workers", 4, 4),
        ("workers", " 8 ", 8),
        ("harakiri", "2.5", 2.5),
        ("harakiri", 30, 30.0),
        ("app", "a:b", "a:b"),
        ("uid", 1000, "1000"),
        ("socket", "a.sock, 127.0.0.1:3031", ("a.sock", "127.0.0.1:3031")),
        ("socket", ["a.sock", "b.sock,c.sock"], ("a.sock", "b.sock", "c.sock")),
        ("pythonpath", "", ()),
        ("chmod-socket", "660", 0o660),
        ("chmod-socket", "0660", 0o660),
        ("chmod-socket", "0o600", 0o600),
        ("chmod-socket", 660, 0o660),
        ("chmod-socket", 0o666, 0o666),
        ("env", "A=1", ("A=1",)),
        ("env", "A=1\nB=x,y\n", ("A=1", "B=x,y")),  # never split on commas
        ("env", ["A=1,2", "B="], ("A=1,2", "B=")),
        ("env", {"A": "1", "B_2": 2}, ("A=1", "B_2=2")),  # a TOML table
    ],
)
def test_convert(option: str, raw: Any, expected: Any) -> None:
    assert convert(spec(option), raw, "test") == expected


@pytest.mark.parametrize(
    ("option", "raw"),
    [
        ("lazy-apps", "maybe"),
        ("lazy-apps", 1),
        ("workers", "four"),
        ("workers", "4.5"),
        ("workers", True),
        ("harakiri", "nan"),
        ("harakiri", "inf"),
        ("harakiri", "soon"),
        ("app", True),
        ("socket", [1, 2]),
        ("chmod-socket", "rw-rw----"),
        ("chmod-socket", "999"),
        ("chmod-socket", "66"),  # 0o066 was taken: the owner locked out, others let in
        ("chmod-socket", "7"),
        ("chmod-socket", 990),
        ("env", {"DEBUG": True}),
        ("env", 5),
    ],
)
def test_convert_refuses(option: str, raw: Any) -> None:
    with pytest.raises(ConfigError) as info:
        convert(spec(option), raw, "env UWSGIAPP_X")
    assert str(info.value).startswith(f"--{spec(option).option} (from env UWSGIAPP_X): expected")


def test_every_field_has_a_spec() -> None:
    names = [s.name for s in option_specs()]
    assert names == [f for f in Config.__dataclass_fields__]
    for s in option_specs():
        assert s.env == "UWSGIAPP_" + s.name.upper()
        assert s.help


def test_env_layer_and_unknown_names() -> None:
    warnings: list[str] = []
    environ = {"UWSGIAPP_WORKERS": "3", "UWSGIAPP_WORKRS": "3", "PATH": "/bin"}
    environ |= {"UWSGIAPP_COMPILE": "1", "UWSGIAPP_DEV_WATCHER": "1"}  # ours, no options
    layer = env_layer(environ, warnings)
    assert layer == {"workers": Raw("3", "env UWSGIAPP_WORKERS")}
    assert warnings == [
        "ignoring unknown environment variable UWSGIAPP_WORKRS (did you mean UWSGIAPP_WORKERS?)"
    ]


def test_an_env_text_value_is_read_without_its_surrounding_whitespace() -> None:
    # A ConfigMap's `|` block ends in a newline: the pidfile was created as "x.pid\n", and
    # `json\n` or `warning ` refused, where numbers and booleans were read without it.
    environ = {
        "UWSGIAPP_PIDFILE": "/run/app/x.pid\n",
        "UWSGIAPP_ERROR_LOG_FORMAT": "json\r\n",
        "UWSGIAPP_LOG_LEVEL": " warning ",
        "UWSGIAPP_WORKERS": "4\n",
    }
    layer = env_layer(environ)
    assert layer["pidfile"].value == "/run/app/x.pid"
    assert layer["error_log_format"].value == "json"
    assert layer["log_level"].value == "warning"
    assert layer["workers"].value == "4\n"  # converted later, without it


def test_a_variable_for_a_config_file_names_the_flag() -> None:
    # A Kubernetes user tries UWSGIAPP_CONFIG / UWSGIAPP_INI: "did you mean UWSGIAPP_LOG_BIG?"
    warnings: list[str] = []
    env_layer({"UWSGIAPP_CONFIG": "/x.toml", "UWSGIAPP_INI": "/a.ini"}, warnings)
    assert warnings == [
        "ignoring unknown environment variable UWSGIAPP_CONFIG (files have no variable: pass "
        "--config FILE on the command line)",
        "ignoring unknown environment variable UWSGIAPP_INI (files have no variable: pass "
        "--ini FILE on the command line)",
    ]


# Precedence: each row sets `workers` in some sources; the highest one wins.
PRECEDENCE = [
    ({}, 1, "default"),
    ({"ini": "2"}, 2, "ini"),
    ({"ini": "2", "toml": "3"}, 3, "config file"),
    ({"ini": "2", "toml": "3", "env": "4"}, 4, "env UWSGIAPP_WORKERS"),
    ({"ini": "2", "toml": "3", "env": "4", "cli": "5"}, 5, "command line --workers"),
    ({"toml": "3", "cli": "5"}, 5, "command line --workers"),
    ({"ini": "2", "env": "4"}, 4, "env UWSGIAPP_WORKERS"),
    ({"env": "4", "cli": "5"}, 5, "command line --workers"),
    # gunicorn's WEB_CONCURRENCY (PaaS buildpacks set it) is the default, under every source.
    ({"web": "6"}, 6, "env WEB_CONCURRENCY"),
    ({"web": "6", "ini": "2"}, 2, "ini"),
    ({"web": "6", "env": "4"}, 4, "env UWSGIAPP_WORKERS"),
    ({"web": " ", "ini": "2"}, 2, "ini"),
]


@pytest.mark.parametrize(("where", "expected", "source"), PRECEDENCE)
def test_precedence(tmp_path: Path, where: dict[str, str], expected: int, source: str) -> None:
    argv = ["serve", "app:app"]
    if "ini" in where:
        (tmp_path / "u.ini").write_text(f"[uwsgi]\nprocesses = {where['ini']}\n")
        argv += ["--ini", str(tmp_path / "u.ini")]
    if "toml" in where:
        (tmp_path / "c.toml").write_text(f"workers = {where['toml']}\n")
        argv += ["--config", str(tmp_path / "c.toml")]
    if "cli" in where:
        argv += ["--workers", where["cli"]]
    environ = {"UWSGIAPP_WORKERS": where["env"]} if "env" in where else {}
    if "web" in where:
        environ["WEB_CONCURRENCY"] = where["web"]
    resolved = resolve_serve_config(build_parser().parse_args(argv), environ)
    assert resolved.config.workers == expected
    assert resolved.sources["workers"].startswith(source)
    assert resolved.sources["app"] == "command line APP"
    assert resolved.sources["listen"] == "default"


@pytest.mark.parametrize(
    ("argv", "web", "said"),
    [
        (
            ["--workers", "2"],
            "8",
            "env WEB_CONCURRENCY=8 is not used: command line --workers sets --workers 2",
        ),
        (["--workers", "8"], "8", None),  # the same count: no news
        ([], "8", None),  # the variable is the count
    ],
)
def test_web_concurrency_a_higher_source_outranks_is_said(
    argv: list[str], web: str, said: str | None
) -> None:
    # A compose file pins --workers ${WORKERS:-2}; WEB_CONCURRENCY=8 in its environment, as
    # for gunicorn, looked as if it did nothing.
    args = build_parser().parse_args(["serve", "app:app", *argv])
    resolved = resolve_serve_config(args, {"WEB_CONCURRENCY": web})
    found = [w for w in resolved.warnings if "WEB_CONCURRENCY" in w]
    assert found == ([said] if said else [])


@pytest.mark.parametrize(
    ("argv", "env", "said"),
    [
        ([], {"PORT": "8080"}, True),  # a platform's HTTP port: gunicorn would listen on it
        (["--socket", "a.sock"], {"PORT": "8080"}, False),  # a socket of its own: no news
        ([], {"UWSGIAPP_SOCKET": ":3031", "PORT": "8080"}, False),
        ([], {"PORT": " "}, False),
    ],
)
def test_a_platforms_port_beside_the_default_socket_is_said(
    argv: list[str], env: dict[str, str], said: bool
) -> None:
    args = build_parser().parse_args(["serve", "app:app", *argv])
    found = [w for w in resolve_serve_config(args, env).warnings if "PORT=" in w]
    assert found == (
        [
            "PORT=8080 is set but not read (gunicorn listens on 0.0.0.0:$PORT for HTTP): "
            "uwsgiapp speaks only nginx's uwsgi protocol, here on the default 127.0.0.1:3031; "
            "put nginx on the port (uwsgi_pass to --socket)"
        ]
        if said
        else []
    )


def test_cli_flags_by_type() -> None:
    args = build_parser().parse_args(
        ["serve", "--app", "m:a", "--socket", "a.sock", "--socket", "b.sock,:3031",
         "--lazy-apps", "--no-reload-preloaded", "--chmod-socket", "600",
         "--socket-timeout", "2.5", "--buffer-size", "8192"]
    )  # fmt: skip
    c = resolve_serve_config(args, {}).config
    assert c.app == "m:a"
    assert c.socket == ("a.sock", "b.sock", ":3031")
    assert (c.lazy_apps, c.reload_preloaded) == (True, False)
    assert (c.chmod_socket, c.socket_timeout, c.buffer_size) == (0o600, 2.5, 8192)


@pytest.mark.parametrize(
    ("name", "text", "table"),
    [
        ("u.toml", "workers = 7\nlazy-apps = true\nsocket = ['x.sock']\n", "top level"),
        ("u.toml", "other = 1\n[uwsgiapp]\nworkers = 7\nlazy_apps = true\nsocket = 'x.sock'\n", ""),
        # A shared file's own tables may be named like an option (an app's [app] settings).
        ("u.toml", "[app]\nname = 'shop'\n[stats]\nx = 1\n[uwsgiapp]\nworkers = 7\n"
         "lazy_apps = true\nsocket = 'x.sock'\n", ""),
        ("pyproject.toml", "[project]\nname='x'\n[tool.uwsgiapp]\nworkers = 7\n"
         "lazy-apps = true\nsocket = ['x.sock']\n", ""),
    ],
)  # fmt: skip
def test_toml_tables(tmp_path: Path, name: str, text: str, table: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    c = resolve([toml_layer(str(path))]).config
    assert (c.workers, c.lazy_apps, c.socket) == (7, True, ("x.sock",))


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        # tomllib reads 440 and 0o670 as one int: a plain 440 was taken as 0o670 (group writes).
        ("chmod-socket = 440\n", 0o440),
        ("chmod_socket = 600  # owner only\n", 0o600),
        ("[uwsgiapp]\nworkers = 1\n'chmod-socket' = 640\n", 0o640),
        ("uwsgiapp.chmod-socket = 444\n", 0o444),
        ('[uwsgiapp]\n"chmod-socket" = +6_6_0\n', 0o660),
        ("chmod-socket = 0o440\n", 0o440),  # the value itself
        ("chmod-socket = 0o670\n", 0o670),  # ... whose decimal (440) is not its spelling
        ("chmod-socket = 0o660\nworkers = 432\n", 0o660),
        ("chmod-socket = 666\n", 0o666),
        ("[tool.uwsgiapp]\n# chmod-socket = 440\nchmod-socket = 0o670\n", 0o670),  # a comment's
        ("uwsgiapp = { workers = 1, chmod-socket = 440 }\n", 0o440),  # an inline table
        ("uwsgiapp . chmod-socket = 440 # mode\n", 0o440),
    ],
)
def test_toml_mode_is_read_as_written(tmp_path: Path, text: str, mode: int) -> None:
    path = tmp_path / "u.toml"
    path.write_text(text)
    assert resolve([toml_layer(str(path))]).config.chmod_socket == mode


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("u.toml", "chmod-socket = 66\n", "expected three octal digits (owner, group, others)"),
        ("u.toml", "workrs = 2\n", "unknown option 'workrs' in top level (did you mean workers?)"),
        # A typo of a table's name keeps its "did you mean" (the table hint took its place)
        ("u.toml", "[uwsgiapp]\nworkers = 2\n[uwsgiapp.evn]\nA = '1'\n",
         "unknown option 'evn' in [uwsgiapp] (did you mean env?)"),
        # A uWSGI user's [uwsgi] table: where the options are read is said
        ("u.toml", "[uwsgi]\nworkers = 2\n", "'uwsgi' in top level (a table: the options are "
         "read from [uwsgiapp], [tool.uwsgiapp] in a pyproject.toml, or the top level)"),
        # One error a run: a file written from gunicorn.conf.py took a dozen runs to clean.
        ("u.toml", "bind = 'a.sock'\nworkers = 2\nkeepalive = 5\n",
         "unknown options in top level: 'bind' (use --socket HOST:PORT (or a unix socket path): "
         "it speaks nginx's uwsgi protocol, not HTTP"),
        ("u.toml", "workers = \n", "invalid TOML"),
        # gunicorn's config is Python (it starts with imports and hook functions).
        ("gunicorn.conf.py", "import multiprocessing\nworkers = 2\n",
         "gunicorn.conf.py is Python (gunicorn's config?): give its settings as options"),
        ("pyproject.toml", "[project]\nname = 'x'\n", "no [tool.uwsgiapp] table"),
        ("u.toml", "workers = '2x'\n", "--workers (from config file"),
        ("u.toml", "workers = 0\n", "--workers (from config file"),
        # Beside the table that holds the options, an option (or [env]) was ignored unsaid.
        ("u.toml", "threads = 4\n[uwsgiapp]\nworkers = 2\n",
         "'threads' is outside [uwsgiapp], which holds the options when the file has one: "
         "move it to [uwsgiapp]"),
        ("u.toml", "[uwsgiapp]\nworkers = 2\n[env]\nY = '2'\n",
         "'env' is outside [uwsgiapp], which holds the options when the file has one: "
         "move it to [uwsgiapp.env]"),
        ("u.toml", "[uwsgiapp]\nworkers = 2\n[tool.uwsgiapp]\nthreads = 2\n",
         "[uwsgiapp] is ignored beside [tool.uwsgiapp]: move its keys there"),
    ],
)  # fmt: skip
def test_toml_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve([toml_layer(str(path))])


@pytest.mark.parametrize("item", ["NOEQUALS", "=value", "A\x00B=1", "A=\x00"])
def test_env_items_are_validated(item: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve([{"env": Raw([item], "command line --env")}])
    assert str(info.value).startswith("--env (from command line --env): expected NAME=VALUE")


def test_a_bad_env_item_among_several_is_located_without_its_text() -> None:
    # UWSGIAPP_ENV's lines from a Kubernetes manifest: which one was wrong was not said.
    with pytest.raises(ConfigError) as info:
        resolve([{"env": Raw(["A=1", "SECRETVALUE", "C=3"], "env UWSGIAPP_ENV")}])
    said = str(info.value)
    assert "expected NAME=VALUE, got item 2 of 3: no '=' (values not shown)" in said
    assert "SECRETVALUE" not in said


@pytest.mark.parametrize("given", ["MYA=1\n  MYB=2", "export MYA=1", "MY A=1", "MYA\t=1"])
def test_an_env_name_with_a_space_is_refused(given: str) -> None:
    # UWSGIAPP_ENV's indented line or a shell's "export " went into the name, silently: the
    # app had no MYB (or "export MYA") it could read.
    with pytest.raises(ConfigError, match="a name holds a space") as info:
        resolve([{"env": Raw(given, "env UWSGIAPP_ENV")}])
    assert str(info.value).startswith("--env (from env UWSGIAPP_ENV):")
    assert "=1" not in str(info.value)  # the value may be a secret: never in the error


@pytest.mark.parametrize(
    "given",
    [{"env": {"SECRET_KEY": "s3cr3t", "DEBUG": True}}, {"env": "-----BEGIN KEY\nMIIEs3cr3t"}],
)
def test_a_bad_env_item_is_named_without_its_value(given: dict[str, object]) -> None:
    # A TOML [env] with one non-string value printed the whole table, SECRET_KEY's too; a
    # PEM key's line without '=' was printed as the bad item.
    with pytest.raises(ConfigError) as info:
        resolve([{name: Raw(value, "config file c.toml") for name, value in given.items()}])
    assert "s3cr3t" not in str(info.value) and "values not shown" in str(info.value)


def test_env_from_every_source(tmp_path: Path) -> None:
    """--env (repeatable), an env table in TOML, UWSGIAPP_ENV (one per line), ini env keys;
    the sources add up by name, as uWSGI's do (a higher source's value of a name wins)."""
    (tmp_path / "u.ini").write_text("[uwsgi]\nenv = A=ini\nenv = B=x,y=z\n")
    (tmp_path / "top.toml").write_text('[env]\nA = "toml"\nPORT = 8000\n')
    (tmp_path / "tool.toml").write_text('[uwsgiapp]\nworkers = 2\n[uwsgiapp.env]\nA = "t"\n')

    def env_of(argv: list[str], environ: dict[str, str] | None = None) -> tuple[str, ...]:
        args = build_parser().parse_args(["serve", "app:app", *argv])
        return resolve_serve_config(args, environ or {}).config.env

    assert env_of(["--ini", str(tmp_path / "u.ini")]) == ("A=ini", "B=x,y=z")
    assert env_of(["--config", str(tmp_path / "top.toml")]) == ("A=toml", "PORT=8000")
    assert env_of(["--config", str(tmp_path / "tool.toml")]) == ("A=t",)
    assert env_of([], {"UWSGIAPP_ENV": "A=env\nB=2"}) == ("A=env", "B=2")
    # a comment line, as docker's --env-file skips it (it stopped the start: "no '='")
    assert env_of([], {"UWSGIAPP_ENV": "# the app's\nA=env\n  # more\nB=#2"}) == ("A=env", "B=#2")
    assert env_of(["--env", "A=1,2", "--env", "B=", "--ini", str(tmp_path / "u.ini")]) == (
        "A=1,2",
        "B=",
    )
    c = make_config(env=("A=1", "B=x=y", "A=2"))
    assert c.env_vars() == {"A": "2", "B": "x=y"}


def test_env_round_trips_through_print_config(tmp_path: Path) -> None:
    """The ini's env used to be printed as comments, lost by --print-config > app.toml."""
    (tmp_path / "app.ini").write_text(
        "[uwsgi]\nmodule = app:app\nenv = DJANGO_SETTINGS_MODULE=site.settings\n"
        'env = HOSTS=a,b\nenv = MSG=say "hi"=ok\nenv = my.var=1\n'
        # Set twice (uWSGI: the last wins): printed once, or the file is invalid TOML.
        "env = HOSTS=old\nenv = HOSTS=a,b\n"
    )
    r = run_cli("serve", "--ini", "app.ini", "--print-config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert (
        'env = {DJANGO_SETTINGS_MODULE = "site.settings", HOSTS = "a,b",'
        ' MSG = "say \\"hi\\"=ok", "my.var" = "1"}'
    ) in out
    (tmp_path / "app.toml").write_text(out)
    r2 = run_cli("serve", "--config", "app.toml", "--print-config", cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr
    strip = re.compile(r"\s+#.*$", re.M)
    assert strip.sub("", r2.stdout.decode()) == strip.sub("", out)
    r3 = run_cli("serve", "--config", "app.toml", "--env", "X=1", "--print-config", cwd=tmp_path)
    assert 'HOSTS = "a,b", MSG = "say \\"hi\\"=ok", "my.var" = "1", X = "1"}' in r3.stdout.decode()


def test_validate_error_names_the_source() -> None:
    with pytest.raises(ConfigError) as info:
        resolve([{"buffer_size": Raw("70000", "env UWSGIAPP_BUFFER_SIZE")}])
    assert str(info.value) == (
        "--buffer-size (from env UWSGIAPP_BUFFER_SIZE): must be <= 65535, got 70000"
    )
    # listen() takes a C int: 2**31 was an OverflowError traceback at the bind, and
    # --check-config passed it.
    with pytest.raises(ConfigError, match=r"^--listen \(from ini x.ini\): must be <= 2147483647"):
        resolve([{"listen": Raw("2147483648", "ini x.ini")}])


# --- as a user types it --------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["--error-log-file", "-"]])
def test_capture_output_with_the_error_log_on_a_stream_is_ignored_with_a_warning(
    tmp_path: Path, args: list[str]
) -> None:
    # gunicorn's `--capture-output --error-logfile -`, a common Dockerfile line: gunicorn
    # ignores it; start-up refused it (exit 2).
    r = run_cli("serve", "app:app", "--print-config", "--capture-output", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert b"--capture-output is ignored: the error log is the process's own stream" in r.stderr
    assert b"capture-output = false" in r.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--workers", "zero"], {}, b"--workers (from command line --workers): expected an"),
        ([], {"UWSGIAPP_LISTEN": "-1"}, b"--listen (from env UWSGIAPP_LISTEN): must be >= 1"),
        ([], {"UWSGIAPP_LAZY_APPS": "perhaps"}, b"--lazy-apps (from env UWSGIAPP_LAZY_APPS)"),
        (["--config", "missing.toml"], {}, b"cannot read missing.toml"),
        (["--ini", "missing.ini"], {}, b"cannot read missing.ini"),
        (["--mount", "app/"], {}, b"--mount (from command line --mount): must start with '/'"),
        (["--access-log", "loud"], {}, b"must be one of off, uwsgi, json"),
        (["--threads", "0"], {}, b"--threads (from command line --threads): must be >= 1"),
        ([], {"UWSGIAPP_THREADS": "257"}, b"--threads (from env UWSGIAPP_THREADS): must be <= 256"),
        (["--workers", "100000"], {}, b"--workers (from command line --workers): must be <= 1024"),
    ],
)  # fmt: skip
def test_bad_values_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], message: bytes
) -> None:
    r = run_cli("serve", "app:app", "--print-config", *args, env=env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert b"Traceback" not in r.stderr


def test_print_config_round_trips(tmp_path: Path) -> None:
    env = {"UWSGIAPP_WORKERS": "3", "UWSGIAPP_SOCKET": "a.sock,b.sock"}
    r = run_cli(
        "serve", "m:app", "--print-config", "--harakiri", "20", "--chmod-socket", "600",
        "--mount", "/x", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    lines = {line.split(" = ")[0]: line for line in out.splitlines() if " = " in line}
    assert lines["workers"].endswith("# env UWSGIAPP_WORKERS")
    assert lines["harakiri"].startswith("harakiri = 20.0 ")
    assert lines["app"].endswith("# command line APP")
    assert lines["listen"].endswith("# default")
    assert len(lines) == len(option_specs())
    (tmp_path / "again.toml").write_text(out)
    r2 = run_cli("serve", "--config", "again.toml", "--print-config", cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr
    strip = re.compile(r"\s+#.*$", re.M)
    assert strip.sub("", r2.stdout.decode()) == strip.sub("", out)


def test_help_lists_every_option_default_and_env() -> None:
    r = run_cli("serve", "--help", env={"COLUMNS": "400"})
    assert r.returncode == 0
    text = r.stdout.decode()
    for s in option_specs():
        assert f"--{s.option}" in text
        assert f"env: {s.env}]" in text
    assert "[default: 1024; env: UWSGIAPP_LISTEN]" in text
    assert '[default: ["127.0.0.1:3031"]; env: UWSGIAPP_SOCKET]' in text
    top = run_cli("--help")
    assert top.returncode == 0
    for command in (b"serve", b"dev", b"request", b"ping"):
        assert command in top.stdout


def test_version_and_no_command() -> None:
    from uwsgiapp import __version__

    r = run_cli("--version")
    # ... and which build runs (tests/cli/test_build.py checks that part).
    assert r.returncode == 0 and r.stdout.decode().startswith(f"uwsgiapp {__version__} (")
    r = run_cli()
    assert r.returncode == 2 and b"usage: uwsgiapp" in r.stderr
    r = run_cli("frobnicate")
    assert r.returncode == 2 and b"invalid choice" in r.stderr


def test_console_script(tmp_path: Path) -> None:
    """The installed ``uwsgiapp`` script behaves like ``python -m uwsgiapp``."""
    import shutil
    import subprocess

    script = Path(sys.executable).parent / "uwsgiapp"
    exe = str(script) if script.exists() else shutil.which("uwsgiapp")
    if exe is None:
        pytest.skip("uwsgiapp script not installed")
    r = subprocess.run([exe, "--version"], capture_output=True, timeout=30, check=False)
    assert r.returncode == 0 and r.stdout.startswith(b"uwsgiapp ")


def test_serve_without_app(tmp_path: Path) -> None:
    r = run_cli("serve", cwd=tmp_path)
    assert r.returncode == 2
    assert b"no app given" in r.stderr


# --- hostile TOML: bounded nesting, one-line errors -----------------------------------------


def run_cli_capped(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """``run_cli`` with the address space capped at 1 GiB."""
    return run_cli(*args, cwd=cwd, timeout=60, memory_cap=1 << 30)


DEEP = 100_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[uwsgiapp]\nworkers = " + "[" * DEEP + "]" * DEEP + "\n",
            f"the value of 'workers' (line 2) nests arrays or tables more than {MAX_TOML_NESTING}"
            " deep",
        ),
        (
            "# a comment\nsocket = 'a.sock'\nmount = " + "{a = " * DEEP + "1" + "}" * DEEP,
            f"the value of 'mount' (line 3) nests arrays or tables more than {MAX_TOML_NESTING}"
            " deep",
        ),
        (
            "workers = 2\n" + ".".join(["a"] * DEEP) + " = 1\n",
            "the dotted key on line 2 (a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.…) has more than"
            f" {MAX_TOML_KEY_PARTS} parts",
        ),
        (
            "[" + ".".join(["t"] * DEEP) + "]\nworkers = 2\n",
            "the dotted key on line 1 (t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.…) has more than"
            f" {MAX_TOML_KEY_PARTS} parts",
        ),
    ],
    ids=["arrays", "inline-tables", "dotted-key", "table-header"],
)
def test_deep_toml_is_a_config_error_on_the_command_line(
    tmp_path: Path, text: str, message: str
) -> None:
    """These used to end in a RecursionError traceback (or tens of GB for the dotted keys)."""
    (tmp_path / "deep.toml").write_text(text)
    r = run_cli_capped("serve", "--config", "deep.toml", "app:app", cwd=tmp_path)
    assert r.returncode == EXIT_USAGE, r.stderr[-2000:]
    assert r.stderr.decode() == (
        f"uwsgiapp serve: error: --config (from config file deep.toml): {message}\n"
    )
    assert r.stdout == b""


def test_toml_strings_and_comments_do_not_count_as_nesting(tmp_path: Path) -> None:
    """Brackets, quotes and dots inside strings and comments are not structure; nesting up to
    the bound (another tool's table in pyproject.toml) is read as before."""
    bound = MAX_TOML_NESTING
    key_parts = ".".join(["k"] * MAX_TOML_KEY_PARTS)
    text = "\n".join(
        [
            "[project]",
            'name = "x"  # [[[[ { not structure',
            f"description = '{'[' * 100}'",
            'quoted = "escaped \\" [[[[ \\\\"',
            'multi = """',
            "[[[[[[ ''' \\\"\"\" {{{{ ",
            '""""',
            "lit = '''[[[[ \"\"\" ''''",
            f"deep = {'[' * bound}1{']' * bound}",
            f"{key_parts} = 1",
            f'"{"a." * 100}" = 1',
            "floats = [" + ", ".join(["1.5"] * 100) + "]",
            "[tool.uwsgiapp]",
            "workers = 3",
            "socket = ['run/[a].sock', \"{b}.sock\"]  # ]]]]",
        ]
    )
    (tmp_path / "pyproject.toml").write_text(text + "\n")
    c = resolve([toml_layer(str(tmp_path / "pyproject.toml"))]).config
    assert (c.workers, c.socket) == (3, ("run/[a].sock", "{b}.sock"))
    (tmp_path / "over.toml").write_text(f"x = {'[' * (bound + 1)}{']' * (bound + 1)}\n")
    with pytest.raises(ConfigError, match=f"nests arrays or tables more than {bound} deep"):
        toml_layer(str(tmp_path / "over.toml"))


def test_toml_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "latin1.toml").write_bytes(b"app = 'caf\xe9:app'\n")
    r = run_cli("serve", "--config", "latin1.toml", "--print-config", cwd=tmp_path)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert r.stderr.startswith(
        b"uwsgiapp serve: error: --config (from config file latin1.toml): invalid TOML: not UTF-8"
    )
    assert r.stderr.count(b"\n") == 1 and b"Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("argv", "environ", "fmt", "source"),
    [
        (["--access-log-file", "a.log"], {}, "uwsgi", "implied by command line --access-log-file"),
        ([], {"UWSGIAPP_ACCESS_LOG_FILE": "a.log"}, "uwsgi", "implied by env"),
        (["--access-log-file", "a.log", "--access-log", "json"], {}, "json", "command line"),
        (["--access-log-file", "a.log", "--access-log", "off"], {}, "off", "command line"),
        # gunicorn's --access-logfile - (its most common setting in containers): stdout, on.
        (["--access-log-file", "-"], {}, "uwsgi", "implied by command line --access-log-file"),
        (["--access-log-file", "/dev/stderr"], {}, "uwsgi", "implied by command line"),
        # The filters name requests to log: with the log off they logged nothing, unsaid.
        (["--log-5xx"], {}, "uwsgi", "implied by command line --log-5xx"),
        ([], {"UWSGIAPP_LOG_SLOW": "800"}, "uwsgi", "implied by env"),
        (["--log-5xx", "--access-log", "json"], {}, "json", "command line"),
        (["--log-slow", "0"], {}, "off", "default"),
    ],
)
def test_an_access_log_file_turns_the_access_log_on_unless_a_format_is_chosen(
    argv: list[str], environ: dict[str, str], fmt: str, source: str
) -> None:
    # gunicorn's --access-logfile does; a file that stays empty would help nobody.
    resolved = resolve_serve_config(build_parser().parse_args(["serve", "a:app", *argv]), environ)
    assert resolved.config.access_log == fmt
    assert resolved.sources["access_log"].startswith(source)


def test_a_malformed_app_spec_is_a_config_error_before_any_socket() -> None:
    # Found at the import before: after the sockets were bound, with the import's exit code.
    args = build_parser().parse_args(["serve", "fact:bad("])
    with pytest.raises(ConfigError, match=r"--app \(from command line APP\): invalid app spec"):
        resolve_serve_config(args, {})


def test_an_env_variable_the_command_line_overrides_gets_a_warning() -> None:
    # UWSGIAPP_WORKERS in a compose override, beside a command that says --workers 2.
    args = build_parser().parse_args(["serve", "a:app", "--workers", "2", "--harakiri", "30"])
    env = {"UWSGIAPP_WORKERS": "4", "UWSGIAPP_HARAKIRI": "30", "UWSGIAPP_LISTEN": "64"}
    resolved = resolve_serve_config(args, env)
    assert resolved.config.workers == 2 and resolved.config.listen == 64
    assert resolved.warnings == (
        "env UWSGIAPP_WORKERS=4 is overridden by command line --workers 2",
    )  # the same value twice (harakiri) is no news


@pytest.mark.parametrize(
    ("argv", "env", "said"),
    [
        (["--socket", "a.sock"], {"UWSGIAPP_SOCKET": "a.sock"}, None),
        (["--lazy-apps"], {"UWSGIAPP_LAZY_APPS": "1"}, None),
        (["--no-lazy-apps"], {"UWSGIAPP_LAZY_APPS": "false"}, None),
        (
            ["--socket", "a.sock", "--socket", ":3031"],
            {"UWSGIAPP_SOCKET": "b.sock"},
            "env UWSGIAPP_SOCKET=b.sock is overridden by command line --socket a.sock "
            "--socket :3031",
        ),
        (
            ["--no-lazy-apps"],
            {"UWSGIAPP_LAZY_APPS": "yes"},
            "env UWSGIAPP_LAZY_APPS=yes is overridden by command line --no-lazy-apps",
        ),
        (
            ["--env", "GREETING=hello world"],
            {"UWSGIAPP_ENV": "GREETING=hi"},
            "env UWSGIAPP_ENV is overridden by command line --env for GREETING (values not shown)",
        ),
    ],
)
def test_the_override_warning_compares_values_not_spellings(
    argv: list[str], env: dict[str, str], said: str | None
) -> None:
    args = build_parser().parse_args(["serve", "a:app", *argv])
    assert resolve_serve_config(args, env).warnings == ((said,) if said else ())


def test_a_socket_that_looks_like_a_port_gets_a_warning() -> None:
    args = build_parser().parse_args(["serve", "a:app", "--socket", "18560"])
    resolved = resolve_serve_config(args, {})
    assert resolved.config.socket == ("18560",)  # still what was asked: a file of that name
    assert any("for TCP write 127.0.0.1:18560" in w for w in resolved.warnings)
    # The same for the stats address (`--stats 9191 --stats-http` for Prometheus).
    args = build_parser().parse_args(["serve", "a:app", "--stats", "9191"])
    (said,) = resolve_serve_config(args, {}).warnings
    assert said.startswith("--stats 9191 is a unix socket file named '9191'"), said


@pytest.mark.parametrize(
    ("word", "said"),
    [
        ("timeout", "is --harakiri SECONDS here"),  # the nearest name, socket-timeout, misleads
        ("UWSGIAPP_TIMEOUT", "is --harakiri SECONDS here"),
        ("bind", "use --socket HOST:PORT"),
        # gunicorn.conf.py's names, not its flags': accesslog was "did you mean access-log?"
        ("accesslog", "use --access-log-file PATH"),
        ("preload_app", "loaded in the master by default already"),
        ("keepalive", "each uwsgi connection carries one request"),
        ("limit_request_field_size", "nothing to set"),
        ("wokers", "did you mean workers?"),
    ],
)
def test_config_and_env_suggestions_know_gunicorns_names(word: str, said: str) -> None:
    from uwsgiapp.config.configload import suggest

    assert said in suggest(word, ["workers", "socket", "socket-timeout", "harakiri"])


def _serve(argv: list[str], environ: dict[str, str]) -> Any:
    return resolve_serve_config(build_parser().parse_args(["serve", "a:app", *argv]), environ)


def test_sockets_systemd_passed_are_used_unless_one_is_named() -> None:
    # systemd socket activation (as gunicorn and uWSGI take it): LISTEN_FDS sockets from fd 3,
    # for this pid only; a socket named anywhere wins, and the passed ones are said unused.
    import os

    ours = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2"}
    resolved = _serve([], ours)
    assert resolved.config.socket == ("fd://3", "fd://4")
    assert resolved.sources["socket"] == "systemd socket activation (LISTEN_FDS=2)"
    assert resolved.warnings == ()
    assert _serve([], {**ours, "LISTEN_PID": "1"}).config.socket == ("127.0.0.1:3031",)
    assert _serve([], {**ours, "LISTEN_FDS": "x"}).config.socket == ("127.0.0.1:3031",)
    named = _serve(["--socket", "/run/app.sock"], ours)
    assert named.config.socket == ("/run/app.sock",)
    (said,) = named.warnings
    assert said == (
        "systemd passed 2 socket(s) (LISTEN_FDS), but command line --socket names the sockets: "
        "fd://3, fd://4 stay unused (name them, fd://3, or name no socket)"
    )
    assert _serve(["--socket", "fd://3", "--socket", "fd://4"], ours).warnings == ()


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["serve", "--mount", "/yourapplication=flaskapp:app"], {}),
        (["serve", "--mount", "/yourapplication/=flaskapp:app", "flaskapp:app"], {}),
        (["serve"], {"UWSGIAPP_MOUNT": "/yourapplication=flaskapp:app"}),
    ],
)
def test_uwsgi_mount_form_names_the_point_and_the_app(
    argv: list[str], environ: dict[str, str]
) -> None:
    # uWSGI's --mount /point=app (Flask's uWSGI page): the whole text was taken as the prefix.
    config = resolve_serve_config(build_parser().parse_args(argv), environ).config
    assert (config.mount, config.app) == ("/yourapplication", "flaskapp:app")


def test_uwsgi_mount_form_with_a_file_and_a_different_app() -> None:
    parse = build_parser().parse_args
    config = resolve_serve_config(parse(["serve", "--mount", "/x=app.py"]), {}).config
    assert (config.mount, config.app) == ("/x", "app.py:application")  # uWSGI's callable
    with pytest.raises(ConfigError) as caught:
        resolve_serve_config(parse(["serve", "--mount", "/x=a:app", "b:app"]), {})
    assert "'/x=a:app' names the app 'a:app', and command line APP names 'b:app'" in str(
        caught.value
    )


def test_env_items_of_every_source_add_up_by_name(tmp_path: Path) -> None:
    """--env or UWSGIAPP_ENV beside an ini kept only their own items: the ini's
    DJANGO_SETTINGS_MODULE was dropped without a word (uWSGI adds them up)."""
    ini = tmp_path / "u.ini"
    ini.write_text("[uwsgi]\nsocket = :3031\nenv = DJANGO_SETTINGS_MODULE=site.prod\nenv = A=ini\n")
    both = _serve(["--ini", str(ini), "--env", "MYVAR=1"], {"UWSGIAPP_ENV": "A=env\nB=2"})
    assert both.config.env == ("DJANGO_SETTINGS_MODULE=site.prod", "A=env", "B=2", "MYVAR=1")
    assert both.sources["env"] == (
        f"ini {ini} [uwsgi] env (line 4) + env UWSGIAPP_ENV + command line --env"
    )
    # A is given two values: the variable's wins over the file's, said (for A only).
    (said,) = both.warnings
    assert said.startswith(
        f"env UWSGIAPP_ENV overrides ini {ini} [uwsgi] env (line 4) for A (values not shown;"
    )
    # Values are secrets (SECRET_KEY=@(file)): never in a warning, the file's nor the env's.
    assert "=env" not in said and "=ini" not in said and 'ini"' not in said, said
    assert _serve(["--ini", str(ini)], {"UWSGIAPP_ENV": "B=2"}).warnings == ()
    # The same name from the variable and the command line: the command line's, said.
    clash = _serve(["--env", "A=cli", "--env", "C=3"], {"UWSGIAPP_ENV": "A=env\nB=2"})
    assert clash.config.env_vars() == {"A": "cli", "B": "2", "C": "3"}
    assert clash.warnings == (
        "env UWSGIAPP_ENV is overridden by command line --env for A (values not shown)",
    )


def test_a_command_line_list_replacing_the_ini_s_is_said(tmp_path: Path) -> None:
    """uWSGI binds the ini's socket and the command line's; we bind the command line's: said,
    naming the sockets dropped."""
    ini = tmp_path / "u.ini"
    ini.write_text("[uwsgi]\nsocket = 127.0.0.1:21313\nsocket = /run/a.sock\n")
    resolved = _serve(["--ini", str(ini), "--socket", "127.0.0.1:21314"], {})
    assert resolved.config.socket == ("127.0.0.1:21314",)
    (said,) = resolved.warnings
    assert said.startswith(
        f"command line --socket replaces ini {ini} [uwsgi] socket (line 3): 127.0.0.1:21313, "
        "/run/a.sock are not used"
    ), said
    kept = _serve(["--ini", str(ini), "--socket", "/run/a.sock", "--socket", "127.0.0.1:21313"], {})
    assert kept.warnings == ()


def test_an_image_s_defaults_rank_below_the_user_s_ini(tmp_path: Path) -> None:
    """The Docker image's UWSGIAPP_HARAKIRI=30 beat the ini's harakiri = 120 without a word.
    Its defaults are UWSGIAPP_DEFAULT_* now, below every file; a UWSGIAPP_* variable still
    outranks a file, said."""
    ini = tmp_path / "u.ini"
    ini.write_text("[uwsgi]\nsocket = :3031\nharakiri = 120\n")
    image = {"UWSGIAPP_DEFAULT_HARAKIRI": "30", "UWSGIAPP_DEFAULT_GRACEFUL_TIMEOUT": "8"}
    resolved = _serve(["--ini", str(ini)], image)
    assert (resolved.config.harakiri, resolved.config.graceful_timeout) == (120, 8)
    assert resolved.sources["graceful_timeout"] == "env UWSGIAPP_DEFAULT_GRACEFUL_TIMEOUT"
    assert resolved.warnings == ()
    assert _serve([], image).config.harakiri == 30
    # Outranked, a default is not used: an invalid one does not stop the start.
    assert _serve(["--harakiri", "5"], {"UWSGIAPP_DEFAULT_HARAKIRI": "x"}).config.harakiri == 5
    warnings: list[str] = []
    default_env_layer({"UWSGIAPP_DEFAULT_WORKRES": "2"}, warnings)
    assert warnings == [
        "ignoring unknown environment variable UWSGIAPP_DEFAULT_WORKRES"
        " (did you mean UWSGIAPP_DEFAULT_WORKERS?)"
    ]
    env = _serve(["--ini", str(ini)], {"UWSGIAPP_HARAKIRI": "30"})
    assert env.config.harakiri == 30
    assert env.warnings == (
        f"env UWSGIAPP_HARAKIRI=30 overrides ini {ini} [uwsgi] harakiri (line 3): harakiri = 120.0"
        " (the environment outranks files: unset UWSGIAPP_HARAKIRI to use the file's value)",
    )


def test_the_stats_variable_over_a_file_or_under_the_command_line_names_the_health_check(
    tmp_path: Path,
) -> None:
    """The image's health check reads UWSGIAPP_STATS only: --stats 127.0.0.1:9292 left the
    container unhealthy with a warning that did not say why."""
    env = {"UWSGIAPP_STATS": "127.0.0.1:9191", "UWSGIAPP_STATS_HTTP": "1"}
    (said,) = _serve(["--stats", "127.0.0.1:9292"], env).warnings
    assert said == (
        "env UWSGIAPP_STATS=127.0.0.1:9191 is overridden by command line --stats 127.0.0.1:9292;"
        " a health check running 'python -m uwsgiapp.stats.health' (the uwsgiapp image's"
        " HEALTHCHECK) reads UWSGIAPP_STATS, not the command line: set UWSGIAPP_STATS instead"
    )
    ini = tmp_path / "u.ini"
    ini.write_text("[uwsgi]\nsocket = :3031\nstats = /run/app/stats.sock\n")
    resolved = _serve(["--ini", str(ini)], env)
    assert resolved.config.stats == "127.0.0.1:9191"
    (said,) = resolved.warnings
    assert said.startswith(
        f"env UWSGIAPP_STATS=127.0.0.1:9191 overrides ini {ini} [uwsgi] stats (line 3):"
        ' stats = "/run/app/stats.sock"; a health check'
    ), said
    assert said.endswith("to keep the file's value, set UWSGIAPP_STATS to it")


def test_a_stats_default_a_file_or_the_command_line_outranks_names_the_health_check(
    tmp_path: Path,
) -> None:
    # The check reads UWSGIAPP_DEFAULT_STATS as serve does, but not a file or the command line.
    image = {"UWSGIAPP_DEFAULT_STATS": "127.0.0.1:9191"}
    resolved = _serve(["--stats", "127.0.0.1:9292"], image)
    assert resolved.config.stats == "127.0.0.1:9292"
    assert resolved.warnings == (
        "UWSGIAPP_DEFAULT_STATS is outranked by command line --stats: a health check running "
        "'python -m uwsgiapp.stats.health' reads the variable, not the server: set "
        "UWSGIAPP_STATS to the value in use",
    )
    ini = tmp_path / "u.ini"
    ini.write_text("[uwsgi]\nsocket = :3031\nstats = /run/app/stats.sock\n")
    (said,) = _serve(["--ini", str(ini)], image).warnings
    assert said.startswith(f"UWSGIAPP_DEFAULT_STATS is outranked by ini {ini}")
    # UWSGIAPP_STATS above the default: the check reads it (its own warning, if any).
    both = _serve(["--stats", "127.0.0.1:9292"], {**image, "UWSGIAPP_STATS": "127.0.0.1:9292"})
    assert not [w for w in both.warnings if "UWSGIAPP_DEFAULT_STATS" in w]


def test_a_variable_the_command_line_overrides_may_be_invalid() -> None:
    """UWSGIAPP_WORKERS=abc beside --workers 2 was said to be overridden, then stopped the
    start for being invalid."""
    resolved = _serve(["--workers", "2"], {"UWSGIAPP_WORKERS": "abc"})
    assert resolved.config.workers == 2
    assert resolved.warnings == (
        "env UWSGIAPP_WORKERS=abc is overridden by command line --workers 2 (its value is not"
        " valid either: expected an integer, got 'abc'; ignored)",
    )
    with pytest.raises(ConfigError, match="UWSGIAPP_WORKERS"):
        _serve([], {"UWSGIAPP_WORKERS": "abc"})


def test_log_level_is_taken_in_any_case() -> None:
    # gunicorn takes --log-level WARNING; the levels are logging's names.
    assert make_config(app="a:app", log_level="WARNING").log_level == "WARNING"
    with pytest.raises(ConfigError, match="must be one of debug, info, warning"):
        make_config(app="a:app", log_level="loud")


def test_toml_mode_is_not_read_out_of_a_string(tmp_path: Path) -> None:
    """A string value that says "chmod-socket = 432" was taken for the key's spelling."""
    path = tmp_path / "u.toml"
    path.write_text('chmod-socket = 0o660\nenv = ["A=use chmod-socket = 432 for x"]\n')
    assert resolve([toml_layer(str(path))]).config.chmod_socket == 0o660


def test_who_may_change_a_config_file_is_judged_by_owner_mode_and_directory() -> None:
    import os

    from uwsgiapp.config.readfile import others_may_change

    def st(uid: int, gid: int, mode: int) -> os.stat_result:
        return os.stat_result((mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))

    root_dir = st(0, 0, 0o40755)
    assert others_may_change(st(0, 0, 0o100644), [root_dir]) is None
    assert others_may_change(st(0, 0, 0o100664), [root_dir]) is None  # root's group may
    assert others_may_change(st(0, 0, 0o100644), [st(0, 0, 0o41777)]) is None  # sticky
    assert "group" in str(others_may_change(st(0, 4242, 0o100664), [root_dir]))
    assert (
        others_may_change(st(0, 0, 0o100644), [st(0, 0, 0o40777)])
        == "its directory is writable by everyone"
    )
    assert str(others_may_change(st(0, 0, 0o100644), [st(4242, 0, 0o40755)])).startswith(
        "its directory is owned by 4242"
    )
    # one above it the app owns: it may replace the whole way (sshd's StrictModes)
    assert str(others_may_change(st(0, 0, 0o100644), [root_dir, st(4242, 0, 0o40755)])).startswith(
        "a directory above it is owned by 4242"
    )
    # a sticky directory guards only root's file: one the app owns is still the app's
    assert str(others_may_change(st(4242, 0, 0o100644), [st(0, 0, 0o41777)])).startswith(
        "it is owned by 4242"
    )


@pytest.mark.parametrize(
    ("socket", "said"),
    [("0.0.0.0:8080", True), (":8080", True), ("0.0.0.0:3031", False), ("a.sock", False)],
)
def test_a_socket_on_the_platforms_http_port_is_said_to_speak_uwsgi(
    socket: str, said: bool
) -> None:
    # gunicorn's `-b 0.0.0.0:$PORT` turned into `--socket 0.0.0.0:$PORT`, as its hint said:
    # started without a word, and the platform's HTTP got an empty reply.
    args = build_parser().parse_args(["serve", "app:app", "--socket", socket])
    found = [w for w in resolve_serve_config(args, {"PORT": "8080"}).warnings if "PORT=" in w]
    assert found == (
        [
            f"--socket {socket}: on PORT=8080, where a platform sends HTTP (gunicorn serves "
            "HTTP on it), this socket speaks nginx's uwsgi protocol: an HTTP client or router "
            "gets an empty reply (put nginx on the port, uwsgi_pass to another --socket); "
            "nginx's own uwsgi_pass to it is fine"
        ]
        if said
        else []
    )
