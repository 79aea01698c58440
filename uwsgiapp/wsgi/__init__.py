"""Pure WSGI plumbing: the environ from uwsgi vars, ``wsgi.input``, the response head.

No sockets here: the server passes readers and writes the bytes these functions produce.
"""

from uwsgiapp.wsgi.environ import (
    BadRequest,
    EnvironBuilder,
    EnvironSettings,
    build_environ,
    parse_content_length,
)
from uwsgiapp.wsgi.input import EMPTY_INPUT, ClientDisconnected, InputStream
from uwsgiapp.wsgi.response import FileWrapper, HeaderError, render_head

__all__ = [
    "EMPTY_INPUT",
    "BadRequest",
    "ClientDisconnected",
    "EnvironBuilder",
    "EnvironSettings",
    "FileWrapper",
    "HeaderError",
    "InputStream",
    "build_environ",
    "parse_content_length",
    "render_head",
]
