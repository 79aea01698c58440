"""Build the PEP 3333 environ from a uwsgi request's vars (a pure function, called per request).

Facts it respects: nginx sends ``HTTP_CONTENT_TYPE``/``HTTP_CONTENT_LENGTH`` besides the real
ones (PEP 3333 forbids them: dropped), and a chunked upload de-chunked with its ``CONTENT_LENGTH``
but still ``HTTP_TRANSFER_ENCODING: chunked`` (dropped: werkzeug would ignore the length);
``CONTENT_LENGTH`` is ``''`` when there is no body; ``UWSGI_*`` "magic" vars are never honoured
(dropped; but ``UWSGI_SCHEME`` ``http`` or ``https`` sets ``wsgi.url_scheme``, as in uWSGI).
``SCRIPT_NAME`` is the one nginx sends (``uwsgi_param SCRIPT_NAME /app``), else the mount point
(``--mount``), else ``''``; only a real prefix of ``PATH_INFO`` is stripped from it. modifier1 0
and 30 are treated alike (uWSGI's 30 strips nothing on Python 3; its ``manage-script-name``
strips as this does).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import unquote_to_bytes

from uwsgiproto import (
    FAST_KEY_SIGNATURE,
    MAX_LAYOUT_KEY_BYTES,
    MAX_LAYOUT_VARS,
    Layout,
    Limits,
    Partial,
    can_be_known,
    key_signature,
    resume_vars,
)

if TYPE_CHECKING:
    from uwsgiapp.wsgi.contract import ErrorStream

#: Keys PEP 3333 requires; filled with defaults when a (non-nginx) client leaves them out.
REQUIRED_DEFAULTS: Final[dict[str, str]] = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.0",
}
_REQUIRED_KEYS: Final = frozenset(REQUIRED_DEFAULTS)
#: Vars nginx's uwsgi_params passes: a request with none of them came without it.
_PARAMS: Final = frozenset({"REQUEST_METHOD", "PATH_INFO", "REQUEST_URI", "QUERY_STRING"})
#: The one uWSGI "magic" var read: it sets ``wsgi.url_scheme`` (then it is dropped).
SCHEME_VAR: Final = "UWSGI_SCHEME"


class BadRequest(Exception):
    """The request is refused before the app is called; ``status`` is the full status line."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvironSettings:
    """What the environ needs from the configuration, resolved once at start-up."""

    mount: str = ""
    limit_post: int = 0
    errors: ErrorStream | None = None
    file_wrapper: Callable[..., Any] | None = None
    multiprocess: bool = True
    multithread: bool = False

    def template(self) -> dict[str, Any]:
        """The keys every request shares; copied into each environ."""
        return {
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": self.errors if self.errors is not None else sys.stderr,
            "wsgi.multithread": self.multithread,
            "wsgi.multiprocess": self.multiprocess,
            "wsgi.run_once": False,
            # No "wsgi.input_terminated" (uWSGI sets none either), though the stream ends at
            # CONTENT_LENGTH: werkzeug then reads it through its LimitedStream, which turns a
            # client gone mid-body (our OSError) into its 400, where Flask would log a
            # traceback and answer 500.
            "wsgi.file_wrapper": self.file_wrapper,
        }


def strip_script_name(script_name: str, path_info: str, sent: bool = False) -> tuple[str, str]:
    """Split ``path_info`` under ``script_name`` only when it is a real path prefix.

    ``("/app", "/app/x")`` → ``("/app", "/x")``; ``("/app", "/apple")`` → ``("", "/apple")``, or
    ``("/app", "/apple")`` when ``sent``: nginx named the prefix and has already taken it off
    ``PATH_INFO`` (a ``rewrite``), so both are kept as they came, as uWSGI keeps them.
    """
    script_name = script_name.rstrip("/")
    if not script_name:
        return "", path_info
    if path_info == script_name:
        return script_name, ""
    if path_info.startswith(script_name) and path_info[len(script_name)] == "/":
        return script_name, path_info[len(script_name) :]
    return (script_name if sent else ""), path_info


