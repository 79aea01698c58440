"""--ini keys uwsgiapp does not apply, or applies its own way: what it says about each."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from uwsgiapp.config import ConfigError, readfile
from uwsgiapp.config.inifile import MAX_INCLUDE_DEPTH, MAX_INI_BYTES
from uwsgiapp.config.uwsgiini import ini_layer


def warnings_for(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "site.ini"
    path.write_text(f"[uwsgi]\nmodule = app:app\n{body}\n[base]\nprocesses = 4\n")
    return [w.partition("]: ")[2] for w in ini_layer(str(path), environ={}).warnings]


@pytest.mark.parametrize(
    "body",
    [
        "protocol = uwsgi",
        "ignore-write-errors = true",
        "disable-write-exception = true",
        "ignore-write-errors\ndisable-write-exception",
    ],
)
def test_what_uwsgiapp_always_does_is_accepted_silently(tmp_path: Path, body: str) -> None:
    assert warnings_for(tmp_path, body) == []


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("ignore-write-errors = false", "one info line in uwsgiapp's log"),
        # Background jobs and hooks: the web part works, so a bare line went unnoticed.
        ("attach-daemon = ./manage.py sendalerts", "THIS WILL NOT RUN: uwsgiapp runs no"),
        ("smart-attach-daemon = /tmp/x.pid x", "a separate container or compose service"),
        ("unique-cron = -15 -1 -1 -1 -1 ./manage.py x", "systemd unit or timer"),
        ("hook-pre-app = exec:./manage.py migrate", "before 'uwsgiapp serve' in the entrypoint"),
        ("exec-pre-app = ./manage.py migrate", "THIS WILL NOT RUN: uwsgiapp runs no hooks"),
        ("hook-master-start = unix_signal:1 reload", "THIS WILL NOT RUN: uwsgiapp runs no hooks"),
        ("gevent = 400", "no async loop engine here"),
        ("log-zero = true", "or those of log-4xx, log-5xx, log-slow and log-big"),
        ("logger = syslog:app", "only 'logger = file:PATH' is taken"),
        ("touch-logreopen = /tmp/x", "postrotate send SIGUSR1 to the master"),
        ("log-maxsize = 1000000", "does not rotate its logs itself (they grow): rotate with"),
        ("log-encoder = json", "--error-log-format json"),
        ("umask = 027", "UMask= in systemd"),
        ("logger = file:logfile=/tmp/x.log,maxsize=20", "maxsize not honoured (uwsgiapp does"),
        # Typos: the nearest key uwsgiapp knows (uWSGI says nothing about either).
        ("process = 2", "'process' is not supported, ignored (did you mean 'processes'?)"),
        ("vaccum = true", "(did you mean 'vacuum'?)"),
        # A real uWSGI option is not taken for a typo of another one we do not have either.
        ("min-worker-lifetime = 60", "'min-worker-lifetime' is not supported, ignored"),
    ],
)
def test_what_cannot_be_honoured_says_so(tmp_path: Path, body: str, said: str) -> None:
    found = warnings_for(tmp_path, body)
    assert len(found) == 1 and said in found[0], found


def test_strict_refuses_the_keys_it_would_ignore(tmp_path: Path) -> None:
    # uWSGI's strict refuses to start on an option it does not know: a cron job or a mule that
    # silently does not run would be worse than a server that does not start.
    path = tmp_path / "site.ini"
    path.write_text(
        "[uwsgi]\nmodule = app:app\nstrict = true\nmule = jobs.py\ncron = 0 -1 -1 -1 -1 x\n"
    )
    warnings: list[str] = []
    with pytest.raises(ConfigError) as caught:
        ini_layer(str(path), environ={}, warnings=warnings)
    text = str(caught.value)
    assert "'strict' is set and uwsgiapp does not support mule (line 4), cron (line 5)" in text
    assert "strict (line 3)" in text
    assert len(warnings) == 2  # each key's own advice is printed first


@pytest.mark.parametrize("strict", ["strict = false", "", "strict = true\nprocesses = 2"])
def test_without_strict_or_unknown_keys_it_starts(tmp_path: Path, strict: str) -> None:
    path = tmp_path / "site.ini"
    extra = "" if "processes" in strict else "\nmule = jobs.py"
    path.write_text(f"[uwsgi]\nmodule = app:app\n{strict}{extra}\n")
    ini_layer(str(path), environ={})


def test_ini_colon_section_is_followed_where_it_stands(tmp_path: Path) -> None:
    # SEED's docker/uwsgi.ini: the app is in [base]; uWSGI reads it, uwsgiapp said "no app".
    path = tmp_path / "site.ini"
    path.write_text(
        "[uwsgi]\nprocesses = 2\nini = :base\nsocket = /tmp/s.sock\n"
        "[base]\nmodule = config.wsgi:application\nprocesses = 4\nsocket = /tmp/b.sock\n"
        "ini = :more\n[more]\nthreads = 8\n"
    )
    result = ini_layer(str(path), environ={})
    layer = {name: raw.value for name, raw in result.layer.items()}
    assert layer["app"] == "config.wsgi:application"
    assert layer["workers"] == "4"  # [base]'s, after the 2 before it
    assert layer["socket"] == ["/tmp/b.sock", "/tmp/s.sock"]
    assert layer["threads"] == "8"  # [base]'s own ini is followed too (it was not, and said)
    assert not result.warnings
    # A missing section is skipped with a warning (as uWSGI does); a section read already
    # (this one, or one included twice) is skipped too: its sockets would be bound twice.
    path.write_text(
        "[uwsgi]\nmodule = app:app\nsocket = /tmp/s.sock\nini = :nowhere\nini = :uwsgi\n"
        "ini = :base\nini = :base\n[base]\nthreads = 2\n"
    )
    result = ini_layer(str(path), environ={})
    assert result.layer["socket"].value == ["/tmp/s.sock"]
    assert result.layer["threads"].value == "2"
    said = [w.partition("]: ")[2] for w in result.warnings]
    assert said == [
        "'ini = :nowhere' (line 4) skipped: "
        f"{path} has no [nowhere] section (sections: [uwsgi], [base])",
        "'ini = :uwsgi' (line 5): [uwsgi] is already read; skipped",
        "'ini = :base' (line 7): [base] is already read; skipped",
    ]


def test_a_key_used_as_a_placeholder_is_still_applied_or_reported(tmp_path: Path) -> None:
    # olympia's ini: safe-pidfile is an option and also %(safe-pidfile) in another key; it was
    # dropped without a word. A variable that only if-opt tests is not reported.
    path = tmp_path / "site.ini"
    path.write_text(
        "[uwsgi]\nmodule = app:app\nbase = /srv\nrunning-ci = true\n"
        "if-not-opt = running-ci=false\n"
        "safe-pidfile = %(base)/app.pid\n"
        "attach-daemon = touch %(safe-pidfile) %(daemon)\n"
        "daemon = x\n"
        "threads = %(n + 1)\nn = 1\n"
        "endif =\n"
    )
    result = ini_layer(str(path), environ={})
    assert result.layer["pidfile"].value == "/srv/app.pid"
    assert result.layer["threads"].value == "2"
    said = [w.partition("]: ")[2].split(" (")[0] for w in result.warnings]
    assert said == ["'attach-daemon' is not supported, ignored"]


@pytest.mark.parametrize("body", ["strict = false", "strict = no", "strict = false # off"])
def test_strict_false_is_what_uwsgiapp_does_said_nothing_of(tmp_path: Path, body: str) -> None:
    """'strict = false' was reported as "cannot be honoured": warn and go on is what it asks."""
    said = warnings_for(tmp_path, body)
    assert not [w for w in said if "strict" in w and "comment" not in w], said


def test_daemonize_names_the_error_log_file(tmp_path: Path) -> None:
    """uWSGI's daemonize = FILE logs to FILE; uwsgiapp left it empty (all went to stderr)."""
    said = warnings_for(tmp_path, "daemonize = /var/log/app.log")
    assert said == [
        "'daemonize = /var/log/app.log': uwsgiapp does not daemonize, it stays in the"
        " foreground (run it under systemd, Docker or another supervisor); /var/log/app.log is"
        " its log file, as in uWSGI"
    ]
    path = tmp_path / "d.ini"
    path.write_text("[uwsgi]\nmodule = app:app\ndaemonize2 = /var/log/app.log\n")
    layer = ini_layer(str(path), environ={}).layer
    assert layer["error_log_file"].value == "/var/log/app.log"
    assert layer["access_log_file"].value == "/var/log/app.log"  # as logto: request lines too
    assert layer["capture_output"].value is True
    # A logto of the section names the log file; daemonize does not replace it.
    path.write_text("[uwsgi]\nlogto = /var/log/mine.log\ndaemonize = /var/log/app.log\n")
    result = ini_layer(str(path), environ={})
    assert result.layer["error_log_file"].value == "/var/log/mine.log"
    assert result.unsupported == []


