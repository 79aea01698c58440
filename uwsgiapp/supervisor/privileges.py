"""``--uid/--gid``: resolve the names before binding, drop after it (master and workers).

The master drops too: it only forks, signals and reaps, none of which needs root once the
sockets are bound. What it loses is the right to remove files in directories the new user cannot
write; :func:`removable_by` says in advance which files those are, so ``serve`` can warn at
start-up instead of failing silently at exit.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from uwsgiapp.server import safefiles

__all__ = [
    "Ids",
    "PrivilegeError",
    "can_create_after",
    "can_create_in",
    "drop",
    "drop_warnings",
    "group_id",
    "hand_sockets",
    "may_give",
    "missing_capabilities",
    "removable_by",
    "resolve",
    "resolve_owner",
    "stays_removable",
    "user_id",
]


class PrivilegeError(Exception):
    """``--uid``/``--gid`` cannot be honoured; the message names the option."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ids:
    """Who to become. ``-1`` keeps the current id; ``user`` is set when ``--uid`` was given."""

    uid: int = -1
    gid: int = -1
    user: str = ""

    @property
    def wanted(self) -> bool:
        """Any change asked for."""
        return self.uid >= 0 or self.gid >= 0


def resolve(uid: str, gid: str) -> Ids:
    """Resolve ``--uid``/``--gid`` (names or numbers); the gid defaults to the user's group."""
    if not uid and not gid:
        return Ids()
    if os.geteuid() != 0:
        _only_own_ids(uid, gid)
    new_uid = new_gid = -1
    user = ""
    if uid:
        try:
            entry = pwd.getpwuid(int(uid)) if uid.isdigit() else pwd.getpwnam(uid)
        except (KeyError, ValueError):
            if not uid.isdigit():
                raise PrivilegeError(f"--uid: no such user {uid!r}") from None
            new_uid = int(uid)  # a bare number needs no passwd entry (containers)
        else:
            new_uid, new_gid, user = entry.pw_uid, entry.pw_gid, entry.pw_name
    if gid:
        try:
            new_gid = group_id(gid)
        except KeyError:
            raise PrivilegeError(f"--gid: no such group {gid!r}") from None
    if not gid and new_uid == os.geteuid() != 0:
        # Already that user (OpenShift's uid, docker run --user 10001:0): its group stays, not
        # the passwd entry's, which only root could change to.
        return Ids(uid=new_uid, gid=os.getegid(), user=user)
    if new_uid >= 0 and new_gid < 0:
        # Without a passwd entry there is no group to default to: staying in root's is wrong.
        raise PrivilegeError(f"--uid: {uid} has no passwd entry; give --gid too")
    return Ids(uid=new_uid, gid=new_gid, user=user)


def _only_own_ids(uid: str, gid: str) -> None:
    """Not root: ``--uid``/``--gid`` may name this process's own ids only. Said before a
    passwd lookup: "no such user 'app'" or "give --gid too" sent the user the wrong way
    (OpenShift's arbitrary uid, a non-root container's)."""
    for option, value, own, lookup in (
        ("--uid", uid, os.geteuid(), user_id),
        ("--gid", gid, os.getegid(), group_id),
    ):
        try:
            wanted = lookup(value) if value else own
        except KeyError:
            wanted = -1
        if wanted != own:
            raise PrivilegeError(
                f"{option} {value}: changing {'user' if option == '--uid' else 'group'} needs "
                f"root, and this process runs as uid {os.geteuid()}, gid {os.getegid()}: leave "
                f"{option} out where the platform sets the user (a non-root container, "
                "OpenShift), or start as root"
            )


def user_id(name: str) -> int:
    """A user's id from its name or number (KeyError: no such user)."""
    return int(name) if name.isdigit() else pwd.getpwnam(name).pw_uid


def group_id(name: str) -> int:
    """A group's id from its name or number (KeyError: no such group)."""
    return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid


def resolve_owner(spec: str) -> Ids:
    """``--chown-socket USER[:GROUP]`` (uWSGI's): who the unix socket files are given to. A
    group left out stays as bound (uWSGI's rule); ``:GROUP`` changes the group alone."""
    user, _, group = spec.partition(":")
    uid = gid = -1
    try:
        if user:
            uid = user_id(user)
        if group:
            gid = group_id(group)
    except KeyError:
        missing = f"no such group {group!r}" if uid >= 0 or not user else f"no such user {user!r}"
        raise PrivilegeError(f"--chown-socket: {missing}") from None
    if uid < 0 and gid < 0:
        raise PrivilegeError(f"--chown-socket: {spec!r} names no user or group (USER[:GROUP])")
    return Ids(uid=uid, gid=gid)