def _taken_off(script_name: str, path_info: str, request_uri: object) -> bool:
    """Has nginx already taken ``script_name`` off ``path_info`` (a ``rewrite``, or a regex
    location's ``uwsgi_param PATH_INFO $1``), though what is left starts with it again
    (``/app/app/x`` rewritten to ``/app/x``)? The client's ``REQUEST_URI`` then is the two
    together; where it is not (or not sent), ``path_info`` is still the whole path."""
    if not isinstance(request_uri, str) or not path_info.startswith(script_name):
        return False
    return _as_nginx_has_it(request_uri.partition("?")[0]) == script_name + path_info


def _as_nginx_has_it(path: str) -> str:
    """A request's path as nginx makes ``$uri`` of it (decoded, ``//`` merged, ``.`` and ``..``
    resolved): so that ``/app//app/x`` or ``/app/y/../app/x`` is told as ``/app/app/x`` is."""
    if "%" in path:
        path = unquote_to_bytes(path).decode("latin-1")
    parts = path.split("/")[1:]
    kept: list[str] = []
    for part in parts:
        if part == "..":
            if kept:
                kept.pop()
        elif part not in ("", "."):
            kept.append(part)
    # A path that ends in a directory ("/", "/.", "/..") keeps its trailing slash.
    trailing = bool(kept) and (not parts or parts[-1] in ("", ".", ".."))
    return "/" + "/".join(kept) + ("/" if trailing else "")


#: Vars nginx sends that the environ must not hold (the generic path drops them; a learnt
#: layout skips them).
_DROPPED: Final = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING"})


def build_environ(
    variables: dict[str, str],
    template: dict[str, Any],
    mount: str = "",
    has_magic: bool = True,
) -> dict[str, Any]:
    """Turn decoded vars into the environ, *in place*: ``variables`` is returned, completed.

    ``has_magic`` may be passed False when the caller already knows no ``UWSGI_`` key is present
    (a substring test on the raw block is cheaper than scanning keys).
    """
    environ: dict[str, Any] = variables
    sent = environ.get("SCRIPT_NAME")  # nginx's uwsgi_param SCRIPT_NAME, if any
    # A dotted key (wsgi.*, werkzeug.*...) is the server's or the app's, never a client's (nginx
    # sends none; a raw client's broke every Flask request): gone, as in gunicorn.
    for key in [k for k in environ if "." in k]:
        del environ[key]
    environ.update(template)
    for key in _DROPPED:
        environ.pop(key, None)
    if has_magic:  # UWSGI_SCHEME is read (then dropped) in _finish
        for key in [k for k in environ if k.startswith("UWSGI_") and k != SCHEME_VAR]:
            del environ[key]
    if not environ.keys() >= _REQUIRED_KEYS:
        # nginx's (its Host header) with none of uwsgi_params' vars: not a ping, not a packet
        # a raw client (or a fuzzer) left one out of
        if "HTTP_HOST" in environ and not environ.keys() & _PARAMS and not _NO_METHOD_SAID:
            _say_no_method()
        for key, value in REQUIRED_DEFAULTS.items():
            environ.setdefault(key, value)
    prefix = sent.rstrip("/") if sent else ""
    if prefix:
        path_info = environ["PATH_INFO"]
        if _taken_off(prefix, path_info, environ.get("REQUEST_URI")):
            environ["SCRIPT_NAME"] = prefix
        else:
            environ["SCRIPT_NAME"], environ["PATH_INFO"] = strip_script_name(
                prefix, path_info, sent=True
            )
        return _finish(environ, "")
    return _finish(environ, mount)


#: Whether this process said it got a request with no REQUEST_METHOD (once is enough).
_NO_METHOD_SAID: Final[list[bool]] = []


def _say_no_method() -> None:
    """nginx sends REQUEST_METHOD, PATH_INFO and the others only where the location includes
    uwsgi_params: without it every URL reached the app as GET / (a POST too), unsaid."""
    _NO_METHOD_SAID.append(True)
    logging.getLogger("uwsgiapp.error").warning(
        "a request came with no REQUEST_METHOD (taken as GET, and its path as /): nginx sends "
        "the request's method, path and query only with 'include uwsgi_params;' beside "
        "uwsgi_pass (said once a process)"
    )


