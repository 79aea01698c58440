"""A uwsgiapp.web app for the --threads tests: each request puts its own tag in ``g`` and in
the session, waits while other threads of the worker run theirs, then reads them back."""

from __future__ import annotations

import time

from uwsgiapp.web import App, g, jsonify, request, session

app = App(__name__)
app.secret_key = "threads-test-key"


@app.route("/tag/<tag>")
def tagged(tag: str) -> object:
    g.tag = tag
    seen_before = session.get("tag", "")
    session["tag"] = tag
    time.sleep(float(request.args.get("wait", "0.02")))
    return jsonify(
        path_tag=tag,
        g_tag=g.tag,
        header_tag=request.headers.get("X-Tag", ""),
        session_tag=session["tag"],
        seen_before=seen_before,
    )
