"""Command line entry point (``uwsgiapp``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``uwsgiapp`` command line."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--version":
        from uwsgiapp import __version__

        print(f"uwsgiapp {__version__}")
        return 0
    print("usage: uwsgiapp {serve,dev,request,ping} ...", file=sys.stderr)
    return 2