def _run(layout: Layout, block: bytes | bytearray, text: str) -> dict[str, Any] | Partial:
    """``layout`` run on a block: compiled, its runner's ``run`` is a native call, where one
    through the ``run`` attribute is generic (see :attr:`~uwsgiproto.layout.Layout.runner`)."""
    runner = layout.runner
    return layout.run(block, text) if runner is None else runner.run(block, text)


def _finish(environ: dict[str, Any], script_name: str) -> dict[str, Any]:
    # The part of build_environ that depends on values, not on which keys came.
    if script_name:
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = strip_script_name(
            script_name, environ["PATH_INFO"]
        )
    # uWSGI's UWSGI_SCHEME (uwsgi_param UWSGI_SCHEME $http_x_forwarded_proto, behind a TLS
    # proxy) rules when it says http or https; the only UWSGI_* var honoured, then dropped.
    if SCHEME_VAR in environ:  # a native test when compiled; pop() is a method call
        forced = environ.pop(SCHEME_VAR)
        if isinstance(forced, str) and forced.lower() in ("http", "https"):
            environ["wsgi.url_scheme"] = forced.lower()  # a balancer's "HTTPS" too
            return environ
    # A non-empty HTTPS decides, as in uWSGI (a "uwsgi_param HTTPS off;" is http whatever
    # $scheme says); REQUEST_SCHEME only where it is absent or empty (nginx's "" for http).
    # Typed as str (what the vars are) so that compiled, each test is a native compare.
    https = environ.get("HTTPS")
    if isinstance(https, str) and https:
        if https.lower() in ("on", "1"):
            environ["wsgi.url_scheme"] = "https"
        return environ
    scheme = environ.get("REQUEST_SCHEME")
    if isinstance(scheme, str) and scheme == "https":
        environ["wsgi.url_scheme"] = "https"
    return environ


#: A key sequence seen this many times gets a compiled :class:`~uwsgiproto.layout.Layout`.
LEARN_AFTER: Final = 8
#: Layouts per worker; past this, new key sequences take the generic parser.
MAX_LAYOUTS: Final = 16
#: Key sequences counted before the counts are reset. With the size limits of a layout, this
#: bounds what varied (or hostile) traffic can make a worker hold to about 6 MB (measured: 255
#: sequences of 64 vars, each with values of uwsgiproto.MAX_KNOWN_VALUE characters and the
#: longest keys).
MAX_COUNTED: Final = 256
#: Whether a block that misses the active layout looks its own up by key_signature: compiled,
#: the signature takes 0.2 µs; as Python it costs more than resuming from where the miss was.
_BY_SIGNATURE: Final = FAST_KEY_SIGNATURE


