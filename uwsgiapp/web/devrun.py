"""``App.run``: an app served by werkzeug's development server from its own script
(``if __name__ == "__main__": app.run()``), as Flask's ``run`` does; ``uwsgiapp dev`` is the
command for it, and ``uwsgiapp serve`` behind nginx for production."""

from __future__ import annotations

import os
import typing as t

from werkzeug.serving import run_simple

from uwsgiapp.web.config import debug_flag

if t.TYPE_CHECKING:
    from uwsgiapp.web.app import App

__all__ = ["run"]


def run(
    app: App,
    host: str | None = None,
    port: int | None = None,
    debug: bool | None = None,
    load_dotenv: bool = True,
    **options: t.Any,
) -> None:
    """Serve ``app`` with werkzeug's ``run_simple``. As Flask's: ``host`` and ``port`` default
    to ``SERVER_NAME``'s, else 127.0.0.1:5000; ``debug`` (default: ``config["DEBUG"]``, off)
    turns on the reloader and the debugger; ``load_dotenv`` reads ``.env`` and ``.flaskenv``
    (with python-dotenv); other options go to ``run_simple`` (``load_dotenv`` went there, and
    it raised TypeError)."""
    if load_dotenv:
        from uwsgiapp.devenv import read_dotenv

        read_dotenv()
        if os.environ.get("FLASK_DEBUG"):  # as Flask's: .flaskenv's FLASK_DEBUG=1 counts
            app.debug = debug_flag()
    named, _, named_port = str(app.config.get("SERVER_NAME") or "").partition(":")
    host = host or named or "127.0.0.1"
    # As Flask's: port 0 (any free port) kept, "8001" taken as a number.
    port = int(port) if port or port == 0 else int(named_port) if named_port.isdigit() else 5000
    if debug is not None:
        app.debug = debug
    options.setdefault("use_reloader", app.debug)
    options.setdefault("use_debugger", app.debug)
    options.setdefault("threaded", True)
    run_simple(host, port, app, **options)
