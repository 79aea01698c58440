"""--touch-reload: what counts as a change of a watched file (uWSGI's touch-reload)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from uwsgiapp.supervisor.touch import INTERVAL, TouchWatch, stamp


def test_nothing_changed_is_nothing(tmp_path: Path) -> None:
    f = tmp_path / "reload"
    f.write_text("")
    watch = TouchWatch([str(f)])
    assert watch.changed() == []
    assert watch.changed() == []


def test_a_touch_a_replacement_a_removal_and_a_creation_each_change_once(tmp_path: Path) -> None:
    f = tmp_path / "reload"
    f.write_text("")
    watch = TouchWatch([str(f)])
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # one ns later: a touch in the same second
    assert watch.changed() == [str(f)]
    assert watch.changed() == []
    new = tmp_path / "new"
    new.write_text("")
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # the same mtime, another file
    new.replace(f)
    assert watch.changed() == [str(f)]
    f.unlink()
    assert watch.changed() == [str(f)]
    assert watch.changed() == []
    f.write_text("")
    assert watch.changed() == [str(f)]


def test_an_older_mtime_is_a_change_too(tmp_path: Path) -> None:
    # A deploy that copies with its times kept (rsync -t, a tar) may set an earlier one.
    f = tmp_path / "reload"
    f.write_text("")
    watch = TouchWatch([str(f)])
    os.utime(f, (1_000_000, 1_000_000))
    assert watch.changed() == [str(f)]


def test_a_moved_symlink_is_a_change(tmp_path: Path) -> None:
    # A deploy's "current -> releases/N" moved to another release: the watched path is the same.
    for n in ("1", "2"):
        (tmp_path / n).mkdir()
        (tmp_path / n / "wsgi.py").write_text("")
    current = tmp_path / "current"
    current.symlink_to("1")
    watch = TouchWatch([str(current / "wsgi.py")])
    tmp_link = tmp_path / "current.new"
    tmp_link.symlink_to("2")
    tmp_link.replace(current)
    assert watch.changed() == [str(current / "wsgi.py")]


def test_a_missing_file_is_said_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "later"
    with caplog.at_level(logging.WARNING, "uwsgiapp.error"):
        watch = TouchWatch([str(missing)])
    assert f"--touch-reload: {missing}: No such file or directory: its appearance reloads" in (
        caplog.text
    )
    assert stamp(str(missing)) is None
    assert watch.changed() == []


def test_due_looks_once_an_interval_and_logs_each_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    states = {"a": (1, 1, 1), "b": None}
    watch = TouchWatch(["a", "b"], look=states.get)
    assert watch.due(100.0) == []
    states["a"], states["b"] = (1, 1, 2), (1, 2, 1)
    assert watch.due(100.0 + INTERVAL / 2) == []  # too soon: not looked at
    with caplog.at_level(logging.INFO, "uwsgiapp.error"):
        assert watch.due(100.0 + INTERVAL) == ["a", "b"]
    assert "--touch-reload: a changed: graceful reload" in caplog.text
    assert "--touch-reload: b changed: graceful reload" in caplog.text


def test_a_hups_reload_takes_the_files_as_they_are(tmp_path: Path) -> None:
    """A deploy flips a watched ``current`` symlink and sends HUP: the HUP's reload loads the
    new release, and the next look saw the flip and reloaded once more."""
    states = {"current": (1, 1, 1)}
    watch = TouchWatch(["current"], look=states.get)
    states["current"] = (1, 1, 2)
    assert watch.due(100.0, rebase=True) == []  # the HUP's tick
    assert watch.due(100.0 + INTERVAL) == []
    states["current"] = (1, 1, 3)
    assert watch.due(100.0 + 2 * INTERVAL) == ["current"]


def test_a_file_that_cannot_be_looked_at_is_said_to_never_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Out of the --uid user's reach (EACCES; here a link loop, as tests run as root): "its
    # appearance reloads" promised a reload that no touch could ever bring.
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with caplog.at_level(logging.WARNING, "uwsgiapp.error"):
        TouchWatch([str(loop)])
    assert (
        f"--touch-reload: {loop}: Too many levels of symbolic links: it cannot be looked at as "
        "the user the master runs as: it will not reload"
    ) in caplog.text
    assert "appearance" not in caplog.text
