"""``uwsgiapp dev``: the werkzeug development server with reloader and debugger.

For local work only: plain HTTP, one process, code reloaded when a file changes. The interactive
debugger executes arbitrary Python typed into the browser, so it is only ever bound to a loopback
address unless the user explicitly allows otherwise.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import signal
import socket
import sys
import traceback
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from uwsgiapp.devenv import follow_watcher, read_dotenv
from uwsgiapp.devlogs import error_lines, plain_logs_unless_terminal, uwsgi_sent_here
from uwsgiapp.hooks import PostforkError, run_postfork
from uwsgiapp.importer import AppImportError, load_app, parse_spec
from uwsgiapp.wsgi.contract import StartResponse, WSGIApp

__all__ = [
    "DevOptions",
    "DevServerError",
    "bounded_input",
    "check_bind",
    "enable_debug",
    "is_loopback",
    "run_dev",
]


class DevServerError(Exception):
    """The dev server refuses to start with these options."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DevOptions:
    """What ``uwsgiapp dev`` was asked to do."""

    app: str
    host: str = "127.0.0.1"
    port: int = 5000
    reload: bool = True
    debugger: bool = True
    allow_remote_debugger: bool = False
    extra_files: tuple[str, ...] = ()
    chdir: str = ""
    pythonpath: tuple[str, ...] = ()
    reload_interval: float = 1.0
    #: (URL prefix, directory) pairs served as files, as nginx's ``location`` (uWSGI's
    #: static-map), ahead of the app.
    static_map: tuple[tuple[str, str], ...] = ()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP or a name) only reaches this machine."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host == "localhost":
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def check_options(options: DevOptions) -> None:
    """Refuse unsafe or impossible options before anything is started."""
    try:  # a malformed spec fails now, not in the reloader's child; a bad option, as in serve
        parse_spec(options.app)
    except AppImportError as exc:
        raise DevServerError(str(exc)) from None
    if not 0 <= options.port <= 65535:
        raise DevServerError(f"--port must be in 0..65535, got {options.port}")
    if not 0 < options.reload_interval < 3600:  # werkzeug's is a float too; 0 would spin
        raise DevServerError(
            f"--reload-interval must be over 0 and under 3600 s, got {options.reload_interval:g}"
        )
    _check_host(options.host)
    for prefix, directory in options.static_map:
        if not prefix.startswith("/") or not directory:
            raise DevServerError(
                f"--static-map expects /URL-PREFIX=DIRECTORY (uWSGI's), got {prefix}={directory}"
            )
        if not os.path.exists(directory):
            where = "" if os.path.isabs(directory) else f" in {os.getcwd()}, where dev started"
            raise DevServerError(
                f"--static-map {prefix}={directory}: no such directory or file{where}"
            )
    if options.debugger and not options.allow_remote_debugger and not is_loopback(options.host):
        raise DevServerError(
            f"refusing to serve the interactive debugger on {options.host}: anyone who can "
            "reach it can run code on this machine. Use a loopback host, --no-debugger, or "
            "--allow-remote-debugger if you really mean it"
        )


def _check_host(host: str) -> None:
    """A host name that does not resolve is said as such (it was refused the debugger, or
    "cannot serve on" it with a hint about the port)."""
    name = host
    if not name or host.startswith("unix://"):
        return
    if host.startswith("[") and host.endswith("]"):  # werkzeug's bind takes it bare
        raise DevServerError(
            f"--host {host}: give the address without brackets: --host {host[1:-1]}"
        )
    try:
        ipaddress.ip_address(name)
        return
    except ValueError:
        pass
    base, _, port = host.rpartition(":")
    if base and port.isdigit():
        raise DevServerError(f"--host {host}: give the port apart: --host {base} --port {port}")
    try:
        socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise DevServerError(
            f"--host {host}: cannot resolve it ({exc.strerror or exc}); give an address "
            "(127.0.0.1, 0.0.0.0) or a name this machine resolves"
        ) from None


