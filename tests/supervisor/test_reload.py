"""The master's re-import for a HUP (:func:`uwsgiapp.supervisor.reload.reimport`), in-process."""

from __future__ import annotations

import logging
import sys

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