def test_a_pythonpath_glob_is_expanded_as_uwsgi_does(tmp_path: Path) -> None:
    """'pythonpath = libs/*' was taken literally: the app could not be imported (exit 4)."""
    for name in ("pkgb", "pkga"):
        (tmp_path / "libs" / name).mkdir(parents=True)
    path = tmp_path / "g.ini"
    path.write_text(
        f"[uwsgi]\npythonpath = {tmp_path}/libs/*\nchdir = {tmp_path}\npythonpath = li*/pkg[a]\n"
        f"pythonpath = {tmp_path}/nothing*\n"
    )
    result = ini_layer(str(path), environ={})
    assert result.layer["pythonpath"].value == [
        f"{tmp_path}/libs/pkga",
        f"{tmp_path}/libs/pkgb",
        "libs/pkga",  # relative: to chdir, where uwsgiapp takes relative paths from
        f"{tmp_path}/nothing*",
    ]
    assert [w.partition("]: ")[2] for w in result.warnings] == [
        f"'pythonpath = {tmp_path}/nothing*' matches nothing: the pattern is used as it is"
    ]


def test_a_relative_pidfile_or_log_beside_a_chdir_is_said_to_move(tmp_path: Path) -> None:
    """uWSGI writes a relative pidfile and logto where it started, uwsgiapp under chdir: an
    ini written for uWSGI moved them silently (a `kill -HUP $(cat run/app.pid)` missed)."""
    said = warnings_for(
        tmp_path, "chdir = /srv/site\npidfile = run/app.pid\nlogto = log/app.log\nmodule = a:b"
    )
    end = (
        "is taken from chdir (/srv/site), where uWSGI takes it from the directory it starts in:"
        " make it absolute to keep it where it was"
    )
    assert said == [  # logto's file is the access log's too: said once
        f"pidfile (line 4): the relative path 'run/app.pid' {end}",
        f"logto (line 5): the relative path 'log/app.log' {end}",
    ]
    assert warnings_for(tmp_path, "pidfile = run/app.pid\nlogto = log/app.log") == []
    assert warnings_for(tmp_path, "chdir = /srv\npidfile = /run/app.pid\nlogto = /l.log") == []


