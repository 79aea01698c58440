"""The same hello route on Flask (what most users would put behind uWSGI today)."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello() -> str:
    return "Hello World!"


application = app
