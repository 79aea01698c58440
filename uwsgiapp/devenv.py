"""``uwsgiapp dev``'s process set-up: the ``.env`` files ``flask run`` reads, and the serving
process tied to the one that watches the files (werkzeug's reloader starts the one, which
starts the other)."""

from __future__ import annotations

import os
import sys

from uwsgiapp.supervisor.workerexit import die_with_parent

__all__ = ["follow_watcher", "read_dotenv"]

#: The pid of dev's watching process, for the serving one it starts.
_WATCHER = "UWSGIAPP_DEV_WATCHER"


def read_dotenv(*, said: bool = True) -> None:
    """``.env`` and ``.flaskenv`` in the directory dev starts in, read as ``flask run`` reads
    them: with python-dotenv where it is installed (a variable already set keeps its value,
    ``.env``'s go first); else a tip (``said``: once, not again in the reloader's child). They
    were ignored without a word: an app reading DATABASE_URL at import failed."""
    found = [name for name in (".env", ".flaskenv") if os.path.isfile(name)]
    if not found:
        return
    try:
        import dotenv
    except ImportError:
        if said:
            print(
                f"uwsgiapp dev: tip: {' and '.join(found)} present: install python-dotenv to "
                "use them (as flask run), or export the variables",
                file=sys.stderr,
            )
        return
    for name in found:
        dotenv.load_dotenv(name, override=False, encoding="utf-8")


def follow_watcher(*, serving: bool) -> bool:
    """In the watching process, note its pid for the serving one; in the serving one
    (``serving``), end with the watching one (a HUP or a kill of that one left this one
    serving, its port taken): False if it is gone already (then nothing is to be served)."""
    if not serving:
        os.environ[_WATCHER] = str(os.getpid())
        return True
    die_with_parent()  # first: the watching one may die while the app is imported
    return str(os.getppid()) == os.environ.get(_WATCHER, str(os.getppid()))
