"""The signals that stop the command and the master: TERM, INT and QUIT.

A leaf module (it imports only :mod:`signal`): :mod:`uwsgiapp.entry` installs handlers for them
before anything else is imported, and the supervisor's modules take them here. Importing them
from ``entry`` instead would put the whole command line (and, through ``dev``, werkzeug's dev
server) into the import graph of the compiled modules, which a compiled build's type check
must resolve without werkzeug installed.
"""

from __future__ import annotations

import signal

__all__ = ["STOP_SIGNALS"]

#: The signals that stop a command, and the master.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
