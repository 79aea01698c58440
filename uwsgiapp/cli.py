"""Command line entry point (``uwsgiapp`` and ``python -m uwsgiapp``).

Commands: ``serve`` (production, the prefork supervisor), ``dev`` (werkzeug dev server),
``request`` and ``ping`` (a uwsgi client for debugging and health checks).

Exit codes come from the tables in :mod:`uwsgiapp.exitcodes`, as does every help text's
"exit status" part; ``dev`` uses serve's (listed below, from the same tables).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from uwsgiapp.buildinfo import VersionAction
from uwsgiapp.clihints import SERVE_EXAMPLES, HintingParser
from uwsgiapp.entry import restore_defaults
from uwsgiapp.exitcodes import COMMAND_EXIT_CODES, DEV_EXIT_TEXT, ClientExit, ServeExit, help_text
from uwsgiapp.lazycommands import declare_lazy_commands

if TYPE_CHECKING:
    from uwsgiapp.config import Config

# The client commands' codes under their old names (``serve`` and ``dev`` use ServeExit; the
# commands themselves, in uwsgiapp.clientcli, use ClientExit).
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


def _wrap(text: str) -> str:
    """``text`` wrapped for a raw (unwrapped) help epilog."""
    return textwrap.fill(text, width=min(shutil.get_terminal_size().columns, 100) - 2)


def _fail(command: str, message: str, code: int) -> int:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return code


# --- serve ---------------------------------------------------------------------------------


def _add_serve(sub: argparse._SubParsersAction[HintingParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the app over the uwsgi protocol (production, behind nginx)",
        description=_wrap(
            "Serve APP over nginx's uwsgi protocol with a prefork master. Every option can also "
            "come from a UWSGIAPP_<OPTION> environment variable, a --config TOML file "
            "(top-level keys, [uwsgiapp], or [tool.uwsgiapp] in pyproject.toml) or a uWSGI "
            "--ini file. Precedence: command line > environment > --config > --ini > "
            "UWSGIAPP_DEFAULT_<OPTION> (an image's defaults) > defaults."
        )
        + "\n\nexamples:\n"
        + SERVE_EXAMPLES,
        epilog=_wrap(
            "Lists take repeated flags or comma-separated values (--env: repeated only, a value "
            "may hold commas); booleans take --x / --no-x "
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
        action=_OnlyOnce,
        metavar="FILE.ini[:SECTION]",
        help="read options from a uWSGI ini file (section default: uwsgi)",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration and where each value came from, then exit",
    )
    p.add_argument(
        "--check-config",
        action="store_true",
        help="check the options, the logs, sockets and pidfile (read-only, as start-up would) and "
        "import the app as a worker would (--chdir, --pythonpath, --env; as the --uid user when "
        "root); exit 0 if it loads, 4 if not, 2 for a bad option, 3 for a path or --uid/--gid",
    )
    _add_config_options(p)
    p.set_defaults(handler=_cmd_serve)


class _OnlyOnce(argparse.Action):
    """A file option given twice is a usage error: argparse would keep the last one silently,
    where uWSGI reads both ``--ini`` files."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        before = getattr(namespace, self.dest, None)
        if before is not None:
            parser.error(
                f"{option_string} is given twice ({before}, then {values}): uwsgiapp reads one"
                " ini file; merge the options into one file"
            )
        setattr(namespace, self.dest, values)


def _add_config_options(p: argparse.ArgumentParser) -> None:
    """One flag per option of :mod:`uwsgiapp.config`; unset ones stay None for other sources."""
    from uwsgiapp.config.configload import option_specs
    from uwsgiapp.config.printconfig import format_value

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


def _warn(warning: str, fmt: str) -> None:
    """A start-up warning, printed before the error log exists: as its records will be."""
    if fmt != "json":
        print(f"{PROG} serve: warning: {warning}", file=sys.stderr)
        return
    from uwsgiapp.server.logformat import JsonErrorFormatter

    fields = {"name": "uwsgiapp.config", "levelname": "WARNING", "levelno": 30, "msg": warning}
    print(JsonErrorFormatter().format(logging.makeLogRecord(fields)), file=sys.stderr)