class EnvironBuilder:
    """``build_environ(parse_vars(block), ...)`` for one worker, learning the key sequences it sees.

    A sequence of keys seen :data:`LEARN_AFTER` times is compiled into a
    :class:`~uwsgiproto.layout.Layout` that produces the finished environ in one pass: vars nginx
    sends but PEP 3333 forbids are skipped, the template and missing required keys are already
    in its prototype. The last layout used is tried first; a block that leaves it halfway is
    finished by the generic parser, so a miss costs little more than no layout at all.
    """

    def __init__(self, template: dict[str, Any], limits: Limits, mount: str = "") -> None:
        self.template = template
        self.limits = limits
        self.mount = mount
        self._active: Layout | None = None
        self._layouts: dict[tuple[str, ...], Layout] = {}
        #: The learnt layouts by :func:`~uwsgiproto.key_signature` of their key sequence.
        self._by_signature: dict[int, Layout] = {}
        #: Per key sequence not learnt yet: the blocks seen, and the (short) values that every
        #: one of them carried (the layout expects those: its ``known``).
        self._counts: dict[tuple[str, ...], tuple[int, dict[str, str]]] = {}

    def build(self, block: bytes | bytearray) -> dict[str, Any]:
        """The environ for one request's var block; a bad block raises a ProtocolError.

        The var-block parser the server gives :func:`uwsgiproto.parse_packet`.
        """
        # The same call twice: compiled, the one where ``block`` is known to be bytes calls the
        # latin-1 decoder directly (the other is a method call, some 700 instructions more).
        text = block.decode("latin-1") if isinstance(block, bytes) else block.decode("latin-1")  # noqa: RUF034
        layout = self._active
        variables: dict[str, str] = {}
        pos = 0
        if layout is not None:
            result = _run(layout, block, text)
            if type(result) is dict:
                # A block that sends SCRIPT_NAME has none: the template holds that key.
                return _finish(result, self.mount)
            # Another key sequence (clients send different headers, and take turns): the layout
            # learnt for it, if any, picked by its signature without parsing the block.
            other = self._by_signature.get(key_signature(block)) if _BY_SIGNATURE else None
            if other is not None and other is not layout:
                found = _run(other, block, text)
                if type(found) is dict:
                    self._active = other
                    return _finish(found, self.mount)
            _, pos, values = cast(Partial, result)
            variables = dict(zip(layout.keys[: len(values)], values, strict=True))
        variables, count = resume_vars(block, text, pos, variables, self.limits)
        if count == len(variables):  # no repeated key: the sequence can be learnt
            self._learn(tuple(variables), block, variables)
        return build_environ(variables, self.template, self.mount, "UWSGI_" in text)

    def _learn(
        self, keys: tuple[str, ...], block: bytes | bytearray, variables: dict[str, str]
    ) -> None:
        layout = self._layouts.get(keys)
        if layout is None:
            if not 0 < len(keys) <= MAX_LAYOUT_VARS or sum(map(len, keys)) > MAX_LAYOUT_KEY_BYTES:
                return
            counted = self._counts.get(keys)
            if counted is None:
                seen = 1
                same = {k: v for k, v in variables.items() if can_be_known(v)}
            else:
                seen = counted[0] + 1
                same = {k: v for k, v in counted[1].items() if variables[k] == v}
            if seen < LEARN_AFTER:
                if len(self._counts) >= MAX_COUNTED:
                    self._counts.clear()
                self._counts[keys] = (seen, same)
                return
            self._counts.pop(keys, None)
            if len(self._layouts) >= MAX_LAYOUTS:
                return
            layout = self._compile(keys, same)
            if layout is None:
                return
            self._layouts[keys] = layout
            self._by_signature[key_signature(block)] = layout
        self._active = layout

    def _compile(self, keys: tuple[str, ...], known: dict[str, str]) -> Layout | None:
        """A layout giving what build_environ gives for these keys (None if there can't be one);
        ``known``: the values every block of the sequence carried while it was counted."""
        template = self.template
        if len(keys) > self.limits.max_vars or not template.keys().isdisjoint(keys):
            return None
        base = dict(template)
        base.update((k, v) for k, v in REQUIRED_DEFAULTS.items() if k not in keys)
        store = [
            k
            for k in keys
            if k not in _DROPPED
            and "." not in k
            and (k == SCHEME_VAR or not k.startswith("UWSGI_"))
        ]
        try:
            return Layout(keys, store=store, base=base, known=known)
        except ValueError:  # over the size limits
            return None


def parse_content_length(value: str | None, limit: int = 0) -> int:
    """The body length from ``CONTENT_LENGTH``: '' or absent → 0; else strict ASCII digits.

    Raises :class:`BadRequest` with 400 for anything but digits, 413 above ``limit`` (0 = none).
    """
    if not value:
        return 0
    if not (value.isascii() and value.isdigit()):
        # unquoted by repr: the log line shows it as the client wrote it (escaped there)
        raise BadRequest("400 Bad Request", f"invalid CONTENT_LENGTH '{value[:40]}'")
    if len(value) > 18:
        # int() refuses over 4300 digits with a ValueError; leading zeros are legal, but more
        # than 18 significant digits (an exabyte) can only be refused.
        value = value.lstrip("0") or "0"
        if len(value) > 18:
            raise BadRequest(
                "413 Request Entity Too Large", f"CONTENT_LENGTH of {len(value)} digits"
            )
    length = int(value)
    if limit and length > limit:
        raise BadRequest(
            "413 Request Entity Too Large", f"CONTENT_LENGTH {length} over limit-post {limit}"
        )
    return length
