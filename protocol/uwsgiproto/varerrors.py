"""The var-block parser's own construct error.

Kept apart from :mod:`uwsgiproto.varblock` because that module is compiled by mypyc in a compiled
build, and a compiled class cannot subclass one of construct's: this module stays interpreted.
"""

from __future__ import annotations

from construct import ExplicitError


class TooManyVars(ExplicitError):  # type: ignore[misc]
    """More vars on the wire than allowed (repeated keys count once per occurrence)."""
