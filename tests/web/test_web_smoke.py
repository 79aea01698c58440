"""The smallest end-to-end check: a hello route through the whole pipeline."""

from __future__ import annotations

from uwsgiapp.web import App


def test_hello_route_answers_html() -> None:
    app = App(__name__)

    @app.route("/")
    def hello() -> str:
        return "Hello, World!"

    response = app.test_client().get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Length"] == "13"
    assert response.data == b"Hello, World!"
