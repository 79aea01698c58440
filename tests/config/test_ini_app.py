"""--ini app keys read as uWSGI reads them: a wsgi-file of any name is a file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from uwsgiapp.config.configload import resolve
from uwsgiapp.config.uwsgiini import ini_layer
from uwsgiapp.importer import load_app


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """cwd, sys.path and sys.modules as they were (load_app changes all three)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(Path.cwd())
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.mark.parametrize("filename", ["indico.wsgi", "keystone-wsgi-public"])
def test_relative_wsgi_file_without_py_suffix_loads(
    tmp_path: Path, restored: None, filename: str
) -> None:
    (tmp_path / filename).write_text(
        "def application(environ, start_response):\n    return [b'ok']\n"
    )
    ini = tmp_path / "app.ini"
    ini.write_text(f"[uwsgi]\nchdir = {tmp_path}\nwsgi-file = {filename}\n")
    config = resolve([ini_layer(str(ini), environ={}).layer]).config
    app = load_app(config.app, chdir=config.chdir)
    assert b"".join(app({}, lambda *a: None)) == b"ok"


def test_module_and_wsgi_file_both_given(tmp_path: Path) -> None:
    """ckan's official ini has both; uWSGI serves the module's app."""
    ini = tmp_path / "ckan.ini"
    ini.write_text("[uwsgi]\nwsgi-file = /etc/ckan/wsgi.py\nmodule = ckan.config.middleware\n")
    result = ini_layer(str(ini), environ={})
    assert resolve([result.layer]).config.app == "ckan.config.middleware:application"
    assert result.warnings == [
        f"ini {ini} [uwsgi]: both 'module = ckan.config.middleware' (line 3) and 'wsgi-file ="
        " /etc/ckan/wsgi.py' (line 2) are given: uwsgiapp serves one app, the module's, and"
        " ignores wsgi-file (uWSGI loads the module first and skips the file's app, whose"
        " mount point is taken, but serves the file's where the module does not import: not"
        " here); remove the one you do not mean"
    ]


def test_two_mount_lines_are_refused_naming_both(tmp_path: Path) -> None:
    """The second mount line silently replaced the first: a whole app disappeared and its URLs
    went to the other. uwsgiapp serves one app: refused, naming both lines."""
    from uwsgiapp.config import ConfigError

    ini = tmp_path / "u.ini"
    ini.write_text(
        "[uwsgi]\nsocket = :3031\nmount = /one=envapp.py\nmount = /two=flaskapp.py\n"
        "callable = app\n"
    )
    with pytest.raises(ConfigError) as info:
        ini_layer(str(ini))
    said = str(info.value)
    assert "'mount = /one=envapp.py' (line 3) and 'mount = /two=flaskapp.py' (line 4)" in said
    assert "serves one app" in said and "(line 4)" in info.value.source
    # The same line twice is no news.
    ini.write_text("[uwsgi]\nmount = /one=envapp.py\nmount = /one=envapp.py\n")
    layer = ini_layer(str(ini)).layer
    assert (layer["mount"].value, layer["app"].value) == ("/one", "envapp.py:application")