def may_give(owner: Ids) -> None:
    """Raise :class:`PrivilegeError` if this process cannot give a file to ``owner``
    (``--chown-socket``, asked by ``--check-config``): not root, only to itself and to a group
    it is in."""
    if os.geteuid() == 0:
        return
    if owner.uid not in (-1, os.geteuid()):
        raise PrivilegeError("--chown-socket: giving a file to another user needs root")
    if owner.gid not in (-1, os.getegid(), *os.getgroups()):
        raise PrivilegeError(f"--chown-socket: this user is not in group {owner.gid}")


def hand_sockets(owner: Ids, sockets: list[tuple[str, tuple[int, int] | None]]) -> None:
    """Give our unix ``sockets`` (path, inode) to ``owner`` (``--chown-socket``), without
    following links; a refusal raises :class:`PrivilegeError` naming the option and the file."""
    for path, inode in sockets:
        try:
            safefiles.chown_socket(path, inode, owner.uid, owner.gid)
        except OSError as exc:
            why = f"{path}: {exc.strerror}" if exc.strerror else str(exc)
            raise PrivilegeError(f"--chown-socket: {why}") from None


def can_create_in(dir_mode: int, dir_uid: int, dir_gid: int, uid: int, gids: set[int]) -> bool:
    """Can ``uid`` (in groups ``gids``) make a new file in that directory?

    Needs write and search permission on it: the owner bits, else the group bits, else the
    other bits (the first class that matches decides, as in the kernel). Root can always.
    """
    if uid == 0:
        return True
    if uid == dir_uid:
        bits = (dir_mode >> 6) & 0o7
    elif dir_gid in gids:
        bits = (dir_mode >> 3) & 0o7
    else:
        bits = dir_mode & 0o7
    return bits & 0o3 == 0o3  # write + search


def removable_by(
    dir_mode: int, dir_uid: int, dir_gid: int, file_uid: int, uid: int, gids: set[int]
) -> bool:
    """Can ``uid`` (in groups ``gids``) unlink a file owned by ``file_uid`` from that directory?

    What :func:`can_create_in` needs and, in a sticky directory such as /tmp, to own the file
    or the directory. Root can always.
    """
    if not can_create_in(dir_mode, dir_uid, dir_gid, uid, gids):
        return False
    return uid == 0 or not (dir_mode & stat.S_ISVTX) or uid in (file_uid, dir_uid)


def _after(ids: Ids) -> tuple[int, set[int]]:
    """The uid and the groups the process has once it became ``ids``."""
    uid = ids.uid if ids.uid >= 0 else os.geteuid()
    gid = ids.gid if ids.gid >= 0 else os.getegid()
    gids = {gid}
    if ids.user:
        gids |= set(os.getgrouplist(ids.user, gid))
    return uid, gids


def stays_removable(path: str, ids: Ids, *, handed_over: bool = False) -> bool:
    """Will the process still be able to remove ``path`` after dropping to ``ids``?

    ``handed_over``: :func:`drop` gives the file to the new user first (a socket), so in a
    sticky directory it counts as theirs; asked before the drop, the file is still root's.
    """
    uid, gids = _after(ids)
    try:
        st = os.lstat(path)
        parent = os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return True  # nothing there to remove
    owner = uid if handed_over else st.st_uid
    return removable_by(parent.st_mode, parent.st_uid, parent.st_gid, owner, uid, gids)


def can_create_after(path: str, ids: Ids) -> bool:
    """Can the process make ``path`` anew (after logrotate moved it) once it became ``ids``?"""
    uid, gids = _after(ids)
    try:
        parent = os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return True  # no directory to judge; opening the file said what was wrong
    return can_create_in(parent.st_mode, parent.st_uid, parent.st_gid, uid, gids)


