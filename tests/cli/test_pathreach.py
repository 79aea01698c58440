"""unreachable_entries / unreachable_hint: the sys.path entries a dropped-privilege process
cannot read, named when an import finds no module."""

from __future__ import annotations

import os
import stat
from typing import Any

from uwsgiapp.pathreach import unreachable_entries, unreachable_hint


def _stat(mode: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, 0, 0, 0, 0, 0, 0))


def _probes(refused: set[str], missing: set[str], unreadable: set[str]) -> dict[str, Any]:
    """Fake stat and access: a directory on the way refuses ``refused``, ``missing`` do not
    exist, ``unreadable`` exist but their own mode refuses; every other entry is a directory."""

    def stat_path(path: str) -> os.stat_result:
        if path in refused:
            raise PermissionError(13, "Permission denied", path)
        if path in missing:
            raise FileNotFoundError(2, "No such file or directory", path)
        return _stat(stat.S_IFDIR | 0o755)

    def access(path: str, mode: int) -> bool:
        assert mode == os.R_OK | os.X_OK  # a directory is searched too
        return path not in unreadable

    return {"stat_path": stat_path, "access": access}


def test_names_entries_behind_a_closed_directory_or_closed_themselves() -> None:
    paths = ["", "/srv/app", "/root/py/lib/python3.11", "/srv/private", "/usr/lib/py311.zip"]
    probes = _probes({"/root/py/lib/python3.11"}, {"/usr/lib/py311.zip"}, {"/srv/private"})
    assert unreachable_entries(paths, **probes) == [
        "/root/py/lib/python3.11",
        "/srv/private",
    ]


def test_an_entry_given_twice_is_named_once() -> None:
    probes = _probes({"/root/lib"}, set(), set())
    assert unreachable_entries(["/root/lib", "/root/lib"], **probes) == ["/root/lib"]


def test_the_hint_names_the_user_and_the_entries_or_says_nothing() -> None:
    probes = _probes({"/root/lib"}, set(), set())
    hint = unreachable_hint(["/srv/app", "/root/lib"], 999, **probes)
    assert hint.startswith("\n")
    assert "(uid 999) cannot read 1 sys.path entry: /root/lib;" in hint
    assert "readable by that user" in hint
    assert unreachable_hint(["/srv/app"], 999, **_probes(set(), set(), set())) == ""
