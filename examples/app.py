"""The example app behind nginx (``docker compose up`` or ``make run``).

Served by ``uwsgiapp serve examples/app.py:app``. Static files under ``examples/static/`` are
served by nginx itself (``location /static/``), never by this app: ``static_folder=None`` makes
a 404 here if nginx is misconfigured, instead of silently serving them from Python. For local
work: ``uwsgiapp dev examples/app.py:app --static-map /static=examples/static``.
"""

from __future__ import annotations

import os
from html import escape
from typing import Any

from uwsgiapp.web import App, abort, jsonify, request

app = App(__name__, static_folder=None)

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""


def page(title: str, body: str, status: int = 200) -> tuple[str, int, dict[str, str]]:
    """An HTML page with the shared layout (``title`` is escaped, ``body`` is HTML)."""
    html = PAGE.format(title=escape(title), body=body)
    return html, status, {"Content-Type": "text/html; charset=utf-8"}


@app.route("/")
def index() -> Any:
    return page(
        "uwsgiapp example",
        """<h1>uwsgiapp example</h1>
<p>nginx &rarr; uwsgi protocol &rarr; <code>uwsgiapp serve</code> &rarr; this app.</p>
<form method="post" action="/greet">
  <label>Your name <input name="name" required maxlength="100"></label>
  <button>Greet me</button>
</form>
<ul>
  <li><a href="/api/info">/api/info</a> (JSON)</li>
  <li><a href="/static/hello.txt">/static/hello.txt</a> (a file served by nginx)</li>
  <li><a href="/no/such/page">/no/such/page</a> (the 404 page)</li>
  <li><a href="/teapot">/teapot</a> (an error raised with abort)</li>
</ul>""",
    )


@app.route("/greet", methods=["POST"])
def greet() -> Any:
    name = request.form.get("name", "").strip()
    if not name:
        abort(400)
    return page("Hello", f"<h1>Hello, {escape(name)}!</h1><p><a href='/'>back</a></p>")


@app.route("/api/info")
def info() -> Any:
    # The pid shows which worker answered: reload a few times to see them take turns.
    return jsonify(
        app="uwsgiapp example",
        pid=os.getpid(),
        method=request.method,
        path=request.path,
        args=request.args.to_dict(),
        remote_addr=request.remote_addr,
        scheme=request.scheme,
    )


@app.route("/api/echo", methods=["POST"])
def echo() -> Any:
    data = request.get_json(silent=True)
    if data is None:
        abort(400)
    return jsonify(received=data)


@app.route("/teapot")
def teapot() -> Any:
    abort(418)


@app.route("/healthz")
def healthz() -> Any:
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.errorhandler(400)
def bad_request(error: Any) -> Any:
    return page("Bad request", "<h1>400 Bad request</h1><p>That form or JSON was empty.</p>", 400)


@app.errorhandler(404)
def not_found(error: Any) -> Any:
    return page(
        "Not found",
        f"<h1>404 Not found</h1><p>No page at <code>{escape(request.path)}</code>.</p>",
        404,
    )


@app.errorhandler(418)
def teapot_page(error: Any) -> Any:
    return page(
        "I'm a teapot", "<h1>418 I'm a teapot</h1><p>This error page is the app's.</p>", 418
    )


@app.errorhandler(500)
def server_error(error: Any) -> Any:
    return page("Server error", "<h1>500 Server error</h1><p>Something broke.</p>", 500)
