"""``uwsgiapp dev``'s process set-up: the ``.env`` files ``flask run`` reads, and the serving
process tied to the one that watches the files (werkzeug's reloader starts the one, which
starts the other)."""

from __future__ import annotations

import os
import sys

__all__ = ["flask_run_target", "follow_watcher", "read_dotenv"]

#: The pid of dev's watching process, for the serving one it starts.
_WATCHER = "UWSGIAPP_DEV_WATCHER"
#: The tip for .env files without python-dotenv was printed in this process.
_tip_said = False


def read_dotenv(*, said: bool = True) -> None:
    """``.env`` and ``.flaskenv`` in the directory dev starts in, read as ``flask run`` reads
    them: with python-dotenv where it is installed (a variable already set keeps its value,
    ``.env``'s go first); else a tip (``said``: once, not again in the reloader's child). They
    were ignored without a word: an app reading DATABASE_URL at import failed."""
    global _tip_said
    found = [name for name in (".env", ".flaskenv") if os.path.isfile(name)]
    if not found:
        return
    try:
        import dotenv
    except ImportError:
        if said and not _tip_said:
            _tip_said = True
            print(
                f"uwsgiapp dev: tip: {' and '.join(found)} present: install python-dotenv to "
                "use them (as flask run), or export the variables",
                file=sys.stderr,
            )
        return
    for name in found:
        dotenv.load_dotenv(name, override=False, encoding="utf-8")


def flask_run_target(app: str | None, host: str | None, port: int | None) -> tuple[str, str, int]:
    """APP, ``--host`` and ``--port`` as ``flask run`` takes those not given: from
    ``$FLASK_APP``, ``$FLASK_RUN_HOST`` and ``$FLASK_RUN_PORT``, ``.env`` and ``.flaskenv`` read
    first (FLASK_APP in .flaskenv was not seen: "APP is required"); else 127.0.0.1:5000.
    ValueError for a FLASK_RUN_PORT that is not a port."""
    if not app or host is None or port is None:  # (the reloader's child said it already)
        read_dotenv(said=os.environ.get("WERKZEUG_RUN_MAIN") != "true")
    word = os.environ.get("FLASK_RUN_PORT", "").strip()
    if port is None and word:
        if not (word.isdigit() and 0 < int(word) < 65536):
            raise ValueError(f"FLASK_RUN_PORT: expected a port number, got {word!r}")
        port = int(word)
    host = host or os.environ.get("FLASK_RUN_HOST", "").strip() or "127.0.0.1"
    return app or os.environ.get("FLASK_APP", "").strip(), host, 5000 if port is None else port


def follow_watcher(*, serving: bool) -> bool:
    """In the watching process, note its pid for the serving one; in the serving one
    (``serving``), end with the watching one (a HUP or a kill of that one left this one
    serving, its port taken): False if it is gone already (then nothing is to be served)."""
    if not serving:
        os.environ[_WATCHER] = str(os.getpid())
        return True
    from uwsgiapp.supervisor.workerexit import die_with_parent  # (not for App.run's dotenv)

    die_with_parent()  # first: the watching one may die while the app is imported
    return str(os.getppid()) == os.environ.get(_WATCHER, str(os.getppid()))
