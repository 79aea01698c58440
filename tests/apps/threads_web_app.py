"""A uwsgiapp.web app for the --threads tests: each request puts its own tag in ``g`` and in
the session, waits while other threads of the worker run theirs, then reads them back and
says how many requests were in the app with it."""

from __future__ import annotations

import threading
import time

from uwsgiapp.web import App, g, jsonify, request, session

app = App(__name__)
app.secret_key = "threads-test-key"
_lock = threading.Lock()
_in_app = 0


@app.route("/tag/<tag>")
def tagged(tag: str) -> object:
    g.tag = tag
    seen_before = session.get("tag", "")
    session["tag"] = tag
    global _in_app
    with _lock:
        _in_app += 1
    try:
        time.sleep(float(request.args.get("wait", "0.02")))
        together = _in_app  # requests in the app at the end of this one's wait (this one too)
    finally:
        with _lock:
            _in_app -= 1
    return jsonify(
        together=together,
        path_tag=tag,
        g_tag=g.tag,
        header_tag=request.headers.get("X-Tag", ""),
        session_tag=session["tag"],
        seen_before=seen_before,
    )
