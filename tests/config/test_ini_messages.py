"""--ini keys uwsgiapp does not apply, or applies its own way: what it says about each."""

from __future__ import annotations

from pathlib import Path

import pytest

from uwsgiapp.config import ConfigError
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
        ("protocol = http", "'protocol = http' cannot be honoured: uwsgiapp speaks only nginx's"),
        ("ignore-write-errors = false", "one info line in uwsgiapp's log"),
        ("chown-socket = www-data:www-data", "nginx may get 'Permission denied'"),
        ("chown-socket = www-data", "Set uid/gid (gid: a group nginx's user is in"),
        ("chown-socket = www-data", "or chmod-socket = 666"),
        ("ini = :base", "the keys of the file or section named here (ini = :other for [other]"),
        ("ini = :base", "are NOT applied; copy them into this section"),
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
