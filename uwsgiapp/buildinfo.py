"""Which build runs: the hot path compiled by mypyc, or pure Python.

:data:`COMPILED_MODULES` is the one list of what a compiled build compiles: setup.py reads it as a
literal (without importing the package), and ``uwsgiapp --version`` checks each module that is
actually imported. Every other module stays interpreted in every build, for a reason the compiled
test pass found (``make test-compiled``):

* ``uwsgiproto.schema``, ``uwsgiproto.varerrors``: subclass construct's classes (a compiled class
  cannot subclass an interpreted one; it crashed on import);
* ``uwsgiproto.decoder``: :class:`~uwsgiproto.Decoder` is public and subclassed (the fuzz tests do;
  a compiled class cannot be subclassed from Python); the function it runs,
  :func:`~uwsgiproto.parse_packet`, lives in ``uwsgiproto.packet`` and is compiled;
  ``uwsgiproto.limits`` holds :class:`~uwsgiproto.Limits`, a public dataclass;
* ``uwsgiapp.server.worker`` (and so ``threaded``, whose loop subclasses it): an interpreted
  class cannot subclass a compiled one; the other ``uwsgiapp.server`` modules and
  ``uwsgiapp.wsgi.input`` are not compiled yet. ``exchange``, ``io``, ``intake`` and ``spool``
  (whose responder subclasses exchange's) are: what the app hands over is typed ``Any`` there
  (a compiled build checks annotations on entry, and the response checks must be the ones
  that speak), and a TCP peer is typed as what it is;
* the rest is off the hot path.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn

from uwsgiapp import __version__

#: Compiled by mypyc in a compiled build, in dependency order (a plain tuple of str literals:
#: setup.py reads it with ast.literal_eval).
COMPILED_MODULES = (
    "uwsgiproto.varblock",
    "uwsgiproto.events",
    "uwsgiproto.layout",
    "uwsgiproto.packet",
    "uwsgiapp.wsgi.environ",
    "uwsgiapp.wsgi.response",
    "uwsgiapp.server.io",
    "uwsgiapp.server.logtext",
    "uwsgiapp.server.accesslog",
    "uwsgiapp.server.exchange",
    "uwsgiapp.server.spool",
    "uwsgiapp.server.intake",
    "uwsgiapp.server.burst",
    "uwsgiapp.supervisor.status",
)


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from a C extension (a mypyc-compiled module is one)."""
    return (getattr(module, "__file__", None) or "").endswith(
        tuple(importlib.machinery.EXTENSION_SUFFIXES)
    )


def compiled_modules() -> list[str]:
    """The modules of :data:`COMPILED_MODULES` that run compiled in this process."""
    return [name for name in COMPILED_MODULES if is_compiled(importlib.import_module(name))]


def build_description() -> str:
    """``"compiled: a, b, …"``, ``"partly compiled: …"`` or ``"pure Python"``."""
    names = compiled_modules()
    if not names:
        return "pure Python"
    what = "compiled" if len(names) == len(COMPILED_MODULES) else "partly compiled"
    return f"{what}: {', '.join(names)}"


def running_version() -> str:
    """``uwsgiapp 0.1.0, compiled, Python 3.12.3 at /srv/venv/bin/python``: what this process
    runs, for the start's line (``--version`` says what is installed, which a ``pip install
    -U`` changed; the interpreter tells which virtualenv's packages the app gets)."""
    build = build_description().partition(":")[0]
    python = f"Python {sys.version.split()[0]} at {sys.executable}"
    return f"uwsgiapp {__version__}, {build}, {python}"


def version_line(prog: str = "uwsgiapp") -> str:
    """``uwsgiapp 0.1.0 (compiled: uwsgiproto.varblock, …)`` or ``… (pure Python)``."""
    return f"{prog} {__version__} ({build_description()})"


class VersionAction(argparse.Action):
    """``--version``: the version and the build, on stdout; the modules are imported only then."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str = argparse.SUPPRESS,
        default: Any = argparse.SUPPRESS,
        help: str = "show the version and the build (compiled modules or pure Python), and exit",
    ) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> NoReturn:
        sys.stdout.write(version_line(parser.prog) + "\n")
        parser.exit()