def drop(ids: Ids, sockets: list[tuple[str, tuple[int, int] | None]], files: list[str]) -> None:
    """Become ``ids``; first hand our unix ``sockets`` (path, inode; none when
    ``--chown-socket`` gave them theirs) and the log ``files`` over to the new owner, without
    following links (see :mod:`uwsgiapp.server.safefiles`).

    Supplementary groups become the user's own (``initgroups``), so a user that is in nginx's
    group keeps it. Not root and already the wanted ids: nothing to do.
    """
    if not ids.wanted:
        return
    if os.geteuid() != 0:
        if ids.uid in (-1, os.geteuid()) and ids.gid in (-1, os.getegid()):
            return
        raise PrivilegeError("--uid/--gid: changing user or group needs root")
    own = (set(os.getresuid()), {*os.getresgid(), *os.getgroups()})
    missing = missing_capabilities(_capabilities("CapEff"), ids, bool(sockets or files), own)
    if missing:
        raise PrivilegeError(
            f"--uid/--gid: this root process lacks {', '.join(missing)} (a container run with "
            "--cap-drop ALL, or Kubernetes' capabilities: drop: [ALL]): start it as the user "
            "instead (docker run --user UID:GID, the image's USER, Kubernetes' runAsUser) "
            "without --uid/--gid, or add "
            + " ".join(f"--cap-add {name.removeprefix('CAP_')}" for name in missing)
        )
    for path, inode in sockets:
        safefiles.chown_socket(path, inode, ids.uid, ids.gid)
    for path in files:
        safefiles.chown_file(path, ids.uid, ids.gid)
    if ids.gid >= 0:
        if ids.user:
            os.initgroups(ids.user, ids.gid)
        else:
            os.setgroups([ids.gid])
        os.setgid(ids.gid)
    if ids.uid >= 0:
        os.setuid(ids.uid)
    if ids.uid > 0 and (kept := _capabilities("CapPrm", "CapEff")):
        # The kernel clears them at setuid unless a securebit says not to (no_setuid_fixup,
        # systemd's SecureBits=): the app would run as the user with root's powers.
        raise PrivilegeError(
            f"--uid: still holding capabilities ({kept:#x}) as uid {ids.uid}: a securebits "
            "setting (systemd's SecureBits=no-setuid-fixup) kept them; the app is not started "
            "with them: remove that setting"
        )


#: What a root master needs to become --uid/--gid (capabilities(7) bit numbers): CHOWN to hand
#: its unix sockets and log files over, SETGID for the groups, SETUID for the user.
_CAPABILITIES = {"CAP_CHOWN": 0, "CAP_SETGID": 6, "CAP_SETUID": 7}


def _capabilities(*sets: str) -> int | None:
    """The union of this process's capability ``sets`` (``CapEff``: effective, ``CapPrm``:
    permitted) as /proc says them, read once; None where it says none of them."""
    found: int | None = None
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in sets:
                    found = (found or 0) | int(value, 16)
    except (OSError, ValueError):
        return None
    return found


def missing_capabilities(
    effective: int | None,
    ids: Ids,
    hands_over: bool,
    own: tuple[set[int], set[int]] = ({0}, {0}),
) -> list[str]:
    """The capabilities a root process with the ``effective`` set lacks to become ``ids``
    (``hands_over``: it gives files to the user first; ``own``: the uids and the gids it has
    already, which it may take without a capability). Root without them (a container's
    ``--cap-drop ALL``) failed with a bare "Operation not permitted"; None: unknown, none said."""
    if effective is None:
        return []
    uids, gids = own
    new_uid = ids.uid >= 0 and ids.uid not in uids
    new_owner = new_uid or (ids.gid >= 0 and ids.gid not in gids)
    # setgroups (initgroups) needs CAP_SETGID whatever the group.
    needed = {
        "CAP_CHOWN": hands_over and new_owner,
        "CAP_SETGID": ids.gid >= 0,
        "CAP_SETUID": new_uid,
    }
    return [
        name for name, bit in _CAPABILITIES.items() if needed[name] and not effective >> bit & 1
    ]


def drop_warnings(
    ids: Ids, sockets: list[str], pidfile: str, logs: list[str], given: Iterable[str] = ()
) -> list[str]:
    """What start-up says about files the dropped processes cannot handle: ``sockets`` (handed
    to the user by the drop; ``given``: already given to ``--chown-socket``'s owner) that the
    master will not be able to remove at exit, a ``pidfile``
    (kept root's) that the user could replace, ``logs`` whose directory USR1 cannot make a new
    file in. Asked before the drop, while every directory can still be looked at. (A pidfile
    the master cannot remove stays, stale: the next start replaces it.)"""
    removed = [*((path, True) for path in sockets), *((path, False) for path in given)]
    said = [
        f"{path}: after --uid/--gid the master "
        + (
            "does not own this file in a sticky directory (such as /tmp)"
            if can_create_after(path, ids)
            else "cannot write its directory"
        )
        + ", so it cannot remove it on TERM or at exit (a stale one is replaced at the next "
        "start); put it in a directory the user owns (e.g. /run/app)"
        for path, handed_over in removed
        if not stays_removable(path, ids, handed_over=handed_over)
    ]
    if pidfile and os.path.lexists(pidfile) and stays_removable(pidfile, ids):
        said.append(
            f"{pidfile}: after --uid/--gid the app's user may replace this pidfile (it can "
            f"write its directory), and a root 'kill $(cat {pidfile})', such as logrotate's, "
            "would then signal the process it names; put it in a directory only root can "
            "write (e.g. /run)"
        )
    return said + [
        f"{path}: after --uid/--gid no new file can be made in its directory, so after "
        "logrotate moves it, USR1 keeps writing the old one; have logrotate make the new file "
        "('create 0640 USER GROUP') or use 'copytruncate'"
        for path in logs
        if not can_create_after(path, ids)
    ]
