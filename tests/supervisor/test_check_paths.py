"""``serve --check-config``'s decision on the paths start-up would use
(:func:`uwsgiapp.supervisor.check.refusals`), from what a read-only walk found: the rules of
start-up itself (a log as :func:`uwsgiapp.server.safefiles.open_append` takes it, a socket path
as the bind does, a pidfile as it is renamed over), without touching a file."""

from __future__ import annotations

import errno
import os
import pathlib
import shutil
import stat
import subprocess
import sys

import pytest

import uwsgiapp
from uwsgiapp.exitcodes import ServeExit
from uwsgiapp.server.safefiles import UnsafeFileError
from uwsgiapp.supervisor.check import Seen, refusals


def _st(mode: int, nlink: int = 1) -> os.stat_result:
    return os.stat_result((mode, 1, 1, nlink, 0, 0, 0, 0, 0, 0))


LINK, FILE, DIR = _st(stat.S_IFLNK | 0o777), _st(stat.S_IFREG | 0o644), _st(stat.S_IFDIR | 0o755)
SOCK, FIFO, NULL = _st(stat.S_IFSOCK | 0o660), _st(stat.S_IFIFO | 0o644), _st(stat.S_IFCHR | 0o666)


@pytest.mark.parametrize("option", ["--error-log-file", "--access-log-file"])
@pytest.mark.parametrize(
    ("st", "root", "why"),
    [
        (LINK, True, "/l/x.log: is a symbolic link; refusing to use it"),
        (LINK, False, "/l/x.log: is a symbolic link; refusing to use it"),
        (DIR, True, "/l/x.log: not a regular file; refusing to use it"),
        (FIFO, True, "/l/x.log: not a regular file; refusing to use it"),
        (SOCK, True, "/l/x.log: not a regular file; refusing to use it"),
        (
            _st(stat.S_IFREG | 0o600, nlink=2),
            True,
            "/l/x.log: has 2 hard links; refusing to use it",
        ),
        (_st(stat.S_IFREG | 0o600, nlink=2), False, None),  # not root: its own files
        (FILE, True, None),
        (NULL, True, None),  # /dev/null: only root makes device nodes
        (None, True, None),  # missing: start-up creates it
    ],
)
def test_a_log_is_refused_as_start_up_would_refuse_it(
    option: str, st: os.stat_result | None, root: bool, why: str | None
) -> None:
    said = refusals([Seen(option, "/l/x.log", st)], root)
    assert said == ([] if why is None else [f"{option}: {why}"])


@pytest.mark.parametrize("option", ["--socket", "--stats"])
def test_a_socket_path_must_be_missing_or_a_socket(option: str) -> None:
    for st in (FILE, LINK, DIR, FIFO):
        assert refusals([Seen(option, "/r/a.sock", st)], True) == [
            f"{option}: /r/a.sock: exists and is not a socket; not replacing it"
        ]
    assert refusals([Seen(option, "/r/a.sock", SOCK), Seen(option, "/r/b.sock")], True) == []


def test_a_pidfile_is_renamed_over_anything_but_a_directory() -> None:
    # A link is replaced, never followed (as the start does: write_pidfile).
    for st in (LINK, FILE, FIFO, None):
        assert refusals([Seen("--pidfile", "/r/app.pid", st)], True) == []
    assert refusals([Seen("--pidfile", "/r/app.pid", DIR)], True) == [
        "--pidfile: /r/app.pid: is a directory, which the pidfile written beside it cannot replace"
    ]


def test_a_refused_walk_is_said_with_its_option_and_every_path_is_said() -> None:
    on_the_way = UnsafeFileError("/a/etc/x.log: 'etc' on the way is a symbolic link; refusing")
    missing = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "/a/gone/x.sock")
    seen = [
        Seen("--error-log-file", "/a/etc/x.log", error=on_the_way),
        Seen("--access-log-file", "/a/ok.log", FILE),
        Seen("--socket", "/a/gone/x.sock", error=missing),
        Seen("--pidfile", "/a/etc/p.pid", error=on_the_way),
    ]
    assert refusals(seen, True) == [
        "--error-log-file: /a/etc/x.log: 'etc' on the way is a symbolic link; refusing",
        "--socket: /a/gone/x.sock: No such file or directory",
        "--pidfile: /a/etc/x.log: 'etc' on the way is a symbolic link; refusing",
    ]


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ("supervisor.arbiter", "\ndef broken(:\n"),
        ("server.holders", "\ndef broken(:\n"),
        ("stats.health", "\ndef broken(:\n"),
        ("stats.top", "\nimport no_such_dependency_here\n"),
        # An ImportError that names the module itself (a circular import: review).
        ("stats.health", "\nfrom uwsgiapp.stats.health import no_such_name_here\n"),
    ],
)
def test_check_config_refuses_an_install_whose_server_code_does_not_import(
    tmp_path: pathlib.Path, broken: str, error: str
) -> None:
    """A release of uwsgiapp with a syntax error in its master (or a dependency missing)
    passed the deploy gate: "the options are valid and app:app loads", exit 0. The modules
    that refuse their own import on purpose (uwsgiapp.web.views, Flask's name) do not count:
    they failed every check."""

    copy = tmp_path / "site"
    shutil.copytree(pathlib.Path(uwsgiapp.__file__).parent, copy / "uwsgiapp",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))  # fmt: skip
    # the master's own; one imported on a bind conflict only; the health check's
    module = copy / "uwsgiapp" / (broken.replace(".", "/") + ".py")
    module.write_text(module.read_text() + error)
    (tmp_path / "ok.py").write_text("def app(environ, start_response):\n    return []\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(copy), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "uwsgiapp", "serve", "ok:app", "--socket", "a.sock",
         "--check-config"],
        cwd=tmp_path, env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode == ServeExit.INTERNAL, (done.stdout, err)
    kind = "SyntaxError" if "def" in error else "ModuleNotFoundError"
    kind = "ImportError" if "from uwsgiapp" in error else kind
    said = f"--check-config: the server cannot be imported: uwsgiapp.{broken}: {kind}"
    assert said in err, err
