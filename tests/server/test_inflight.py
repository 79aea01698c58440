"""The harakiri's Python stack: shown from the app's call, whatever started the server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from uwsgiapp.server.inflight import read_after_head
from uwsgiapp.server.io import ClientDisconnected, ClientTimeout
from uwsgiapp.unpatched import get_ident


def _run(tmp_path: Path, entry: str) -> str:
    (tmp_path / "myapp.py").write_text(
        textwrap.dedent(
            """
            import sys
            from uwsgiapp.server.inflight import app_stack

            def view():
                print(app_stack(sys._getframe()))
            """
        )
    )
    script = tmp_path / "uwsgiapp-entry"
    script.write_text(textwrap.dedent(entry))
    done = subprocess.run(
        [sys.executable, script.name], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_console_script_is_the_servers_frame_not_the_apps(tmp_path: Path) -> None:
    # pip's bin/uwsgiapp is the outermost frame under the `uwsgiapp` command: counted with the
    # server's frames, so the stack shown starts at the app.
    out = _run(
        tmp_path,
        """
        import sys
        sys.path.insert(0, ".")
        import myapp
        def main():
            myapp.view()
        main()
        """,
    )
    assert out.startswith("(2 frames of the server above)\n"), out
    assert "uwsgiapp-entry" not in out and 'myapp.py", line 6, in view' in out


def test_the_app_frames_are_shown_when_nothing_of_the_server_is_above(tmp_path: Path) -> None:
    out = _run(
        tmp_path,
        "import sys; sys.modules['__main__'].__file__ = 'elsewhere'; sys.path.insert(0, '.')\n"
        "import myapp; myapp.view()\n",
    )
    assert not out.startswith("(") and "uwsgiapp-entry" in out and "in view" in out


def test_a_request_threads_start_is_the_servers_too(tmp_path: Path) -> None:
    out = _run(
        tmp_path,
        """
        import sys, threading
        sys.modules["__main__"].__file__ = "elsewhere"
        sys.path.insert(0, ".")
        import myapp
        thread = threading.Thread(target=myapp.view)
        thread.start()
        thread.join()
        """,
    )
    # threading's _bootstrap, _bootstrap_inner and run
    assert out.startswith("(3 frames of the server above)\n"), out
    assert 'myapp.py", line 6, in view' in out


def test_an_app_in_the_script_that_started_the_server_is_shown(tmp_path: Path) -> None:
    # `python myserver.py`, which runs uwsgiapp with app "myserver:app": below the server's
    # frames, that file is the app's.
    out = _run(
        tmp_path,
        """
        import sys, threading
        from uwsgiapp.server.inflight import app_stack
        from uwsgiapp.server.threaded import _serialized  # a server frame that calls back

        def inner():
            print(app_stack(sys._getframe()))

        def app_in_the_script():
            inner()

        _serialized(app_in_the_script, threading.Lock())()
        """,
    )
    assert out.startswith("(2 frames of the server above)\n"), out
    assert "in app_in_the_script" in out


def test_the_stuck_request_line_names_its_request_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # The harakiri and quick-stop lines name the request nginx answers 502 for: its $request_id
    # (uwsgi_param HTTP_X_REQUEST_ID) joins the stack to nginx's line; a forged one stays on it.
    from uwsgiapp.server import inflight

    serving = {
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": "/report?\x1b[31m",
        "HTTP_X_REQUEST_ID": "7c1e\r\nforged",
    }
    monkeypatch.setattr(inflight, "_current", lambda: serving)
    monkeypatch.setattr(inflight, "_serving", get_ident())  # this thread serves it
    line = inflight.request_line(sys._getframe())
    assert line == "GET /report?\\x1B[31m, request id 7c1e\\x0D\\x0Aforged", line


def test_a_request_no_frame_holds_is_asked_of_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    # A compiled build iterates a streamed response with no Python frame between the worker
    # loop and the app's generator: only the worker knows the request.
    from uwsgiapp.server import inflight

    frame = sys._getframe()  # this test's frame: no environ in it or its callers
    assert inflight.request_line(frame) == "unknown request"
    serving = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/events?since=5"}
    monkeypatch.setattr(inflight, "_current", lambda: serving)
    monkeypatch.setattr(inflight, "_serving", get_ident())  # this thread serves it
    assert inflight.request_line(frame) == "GET /events?since=5"
    assert inflight.request_environ(frame, get_ident() + 1) is None  # another thread's
    monkeypatch.setattr(inflight, "_current", lambda: None)  # between requests
    assert inflight.request_line(frame) == "unknown request"


def _timeout(reading: bool) -> ClientTimeout:
    stalled = ClientTimeout("client stalled")
    stalled.reading = reading
    return stalled


@pytest.mark.parametrize(
    ("exc", "head_sent", "expected"),
    [
        (_timeout(reading=True), True, True),  # the app read its body after its head
        (_timeout(reading=True), False, False),  # a client that stalled mid-upload
        (_timeout(reading=False), True, False),  # nginx not taking the response
        (ClientDisconnected("closed"), True, False),  # gone: not a timeout
    ],
)
def test_read_after_head(exc: ClientDisconnected, head_sent: bool, expected: bool) -> None:
    assert read_after_head(exc, head_sent) is expected
