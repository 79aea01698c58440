"""A real ``uwsgiapp serve --check-config`` started as root: the paths start-up would refuse
(exit 3) are refused by the deploy gate too, with the same reason, and it touches none of them
(it creates, writes, chowns and removes nothing). The app user is a throwaway uid (no passwd
entry) that owns the directory where it could plant links, as in test_root_files.py."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli.cli_testkit import run_cli

from uwsgiapp.exitcodes import ServeExit


def _throwaway_uid() -> int:
    for uid in range(61900, 62000):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    pytest.skip("no free uid in 61900-61999")


@pytest.fixture
def base() -> Iterator[Path]:
    """Root's directory (0755) holding the app, the app user's ``app/`` and root's ``etc/``."""
    if os.geteuid() != 0:
        pytest.skip("root following a link the app user planted: needs root")
    path = Path(os.path.realpath(tempfile.mkdtemp(prefix="uwa-cc-")))
    path.chmod(0o755)
    (path / "ok.py").write_text("def app(environ, start_response):\n    return []\n")
    (path / "etc").mkdir(mode=0o755)  # root's: where a planted link leads
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _plant(uid: int, link: Path, target: Path | str) -> None:
    link.symlink_to(target)
    os.chown(link, uid, uid, follow_symlinks=False)


def _file(uid: int, path: Path) -> None:
    path.write_text("the app's\n")
    os.chown(path, uid, uid)


#: (what the app user planted in app/, the options, the path named and the reason said)
CASES: dict[str, tuple[Callable[[int, Path], None], list[str], str, str]] = {
    "log-linked-to-cron": (
        lambda uid, b: _plant(uid, b / "app" / "evil.log", b / "etc" / "cron.d-evil"),
        ["--error-log-file", "app/evil.log"],
        "--error-log-file: {base}/app/evil.log",
        "is a symbolic link; refusing to use it",
    ),
    "access-log-in-a-linked-dir": (
        lambda uid, b: _plant(uid, b / "app" / "etcdir", b / "etc"),
        ["--access-log", "uwsgi", "--access-log-file", "app/etcdir/access.log"],
        "--access-log-file: {base}/app/etcdir/access.log",
        "'etcdir' on the way is a symbolic link that someone other than root could have made",
    ),
    "pidfile-in-a-linked-dir": (
        lambda uid, b: _plant(uid, b / "app" / "etcdir", b / "etc"),
        ["--pidfile", "app/etcdir/app.pid"],
        "--pidfile: {base}/app/etcdir/app.pid",
        "'etcdir' on the way is a symbolic link",
    ),
    "socket-in-a-linked-dir": (
        lambda uid, b: _plant(uid, b / "app" / "etcdir", b / "etc"),
        ["--socket", "app/etcdir/app.sock"],
        "--socket: {base}/app/etcdir/app.sock",
        "'etcdir' on the way is a symbolic link",
    ),
    "socket-path-not-a-socket": (
        lambda uid, b: _file(uid, b / "app" / "app.sock"),
        ["--socket", "app/app.sock"],
        "--socket: {base}/app/app.sock",
        "exists and is not a socket; not replacing it",
    ),
    "chdir-through-a-link": (
        lambda uid, b: _plant(uid, b / "app" / "etcdir", b / "etc"),
        ["--chdir", "app/etcdir", "--error-log-file", "error.log", "--pidfile", "app.pid"],
        "--error-log-file: {base}/app/etcdir/error.log",
        "'etcdir' on the way is a symbolic link",
    ),
}


def _tree(path: Path) -> list[tuple[str, int, int, bool]]:
    """Every name under ``path`` with its owner and whether it is a link (not followed)."""
    found = []
    for entry in sorted(path.rglob("*")):
        st = entry.lstat()
        found.append((str(entry.relative_to(path)), st.st_uid, st.st_size, entry.is_symlink()))
    return found


@pytest.mark.parametrize("case", list(CASES))
def test_check_config_refuses_what_start_up_refuses_and_touches_nothing(
    base: Path, case: str
) -> None:
    plant, options, named, why = CASES[case]
    uid = _throwaway_uid()
    app = base / "app"
    app.mkdir(mode=0o755)
    os.chown(app, uid, uid)
    plant(uid, base)
    args = ["serve", "ok:app", "--check-config", "--uid", str(uid), "--gid", str(uid)]
    args += ["--chdir", str(base), "--pythonpath", str(base), *options]
    before = _tree(base)
    refused = run_cli(*args, cwd=base)
    assert refused.returncode == ServeExit.START_FAILED, refused.stderr
    said = refused.stderr.decode()
    assert f"--check-config: {named.format(base=base)}: {why}" in said, said
    assert _tree(base) == before and not any((base / "etc").iterdir())
    # The app user's own directory instead of the link, or nothing in the way: it passes.
    for thing in app.iterdir():
        thing.unlink()
    if any("etcdir" in option for option in options):
        (app / "etcdir").mkdir(mode=0o755)
        os.chown(app / "etcdir", uid, uid)
    before = _tree(base)
    passed = run_cli(*args, cwd=base)
    assert passed.returncode == ServeExit.OK, passed.stderr
    assert b"the options are valid and ok:app loads" in passed.stdout
    assert _tree(base) == before  # no log, pidfile or socket made, nothing handed over


def test_paths_on_a_read_only_file_system_are_refused(base: Path) -> None:
    # A container's read-only root (or a ro bind mount): --check-config said 0, the start
    # then stopped with "Read-only file system" (exit 3). A mount namespace of its own holds
    # the read-only bind mount: nothing outside sees it, and it goes with the process.
    import subprocess
    import sys

    ro = base / "ro"
    ro.mkdir()
    (ro / "app.log").write_text("")  # bind-mounted writable in the read-only directory
    script = (
        f"mount --bind {ro} {ro} && mount -o remount,ro,bind {ro} && "
        f"mount --bind {ro}/app.log {ro}/app.log && "
        f"mount -o remount,rw,bind {ro}/app.log {ro}/app.log && "
        f"exec {sys.executable} -m uwsgiapp serve ok:app --chdir {base} --check-config "
        f"--pidfile {ro}/app.pid --socket {ro}/app.sock --access-log-file {base}/fine.log "
        f"--error-log-file {ro}/app.log"
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == ServeExit.START_FAILED, (done.returncode, done.stderr)
    assert done.stderr.splitlines()[-2:] == [
        f"uwsgiapp serve: error: --check-config: --socket: {ro}/app.sock: on a read-only file "
        "system, where start-up must write it",
        f"--check-config: --pidfile: {ro}/app.pid: on a read-only file system, where start-up "
        "must write it",
    ], done.stderr
    assert "app.log" not in done.stderr  # written in place, on its own writable mount (review)
