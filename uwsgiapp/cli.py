"""Command line entry point (``uwsgiapp`` and ``python -m uwsgiapp``).

Commands: ``serve`` (production, the prefork supervisor), ``dev`` (werkzeug dev server),
``request`` and ``ping`` (a uwsgi client for debugging and health checks).

Exit codes come from the tables in :mod:`uwsgiapp.exitcodes`, as does every help text's
"exit status" part; ``dev`` uses serve's (listed below, from the same tables).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from uwsgiapp import __version__
from uwsgiapp.exitcodes import COMMAND_EXIT_CODES, ClientExit, ServeExit, help_text

# The client commands' codes under their old names (``serve`` and ``dev`` use ServeExit).
EXIT_OK = ClientExit.OK
EXIT_SERVER_ERROR = ClientExit.SERVER_ERROR
EXIT_USAGE = ClientExit.USAGE  # also ServeExit.USAGE: argparse's errors, for every command
EXIT_CONNECT = ClientExit.CONNECT
EXIT_BAD_RESPONSE = ClientExit.BAD_RESPONSE
EXIT_TIMEOUT = ClientExit.TIMEOUT
EXIT_TOO_LARGE = ClientExit.TOO_LARGE
EXIT_WRITE = ClientExit.WRITE_ERROR


def _exit_codes_doc() -> str:
    """The module docstring's list of exit codes, one section per table."""
    sections = []
    for table in dict.fromkeys(COMMAND_EXIT_CODES.values()):
        names = [name for name, codes in COMMAND_EXIT_CODES.items() if codes is table]
        if table is ServeExit:
            names.append("dev")
        lines = [f"* {code.value} — {code.description}" for code in table]
        sections.append(f"Exit codes of ``{'``, ``'.join(names)}``:\n\n" + "\n".join(lines))
    return "\n\n".join(sections) + "\n"


__doc__ = f"{__doc__}\n{_exit_codes_doc()}"

PROG = "uwsgiapp"


