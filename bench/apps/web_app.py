"""The same hello route on uwsgiapp.web, the project's Flask-style framework."""

from __future__ import annotations

from uwsgiapp.web import App

app = App(__name__)


@app.route("/")
def hello() -> str:
    return "Hello World!"


application = app