def test_another_ini_file_is_read_where_it_stands_and_inherit_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 'ini = base.ini' and 'inherit = base.ini' were dropped with a warning, and the server
    # started without what they set (1 worker, no harakiri). A relative path is taken from the
    # current directory, as uWSGI opens it.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.ini").write_text(
        "[uwsgi]\nprocesses = 4\nharakiri = 30\nini = deeper.ini\n[other]\nthreads = 2\n"
    )
    # Nested as deep as they go (they were followed one level deep, the next one said and
    # dropped); a loop back to a section read is skipped with a warning.
    (tmp_path / "deeper.ini").write_text(
        "[uwsgi]\nbuffer-size = 8192\ninherit = %dsite.ini\nini = :more\n[more]\nlisten = 64\n"
    )
    path = tmp_path / "site.ini"
    path.write_text("[uwsgi]\nmodule = app:app\nprocesses = 2\ninclude = base.ini\n")
    result = ini_layer(str(path), environ={})
    layer = {name: raw.value for name, raw in result.layer.items()}
    assert (layer["workers"], layer["harakiri"]) == ("4", "30")  # where it stands: after the 2
    assert result.layer["workers"].source.endswith("processes (line 2 of base.ini)")
    assert (layer["buffer_size"], layer["listen"]) == ("8192", "64")
    assert result.layer["listen"].source.endswith("listen (line 6 of deeper.ini)")
    (said,) = [w.partition("]: ")[2] for w in result.warnings]
    assert said == (
        f"'inherit = {tmp_path}/site.ini' (line 3 of deeper.ini): [uwsgi] is already read; skipped"
    )
    # inherit: after the whole config, as uWSGI puts it (its --show-config lists it last, and
    # its values win: 8 workers here, where the file's own 2 won, as a template's would).
    path.write_text(
        "[uwsgi]\nmodule = app:app\nprocesses = 2\ninherit = base.ini:other\nthreads = 4\n"
    )
    (tmp_path / "base.ini").write_text("[other]\nthreads = 2\nprocesses = 8\n")
    layer = {name: raw.value for name, raw in ini_layer(str(path), environ={}).layer.items()}
    assert (layer["workers"], layer["threads"]) == ("8", "2")
    # One that cannot be read stops the start (what it sets would be missing); so does a
    # format uwsgiapp does not read.
    for value, message in (
        ("ini = gone.ini", "'ini = gone.ini' (line 3): cannot read gone.ini"),
        ("include = base.yaml", "'include = base.yaml' (line 3): only ini files are read"),
    ):
        path.write_text(f"[uwsgi]\nmodule = app:app\n{value}\n")
        with pytest.raises(ConfigError, match=re.escape(message)):
            ini_layer(str(path), environ={})


