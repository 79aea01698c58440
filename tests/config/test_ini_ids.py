"""An ini's uid/gid for a server not started as root: skipped with a warning, as uWSGI skips
them (an image's ``uid = app`` on OpenShift stopped the start: "changing user or group needs
root"); our own options asking for another user are still refused at the drop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from uwsgiapp.cli import build_parser
from uwsgiapp.config import iniids, make_config, serve
from uwsgiapp.config.configload import Resolved
from uwsgiapp.config.iniids import skip_ini_ids
from uwsgiapp.config.serve import resolve_serve_config

INI = "ini uwsgi.ini [uwsgi] uid (line 2)"


def test_an_inis_ids_are_skipped_when_not_root() -> None:
    resolved = Resolved(
        config=make_config(uid="app", gid="app"), sources={"uid": INI, "gid": "env UWSGIAPP_GID"}
    )
    kept, said = skip_ini_ids(resolved, 1000740000)
    assert (kept.config.uid, kept.config.gid) == ("", "app")  # the env's is ours: refused later
    assert said == [
        f"{INI}: uid = app is not applied: this server was not started as root and runs as uid "
        "1000740000 (uWSGI skips it too; to run as that user, start the server as it: the "
        "container's user, systemd's User=)"
    ]
    assert skip_ini_ids(resolved, 0) == (resolved, [])  # root: dropped to, as before
    plain = Resolved(config=make_config(), sources={"uid": "default", "gid": "default"})
    assert skip_ini_ids(plain, 1000) == (plain, [])


def test_an_inis_own_user_is_skipped_without_a_word() -> None:
    # The image's USER app with `uid = app` in its ini: nothing to change, nothing to say.
    resolved = Resolved(
        config=make_config(uid="1000740000", gid=str(os.getegid())),
        sources={"uid": INI, "gid": INI.replace("uid", "gid")},
    )
    kept, said = skip_ini_ids(resolved, 1000740000)
    assert said == [] and (kept.config.uid, kept.config.gid) == ("", "")


def test_a_hup_in_the_dropped_master_judges_by_the_user_it_started_as(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Started as root, dropped to the ini's uid: each HUP's re-read skipped the ini's ids (the
    # master no longer root) and warned "--uid, --gid changed since the start".
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nuid = nobody\ngid = nogroup\n")
    argv = ["serve", "app:app", "--ini", str(ini)]
    monkeypatch.setattr(iniids, "STARTED_EUID", 0)
    monkeypatch.setattr(serve, "STARTED_EUID", 0)
    monkeypatch.setattr(os, "geteuid", lambda: 65534)  # the dropped master, at its HUP
    resolved = resolve_serve_config(build_parser().parse_args(argv), {})
    assert (resolved.config.uid, resolved.config.gid) == ("nobody", "nogroup")
    monkeypatch.setattr(serve, "STARTED_EUID", 65534)  # started as that user: skipped
    resolved = resolve_serve_config(build_parser().parse_args(argv), {})
    assert (resolved.config.uid, resolved.config.gid) == ("", "")
