"""Unknown options get a hint: gunicorn's and uWSGI's names for ours, the nearest for a typo;
and no abbreviation stands for an option (``--worker`` is a typo, not ``--workers``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli.cli_testkit import run_cli

from uwsgiapp.cli import EXIT_USAGE, build_parser
from uwsgiapp.clihints import SERVE_EXAMPLES, command_hint, hint_for


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["serve", "a:app", "--bind", "127.0.0.1:8000"], "--bind: use --socket HOST:PORT"),
        (["serve", "a:app", "-w", "4"], "-w: gunicorn's -w N is --workers N"),
        # uWSGI's quick start, `uwsgi -s /tmp/app.sock -w myapp:app`: -w was "use --workers N".
        (["serve", "-s", "/tmp/a.sock", "-w", "a:app"], "uWSGI's -w MODULE (--wsgi) is the APP"),
        (["serve", "-s", "/tmp/a.sock", "-w", "a:app"], "-s: use --socket HOST:PORT"),
        (["serve", "-p", "4", "a:app"], "uWSGI's -p N is --workers N"),
        (["serve", "a.py", "--callable", "app"], "--callable: give the app as the APP argument"),
        (["serve", "a:app", "--manage-script-name"], "a SCRIPT_NAME nginx sends is stripped"),
        (["serve", "--stop", "/tmp/a.pid"], "--stop: send the master TERM"),  # was: --stats?
        (["serve", "a:app", "--home", "/venv"], "VENV/bin/uwsgiapp"),
        (["serve", "a:app", "--timeout=30"], "is --harakiri SECONDS here"),
        (["serve", "a:app", "--preload"], "loaded in the master by default already"),
        (["serve", "a:app", "--reload"], "--reload (on code changes) is 'uwsgiapp dev APP'"),
        (["serve", "a:app", "--processes", "4"], "--processes: use --workers N"),
        (["serve", "a:app", "--workrs", "2"], "--workrs: did you mean --workers?"),
        (["serve", "a:app", "--worker", "2"], "--worker: did you mean --workers?"),
        (["dev", "a:app", "--bind", "0:80"], "--bind: use --host HOST --port PORT"),
        # dev was told of serve's options as if its own ("-e: use --env NAME=VALUE", which dev
        # then refused), and that gunicorn's --reload "is 'uwsgiapp dev APP'".
        (
            ["dev", "a:app", "-e", "A=1"],
            "use --env NAME=VALUE (of 'uwsgiapp serve': dev has no --env)",
        ),
        (["dev", "a:app", "-w", "2"], "(of 'uwsgiapp serve': dev has no --workers)"),
        (["dev", "a:app", "--reload"], "'uwsgiapp dev' reloads on code changes by default"),
        # Not dev's: request, ping and top were told "dev has no --workers" (review).
        (["request", "/tmp/x.sock", "/", "--processes", "3"], "--processes: use --workers N\n"),
        (["serve", "a:app", "--sendfile"], "a wsgi.file_wrapper response is sent with sendfile"),
        # uWSGI's options an ini's keys are told of: the command line guessed at our names
        # ("--logformat: did you mean --error-log-format?", "--limit-as: ... --limit-post?").
        (["serve", "a:app", "--logformat", "%(uri)"], "log-format is --access-log TEMPLATE"),
        (["serve", "a:app", "--limit-as", "512"], "LimitAS= in systemd, ulimit -v"),
        (["serve", "a:app", "--max-fd", "100"], "LimitNOFILE= in systemd"),
        (["serve", "a:app", "--max-requests-delta", "5"], "is --max-requests-jitter"),
        (["serve", "a:app", "--req-logger", "file:/x"], "--req-logger: use --access-log-file PATH"),
        (["serve", "a:app", "--memory-report"], "--stats shows each worker's RSS"),
        (["serve", "a:app", "--die-on-term"], "SIGTERM always stops gracefully in uwsgiapp"),
        (
            ["serve", "a:app", "--vacuum"],
            "removes the unix sockets and pidfile it created at exit (start-up warns",
        ),
        (["serve", "a:app", "--worker-connections", "10"], "gunicorn's async workers"),
        (["serve", "a:app", "--statsd-host", "x:8125"], "serves /metrics for Prometheus"),
        # gunicorn's, whose nearest name of ours misled ("--backlog: did you mean --access-log?")
        (["serve", "a:app", "--backlog", "64"], "--backlog: use --listen N"),
        # It said "trust them in the app (werkzeug's ProxyFix)": with uwsgi_params alone, the
        # client's own X-Forwarded-For then became REMOTE_ADDR.
        (["serve", "a:app", "--forwarded-allow-ips", "*"], "uwsgi_param HTTP_X_FORWARDED_FOR"),
        (["serve", "a:app", "--root-path", "/api"], "uwsgi_param SCRIPT_NAME /prefix"),
        # It said "use --buffer-size N": gunicorn's 4094 there refused (502) large cookies.
        (["serve", "a:app", "--limit-request-line", "4094"], "nothing to set"),
        (["serve", "a:app", "--limit-request-field_size", "8190"], "refuses with a 502"),
        (["serve", "a:app", "--limit-request-fields", "100"], "use --max-vars N"),
        (["serve", "a:app", "--log-config", "l.ini"], "logging.config.dictConfig"),
        (["serve", "a:app", "--certfile", "c.pem"], "terminate TLS in nginx"),
        (["serve", "a:app", "-e", "A=1"], "-e: use --env NAME=VALUE"),
        (["serve", "a:app", "--umask", "007"], "UMask= in systemd"),
        (["serve", "a:app", "--access-logformat", "%(h)s"], "not gunicorn's %(h)s"),
        # `uwsgi --ini app.ini --set processes=8` was "--set: did you mean --socket?"
        (["serve", "--ini", "a.ini", "--set", "processes=8"], "processes=4 is --workers 4"),
        (["serve", "--ini", "a.ini", "--set-ph", "base=/srv"], "the environment variable UWSGI"),
        # A mistyped name of another server's: no hint at all.
        (["serve", "a:app", "--procesess", "4"], "did you mean --processes? use --workers N"),
    ],
)
def test_an_unknown_option_gets_a_hint(argv: list[str], hint: str) -> None:
    r = run_cli(*argv)
    err = r.stderr.decode()
    assert r.returncode == EXIT_USAGE
    assert "unrecognized arguments" in err and hint in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "-b 0.0.0.0:8000", "pjuu.wsgi:application"],  # the APP left over
        ["serve", "-b 0.0.0.0:8000"],  # taken for the APP
        ["serve", "app:app", "--workers 2"],
    ],
)
def test_an_option_and_its_value_in_one_word_is_said(argv: list[str]) -> None:
    # A Dockerfile's exec form ["-b 0.0.0.0:8000", ...]: argparse took the word for the APP,
    # and only "unrecognized arguments: pjuu.wsgi:application" was said.
    r = run_cli(*argv)
    joined = next(w for w in argv if w.startswith("-"))
    assert r.returncode == 2
    assert f"{joined!r}: an option and its value in one word" in r.stderr.decode(), r.stderr
    # A known option's value that starts with "-" and has a space is not one.
    fine = run_cli("serve", "app:app", "--env", "-X a b", "--print-config")
    assert b"in one word" not in fine.stderr, fine.stderr


def test_an_unknown_options_value_taken_as_the_app_is_said() -> None:
    r = run_cli("serve", "--bind", "127.0.0.1:8000", "myapp:app")
    err = r.stderr.decode()
    assert "unrecognized arguments: --bind myapp:app" in err, err
    assert "myapp:app: not the APP, because the value of an unknown option before it" in err
    # The APP first, an unknown option's value after it: that value is no APP (the soak trial).
    r = run_cli("serve", "myapp:app", "--processes", "4")
    err = r.stderr.decode()
    assert "--processes: use --workers N" in err and "not the APP" not in err, err
    # Another unknown option after the APP: its value is not the one named (the review).
    r = run_cli("serve", "--bind", "0:80", "myapp:app", "--bind", "0:81")
    err = r.stderr.decode()
    assert "myapp:app: not the APP" in err and "0:81: not the APP" not in err, err


#: gunicorn 27's command-line options (its KNOWN_SETTINGS' ``cli``) that are not ours.
_GUNICORN_ONLY = (
    "--access-logfile --access-logformat --asgi-disconnect-grace-period --asgi-lifespan "
    "--asgi-loop --backlog --bind --ca-certs --casefold-http-method --cert-reqs --certfile "
    "--ciphers --control-socket --control-socket-mode --daemon --dirty-app "
    "--dirty-graceful-timeout --dirty-threads --dirty-timeout --dirty-workers "
    "--disable-redirect-access-to-syslog --do-handshake-on-connect --dogstatsd-tags "
    "--enable-backlog-metric --enable-stdio-inheritance --error-logfile --forwarded-allow-ips "
    "--forwarder-headers --group --header-map --http-parser --http-protocols --http2-cleartext "
    "--http2-initial-window-size --http2-max-concurrent-streams --http2-max-frame-size "
    "--http2-max-header-list-size --initgroups --keep-alive --keyfile "
    "--limit-request-field_size --limit-request-fields --limit-request-line --log-config "
    "--log-config-json --log-file --log-syslog --log-syslog-facility --log-syslog-prefix "
    "--log-syslog-to --logger-class --name --no-control-socket --no-sendfile --paste "
    "--paste-global --paster --permit-obsolete-folding --permit-unconventional-http-method "
    "--permit-unconventional-http-version --pid --preload --protocol --proxy-allow-from "
    "--proxy-protocol --reload --reload-engine --reload-extra-file --reuse-port --root-path "
    "--spew --ssl-version --statsd-host --statsd-prefix --strip-header-spaces "
    "--suppress-ragged-eofs --timeout --umask --user --websocket-max-message-size "
    "--worker-class --worker-connections --worker-tmp-dir -D -R -b -c -e -g -k -m -n -p -t -u -w"
)
GUNICORN_ONLY = _GUNICORN_ONLY.split()


def test_every_gunicorn_option_gets_a_hint_of_its_own() -> None:
    # The nearest name of ours misled: --root-path (the prefix) "did you mean --pythonpath?",
    # --reload-engine "--reload-preloaded?", --ciphers "--chdir?", --no-sendfile "--pidfile?";
    # --protocol (gunicorn's --protocol uwsgi), -m (its umask) and -n got nothing.
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    ours = list(serve._option_string_actions)
    assert not set(GUNICORN_ONLY) & set(ours)
    missing = {o: hint_for(o, ours) for o in GUNICORN_ONLY}
    missing = {o: h for o, h in missing.items() if not h or "did you mean" in h}
    assert not missing


def test_no_abbreviation_stands_for_an_option() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "a:app", "--max-req", "5"])
    args = build_parser().parse_args(["serve", "a:app", "--max-requests", "5"])
    assert args.max_requests == "5"  # converted with the other sources


def test_no_hint_for_what_resembles_nothing() -> None:
    assert hint_for("--zzzzzz", ["--workers", "--socket"]) == ""
    assert hint_for("positional", ["--workers"]) == ""
    # Another server's names only where they belong, and only what is close to one: `serve
    # --bogus` and `top --bogus` said "did you mean --backlog? use --listen N".
    assert hint_for("--bogus", ["--workers", "--socket"]) == ""
    assert hint_for("--procesess", ["--stats", "--once"]) == ""
    assert "use --workers N" in hint_for("--procesess", ["--workers", "--socket"])


def test_gunicorn_cmd_args_is_said_to_be_ignored() -> None:
    from uwsgiapp.config.serve import resolve_serve_config

    args = build_parser().parse_args(["serve", "a:app"])
    value = "--workers 4 --timeout=60 -k gthread --threads=8 '--chdir' /srv/app"
    resolved = resolve_serve_config(args, {"GUNICORN_CMD_ARGS": value})
    (said,) = [w for w in resolved.warnings if "GUNICORN_CMD_ARGS is set but not read" in w]
    assert resolved.config.workers != 4
    # Each of its options is named with what it is here: none is dropped without a word.
    assert "; --workers is UWSGIAPP_WORKERS=4; --timeout is UWSGIAPP_HARAKIRI=60 (a req" in said
    assert "; -k: use --threads N" in said
    assert "; --threads is UWSGIAPP_THREADS=8; --chdir is UWSGIAPP_CHDIR=/srv/app" in said


def test_gunicorn_cmd_args_names_are_translated_short_and_compact_too() -> None:
    # -w 3, --bind and -w4 got the command line's hints (and uWSGI's -w MODULE), or nothing.
    from uwsgiapp.config.fromgunicorn import gunicorn_args_warning

    said = gunicorn_args_warning("-w 3 --bind 127.0.0.1:8000 -t 60 -w4 --pid=/run/g.pid")
    assert "; -w is UWSGIAPP_WORKERS=3; --bind is UWSGIAPP_SOCKET=127.0.0.1:8000" in said
    assert "; -t is UWSGIAPP_HARAKIRI=60 (" in said
    assert "; -w is UWSGIAPP_WORKERS=4; --pid is UWSGIAPP_PIDFILE=/run/g.pid" in said
    assert "MODULE" not in said


def test_gunicorn_cmd_args_dash_values_and_env_options_are_translated_whole() -> None:
    # '--access-logfile -' (stdout) was UWSGIAPP_ACCESS_LOG_FILE=1, a file named "1"; two -e
    # were two UWSGIAPP_ENV= (set one after the other, the last alone stayed); -e SCRIPT_NAME
    # (gunicorn's prefix) was sent on to UWSGIAPP_ENV, where it mounts nothing.
    from uwsgiapp.config.fromgunicorn import gunicorn_args_warning

    said = gunicorn_args_warning(
        "--access-logfile - --error-logfile - -e A=1 --env B=2 -e SCRIPT_NAME=/prefix -w 2"
    )
    assert "; --access-logfile is UWSGIAPP_ACCESS_LOG_FILE=-; " in said
    assert "; --error-logfile is UWSGIAPP_ERROR_LOG_FILE=-; -w is UWSGIAPP_WORKERS=2" in said
    assert "; -e SCRIPT_NAME=/prefix (gunicorn's prefix) is UWSGIAPP_MOUNT=/prefix" in said
    assert said.endswith("; -e/--env is UWSGIAPP_ENV, one a line: UWSGIAPP_ENV=$'A=1\\nB=2'")
    assert "=1;" not in said
    # Shell-safe as given (a quote, a backslash), and gunicorn's last SCRIPT_NAME (review).
    said = gunicorn_args_warning("-e \"MSG=it's\" -e 'P=a\\b' -e SCRIPT_NAME=/a -e SCRIPT_NAME=/b")
    assert said.endswith("UWSGIAPP_ENV=$'MSG=it\\'s\\nP=a\\\\b'"), said
    assert "UWSGIAPP_MOUNT=/b" in said and "/a" not in said


def test_a_gunicorn_conf_py_in_the_working_directory_is_said_to_be_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gunicorn reads ./gunicorn.conf.py by default: its bind, workers and timeout were lost
    # without a word.
    from uwsgiapp.config.serve import resolve_serve_config

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["serve", "a:app"])
    assert not [w for w in resolve_serve_config(args, {}).warnings if "gunicorn.conf.py" in w]
    (tmp_path / "gunicorn.conf.py").write_text("bind = '0.0.0.0:8000'\nworkers = 4\n")
    (said,) = [w for w in resolve_serve_config(args, {}).warnings if "gunicorn.conf.py" in w]
    assert said.startswith(f"{tmp_path / 'gunicorn.conf.py'} is not read")
    assert "bind is --socket, workers --workers, timeout --harakiri" in said


def test_a_compact_short_option_gets_its_hint() -> None:
    assert hint_for("-w4", ["--workers"]).startswith("-w4: gunicorn's -w N is --workers N")
    assert hint_for("-b0.0.0.0:80", ["--socket"]).startswith("-b0.0.0.0:80: use --socket")
    # dev's own: an HTTP server with --host and --port, not --socket
    assert hint_for("-b127.0.0.1:5000", ["--host", "--port"]) == (
        "-b127.0.0.1:5000: use --host HOST --port PORT"
    )


@pytest.mark.parametrize("option", ["--reload", "--stop"])
def test_uwsgis_pidfile_commands_get_their_kill_line(option: str) -> None:
    # `uwsgi --reload PIDFILE`: the pidfile was taken for an unknown command, with no hint.
    message = "argument COMMAND: invalid choice: '/run/app.pid' (choose from 'serve')"
    said = command_hint(message, [option, "/run/app.pid"])
    signal = "HUP" if option == "--reload" else "TERM"
    assert f"kill -{signal} $(cat PIDFILE)" in said and said.startswith(f"\n  {option}: ")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([], "SCRIPT_NAME=/api is set in the environment but not read"),
        ([], "use --mount /api, or have nginx send it (uwsgi_param SCRIPT_NAME /api;)"),
        (["--mount", "/api"], ""),  # what gunicorn made of it: nothing to say
        (["--mount", "/v2"], "SCRIPT_NAME=/api is set"),
    ],
)
@pytest.mark.parametrize("given", ["environment", "--env"])
def test_gunicorns_script_name_variable_is_said_to_be_unread(
    argv: list[str], said: str, given: str
) -> None:
    # SCRIPT_NAME=/api gunicorn app:app mounts the app under /api; uwsgiapp answered 404 to
    # /api/x, and the app's links lost their prefix, without a word. gunicorn's
    # `-e SCRIPT_NAME=/api` is uwsgiapp's --env: it was not said there.
    from uwsgiapp.config.serve import resolve_serve_config

    env = ["--env", "SCRIPT_NAME=/api"] if given == "--env" else []
    args = build_parser().parse_args(["serve", "a:app", *argv, *env])
    resolved = resolve_serve_config(args, {} if env else {"SCRIPT_NAME": "/api"})
    warnings = [w for w in resolved.warnings if "SCRIPT_NAME" in w]
    assert any(said in w for w in warnings) if said else not warnings, warnings


def test_uwsgi_variables_the_ini_reads_are_not_said_to_be_unread(tmp_path: Path) -> None:
    # Dispatcharr's ini: processes = $(UWSGI_WORKERS). It is read; UWSGI_CHEAPER is not.
    from uwsgiapp.config.serve import resolve_serve_config

    ini = tmp_path / "app.ini"
    ini.write_text(
        "[uwsgi]\nmodule = app:app\nprocesses = $(UWSGI_WORKERS)\nx = %(y)\n"
        "max-requests = 5\nharakiri = %(max-requests)\n"
    )
    args = build_parser().parse_args(["serve", "--ini", str(ini)])
    # UWSGI_MAX_REQUESTS is not read: the section defines max-requests itself.
    env = {"UWSGI_WORKERS": "2", "UWSGI_CHEAPER": "1", "UWSGI_Y": "z", "UWSGI_MAX_REQUESTS": "9"}
    resolved = resolve_serve_config(args, env)
    assert resolved.config.workers == 2
    (said,) = [w for w in resolved.warnings if "set but not read" in w]
    assert said.startswith("UWSGI_CHEAPER, UWSGI_MAX_REQUESTS are set but not read")


def test_an_app_given_without_a_command_says_the_command_comes_first() -> None:
    r = run_cli("app:app")  # gunicorn's way of starting
    assert r.returncode == EXIT_USAGE
    assert "the command comes first: uwsgiapp serve APP [options]" in r.stderr.decode()


def test_an_option_before_the_command_is_said_to_follow_it() -> None:
    # uWSGI's way (`uwsgi --ini uwsgi.ini`): "invalid choice: 'uwsgi.ini'" alone.
    err = run_cli("--ini", "uwsgi.ini").stderr.decode()
    assert "--ini: options follow the command: uwsgiapp serve --ini uwsgi.ini" in err, err


def test_a_mistyped_command_gets_no_app_hint() -> None:
    err = run_cli("serv", "app:app").stderr.decode()
    assert "invalid choice: 'serv'" in err and "the command comes first" not in err


@pytest.mark.parametrize(
    ("value", "said"), [("1", True), ("true", True), ("0", False), ("", False)]
)
def test_flask_debug_under_serve_is_said(value: str, said: bool) -> None:
    # uwsgiapp.web reads it as Flask does: a leftover FLASK_DEBUG=1 (a Dockerfile's) made the
    # apps skip their own error handlers without a word.
    from uwsgiapp.config.serve import resolve_serve_config

    args = build_parser().parse_args(["serve", "a:app"])
    warnings = resolve_serve_config(args, {"FLASK_DEBUG": value}).warnings
    assert any(w.startswith(f"FLASK_DEBUG={value} is set") for w in warnings) == said


def test_a_usage_error_of_serve_is_not_buried_under_its_forty_lines_of_usage() -> None:
    """'--home' (uWSGI's) printed 40 lines of every option before the one line that says
    what is wrong and what to do."""
    r = run_cli("serve", "--home", "/srv/venv", "app:app")
    lines = r.stderr.decode().splitlines()
    assert lines[0] == "usage: uwsgiapp serve [options] [APP] (uwsgiapp serve --help)"
    assert lines[1] == "uwsgiapp serve: error: unrecognized arguments: --home app:app"
    assert len(lines) < 6, lines


def test_the_serve_help_examples_are_commands_serve_takes() -> None:
    # serve --help had no example, its 40 option lines before the one a newcomer needs.
    commands = [line.split("(")[0].split() for line in SERVE_EXAMPLES.splitlines()]
    commands = [words for words in commands if words and words[0] == "uwsgiapp"]
    assert len(commands) == 4
    for words in commands:
        build_parser().parse_args(words[1:])  # exits (SystemExit 2) for an unknown option
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    assert "examples:\n  uwsgiapp serve app:app --socket" in serve.format_help()


def test_uwsgis_static_options_get_the_static_advice() -> None:
    # static-map's advice moved under the ini's static- prefix: the command line's hint for
    # --static-map became "did you mean --stats-http?".
    for option in ("--static-map", "--static-expires"):
        err = run_cli("serve", "app:app", option, "/s=d").stderr.decode()
        assert "serve static files from nginx" in err and "did you mean" not in err, err
