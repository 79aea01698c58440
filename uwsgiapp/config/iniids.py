"""An ini's ``uid``/``gid`` for a server not started as root.

uWSGI applies them only as root and skips them otherwise: an image whose ini says
``uid = app`` runs on as whatever user the platform gives it (a non-root container,
OpenShift's arbitrary uid). Here the drop was refused ("changing user or group needs root",
exit 3), and the ini that worked under uWSGI stopped the start. They are skipped too, with a
warning; given as our own options (command line, environment, ``--config``) the drop is
still refused: that is a request for a user this process cannot become.
"""

from __future__ import annotations

import dataclasses
import os

from uwsgiapp.config.configload import Resolved
from uwsgiapp.supervisor.privileges import group_id, user_id

__all__ = ["STARTED_EUID", "skip_ini_ids"]

#: The user this process started as, before a ``--uid`` drop: a HUP's re-read of the ini, in
#: the dropped master, judges by it too (else every HUP found uid and gid "changed").
STARTED_EUID = os.geteuid()


def skip_ini_ids(resolved: Resolved, euid: int) -> tuple[Resolved, list[str]]:
    """``resolved`` without the ini's ``uid``/``gid`` when not root (``euid``), and the
    warning for each skipped; as given otherwise."""
    if euid == 0:
        return resolved, []
    config = resolved.config
    skipped = [
        name
        for name in ("uid", "gid")
        if getattr(config, name) and resolved.sources[name].startswith("ini ")
    ]
    said = [
        f"{resolved.sources[name]}: {name} = {getattr(config, name)} is not applied: this "
        f"server was not started as root and runs as uid {euid} (uWSGI skips it too; to run "
        "as that user, start the server as it: the container's user, systemd's User=)"
        for name in skipped
        if not _already(name, getattr(config, name), euid)
    ]
    if not skipped:
        return resolved, []
    cleared = dataclasses.replace(
        config,
        uid="" if "uid" in skipped else config.uid,
        gid="" if "gid" in skipped else config.gid,
    )
    return dataclasses.replace(resolved, config=cleared), said


def _already(name: str, value: str, euid: int) -> bool:
    """Whether ``uid``/``gid`` ``value`` is what this process already runs as (the image's
    own user in its ini): skipped without a word."""
    try:
        return user_id(value) == euid if name == "uid" else group_id(value) == os.getegid()
    except KeyError:
        return False
