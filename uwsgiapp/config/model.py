"""One typed, frozen configuration for ``uwsgiapp serve``, validated once.

CLI flags, ``UWSGIAPP_<OPTION>`` environment variables, ``--config`` TOML files and ``--ini``
uWSGI files only *fill* it (see :mod:`uwsgiapp.config.serve`); everything downstream reads a
:class:`Config`. Each field's metadata carries its help text; the option name is the field name
with ``_`` → ``-`` (``buffer_size`` → ``--buffer-size`` / ``UWSGIAPP_BUFFER_SIZE``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from uwsgiapp.config.cheaperopts import cheaper_problem
from uwsgiapp.config.netopts import allow_from_problem, socket_problem, stats_problem
from uwsgiapp.importer import AppImportError, parse_spec
from uwsgiapp.logfields import is_template
from uwsgiapp.logtargets import is_stream

ACCESS_LOG_FORMATS = ("off", "uwsgi", "json", "combined")
#: The access log's filters (uWSGI's log-4xx, log-5xx, log-slow, log-big): the requests to keep.
LOG_FILTERS = ("log_4xx", "log_5xx", "log_slow", "log_big")
ERROR_LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: The most request threads a worker may have (each is a "core" in the worker's status slot).
MAX_THREADS = 256
#: More worker processes than this is a typo (a 0 too many), not a plan: refused before forking.
MAX_WORKERS = 1024
#: A var is at least 5 bytes (two lengths and a one-byte name): a 65535-byte block holds fewer.
MAX_VARS = 13107
#: The largest --listen: what listen() takes (a C int); Linux caps the queue at
#: net.core.somaxconn (4096 by default), which start-up says.
MAX_LISTEN = (1 << 31) - 1
#: The most ``--post-buffering`` holds in memory per request: more is a typo (a unit too many).
MAX_POST_BUFFERING = 1 << 30


class ConfigError(ValueError):
    """A bad option value; the message names the option and where the value came from."""

    def __init__(self, option: str, message: str, source: str = "") -> None:
        self.option = option
        self.source = source
        self.message = message
        where = f" (from {source})" if source else ""
        super().__init__(f"--{option.replace('_', '-')}{where}: {message}")


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything ``uwsgiapp serve`` needs. Build it, then call :meth:`validate` (or use
    :func:`make_config`)."""

    app: str = _opt("", "the WSGI app: module:attr, module:factory(), or path/to/file.py:attr")
    chdir: str = _opt(
        "",
        "change to this directory first (relative socket, pidfile and log paths are taken "
        "from it) and load the app there",
    )
    pythonpath: tuple[str, ...] = _opt((), "extra directories put first on sys.path")
    env: tuple[str, ...] = _opt(
        (),
        "set NAME=VALUE in the environment before the app is loaded (repeatable; the sources "
        "add up, a higher-precedence one's value of a NAME wins; the env var takes one a line)",
        kind="pairs",
    )
    socket: tuple[str, ...] = _opt(
        ("127.0.0.1:3031",),
        "where to listen: a unix socket path, host:port, [v6]:port, or fd://N (inherited)",
    )
    chmod_socket: int = _opt(0o660, "mode of unix socket files (octal)")
    chown_socket: str = _opt(
        "",
        "give the unix socket files to USER[:GROUP] (names or ids) once bound, e.g. "
        "app:www-data so that nginx's group may connect (root, or your own user and a group "
        "you are in)",
    )
    uwsgi_allow_from: tuple[str, ...] = _opt(
        ("127.0.0.1", "::1"), "peers allowed on TCP sockets (IPs or CIDR networks; '*' = any)"
    )
    listen: int = _opt(1024, "listen backlog")
    buffer_size: int = _opt(
        65535,
        "max size of a request's vars block (every header nginx passes), bytes; 65535 is the "
        "most (uWSGI's default, 4096, fails long URLs and cookies with 502)",
    )
    max_vars: int = _opt(
        512,
        "max vars in a request's block: nginx sends one per param and per request header "
        "(uWSGI's max-vars)",
    )
    limit_post: int = _opt(0, "max request body size in bytes (0 = no limit)")
    post_buffering: int = _opt(
        0,
        "read every request body whole before the app is called (uWSGI's post-buffering): up "
        "to this many bytes in memory, a larger body in an unnamed temporary file; wsgi.input "
        "is then seekable, and may be read after the response has begun (0 = off: bodies "
        "over 64 KiB stream to the app as it reads, once)",
    )
    post_buffering_dir: str = _opt(
        "",
        "where --post-buffering puts bodies larger than its size (default: TMPDIR if a "
        "directory there can be written, else /tmp, /var/tmp, /usr/tmp; start-up says which); "
        "the files have no name and go when the request ends",
    )
    socket_timeout: float = _opt(10.0, "seconds a read from or write to a client may block")
    mount: str = _opt("", "SCRIPT_NAME prefix the app is mounted at (stripped from PATH_INFO)")
    access_log: str = _opt(
        "off",
        "access log format: off, uwsgi, json, combined (Apache's, gunicorn's default), or a "
        "uWSGI log-format template: '%(addr) %(method) %(uri) %(status) %(msecs)'",
    )
    access_log_file: str = _opt("-", "where access lines go ('-' = stdout)")
    log_4xx: bool = _opt(
        False,
        "log the requests answered 4xx; any of --log-4xx, --log-5xx, --log-slow, --log-big "
        "makes the access log keep only the requests they name (uWSGI's, with disable-logging)",
    )
    log_5xx: bool = _opt(False, "log the requests answered 5xx (see --log-4xx)")
    log_slow: int = _opt(0, "log the requests that took at least this many ms (0 = off)")
    log_big: int = _opt(0, "log the responses whose body has at least this many bytes (0 = off)")
    error_log_file: str = _opt("-", "where the error log goes ('-' = stderr)")
    error_log_format: str = _opt(
        "text",
        "error log format: text, or json (one object a line, a traceback or stack dump inside "
        "its record: what log collectors need to keep a multi-line message whole)",
    )
    log_level: str = _opt(
        "info",
        "the error log's least level: debug, info, warning, error or critical (gunicorn's "
        "--log-level; warning keeps the start, stop and worker lines out)",
    )
    capture_output: bool = _opt(
        False,
        "send the app's stdout and stderr (prints, tracebacks, its console logging) to "
        "--error-log-file too, as gunicorn's --capture-output; an ini's logto does it, as uWSGI's",
    )
    log_master: bool = _opt(
        False,
        "the master alone writes the log lines (uWSGI's log-master): each worker hands its "
        "error log, access log and stdout/stderr to it through pipes of its own, and a thread "
        "of the master writes them line by line, so that a line longer than a pipe's 4 KiB "
        "(a JSON record with a traceback) never mixes with another worker's",
    )
    workers: int = _opt(
        1,
        f"number of worker processes (1..{MAX_WORKERS}); WEB_CONCURRENCY, if set, is the default",
    )
    threads: int = _opt(
        1,
        "request threads per worker (uWSGI's threads, gunicorn's gthread): each worker serves "
        f"up to this many requests at once (1..{MAX_THREADS}); the app must be thread-safe",
    )
    cheaper: int = _opt(
        0,
        "adapt the worker count to the load (uWSGI's cheaper): run at least this many, at most "
        "--workers (0 = off: --workers run all the time)",
    )
    cheaper_initial: int = _opt(0, "workers at start with --cheaper (0 = --cheaper's number)")
    cheaper_step: int = _opt(1, "workers --cheaper starts at a time when more are needed")
    cheaper_overload: int = _opt(
        3, "seconds --cheaper's algorithm waits or measures (spare: all busy; backlog: queue size)"
    )
    cheaper_algo: str = _opt(
        "spare",
        "--cheaper's algorithm: spare (more when every worker is busy), backlog (by the listen "
        "queue) or busyness (by the share of time the workers are busy)",
    )
    cheaper_busyness_min: int = _opt(25, "busyness: under this % busy, a worker is stopped")
    cheaper_busyness_max: int = _opt(50, "busyness: over this % busy, workers are started")
    cheaper_busyness_multiplier: int = _opt(
        10, "busyness: a worker is stopped after --cheaper-overload x this many idle seconds"
    )
    cheaper_busyness_penalty: int = _opt(
        2, "busyness: added to the multiplier when workers come back soon after a stop"
    )
    cheaper_busyness_backlog_alert: int = _opt(
        33, "busyness: more connections waiting than this start emergency workers at once"
    )
    cheaper_busyness_backlog_step: int = _opt(1, "busyness: emergency workers started at a time")
    cheaper_busyness_backlog_multiplier: int = _opt(
        3, "busyness: the multiplier for stopping emergency workers"
    )
    cheaper_busyness_backlog_nonzero: int = _opt(
        60, "busyness: connections waiting this many seconds in a row start an emergency worker"
    )
    lazy_apps: bool = _opt(False, "load the app in each worker after fork, not once in the master")
    reload_preloaded: bool = _opt(
        True,
        "on HUP, re-import the preloaded app in the master so the new workers run new code "
        "(on an import error the old code keeps serving); --no-reload-preloaded: HUP only "
        "recycles the workers, with the code already loaded",
    )
    reload_check_timeout: float = _opt(
        60.0,
        "on HUP, before the master re-imports the preloaded app, a child process imports the "
        "new code for at most this many seconds: if it crashes, exits or is still importing "
        "then, the reload is called off and the old code serves on (0 = no such trial: the "
        "master imports the new code directly)",
    )
    harakiri: float = _opt(0.0, "kill a worker stuck in one request this many seconds (0 = off)")
    graceful_timeout: float = _opt(
        30.0, "seconds to finish in-flight requests on stop/reload (0: killed at once)"
    )
    max_requests: int = _opt(0, "recycle a worker after this many requests (0 = never)")
    max_requests_jitter: int = _opt(0, "add 0..N random requests to max-requests per worker")
    reload_on_rss: int = _opt(0, "recycle a worker whose RSS exceeds this many MB (0 = never)")
    max_worker_lifetime: float = _opt(
        0.0,
        "recycle a worker after it has run this many seconds (0 = never), one at a time, "
        "after its current request",
    )
    max_worker_lifetime_delta: float = _opt(
        0.0, "add (N - 1) times this many seconds to worker N's --max-worker-lifetime"
    )
    uid: str = _opt("", "drop to this user (name or id) after binding")
    gid: str = _opt("", "drop to this group (name or id) after binding")
    pidfile: str = _opt("", "write the master's pid to this file")
    touch_reload: tuple[str, ...] = _opt(
        (),
        "files whose change (touched, replaced, created, removed) reloads gracefully, as HUP "
        "(uWSGI's touch-reload); looked at once a second",
    )
    request_titles: bool = _opt(
        False,
        "show what each worker is doing in its process title ('busy GET /path', or 'idle'), "
        "looked at twice a second by a thread of the worker; ps shows the paths to every "
        "local user",
    )
    stats: str = _opt(
        "",
        "serve uWSGI's stats JSON here (a unix socket path or host:port; TCP peers: loopback "
        "and --stats-allow-from's); read it with 'uwsgiapp top' or uwsgitop",
    )
    stats_http: bool = _opt(
        False, "the stats address speaks HTTP: GET / is the JSON, GET /metrics Prometheus text"
    )
    stats_minified: bool = _opt(False, "write the stats JSON on one line")
    stats_allow_from: tuple[str, ...] = _opt(
        (),
        "peers allowed on a TCP --stats address (IPs or CIDR networks; '*' = any), loopback "
        "always; unset: --uwsgi-allow-from's (a Prometheus scraper that may not speak uwsgi)",
    )

    def validate(self) -> Config:
        """Check every value; raise :class:`ConfigError` naming the first bad option."""
        if (bad := socket_problem(self)) is not None:
            raise ConfigError(*bad)
        for name, low in (
            ("listen", 1),
            ("workers", 1),
            ("threads", 1),
            ("buffer_size", 1),
            ("max_vars", 1),
        ):
            if getattr(self, name) < low:
                raise ConfigError(name, f"must be >= {low}, got {getattr(self, name)}")
        if self.workers > MAX_WORKERS:
            raise ConfigError("workers", f"must be <= {MAX_WORKERS}, got {self.workers}")
        if self.threads > MAX_THREADS:
            raise ConfigError("threads", f"must be <= {MAX_THREADS}, got {self.threads}")
        if self.buffer_size > 65535:
            raise ConfigError("buffer_size", f"must be <= 65535, got {self.buffer_size}")
        if self.listen > MAX_LISTEN:  # listen() takes a C int: an OverflowError at the bind
            raise ConfigError("listen", f"must be <= {MAX_LISTEN}, got {self.listen}")
        if self.max_vars > MAX_VARS:  # more than a 65535-byte block can hold
            raise ConfigError("max_vars", f"must be <= {MAX_VARS}, got {self.max_vars}")
        if not 0 <= self.chmod_socket <= 0o777:
            raise ConfigError("chmod_socket", f"must be a mode 0..0o777, got {self.chmod_socket:o}")
        for name in (
            "limit_post",
            "max_requests",
            "max_requests_jitter",
            "reload_on_rss",
            "max_worker_lifetime",
            "max_worker_lifetime_delta",
            "harakiri",
            "graceful_timeout",
            "reload_check_timeout",
            "log_slow",
            "log_big",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)}")
        self._validate_post_buffering()
        if (bad := cheaper_problem(self, _DEFAULTS)) is not None:
            raise ConfigError(*bad)
        self._validate_capture_output()
        if self.socket_timeout <= 0:
            raise ConfigError("socket_timeout", f"must be > 0, got {self.socket_timeout}")
        self._validate_choices()
        if (bad := allow_from_problem(self) or stats_problem(self)) is not None:
            raise ConfigError(*bad)
        self._validate_app()
        return self

    def _validate_choices(self) -> None:
        for name, choices in (
            ("log_level", LOG_LEVELS),
            ("error_log_format", ERROR_LOG_FORMATS),
            ("access_log", ACCESS_LOG_FORMATS),
        ):
            got = getattr(self, name)
            if name == "access_log" and is_template(got):  # uWSGI's log-format
                continue
            if (got.lower() if name == "log_level" else got) not in choices:  # gunicorn's WARNING
                template = ", or a uWSGI log-format template (%(name) fields)"
                what = ", ".join(choices) + (template if name == "access_log" else "")
                raise ConfigError(name, f"must be one of {what}, got {got!r}")

    def _validate_app(self) -> None:
        for index, item in enumerate(self.env, 1):
            name, eq, _ = item.partition("=")
            # The values are secrets (a key, a password): an error names the item, never them.
            if not eq or not name or "\0" in item:
                what = "no '='" if not eq else "no name" if not name else f"{name!r} with a NUL"
                where = f"item {index} of {len(self.env)}: " if len(self.env) > 1 else ""
                raise ConfigError(
                    "env", f"expected NAME=VALUE, got {where}{what} (values not shown)"
                )
            if name.split() != [name]:  # "  B=2" or "export A=1": no process reads that name
                raise ConfigError(
                    "env", f"a name holds a space: {name!r} (no 'export ', no indentation)"
                )
        if self.app:
            try:  # the spec's form now, before any socket is bound (the import comes later)
                parse_spec(self.app)
            except AppImportError as exc:
                raise ConfigError("app", str(exc)) from None
        if self.mount and (
            not self.mount.startswith("/") or self.mount.endswith("/") or "=" in self.mount
        ):
            raise ConfigError(
                "mount",
                f"must start with '/' and not end with '/' (a '/point=app' names the app only"
                f" on the command line, in UWSGIAPP_MOUNT and in an ini), got {self.mount!r}",
            )

    def _validate_capture_output(self) -> None:
        if self.capture_output and is_stream(self.error_log_file):
            raise ConfigError(
                "capture_output",
                f"needs --error-log-file FILE: with {self.error_log_file!r}, the process's own "
                "stream, the app's output goes there already; drop --capture-output (gunicorn "
                "ignores it with errorlog '-')",
            )

    def _validate_post_buffering(self) -> None:
        if not 0 <= self.post_buffering <= MAX_POST_BUFFERING:
            raise ConfigError(
                "post_buffering",
                f"must be 0 (off) .. {MAX_POST_BUFFERING} bytes, got {self.post_buffering}",
            )
        if self.post_buffering_dir and not self.post_buffering:
            raise ConfigError("post_buffering_dir", "needs --post-buffering N")

    def env_vars(self) -> dict[str, str]:
        """:attr:`env` as a mapping (a NAME given twice: the later value)."""
        return {name: value for name, _, value in (item.partition("=") for item in self.env)}


_DEFAULTS = Config()


def make_config(**values: Any) -> Config:
    """Build and validate a :class:`Config` from keyword values (for code and tests)."""
    return Config(**values).validate()


def option_fields() -> tuple[dataclasses.Field[Any], ...]:
    """The Config fields, in declaration order (what the CLI and docs enumerate)."""
    return dataclasses.fields(Config)