def check_bind(host: str, port: int) -> None:
    """Raise ``OSError`` if werkzeug could not listen on ``host:port`` (e.g. the port is in use).

    werkzeug says so itself but then exits 1 ("internal error" in our exit codes), so the
    address is tried first, the way werkzeug binds it, and released at once.
    """
    from werkzeug.serving import get_sockaddr, select_address_family

    if port == 0 or host.startswith("unix://"):
        return  # any free port will do; a unix socket's leftover file werkzeug replaces
    family = select_address_family(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug's server
        probe.bind(get_sockaddr(host, port, family))


def check_app_found(spec: str, chdir: str, pythonpath: list[str]) -> None:
    """Raise :class:`AppImportError` where the reloader could never load the app: a ``--chdir``
    that is not there, an app file or a top-level module found nowhere. Served as an error
    page, a save was to reload it, but werkzeug's reloader watches no file created later
    (``flask run`` stops there too). What exists but fails (a syntax error) a save mends."""
    base = chdir or os.getcwd()
    if not os.path.isdir(base):
        raise AppImportError(f"cannot change directory to {chdir!r}: no such directory")
    parsed = parse_spec(spec)
    if parsed.path:
        if not os.path.isfile(os.path.join(base, parsed.path)):
            full = os.path.join(base, parsed.path)
            raise AppImportError(f"No module named {parsed.path!r}: file not found ({full})")
        return
    top = parsed.module.partition(".")[0]
    if top in sys.modules:
        return
    saved = sys.path[:]
    sys.path[:0] = [*pythonpath, base]  # every finder asked: an editable install's too
    try:
        found = importlib.util.find_spec(top)  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        found = None
    finally:
        sys.path[:] = saved
    if found is None:
        raise AppImportError(
            f"No module named {top!r} in {base} (the working directory, or --chdir), on "
            "--pythonpath or the Python path"
        )


def _app_source(spec: str) -> str:
    """The file defining the app's module, found without importing it ("" if unknown)."""
    parsed = parse_spec(spec)
    if parsed.path:
        return os.path.abspath(parsed.path)
    try:
        found = importlib.util.find_spec(parsed.module)
    except (ImportError, ValueError):
        return ""
    origin = found.origin if found is not None else None
    return origin if origin and os.path.isfile(origin) else ""


def bounded_input(app: WSGIApp, *, debugger: bool = True) -> WSGIApp:
    """``app`` with a ``wsgi.input`` that ends at ``CONTENT_LENGTH``, a ``wsgi.file_wrapper``,
    and its responses held to serve's rules (:func:`uwsgiapp.devcheck.as_served`).

    werkzeug's server hands the app the connection itself for a body with a Content-Length
    (it bounds only chunked bodies, which it marks ``wsgi.input_terminated``): a plain WSGI
    app's ``read()``, or ``read(n)`` past the body, would wait for bytes the client never
    sends. No Content-Length is an empty body, as under ``serve``. A response ``serve``
    refuses raises (where the ``debugger`` shows it), or gets serve's 500 without it.
    """
    from werkzeug.wsgi import LimitedStream

    from uwsgiapp.devcheck import as_served
    from uwsgiapp.wsgi.response import FileWrapper

    served = as_served(app, debugger=debugger)

    def bounded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("wsgi.input_terminated"):
            try:
                length = max(int(environ.get("CONTENT_LENGTH") or 0), 0)
            except ValueError:
                length = 0
            environ["wsgi.input"] = LimitedStream(environ["wsgi.input"], length)
        environ["wsgi.file_wrapper"] = FileWrapper
        return served(environ, start_response)

    return bounded


def _error_app(message: str, *, details: bool) -> WSGIApp:
    """The app served while the real one cannot be loaded: a plain 500, with ``message`` (its
    traceback: paths, source lines, a connection string) only where ``details`` (a loopback
    host: on another, any client that reaches it would read them, as Flask shows none)."""
    body = (
        "uwsgiapp dev: the app could not be loaded; fix it and save, the server reloads.\n\n"
        + (message if details else "(the error is in the server's terminal)")
        + "\n"
    ).encode()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


def enable_debug(app: object, *, debugger: bool = True) -> str:
    """Put a Flask-style app (Flask's or :mod:`uwsgiapp.web`'s) in debug mode, as ``flask run
    --debug`` does, so that an exception in a view propagates to werkzeug's debugger instead of
    becoming the framework's own plain 500 page. Other WSGI apps are left alone.

    Returns the line to tell the user ("" for an app that is not Flask-style).
    """
    config = getattr(app, "config", None)
    if (
        not isinstance(config, MutableMapping)
        or "PROPAGATE_EXCEPTIONS" not in config
        or not isinstance(getattr(type(app), "debug", None), property)
    ):
        return ""
    app.debug = True  # type: ignore[attr-defined]
    if not debugger:
        return "uwsgiapp dev: app.debug = True: an error in a view prints its traceback here"
    if config["PROPAGATE_EXCEPTIONS"] is False:
        return (
            "uwsgiapp dev: warning: the app sets PROPAGATE_EXCEPTIONS = False, so its errors "
            "give its own 500 page, not the debugger"
        )
    return "uwsgiapp dev: app.debug = True: an error in a view opens the debugger"


def static_ahead(app: WSGIApp, static: dict[str, str]) -> WSGIApp:
    """``app`` behind ``static``'s directories (or single files), each at its URL prefix, as
    uWSGI's static-map: a file that is there is served, anything else goes to the app (a
    ``/`` map hid every route of the app behind 404s)."""
    if not static:
        return app
    from werkzeug.middleware.shared_data import SharedDataMiddleware

    return SharedDataMiddleware(app, static)


def _placeholder_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # The reloader's watcher process never serves; its children load the real app.
    raise RuntimeError("the reloader process does not serve requests")


def run_dev(options: DevOptions) -> int:
    """Serve ``options.app`` with werkzeug until interrupted; return the exit code.

    Raises :class:`DevServerError` or :class:`~uwsgiapp.importer.AppImportError` for options
    or apps that cannot work (with the reloader on, import errors are shown in the browser
    instead, and the app's file is watched so saving a fix reloads).
    """
    from werkzeug.serving import is_running_from_reloader

    check_options(options)
    if not follow_watcher(serving=is_running_from_reloader()):
        return 0
    read_dotenv(said=not is_running_from_reloader())
    if not is_running_from_reloader():  # the reloader's child serves the socket it inherits
        for path in (p for p in options.extra_files if not os.path.exists(p)):
            print(f"uwsgiapp dev: warning: --extra-files {path}: no such file", file=sys.stderr)
        check_bind(options.host, options.port)
    plain_logs_unless_terminal()
    uwsgi_sent_here()
    error_lines()
    extra = [os.path.abspath(p) for p in options.extra_files]
    static = {prefix: os.path.abspath(d) for prefix, d in options.static_map}  # before --chdir
    chdir = os.path.abspath(options.chdir) if options.chdir else ""
    pythonpath = [os.path.abspath(p) for p in options.pythonpath]
    app: WSGIApp
    # As `flask run --debug` (--no-debugger too, where the debugger could be: not on a host
    # others reach, where debug mode shows them what an extension shows in it, the config):
    # the app is made in debug mode (its logger, its templates reloaded).
    debug = options.debugger or options.allow_remote_debugger or is_loopback(options.host)
    if debug:
        os.environ["FLASK_DEBUG"] = "1"
    if options.reload and not is_running_from_reloader():
        # Only the children the reloader spawns import the app (once each, not twice).
        check_app_found(options.app, chdir, pythonpath)
        app = _placeholder_app
    else:
        try:
            app = load_app(options.app, chdir=chdir, pythonpath=pythonpath, as_flask_run=True)
            run_postfork()  # as in each worker of 'serve': the app's per-process set-up
        except (AppImportError, PostforkError) as exc:
            if isinstance(exc, PostforkError) and exc.__cause__ is not None:
                traceback.print_exception(exc.__cause__, file=sys.stderr)
            if not options.reload:
                raise
            print(f"uwsgiapp dev: error: {exc}", file=sys.stderr, flush=True)
            app = _error_app(str(exc), details=is_loopback(options.host))
        else:
            said = enable_debug(app, debugger=options.debugger) if debug else ""
            if said:
                print(said, file=sys.stderr, flush=True)
        source = _app_source(options.app)
        if source:
            extra.append(source)
    return _run(options, static_ahead(bounded_input(app, debugger=options.debugger), static), extra)


def _run(options: DevOptions, app: WSGIApp, extra: list[str]) -> int:
    """werkzeug's server, until it ends; the exit code (a serving process killed by signal N,
    which the reloader gives as -N: 128 + N, as the shell says it, where it was 256 - N)."""
    from werkzeug.serving import run_simple

    try:
        run_simple(
            options.host,
            options.port,
            app,
            use_reloader=options.reload,
            use_debugger=options.debugger,
            use_evalex=options.debugger,
            extra_files=extra,
            # Its reloaders take a float (ReloaderLoop: int | float); run_simple's hint: int.
            reloader_interval=options.reload_interval,  # type: ignore[arg-type]
            threaded=True,
        )
    except SystemExit as exc:
        if isinstance(exc.code, int) and exc.code < 0:
            name = signal.Signals(-exc.code).name if -exc.code in _SIGNALS else str(-exc.code)
            print(f"uwsgiapp dev: the serving process was killed by {name}", file=sys.stderr)
            return 128 - exc.code
        raise
    return 0


_SIGNALS = frozenset(signal.Signals)
