"""uwsgiapp: a pure-Python application container for nginx's uwsgi protocol."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os

from uwsgiapp.harakiri import set_harakiri
from uwsgiapp.hooks import postfork

__all__ = ["__version__", "postfork", "set_harakiri"]
__version__ = "0.1.0"


def protocol_mismatch(package_dir: str, protocol_dir: str) -> str | None:
    """Why the uwsgiapp in ``package_dir`` cannot run with the uwsgiproto in ``protocol_dir``,
    or None when it can.

    A compiled build's modules are one extension that reaches into the objects of the compiled
    uwsgiproto built with it: given the source uwsgiproto instead (a checkout's ``protocol/``
    on ``PYTHONPATH``), it would crash the worker on its first request. A pure uwsgiapp runs
    with either.
    """
    suffixes = importlib.machinery.EXTENSION_SUFFIXES

    def compiled(directory: str, module: str) -> bool:
        return any(os.path.exists(os.path.join(directory, module + s)) for s in suffixes)

    if not compiled(os.path.join(package_dir, "server"), "intake"):
        return None
    if compiled(protocol_dir, "layout"):
        return None
    return (
        f"uwsgiapp in {package_dir} is a compiled build, but the uwsgiproto found first on "
        f"sys.path, in {protocol_dir}, is not: a compiled uwsgiapp runs only with the uwsgiproto "
        f"built with it. Take {os.path.dirname(protocol_dir)} off sys.path (PYTHONPATH), or "
        "install the pure build (UWSGIAPP_COMPILE=0)."
    )


def _check_protocol() -> None:
    spec = importlib.util.find_spec("uwsgiproto")
    if spec is None or spec.origin is None:
        return  # the import that needs it names it
    problem = protocol_mismatch(os.path.dirname(__file__), os.path.dirname(spec.origin))
    if problem is not None:
        raise ImportError(problem)


_check_protocol()
