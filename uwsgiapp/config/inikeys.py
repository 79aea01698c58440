"""The uWSGI ini keys :mod:`uwsgiapp.config.uwsgiini` knows: those mapped onto our options,
those whose behaviour is ours anyway, and what to say about the ones we do not have."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = [
    "ADVICE",
    "ADVICE_PREFIXES",
    "ALWAYS_ON",
    "APP_KEYS",
    "FIXED_VALUES",
    "HTTP_KEYS",
    "IDIOMS",
    "LOGGER_KEYS",
    "LOG_FORMAT_KEYS",
    "MAX_BUFFER",
    "MULTI",
    "PLUGIN_KEYS",
    "PYTHON_PLUGINS",
    "SIMPLE_KEYS",
    "USED_KEYS",
    "VENV_KEYS",
]

#: uWSGI key → Config field, for keys whose value carries over unchanged.
SIMPLE_KEYS: Mapping[str, str] = {
    "chdir": "chdir",
    "pythonpath": "pythonpath",
    "python-path": "pythonpath",
    "pp": "pythonpath",
    "socket": "socket",
    "uwsgi-socket": "socket",
    "s": "socket",
    "chmod-socket": "chmod_socket",
    "chmod": "chmod_socket",
    "chown-socket": "chown_socket",
    "processes": "workers",
    "workers": "workers",
    "p": "workers",
    "threads": "threads",
    "harakiri": "harakiri",
    "max-requests": "max_requests",
    "max-requests-delta": "max_requests_jitter",
    "reload-on-rss": "reload_on_rss",
    "max-worker-lifetime": "max_worker_lifetime",
    "max-worker-lifetime-delta": "max_worker_lifetime_delta",
    "buffer-size": "buffer_size",
    "b": "buffer_size",
    "max-vars": "max_vars",
    "limit-post": "limit_post",
    "post-buffering": "post_buffering",
    "listen": "listen",
    "l": "listen",
    "lazy-apps": "lazy_apps",
    # Kept only under disable-logging, where uWSGI reads them (inimap.request_log_filters).
    "log-4xx": "log_4xx",
    "log-5xx": "log_5xx",
    "log-slow": "log_slow",
    "log-big": "log_big",
    "log-master": "log_master",
    "lazy": "lazy_apps",
    "uid": "uid",
    "gid": "gid",
    # uWSGI's drop before the app is loaded: uwsgiapp's --uid/--gid drop there already
    "immediate-uid": "uid",
    "immediate-gid": "gid",
    "pidfile": "pidfile",
    # Written after the privileges drop (pidfile2) or atomically (safe-): uwsgiapp's one
    # pidfile is both (replaced by a rename, and never followed as root).
    "pidfile2": "pidfile",
    "safe-pidfile": "pidfile",
    "safe-pidfile2": "pidfile",
    "socket-timeout": "socket_timeout",
    "reload-mercy": "graceful_timeout",
    "worker-reload-mercy": "graceful_timeout",
    "z": "socket_timeout",
    "logto": "error_log_file",
    "logto2": "error_log_file",  # opened after the drop: uwsgiapp hands its logs over anyway
    "env": "env",
    "stats": "stats",
    "stats-server": "stats",
    "stats-http": "stats_http",
    "stats-minified": "stats_minified",
    "touch-reload": "touch_reload",
    # uWSGI's chain reload replaces the workers one at a time so that some always serve: a
    # HUP here starts the new workers before the old ones stop, which serves the same end.
    "touch-chain-reload": "touch_reload",
    # The cheaper subsystem (adaptive worker count): processes is then the most.
    **{
        key: key.replace("-", "_")
        for key in (
            "cheaper",
            "cheaper-initial",
            "cheaper-step",
            "cheaper-overload",
            "cheaper-algo",
            "cheaper-busyness-min",
            "cheaper-busyness-max",
            "cheaper-busyness-multiplier",
            "cheaper-busyness-penalty",
            "cheaper-busyness-backlog-alert",
            "cheaper-busyness-backlog-step",
            "cheaper-busyness-backlog-multiplier",
            "cheaper-busyness-backlog-nonzero",
        )
    },
}
#: The largest buffer-size (a uwsgi packet's size field is 16 bits); uWSGI caps larger ones.
MAX_BUFFER: Final = 65535
#: Config fields that accept several values (repeated keys accumulate).
MULTI = frozenset({"pythonpath", "socket", "env", "touch_reload"})
#: Keys that build the app spec, the mount, the environment, or define placeholders.
APP_KEYS = frozenset({"module", "wsgi", "w", "wsgi-file", "file", "callable", "mount"})
_FORKS = (
    "uwsgiapp forks with os.fork: the app's os.register_at_fork hooks and its signal handlers "
    "run in the workers"
)
#: Boolean keys whose true value is what uwsgiapp always does: accepted without a word.
#: A false value cannot be honoured and gets a warning (the text says what happens instead).
ALWAYS_ON: Mapping[str, str] = {
    "master": "uwsgiapp always runs a master process",
    "vacuum": "uwsgiapp removes the unix sockets and pidfile it created at exit (start-up "
    "warns if the user it runs as will not be able to)",
    "die-on-term": "SIGTERM always stops gracefully in uwsgiapp",
    "manage-script-name": "uwsgiapp always strips the mount point into SCRIPT_NAME",
    "need-app": "uwsgiapp always refuses to start without an app",
    "enable-threads": "threads started by the app always run in uwsgiapp (and --threads "
    "runs request threads)",
    "single-interpreter": "uwsgiapp always has one interpreter per process",
    "thunder-lock": "uwsgiapp serializes accept() its own way",
    "auto-procname": "uwsgiapp always names its processes (master, worker N; "
    "--request-titles adds each worker's request)",
    "harakiri-verbose": "uwsgiapp's harakiri always logs the request and its Python stack",
    "log-reopen": "SIGUSR1 always reopens uwsgiapp's logs, and so does a HUP's reload",
    "ignore-sigpipe": "a client gone never ends a uwsgiapp process (Python ignores SIGPIPE)",
    "ignore-write-errors": "a client gone mid-response is one info line in uwsgiapp's log, "
    "not an error",
    "disable-write-exception": "a client gone mid-response never raises an exception into "
    "the app in uwsgiapp",
    "no-orphans": "a uwsgiapp worker whose master is gone finishes its request and exits",
    "close-on-exec": "uwsgiapp's sockets and files are not inherited by programs the app runs "
    "(Python opens them non-inheritable)",
    "py-call-osafterfork": _FORKS,
    "py-call-uwsgi-fork-hooks": _FORKS,
    "py-callos-afterfork": _FORKS,  # the spelling of Bloomberg's much-copied production ini
}
#: A key whose value here is an idiom for what uwsgiapp always does: accepted without a word
#: (with another value the key is unsupported).
IDIOMS: Mapping[str, str] = {
    # Docker images' "graceful stop on TERM" (uWSGI 2.0 reloads on TERM without it)
    "hook-master-start": "unix_signal:15 gracefully_kill_them_all",
}
#: uWSGI's loggers that uwsgiapp has, in their ``file:PATH`` form: key → option.
LOGGER_KEYS: Mapping[str, str] = {
    "logger": "error_log_file",
    **dict.fromkeys(("req-logger", "logger-req"), "access_log_file"),  # uWSGI's alias
}
#: Keys with the one value uwsgiapp has: accepted without a word; another value stops the
#: start, saying why it cannot be honoured (``protocol = http``: the sockets would speak uwsgi
#: where the ini's clients speak HTTP, and every request would fail).
_UWSGI_ONLY = (
    "uwsgi",
    "uwsgiapp speaks only nginx's uwsgi protocol: put nginx (uwsgi_pass) in front and "
    "remove the line, or run 'uwsgiapp dev APP' for local HTTP",
)
FIXED_VALUES: Mapping[str, tuple[str, str]] = {
    "protocol": _UWSGI_ONLY,
    "socket-protocol": _UWSGI_ONLY,  # uWSGI's name for the same option
}
#: uWSGI daemonizes and logs to the file named; uwsgiapp stays in the foreground, but takes
#: the file as its error log (uWSGI's ``daemonize = FILE`` implies ``logto = FILE``).
DAEMONIZE_KEYS = frozenset({"daemonize", "daemonize2"})
#: Keys read as a whole elsewhere (``strict``: both values are honoured, see uwsgiini).
MODE_KEYS = frozenset({"strict"})
#: uWSGI's access-line template: its %(status)… are fields, not placeholders (uwsgiini).
LOG_FORMAT_KEYS = frozenset({"log-format", "logformat"})
#: Keys that load uWSGI plugins (Python's are implicit; others are reported).
PLUGIN_KEYS = frozenset({"plugins", "plugin", "plugins-list"})
#: Keys whose values are read (and so expanded); any other key is ignored with a warning.
USED_KEYS = frozenset(
    {
        *SIMPLE_KEYS,
        *APP_KEYS,
        *ALWAYS_ON,
        *FIXED_VALUES,
        *PLUGIN_KEYS,
        *LOGGER_KEYS,
        *DAEMONIZE_KEYS,
        *MODE_KEYS,
        "disable-logging",
        "L",
        "shared-socket",
    }
)
#: Plugins that mean "Python WSGI", or whose work is built in here (the busyness algorithm,
#: logfile's ``logger = file:PATH``): loading them is implicit.
PYTHON_PLUGINS = frozenset({"python", "python3", "python2", "python3.x", "cheaper_busyness"})
PYTHON_PLUGINS |= {"logfile"}
_HUP = "send SIGHUP to the master (its pid in --pidfile) to reload, e.g. from the deploy script"
_REQ_LOGGER = "only 'req-logger = file:PATH' is taken (the access log's file)"
_STATIC = (
    "serve static files from nginx: location /static/ { alias /path/; } (uwsgiapp dev "
    "--static-map /static=DIR does it for local work)"
)
_REQUEST_LOG = (
    "uwsgiapp's access log keeps every request, or those of log-4xx, log-5xx, log-slow and "
    "log-big (under disable-logging); nginx's access_log with if= can keep others"
)
_LOOP = (
    "no async loop engine here: each worker serves one request at a time, or --threads N at "
    "once (the app must then be thread-safe); size --workers x --threads for the concurrent "
    "requests you need"
)
_OWN_PROCESS = (
    "THIS WILL NOT RUN: uwsgiapp runs no background jobs; run it as its own process (a "
    "systemd unit or timer, a supervisord program, a separate container or compose service)"
)
_BEFORE_START = (
    "THIS WILL NOT RUN: uwsgiapp runs no hooks; run the command before 'uwsgiapp serve' in "
    "the entrypoint (e.g. manage.py migrate), or decorate a function of the app with "
    "uwsgiapp.postfork for per-worker set-up"
)
_DATED = "error log lines start with the date; %(ftime) keeps its format (no logformat-strftime)"
_ROTATE = (
    "rotate with logrotate and have its postrotate send SIGUSR1 to the master (kill -USR1 "
    "$(cat PIDFILE)), which reopens every log file"
)
#: uWSGI's keys for the virtualenv the app's packages are in: said only when it is not the one
#: uwsgiapp runs from (uwsgiini's _virtualenv_advice names both).
VENV_KEYS = frozenset({"home", "virtualenv", "venv", "pyhome", "H"})
#: Advice for unsupported keys users commonly have.
ADVICE: Mapping[str, str] = {
    "log-date": _DATED,
    "logdate": _DATED,
    # a timeout, not a job: "THIS WILL NOT RUN" (the mule prefix's) alarmed for nothing
    "mule-reload-mercy": "uwsgiapp runs no mules: a reload has none to wait for",
    "http-socket": "uwsgiapp speaks only the uwsgi protocol: put nginx (uwsgi_pass) in front, "
    "or use 'uwsgiapp dev' for local HTTP",
    "http": "uwsgiapp speaks only the uwsgi protocol: put nginx (uwsgi_pass) in front",
    "https": "terminate TLS in nginx",
    "https-socket": "terminate TLS in nginx",
    "http11-socket": "uwsgiapp speaks only the uwsgi protocol: put nginx (uwsgi_pass) in front",
    **dict.fromkeys(
        ("py-autoreload", "py-auto-reload", "python-autoreload", "python-auto-reload"),
        "use 'uwsgiapp dev' for reloading on code changes",
    ),
    "touch-workers-reload": _HUP,
    "check-static": _STATIC,
    "memory-report": "--stats shows each worker's RSS ('uwsgiapp top')",
    "log-x-forwarded-for": "the access log prints REMOTE_ADDR, which nginx sets: behind a "
    "proxy, let nginx take the client's address from it (set_real_ip_from PROXY; "
    "real_ip_header X-Forwarded-For;)",
    "post-buffering-bufsize": "uwsgiapp sizes its own reads of a body (up to 1 MiB each); "
    "post-buffering alone says what is held in memory",
    "reload-on-as": "--reload-on-rss recycles a worker by its resident memory",
    "evil-reload-on-rss": "--reload-on-rss recycles a worker by its resident memory (the "
    "master checks it ten times a second)",
    "evil-reload-on-as": "--reload-on-rss recycles a worker by its resident memory",
    "fs-reload": _HUP,
    "master-fifo": "uwsgiapp's master takes signals: HUP reload, TERM stop, TTIN/TTOU workers, "
    "USR1 reopen logs",
    "show-config": "uwsgiapp serve --print-config shows every value and where it came from",
    "http-timeout": "set it in nginx (uwsgi_read_timeout)",
    "http-keepalive": "nginx keeps the client connections alive",
    "max-fd": "raise the open-files limit where uwsgiapp starts (LimitNOFILE= in systemd, "
    "ulimit -n, docker --ulimit nofile)",
    "limit-as": "set the address-space limit where uwsgiapp starts (LimitAS= in systemd, "
    "ulimit -v): an app past it gets MemoryError, answered 500; --reload-on-rss recycles "
    "a worker by its resident memory",
    "import": "import the module from your WSGI module instead",
    "umask": "set it where uwsgiapp starts (UMask= in systemd, umask in the entrypoint)",
    "log-zero": _REQUEST_LOG,
    "log-sendfile": _REQUEST_LOG,
    "log-ioerror": _REQUEST_LOG,
    "logger": "only 'logger = file:PATH' is taken (the error log's file): for syslog or a "
    "socket, run under systemd/journald or have a collector read the file",
    **dict.fromkeys(("req-logger", "logger-req"), _REQ_LOGGER),
    "touch-logreopen": _ROTATE,
    "log-maxsize": "uwsgiapp does not rotate its logs itself (they grow): " + _ROTATE,
    "log-backupname": "uwsgiapp does not rotate its logs itself (they grow): " + _ROTATE,
    "log-encoder": "--error-log-format json writes one JSON object a line; no other encoder",
    "gevent": _LOOP,
    "async": _LOOP,
    "ugreen": _LOOP,
    "greenlet": _LOOP,
    "asyncio": _LOOP,
    "gevent-early-monkey-patch": _LOOP,
    "gevent-monkey-patch": _LOOP,
    "cheaper-busyness-verbose": "uwsgiapp logs each worker busyness starts or stops, not "
    "each cycle's measure",
    "cheaper-rss-limit-soft": "no memory limit on the cheaper subsystem here: --reload-on-rss "
    "recycles a worker by its resident memory",
    "cheaper-rss-limit-hard": "no memory limit on the cheaper subsystem here: --reload-on-rss "
    "recycles a worker by its resident memory",
    "cheaper-idle": "a setting of uWSGI's spare2 algorithm, which uwsgiapp has not (spare, "
    "backlog and busyness are here)",
    "add-header": "nginx adds response headers: add_header NAME VALUE always; in the location",
    "wsgi-disable-file-wrapper": "uwsgiapp always offers wsgi.file_wrapper: a regular "
    "file is sent with sendfile from where it stands (no more than the Content-Length), "
    "anything else (BytesIO, a gzip file) by iterating it, as a plain body",
    "offload-threads": "nginx sends files and slow clients' bytes (with its uwsgi_buffering "
    "on, the default, a worker does not wait on a slow client: nginx buffers the response)",
}
_ROUTER = (
    "uwsgiapp has no internal router, and serving without the rule changes what is served, "
    "and to whom: put it in nginx (location, deny, auth_basic, return, rewrite, add_header), "
    "then remove it from the ini"
)
_CONFINE = (
    "uwsgiapp does not confine itself, and starting unconfined is not what the ini asks: use "
    "systemd's RootDirectory=, CapabilityBoundingSet=, PrivateTmp= (or the container's), "
    "then remove it from the ini"
)
_EMPEROR = (
    "emperor mode is not supported (uwsgiapp serves the one app of its ini): run one uwsgiapp "
    "per vassal ini (e.g. one systemd unit or container each: uwsgiapp serve --ini VASSAL.ini)"
)
#: The keys of uWSGI's internal router (route, route-if, route-run, final-route-host...).
ROUTE_PREFIXES: Final = ("route", "final-route", "error-route", "response-route")
#: Router actions that only log (uwsgiapp's access log is its own) or do what uwsgiapp does
#: anyway: such a rule is ignored with a warning (uwsgiini), any other stops start-up.
ROUTE_IGNORED: Mapping[str, str] = {
    "donotlog": "its requests are logged: an ini turns uwsgiapp's access log on, as uWSGI's "
    "is (off by default otherwise); 'disable-logging = true' turns it off (log-4xx, log-5xx, "
    "log-slow, log-big then keep only those requests), and nginx's 'access_log off;' in "
    "that location quiets nginx's own",
    "log": "no line is logged for it: log it in nginx (access_log with a log_format, in that "
    "location)",
    "logvar": "no logvar is set: a log-format's %(var.NAME) logs a request variable (a "
    "header's HTTP_NAME), or log the value in nginx (a log_format) instead",
    "fixpathinfo": "uwsgiapp strips SCRIPT_NAME from PATH_INFO where PATH_INFO starts with it "
    "(nginx's uwsgi_param SCRIPT_NAME /app;), and 'mount = /app=module:app' sets the prefix "
    "itself: use mount, then remove the rule",
}
#: Keys uwsgiapp cannot apply and must not ignore: a rule that would guard the app (access,
#: confinement; a 'route = ^/admin basicauth:' ignored left /admin open), and emperor mode
#: (the ini names other inis to serve, none of its own): they stop start-up.
GUARD_PREFIXES: Mapping[str, str] = {
    **dict.fromkeys(ROUTE_PREFIXES, _ROUTER),
    "emperor": _EMPEROR,
    "vassals-": _EMPEROR,
    "chroot": _CONFINE,
    "cap": _CONFINE,
    "unshare": _CONFINE,
    "jail": _CONFINE,
    "namespace": _CONFINE,
}
#: Advice for families of keys, by the start of their name (when ADVICE has not the key).
ADVICE_PREFIXES: Mapping[str, str] = {
    # procname, -prefix, -prefix-spaced, -master, -append
    "procname": "uwsgiapp names its processes uwsgiapp master / worker N",
    "static-": _STATIC,  # -map, -map2, -index, -expires*, -gzip*, -safe, -skip-ext
    "cheaper-": "a setting of uWSGI's cheaper subsystem that uwsgiapp has not (it has cheaper, "
    "cheaper-initial, -step, -overload, -algo spare, backlog or busyness, and busyness' "
    "-min, -max, -multiplier, -penalty and -backlog-alert, -step, -multiplier, -nonzero)",
    "attach-": _OWN_PROCESS,
    "smart-attach-": _OWN_PROCESS,
    "cron": _OWN_PROCESS,
    "unique-cron": _OWN_PROCESS,
    "legion-cron": _OWN_PROCESS,
    "mule": _OWN_PROCESS,
    "spooler": _OWN_PROCESS,
    "hook-": _BEFORE_START,
    "exec-": _BEFORE_START,
    "call-": _BEFORE_START,
}


#: What users write for a magic variable as if it were a named placeholder, and the letter.
MAGIC_BY_NAME: Mapping[str, str] = {
    "cores": "k",
    "cpus": "k",
    "cpu_count": "k",
    "hostname": "h",
    "host": "h",
    "uid": "u",
    "gid": "g",
    "user": "U",
    "username": "U",
    "group": "G",
    "cwd": "v",
    "pwd": "v",
    "dir": "d",
    "name": "n",
    "file": "s",
    "path": "p",
}
#: paste's placeholders (Pyramid's ``%(here)s``), and uWSGI's magic variable for each.
PASTE_NAMES: Mapping[str, str] = {
    "here": "the ini's directory: uWSGI's is %d, which ends with a slash (%(here)s/app.py is "
    "%dapp.py)",
    "__file__": "the ini's path: uWSGI's is %p",
}


#: uWSGI keys that make uWSGI itself serve HTTP.
HTTP_KEYS: Final = frozenset({"http", "https", "http-socket", "https-socket", "http11-socket"})
