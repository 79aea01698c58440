"""``serve --check-config``: the app imported as a worker would import it, nothing served.

gunicorn's deploy gate. As a worker: as the ``--uid``/``--gid`` user when started as root (an
import as root would leave root's files where the workers must write: a log, a SQLite file, a
cache), in ``--chdir``, with ``--pythonpath`` and the ``--env`` the caller has applied.
"""

from __future__ import annotations

from uwsgiapp.config import Config
from uwsgiapp.exitcodes import ServeExit
from uwsgiapp.importer import AppImportError, load_app
from uwsgiapp.supervisor import privileges

__all__ = ["check_app"]


def check_app(config: Config) -> tuple[ServeExit, str]:
    """Load ``config.app`` as a worker would: the exit code and what to say."""
    try:
        privileges.drop(privileges.resolve(config.uid, config.gid), [], [])
    except (privileges.PrivilegeError, OSError) as exc:
        return ServeExit.START_FAILED, f"--check-config: {exc}"
    try:
        load_app(config.app, chdir=config.chdir, pythonpath=config.pythonpath)
    except AppImportError as exc:
        return ServeExit.APP_LOAD, f"--check-config: {exc}"
    return ServeExit.OK, f"the options are valid and {config.app} loads"