def _files_from_here(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with its --config and --ini files made absolute from the current directory."""
    again = argparse.Namespace(**vars(args))
    if again.config:
        again.config = os.path.abspath(again.config)
    if again.ini:
        from uwsgiapp.config.inifile import split_ini_arg

        path, section = split_ini_arg(again.ini)
        again.ini = f"{os.path.abspath(path)}:{section}"
    return again


def _cmd_serve(args: argparse.Namespace) -> int:
    from uwsgiapp.config import ConfigError
    from uwsgiapp.config.printconfig import format_config
    from uwsgiapp.config.serve import resolve_serve_config

    found: list[str] = []
    fixed: dict[str, str] = {}  # %t, %v, ... as at the start, for a HUP's reading
    try:
        resolved = resolve_serve_config(args, warnings=found, fixed=fixed)
    except ConfigError as exc:
        for warning in found:  # often the cause: "$(X) is not set" before "got ''"
            print(f"{PROG} serve: warning: {warning}", file=sys.stderr)
        return _fail("serve", str(exc), ServeExit.USAGE)
    for warning in resolved.warnings:
        _warn(warning, resolved.config.error_log_format)
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
    environ = dict(os.environ)  # what a HUP reads the options from again, with the files
    # The app is loaded after this, in this process (or in workers forked from it).
    os.environ.update(resolved.config.env_vars())
    if args.check_config:
        return _check_app(resolved.config)
    try:
        from uwsgiapp.supervisor import options, serve
    except ImportError as exc:
        return _fail("serve", f"the server is not available: {exc}", ServeExit.INTERNAL)
    again = _files_from_here(args)  # a HUP reads them after the master entered --chdir
    reread = lambda: resolve_serve_config(again, environ=environ, fixed=fixed).config  # noqa: E731
    options.watch(resolved.config, reread, environ)
    code: int = serve(resolved.config)
    return code


def _check_app(config: Config) -> int:
    """``--check-config`` (:mod:`uwsgiapp.supervisor.check`)."""
    from uwsgiapp.supervisor.check import check_app

    code, said = check_app(config, warn=lambda warning: _warn(warning, config.error_log_format))
    if code:
        return _fail("serve", said, code)
    print(f"{PROG} serve: {said}")
    return code


# --- dev -----------------------------------------------------------------------------------


def _split_list(values: Sequence[str]) -> tuple[str, ...]:
    """Repeated flags, each possibly a comma-separated list → one tuple."""
    return tuple(item.strip() for value in values for item in value.split(",") if item.strip())


def _add_dev(sub: argparse._SubParsersAction[HintingParser]) -> None:
    p = sub.add_parser(
        "dev",
        help="run the app with werkzeug's development server (reloader + debugger)",
        description=_wrap(
            "Serve APP over plain HTTP with werkzeug's development server: code is reloaded "
            "when a file changes and errors open the interactive debugger. For local work "
            "only; use 'uwsgiapp serve' behind nginx in production."
        ),
        epilog=_wrap(DEV_EXIT_TEXT),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "app",
        metavar="APP",
        nargs="?",
        help="module:attr, module:factory(), or file.py:attr (default: $FLASK_APP, as flask run)",
    )
    p.add_argument("--host", help="address to bind (default $FLASK_RUN_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to bind (default $FLASK_RUN_PORT, else 5000)")
    p.add_argument(
        "--no-reload", dest="reload", action="store_false", help="do not restart on code changes"
    )
    p.add_argument(
        "--no-debugger", dest="debugger", action="store_false", help="no interactive debugger"
    )
    p.add_argument(
        "--allow-remote-debugger",
        action="store_true",
        help="allow the debugger on a non-loopback host: its tracebacks and source for any "
        "client; its console (which runs code) only for a Host of localhost or 127.0.0.1",
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
        "--reload-interval", type=float, default=1.0, metavar="S", help="seconds between checks"
    )
    p.add_argument(
        "--static-map",
        action="append",
        default=[],
        metavar="/URL=DIR",
        help="serve DIR's files under /URL ahead of the app, as nginx's static location does "
        "in production (uWSGI's static-map; repeatable)",
    )
    p.set_defaults(handler=_cmd_dev)


def _cmd_dev(args: argparse.Namespace) -> int:
    from uwsgiapp.devenv import flask_run_target
    from uwsgiapp.devserver import DevOptions, DevServerError, run_dev
    from uwsgiapp.hooks import PostforkError
    from uwsgiapp.importer import AppImportError

    try:  # flask run's variables, .flaskenv's too
        app, args.host, args.port = flask_run_target(args.app, args.host, args.port)
    except ValueError as exc:
        return _fail("dev", str(exc), EXIT_USAGE)
    if not app:
        return _fail("dev", "the following arguments are required: APP (or FLASK_APP)", EXIT_USAGE)
    options = DevOptions(
        app=app,
        host=args.host,
        port=args.port,
        reload=args.reload,
        debugger=args.debugger,
        allow_remote_debugger=args.allow_remote_debugger,
        extra_files=_split_list(args.extra_files),
        chdir=args.chdir,
        pythonpath=_split_list(args.pythonpath),
        reload_interval=args.reload_interval,
        static_map=tuple(
            (prefix.rstrip("/") or "/", directory)
            for prefix, _, directory in (item.partition("=") for item in args.static_map)
        ),
    )
    try:
        return run_dev(options)
    except DevServerError as exc:
        return _fail("dev", str(exc), ServeExit.USAGE)
    except (AppImportError, PostforkError) as exc:  # only --no-reload: else shown in the page
        return _fail("dev", str(exc), ServeExit.APP_LOAD)
    except OSError as exc:
        taken = exc.errno == errno.EADDRINUSE
        hint = " (another program listens there: stop it, or pick another --port)" * taken
        said = f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}{hint}"
        return _fail("dev", said, ServeExit.START_FAILED)


# --- entry point --------------------------------------------------------------------------


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``uwsgiapp`` argument parser: all sub-commands in full, or only what parsing
    ``argv`` needs (:mod:`uwsgiapp.lazycommands`)."""
    parser = HintingParser(
        prog=PROG,
        description="Pure-Python application container for nginx's uwsgi protocol.",
        epilog=(
            "Run 'uwsgiapp COMMAND --help' for a command's options; 'uwsgiapp serve --help' "
            "lists every configuration option with its default and environment variable."
        ),
    )
    parser.add_argument("--version", action=VersionAction)  # says which build runs, too
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=HintingParser)
    _add_serve(sub)
    _add_dev(sub)
    declare_lazy_commands(sub, argv)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``uwsgiapp`` command line; return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # serve handles the stop signals from its first line; not its checks (a stopped check is no
    # pass, and a TERM in the import is no failure of the app's)
    if args.command != "serve" or args.check_config or args.print_config:
        restore_defaults()
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code
