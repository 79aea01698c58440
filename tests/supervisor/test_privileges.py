"""--uid/--gid: name resolution and the "can the dropped master remove it" rule, without root."""

from __future__ import annotations

import pwd
import stat

import pytest

from uwsgiapp.supervisor.privileges import Ids, PrivilegeError, removable_by, resolve

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
