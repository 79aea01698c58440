"""The master's re-import for a HUP (:func:`uwsgiapp.supervisor.reload.reimport`), in-process."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from uwsgiapp.config import make_config
from uwsgiapp.supervisor import reload


def test_a_failure_before_the_import_calls_the_reload_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As a dropped user, sysconfig's lazily imported data module may be unreadable (a Python
    # under /root): that raised out of the master's loop and ended the server on a HUP.
    def unreadable() -> tuple[str, ...]:
        raise ModuleNotFoundError("No module named '_sysconfigdata__linux_x86_64-linux-gnu'")

    monkeypatch.setattr(reload, "library_dirs", unreadable)
    modules = dict(sys.modules)
    with caplog.at_level(logging.ERROR, logger="uwsgiapp.error"):
        app = reload.reimport(make_config(app="no_such_module_here:app"), set(sys.modules))
    assert app is None
    assert dict(sys.modules) == modules
    (line,) = [r.getMessage() for r in caplog.records if r.name == "uwsgiapp.error"]
    assert line.startswith("reload: cannot re-import the app, keeping the old code: ")
    assert "_sysconfigdata" in line


def test_where_the_library_is_is_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Asked before a --uid drop, answered from then on: the dropped user may not be able to
    # import sysconfig's data module (every HUP was called off under Python 3.13).
    expected = (reload.library_dirs(), reload.site_dirs())

    def unreadable() -> dict[str, str]:
        raise ModuleNotFoundError("No module named '_sysconfigdata__linux_x86_64-linux-gnu'")

    monkeypatch.setattr(reload.sysconfig, "get_paths", unreadable)
    assert (reload.library_dirs(), reload.site_dirs()) == expected


def test_a_master_that_keeps_the_old_code_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # A Django project: +14 MB in the master (and every worker forked after) at each HUP.
    (tmp_path / "grows_app.py").write_text("def app(environ, start_response):\n    return []\n")
    sizes = iter([100.0, 112.0])
    monkeypatch.setattr(reload, "rss_mb", lambda pid: next(sizes))
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    config = make_config(app="grows_app:app", pythonpath=(str(tmp_path),))
    with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
        assert reload.reimport(config, before) is not None
    (line,) = [r.getMessage() for r in caplog.records if "re-imported" in r.getMessage()]
    assert line.endswith(
        "; the master kept 12 MB of the old code (what it started at import, or what holds it; "
        "each HUP adds as much: --lazy-apps reloads without it)"
    )
    sys.modules.pop("grows_app", None)
