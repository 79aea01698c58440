"""--uid/--gid: name resolution and the "can the dropped master remove it" rule, without root."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from uwsgiapp.supervisor.privileges import (
    Ids,
    PrivilegeError,
    can_create_after,
    can_create_in,
    drop_warnings,
    missing_capabilities,
    removable_by,
    resolve,
    stays_removable,
)

APP, OTHER, ROOT = 1000, 2000, 0
DIR = stat.S_IFDIR


@pytest.mark.parametrize(
    ("mode", "dir_uid", "dir_gid", "file_uid", "gids", "expected"),
    [
        (0o755, APP, APP, APP, {APP}, True),  # the user's own directory (/run/app)
        (0o755, ROOT, ROOT, APP, {APP}, False),  # root's directory: owning the file is not enough
        (0o775, ROOT, 33, APP, {APP, 33}, True),  # group-writable, user in the group
        (0o775, ROOT, 33, APP, {APP}, False),  # ... user not in the group
        (0o757, ROOT, 33, APP, {APP, 33}, False),  # the group class decides, not "other"
        (0o1777, ROOT, ROOT, APP, {APP}, True),  # /tmp: sticky, but the socket was chowned to us
        (0o1777, ROOT, ROOT, OTHER, {APP}, False),  # /tmp, somebody else's file
        (0o733, ROOT, ROOT, APP, {APP}, True),  # write + search is all it takes
        (0o752, ROOT, ROOT, APP, {APP}, False),  # write without search
        (0o500, APP, APP, APP, {APP}, False),  # own directory made read-only
    ],
)
def test_removable_by(
    mode: int, dir_uid: int, dir_gid: int, file_uid: int, gids: set[int], expected: bool
) -> None:
    assert removable_by(DIR | mode, dir_uid, dir_gid, file_uid, APP, gids) is expected


def test_root_can_remove_anything() -> None:
    assert removable_by(DIR | 0o500, APP, APP, OTHER, ROOT, {ROOT})


@pytest.mark.parametrize(
    ("mode", "dir_uid", "dir_gid", "gids", "expected"),
    [
        (0o1777, ROOT, ROOT, {APP}, True),  # /tmp: the sticky bit does not stop a new file
        (0o755, ROOT, ROOT, {APP}, False),  # /var/log as root made it
        (0o775, ROOT, 4, {APP, 4}, True),  # Debian's /var/log: group adm, user in it
        (0o300, APP, APP, {APP}, True),  # write + search, nothing else
        (0o600, APP, APP, {APP}, False),  # write without search
    ],
)
def test_can_create_in(
    mode: int, dir_uid: int, dir_gid: int, gids: set[int], expected: bool
) -> None:
    assert can_create_in(DIR | mode, dir_uid, dir_gid, APP, gids) is expected


def test_a_sticky_directory_warns_of_nothing(tmp_path: Path) -> None:
    # Asked before the drop, a socket in /tmp still belongs to whoever runs us, but the drop
    # hands it to the new user, so the master can remove it; the pidfile stays ours, so it
    # cannot, and nor can the user replace it (stale at exit: the next start replaces it). A
    # log there can be made anew: the sticky bit only guards removal.
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    sock, pid, log = (sticky / name for name in ("app.sock", "app.pid", "error.log"))
    for path in (sock, pid, log):
        path.write_text("")
    stranger = next(n for n in range(40000, 50000) if not _has_user(n) and n != os.geteuid())
    ids = Ids(uid=stranger, gid=stranger)
    assert stays_removable(str(sock), ids, handed_over=True)
    assert not stays_removable(str(sock), ids)
    assert can_create_after(str(log), ids)
    assert drop_warnings(ids, [str(sock)], str(pid), [str(log)]) == []


def test_a_pidfile_the_apps_user_could_replace_is_said(tmp_path: Path) -> None:
    # In a directory the user may write, it can put another pid in the pidfile, and root's
    # `kill $(cat PIDFILE)` (logrotate's postrotate) then signals that process.
    stranger = next(n for n in range(40000, 50000) if not _has_user(n) and n != os.geteuid())
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, stranger, stranger)
    pid = theirs / "app.pid"
    pid.write_text("1\n")
    said = drop_warnings(Ids(uid=stranger, gid=stranger), [], str(pid), [])
    assert said == [
        f"{pid}: after --uid/--gid the app's user may replace this pidfile (it can write its "
        f"directory), and a root 'kill $(cat {pid})', such as logrotate's, would then signal "
        "the process it names; put it in a directory only root can write (e.g. /run)"
    ]


def test_a_directory_only_its_owner_writes_warns_of_all(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o755)
    sock, pid, log = (private / name for name in ("app.sock", "app.pid", "error.log"))
    for path in (sock, pid, log):
        path.write_text("")
    stranger = next(n for n in range(40000, 50000) if not _has_user(n) and n != os.geteuid())
    said = drop_warnings(Ids(uid=stranger, gid=stranger), [str(sock)], str(pid), [str(log)])
    # The pidfile: the user can neither remove nor replace it (it stays, stale, at exit).
    assert [line.split(":")[0] for line in said] == [str(sock), str(log)]
    assert "the master cannot write its directory, so it cannot remove it" in said[0]
    assert "no new file can be made" in said[1]


def test_resolve_names_numbers_and_defaults() -> None:
    assert resolve("", "") == Ids() and not Ids().wanted
    root = pwd.getpwuid(0)
    assert resolve(root.pw_name, "") == Ids(uid=0, gid=root.pw_gid, user=root.pw_name)
    assert resolve("0", "") == Ids(uid=0, gid=root.pw_gid, user=root.pw_name)
    assert resolve("", "0") == Ids(gid=0)
    assert resolve(root.pw_name, "12345") == Ids(uid=0, gid=12345, user=root.pw_name)


def test_unknown_numeric_uid_needs_a_gid() -> None:
    unused = next(n for n in range(40000, 50000) if not _has_user(n))
    with pytest.raises(PrivilegeError, match=r"--uid: .* give --gid"):
        resolve(str(unused), "")
    assert resolve(str(unused), "777") == Ids(uid=unused, gid=777)


def test_ones_own_uid_without_a_passwd_entry_needs_no_gid(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenShift's arbitrary uid (1000740000, group 0, no passwd entry): --uid of itself was
    # refused, "has no passwd entry; give --gid too", exit 3; uWSGI starts.
    unused = next(n for n in range(40000, 50000) if not _has_user(n))
    monkeypatch.setattr(os, "geteuid", lambda: unused)
    monkeypatch.setattr(os, "getegid", lambda: 0)
    assert resolve(str(unused), "") == Ids(uid=unused, gid=0)
    assert resolve(str(unused), "0") == Ids(uid=unused, gid=0)
    # Another user, or group, needs root: said so, not "give --gid too" (which, followed,
    # ended in "needs root" at the drop) nor "no such user" for a name.
    for uid, gid, option in (
        (str(unused + 1), "", "--uid"),
        ("app", "", "--uid"),
        ("", "5", "--gid"),
    ):
        with pytest.raises(
            PrivilegeError,
            match=rf"^{option} \S*: changing .* needs root, and this process runs as uid "
            rf"{unused}, gid 0: leave {option} out",
        ):
            resolve(uid, gid)


@pytest.mark.parametrize(
    ("uid", "gid", "message"),
    [("no-such-user-here", "", "--uid: no such user"), ("", "no-such-group", "--gid: no such")],
)
def test_resolve_names_the_bad_option(uid: str, gid: str, message: str) -> None:
    with pytest.raises(PrivilegeError, match=message):
        resolve(uid, gid)


def _has_user(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


@pytest.mark.parametrize(
    ("effective", "ids", "hands_over", "missing"),
    [
        (0x1FFFEFFFFFF, Ids(uid=APP, gid=APP), True, []),  # root's full set
        (0, Ids(uid=APP, gid=APP), True, ["CAP_CHOWN", "CAP_SETGID", "CAP_SETUID"]),  # ALL
        (0, Ids(uid=APP, gid=APP), False, ["CAP_SETGID", "CAP_SETUID"]),  # nothing to hand
        (0, Ids(gid=APP), False, ["CAP_SETGID"]),  # --gid alone
        (1 << 6 | 1 << 7, Ids(uid=APP, gid=APP), True, ["CAP_CHOWN"]),  # --cap-drop CHOWN
        (None, Ids(uid=APP, gid=APP), True, []),  # no /proc: nothing claimed
        # Ids it has already need no capability (setuid to its own uid; the chown keeps the
        # owner and gives a group of its own): --uid 0 --gid 0 without CAP_SETUID started.
        (1 << 6, Ids(uid=ROOT, gid=ROOT), True, []),
        (0, Ids(uid=ROOT), True, []),
        (1 << 6, Ids(uid=ROOT, gid=33), True, ["CAP_CHOWN"]),  # a group it is not in
    ],
)
def test_missing_capabilities(
    effective: int | None, ids: Ids, hands_over: bool, missing: list[str]
) -> None:
    assert missing_capabilities(effective, ids, hands_over, ({ROOT}, {ROOT})) == missing


def test_ones_own_user_by_name_keeps_the_processs_group(monkeypatch: pytest.MonkeyPatch) -> None:
    # docker run --user 65534:0 with --uid nobody: the passwd entry's group (65534) was taken,
    # and the drop then refused to change the group, "needs root".
    entry = pwd.getpwnam("nobody")
    monkeypatch.setattr(os, "geteuid", lambda: entry.pw_uid)
    monkeypatch.setattr(os, "getegid", lambda: 0)
    for uid in ("nobody", str(entry.pw_uid)):
        assert resolve(uid, "") == Ids(uid=entry.pw_uid, gid=0, user="nobody")
    with pytest.raises(PrivilegeError, match=f"--gid {entry.pw_gid}: changing group needs root"):
        resolve("nobody", str(entry.pw_gid))  # the entry's group, asked for: not this one's