class _Parser(argparse.ArgumentParser):
    """argparse with our exit code for usage errors and no traceback; an argument a command
    does not know is an error in that command's usage (argparse would hand it up to the
    top-level parser, which printed the top-level usage for a mistyped ``serve`` option)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        namespace, extras = super().parse_known_args(*args, **kwargs)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def _wrap(text: str) -> str:
    """``text`` wrapped for a raw (unwrapped) help epilog."""
    return textwrap.fill(text, width=min(shutil.get_terminal_size().columns, 100) - 2)


def _fail(command: str, message: str, code: int) -> int:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return code


# --- request / ping -----------------------------------------------------------------------


def _add_request(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "request",
        help="send one uwsgi request to a socket and print the response",
        description=(
            "Send one request over the uwsgi protocol straight to a server socket (what nginx's "
            "uwsgi_pass would send) and print the response body (-i: with status and headers)."
        ),
        epilog=help_text(ClientExit, only="request"),
    )
    p.add_argument(
        "socket",
        metavar="SOCKET",
        help="the uwsgi socket (not a URL): unix socket path, unix:PATH, @abstract, host:port"
        " or [v6]:port",
    )
    p.add_argument("path", metavar="PATH", nargs="?", default="/", help="target, e.g. /a?b=1")
    p.add_argument(
        "-X", "--request", dest="method", metavar="METHOD", help="default GET (POST with -d)"
    )
    p.add_argument(
        "-H",
        "--header",
        dest="headers",
        metavar="'NAME: VALUE'",
        action="append",
        default=[],
        help="request header (repeatable); sent as HTTP_NAME, Content-Type as CONTENT_TYPE",
    )
    p.add_argument(
        "-d", "--data", metavar="DATA", help="request body; @FILE reads a file, @- stdin"
    )
    p.add_argument(
        "--var",
        dest="vars",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="set or override a raw uwsgi var (repeatable), e.g. --var HTTPS=on",
    )
    p.add_argument("--modifier1", type=int, default=0, metavar="N", help="default 0 (WSGI)")
    p.add_argument("--modifier2", type=int, default=0, metavar="N", help="default 0")
    p.add_argument("-i", "--include", action="store_true", help="print the status line and headers")
    p.add_argument(
        "-m",
        "--max-time",
        "--timeout",
        dest="timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="overall deadline in seconds for connecting, sending and reading the whole response,"
        " however slowly the server sends it (default 10)",
    )
    p.add_argument(
        "--max-response-size",
        "--max-filesize",
        dest="max_size",
        default="64M",
        metavar="SIZE",
        help="give up on a response (status line, headers and body) larger than SIZE bytes;"
        " K, M, G suffixes (default 64M)",
    )
    p.set_defaults(handler=_cmd_request)


def _read_data(spec: str) -> bytes:
    if spec == "@-":
        return sys.stdin.buffer.read()
    if spec.startswith("@"):
        with open(spec[1:], "rb") as fh:
            return fh.read()
    return spec.encode("utf-8")


def _cmd_request(args: argparse.Namespace) -> int:
    from uwsgiapp import client

    try:
        address = client.parse_address(args.socket)
    except ValueError as exc:
        return _fail("request", str(exc), EXIT_USAGE)
    if not 0 < args.timeout < float("inf"):
        return _fail(
            "request", f"bad --max-time {args.timeout:g} (expected seconds > 0)", EXIT_USAGE
        )
    try:
        max_size = client.parse_size(args.max_size)
    except ValueError as exc:
        return _fail("request", f"--max-response-size: {exc}", EXIT_USAGE)
    headers: list[tuple[str, str]] = []
    for text in args.headers:
        name, colon, value = text.partition(":")
        if not colon or not name.strip():
            return _fail("request", f"bad header {text!r} (expected 'Name: value')", EXIT_USAGE)
        headers.append((name.strip(), value.strip()))
    extra: list[tuple[str, str]] = []
    for text in args.vars:
        key, eq, value = text.partition("=")
        if not eq or not key:
            return _fail("request", f"bad var {text!r} (expected KEY=VALUE)", EXIT_USAGE)
        extra.append((key, value))
    body: bytes | None = None
    if args.data is not None:
        try:
            body = _read_data(args.data)
        except OSError as exc:
            return _fail("request", f"cannot read {args.data[1:]!r}: {exc.strerror}", EXIT_USAGE)
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    method = args.method or ("POST" if body is not None else "GET")
    try:
        with client.stream_request(
            address,
            args.path,
            method=method,
            headers=headers,
            body=body,
            modifier1=args.modifier1,
            modifier2=args.modifier2,
            extra=extra,
            timeout=args.timeout,
            max_size=max_size,
        ) as stream:
            response = stream.response
            _copy_out(stream, response.head if args.include else b"")
    except client.ConnectError as exc:
        return _fail("request", str(exc), EXIT_CONNECT)
    except client.ResponseTimeout as exc:
        return _fail("request", f"{exc}; --max-time allows longer", EXIT_TIMEOUT)
    except client.ResponseTooLarge as exc:
        return _fail("request", f"{exc}; --max-response-size allows more", EXIT_TOO_LARGE)
    except client.ResponseError as exc:
        return _fail("request", str(exc), EXIT_BAD_RESPONSE)
    except client.ClientError as exc:
        return _fail("request", str(exc), EXIT_USAGE)
    except BrokenPipeError:
        return _output_closed()
    except OSError as exc:  # only the output's: the client turns the socket's into ClientError
        return _fail("request", f"cannot write the response: {exc.strerror or exc}", EXIT_WRITE)
    if response.status >= 500:
        print(
            f"{PROG} request: server answered {response.status} {response.reason}",
            file=sys.stderr,
        )
        return EXIT_SERVER_ERROR
    return EXIT_OK


def _copy_out(chunks: Iterable[bytes], head: bytes) -> None:
    """Write ``head``, then each chunk of the body as it arrives (not the whole at the end)."""
    out = sys.stdout.buffer
    if head:
        out.write(head)
        out.flush()
    for chunk in chunks:
        out.write(chunk)
        out.flush()


def _output_closed() -> int:
    """Our reader stopped reading (``uwsgiapp request ... | head``): end quietly, as curl -s."""
    # Python flushes stdout once more at exit and would print a second BrokenPipeError.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_WRITE


def _add_ping(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "ping",
        help="uwsgi ping (modifier1 100): exit 0 if the server answers pong",
        description=(
            "Send a uwsgi ping (modifier1 100) and wait for the pong (64 00 00 01): a health "
            "check for Docker and load balancers."
        ),
        epilog=help_text(ClientExit, only="ping"),
    )
    p.add_argument(
        "socket",
        metavar="SOCKET",
        help="the uwsgi socket (not a URL): unix socket path, unix:PATH, @abstract, host:port"
        " or [v6]:port",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=3.0,
        metavar="S",
        help="overall deadline in seconds, connect included (default 3)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(handler=_cmd_ping)


def _cmd_ping(args: argparse.Namespace) -> int:
    from uwsgiapp import client

    try:
        address = client.parse_address(args.socket)
    except ValueError as exc:
        return _fail("ping", str(exc), EXIT_USAGE)
    if not 0 < args.timeout < float("inf"):
        return _fail("ping", f"bad --timeout {args.timeout:g} (expected seconds > 0)", EXIT_USAGE)
    try:
        result = client.ping(address, timeout=args.timeout)
    except client.ConnectError as exc:
        return _fail("ping", str(exc), EXIT_CONNECT)
    except client.ClientError as exc:
        return _fail("ping", str(exc), EXIT_BAD_RESPONSE)
    if not args.quiet:
        print(f"pong from {address} in {result.seconds * 1000:.1f} ms")
    return EXIT_OK


# --- serve ---------------------------------------------------------------------------------


def _add_serve(sub: argparse._SubParsersAction[_Parser]) -> None:
    from uwsgiapp.config.configload import format_value, option_specs

    p = sub.add_parser(
        "serve",
        help="serve the app over the uwsgi protocol (production, behind nginx)",
        description=(
            "Serve APP over nginx's uwsgi protocol with a prefork master. Every option can also "
            "come from a UWSGIAPP_<OPTION> environment variable, a --config TOML file "
            "(top-level keys, [uwsgiapp], or [tool.uwsgiapp] in pyproject.toml) or a uWSGI "
            "--ini file. Precedence: command line > environment > --config > --ini > defaults."
        ),
        epilog=_wrap(
            "Lists take repeated flags or comma-separated values; booleans take --x / --no-x "
            "(true/false, yes/no, on/off, 1/0 in env and files); modes are octal (660)."
        )
        + "\n\n"
        + _wrap(help_text(ServeExit)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "app_positional",
        metavar="APP",
        nargs="?",
        help="the WSGI app: module:attr, module:factory(), or path/to/file.py:attr (= --app)",
    )
    p.add_argument(
        "--config", metavar="FILE.toml", help="read options from a TOML file (or pyproject.toml)"
    )
    p.add_argument(
        "--ini",
        metavar="FILE.ini[:SECTION]",
        help="read options from a uWSGI ini file (section default: uwsgi)",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration and where each value came from, then exit",
    )
    group = p.add_argument_group("options (each also settable by env var and config files)")
    metavars = {
        "int": "N",
        "float": "SECONDS",
        "str": "VALUE",
        "list": "VALUE",
        "pairs": "NAME=VALUE",
    }
    for spec in option_specs():
        default = format_value(spec, spec.default)
        text = f"{spec.help} [default: {default}; env: {spec.env}]".replace("%", "%%")
        flag = f"--{spec.option}"
        if spec.kind == "bool":
            group.add_argument(
                flag, dest=spec.name, action=argparse.BooleanOptionalAction, help=text
            )
        elif spec.kind in ("list", "pairs"):
            group.add_argument(
                flag, dest=spec.name, action="append", metavar=metavars[spec.kind], help=text
            )
        else:
            metavar = "MODE" if spec.octal else metavars[spec.kind]
            group.add_argument(flag, dest=spec.name, metavar=metavar, help=text)
    p.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from uwsgiapp.config import ConfigError
    from uwsgiapp.config.configload import format_config
    from uwsgiapp.config.serve import resolve_serve_config

    try:
        resolved = resolve_serve_config(args)
    except ConfigError as exc:
        return _fail("serve", str(exc), ServeExit.USAGE)
    for warning in resolved.warnings:
        print(f"{PROG} serve: warning: {warning}", file=sys.stderr)
    if args.print_config:
        sys.stdout.write(format_config(resolved))
        return ServeExit.OK
    if not resolved.config.app:
        return _fail(
            "serve",
            "no app given: pass APP (module:attr), --app, UWSGIAPP_APP, a config file, "
            "or module / wsgi-file in the --ini file",
            ServeExit.USAGE,
        )
    # The app is loaded after this, in this process (or in workers forked from it).
    os.environ.update(resolved.config.env_vars())
    try:
        from uwsgiapp.supervisor import serve
    except ImportError as exc:
        return _fail("serve", f"the server is not available: {exc}", ServeExit.INTERNAL)
    code: int = serve(resolved.config)
    return code


# --- dev -----------------------------------------------------------------------------------


def _split_list(values: Sequence[str]) -> tuple[str, ...]:
    """Repeated flags, each possibly a comma-separated list → one tuple."""
    return tuple(item.strip() for value in values for item in value.split(",") if item.strip())


def _add_dev(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "dev",
        help="run the app with werkzeug's development server (reloader + debugger)",
        description=(
            "Serve APP over plain HTTP with werkzeug's development server: code is reloaded "
            "when a file changes and errors open the interactive debugger. For local work "
            "only; use 'uwsgiapp serve' behind nginx in production."
        ),
    )
    p.add_argument("app", metavar="APP", help="module:attr, module:factory(), or file.py:attr")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port to bind (default 5000)")
    p.add_argument(
        "--no-reload", dest="reload", action="store_false", help="do not restart on code changes"
    )
    p.add_argument(
        "--no-debugger", dest="debugger", action="store_false", help="no interactive debugger"
    )
    p.add_argument(
        "--allow-remote-debugger",
        action="store_true",
        help="allow the debugger (which runs code) on a non-loopback host",
    )
    p.add_argument(
        "--extra-files",
        action="append",
        default=[],
        metavar="FILE",
        help="more files to watch for reloading (repeatable or comma-separated)",
    )
    p.add_argument("--chdir", default="", help="change to this directory before loading the app")
    p.add_argument(
        "--pythonpath",
        action="append",
        default=[],
        metavar="DIR",
        help="put DIR first on sys.path (repeatable or comma-separated)",
    )
    p.add_argument(
        "--reload-interval", type=int, default=1, metavar="S", help="seconds between file checks"
    )
    p.set_defaults(handler=_cmd_dev)


def _cmd_dev(args: argparse.Namespace) -> int:
    from uwsgiapp.devserver import DevOptions, DevServerError, run_dev
    from uwsgiapp.importer import AppImportError

    options = DevOptions(
        app=args.app,
        host=args.host,
        port=args.port,
        reload=args.reload,
        debugger=args.debugger,
        allow_remote_debugger=args.allow_remote_debugger,
        extra_files=_split_list(args.extra_files),
        chdir=args.chdir,
        pythonpath=_split_list(args.pythonpath),
        reload_interval=max(1, args.reload_interval),
    )
    try:
        return run_dev(options)
    except DevServerError as exc:
        return _fail("dev", str(exc), ServeExit.USAGE)
    except AppImportError as exc:  # only with --no-reload: the reloader shows it in the page
        return _fail("dev", str(exc), ServeExit.APP_LOAD)
    except OSError as exc:
        return _fail(
            "dev", f"cannot serve on {args.host}:{args.port}: {exc}", ServeExit.START_FAILED
        )


# --- entry point --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The whole ``uwsgiapp`` argument parser (all sub-commands)."""
    parser = _Parser(
        prog=PROG,
        description="Pure-Python application container for nginx's uwsgi protocol.",
        epilog=(
            "Run 'uwsgiapp COMMAND --help' for a command's options; 'uwsgiapp serve --help' "
            "lists every configuration option with its default and environment variable."
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_serve(sub)
    _add_dev(sub)
    _add_request(sub)
    _add_ping(sub)
    from uwsgiapp.stats.top import add_parser as _add_top  # `top`: declared with its handler

    _add_top(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``uwsgiapp`` command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code