def test_an_include_follows_the_if_logic_and_its_files_own_magic_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After review: includes were read before the if-logic and unexpanded. A guarded optional
    # include stopped the start, `include = %d/base.ini` (uWSGI's idiom) was not found, an
    # inherit in a branch not taken was applied; and an included file's %d was the main one's.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "base.ini").write_text("[uwsgi]\nprocesses = 4\npidfile = %d%n.pid\n")
    path = tmp_path / "site.ini"
    path.write_text(
        "[uwsgi]\nmodule = app:app\n"
        "if-exists = local.ini\ninclude = local.ini\nendif =\n"
        "if-env = PRODUCTION\ninherit = other/base.ini\nendif =\n"
    )
    layer = ini_layer(str(path), environ={}).layer
    assert "workers" not in layer and "pidfile" not in layer
    path.write_text("[uwsgi]\nmodule = app:app\nbase = other\ninclude = %d%(base)/base.ini\n")
    layer = ini_layer(str(path), environ={}).layer
    assert layer["workers"].value == "4"
    assert layer["pidfile"].value == f"{tmp_path}/other/base.pid"  # its own directory and name


def test_includes_nest_to_a_bound_and_an_empty_one_is_said(tmp_path: Path) -> None:
    # A chain of distinct files (no loop for the read-once rule to stop) ends with an error
    # naming the include that went too deep, not a RecursionError.
    for n in range(MAX_INCLUDE_DEPTH + 2):
        (tmp_path / f"n{n}.ini").write_text(
            f"[uwsgi]\nbuffer-size = {4096 + n}\nini = %dn{n + 1}.ini\n"
        )
    path = tmp_path / "site.ini"
    path.write_text("[uwsgi]\nmodule = app:app\nini = %dn0.ini\n")
    with pytest.raises(ConfigError, match=r"\(line 3 of .*n9\.ini\): includes nest too deep"):
        ini_layer(str(path), environ={})
    path.write_text("[uwsgi]\nmodule = app:app\ninclude =\n")
    result = ini_layer(str(path), environ={})
    (said,) = [w.partition("]: ")[2] for w in result.warnings]
    assert said == "'include = ' (line 3) names no file nor section; ignored"


def test_what_an_ini_file_reads_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An include of /dev/zero read until memory ran out; a FIFO with no writer hung the start
    # (security review). A pipe with a writer (`--ini <(envsubst < t.ini)`) is still read.
    path = tmp_path / "site.ini"
    path.write_text("[uwsgi]\nmodule = app:app\ninclude = /dev/zero\n")
    with pytest.raises(ConfigError, match=r"cannot read /dev/zero: not a file \(a device\?\)"):
        ini_layer(str(path), environ={})
    fifo = tmp_path / "fifo.ini"
    os.mkfifo(fifo)
    path.write_text(f"[uwsgi]\nmodule = app:app\ninclude = {fifo}\n")
    monkeypatch.setattr(readfile, "PIPE_SECONDS", 0.3)  # 10 s: a writer's time to start
    with pytest.raises(ConfigError, match=r"nothing more came through the pipe in 0\.3 s"):
        ini_layer(str(path), environ={})
    big = tmp_path / "big.ini"
    big.write_bytes(b"[uwsgi]\n" + b"# padding\n" * (MAX_INI_BYTES // 10 + 1))
    path.write_text(f"[uwsgi]\nmodule = app:app\ninclude = {big}\n")
    with pytest.raises(ConfigError, match="over 4 MiB"):
        ini_layer(str(path), environ={})
    read, write = os.pipe()
    os.write(write, b"[uwsgi]\nmodule = piped:app\n")
    os.close(write)
    try:
        layer = ini_layer(f"/proc/self/fd/{read}", environ={}).layer
    finally:
        os.close(read)
    assert layer["app"].value == "piped:app"
