"""The WSGI app of the HUP tests of a library that patches the standard library at import
(:mod:`patching_lib`, sentry-sdk's way). ``/boom`` logs an exception as Flask does
("Exception on ..."); any other path answers how deep each patched attribute is wrapped."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import patching_lib

patching_lib.init(os.environ["PATCH_EVENTS"])
log = logging.getLogger("patching_app")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The app."""
    if environ["PATH_INFO"] == "/boom":
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("Exception on /boom [GET]")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(patching_lib.depths()).encode()]
