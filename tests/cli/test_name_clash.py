"""An app with its own ``protocol.py`` (a common name) gets its own module, not our codec.

Our codec's import name is ``uwsgiproto``: it used to be installed as ``protocol``, which was
already in ``sys.modules`` when the app imported its own ``protocol``, and ``python -m uwsgiapp``
run from such an app's directory crashed with "cannot import name 'Limits'".
"""

from __future__ import annotations

from pathlib import Path

from support.procs import Server, uwsgi_exchange

from uwsgiproto import build_request

APP = """
import protocol

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [protocol.GREETING.encode()]
"""


def _get() -> bytes:
    return build_request({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_PROTOCOL": "HTTP/1.1"})


def _app_dir(tmp_path: Path) -> Path:
    app_dir = tmp_path / "myapp"
    app_dir.mkdir()
    (app_dir / "protocol.py").write_text('GREETING = "the app\'s own protocol module"\n')
    (app_dir / "clashapp.py").write_text(APP)
    return app_dir


def test_serve_gives_the_app_its_own_protocol_module(tmp_path: Path) -> None:
    app_dir = _app_dir(tmp_path)
    server = Server(tmp_path / "server", "clashapp:app", pythonpath=[str(app_dir)]).start()
    try:
        answer = uwsgi_exchange(server.socket, _get(), timeout=10).data
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    assert answer.endswith(b"the app's own protocol module")


def test_python_m_uwsgiapp_serves_from_the_apps_directory(tmp_path: Path) -> None:
    app_dir = _app_dir(tmp_path)
    # As a user runs it from the app's directory: python -m puts the cwd first on sys.path.
    server = Server(app_dir, "clashapp:app", pythonpath=["."]).start()
    try:
        answer = uwsgi_exchange(server.socket, _get(), timeout=10).data
    finally:
        server.stop()
    assert answer.endswith(b"the app's own protocol module"), server.log()
