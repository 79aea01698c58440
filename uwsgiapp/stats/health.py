"""A container health check that asks the master: ``python -m uwsgiapp.stats.health [ADDR]``.

Healthy (exit 0) while the stats server at ADDR answers and at least one worker has loaded the
app and accepts, idle or busy; exit 1 when no worker accepts, 3 when nothing answers, 4 when the
answer is not a stats document. ADDR defaults to ``$UWSGIAPP_STATS`` (else the image's
``$UWSGIAPP_DEFAULT_STATS``), and HTTP is spoken when ``$UWSGIAPP_STATS_HTTP`` is on (or
with ``--http``, or an ``http://`` ADDR): the check follows the server's own configuration.

Why not ``uwsgiapp ping``: a worker answers the ping, after the requests queued before it, so
on a saturated server the ping times out and an orchestrator replaces a replica that is only
busy. The stats server is the master's and answers whatever the workers are doing. uWSGI's
stats server works too (its document has the same ``accepting`` field). The check runs every
few seconds: it imports the stats client and document, not the server or its configuration
(about 0.06 s a run; ``uwsgiapp ping`` takes 0.13 s).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from uwsgiapp.stats.document import health_verdict
from uwsgiapp.stats.reader import EXIT_USAGE, FetchError, fetch, stats_source

__all__ = ["EXIT_UNHEALTHY", "add_parser", "check", "main", "stats_source"]

#: No worker accepts (none has loaded the app, or all are stopping).
EXIT_UNHEALTHY = 1


_EPILOG = (
    "exit status: 0 healthy, 1 no worker accepts, 2 usage, 3 cannot connect, "
    "4 no valid stats document"
)


def _arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("address", nargs="?", default="", metavar="ADDR")
    parser.add_argument("--http", action="store_true", help="the stats server speaks HTTP")
    parser.add_argument("--timeout", type=float, default=2.0, metavar="S")
    return parser


def add_parser(sub: argparse._SubParsersAction[Any], summary: str) -> None:
    """``uwsgiapp health [ADDR]``: the same check as ``python -m uwsgiapp.stats.health``."""
    parser = sub.add_parser("health", help=summary, description=summary, epilog=_EPILOG)
    _arguments(parser).set_defaults(handler=check)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    """Run the check; print one line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m uwsgiapp.stats.health",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
        epilog=_EPILOG,
    )
    return check(_arguments(parser).parse_args(argv), environ)


def check(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    """The check of parsed arguments (``address``, ``http``, ``timeout``): its exit status."""
    try:
        doc = fetch(stats_source(args.address, environ, args.http), timeout=args.timeout)
    except ValueError as exc:
        print(f"health: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FetchError as exc:
        print(f"health: error: {exc}", file=sys.stderr)
        return exc.code
    workers = [w for w in doc.get("workers", []) if isinstance(w, Mapping)]
    pairs = ((bool(w.get("accepting")), w.get("status") == "busy") for w in workers)
    healthy, line = health_verdict(pairs, doc.get("pid", "?"))
    print(line)
    return 0 if healthy else EXIT_UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
