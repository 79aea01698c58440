"""Other servers' option names, and what each is here: gunicorn's and uWSGI's command-line
options (:data:`FOREIGN_OPTIONS`), gunicorn.conf.py's setting names (:data:`GUNICORN_SETTINGS`).
The hints of :mod:`uwsgiapp.clihints` and of the config's unknown keys say them."""

from __future__ import annotations

from collections.abc import Mapping

from uwsgiapp.config.inikeys import ADVICE, ADVICE_PREFIXES, ALWAYS_ON

__all__ = ["FOREIGN_OPTIONS", "GUNICORN_SETTINGS"]

_SOCKET = "use --socket HOST:PORT (or a unix socket path)"
#: gunicorn's --bind serves HTTP: the same address here speaks the uwsgi protocol.
_BIND = (
    "use --socket HOST:PORT (or a unix socket path): it speaks nginx's uwsgi protocol, not "
    "HTTP (nginx's uwsgi_pass in front of it; uwsgiapp dev serves HTTP for local work)"
)
_WORKER_CLASS = (
    "use --threads N for request threads (there are no other worker classes; an app that "
    "gevent or eventlet monkey-patches runs one request at a time a worker: more --workers); "
    "WSGI apps only: an ASGI app (uvicorn's workers) needs an ASGI server"
)
_PROXY = (
    "REMOTE_ADDR is already the client's address (uwsgi_params: REMOTE_ADDR $remote_addr), "
    "and HTTPS/REQUEST_SCHEME set wsgi.url_scheme; X-Forwarded-* reach the app as the client "
    "sent them (uwsgi_params passes every header): an app that trusts one (ProxyFix, Django's "
    "SECURE_PROXY_SSL_HEADER or USE_X_FORWARDED_HOST) needs nginx to set it, each "
    "'proxy_set_header X-Forwarded-For V;' becoming 'uwsgi_param HTTP_X_FORWARDED_FOR V;'"
)
# gunicorn's limits are per line and per header; --buffer-size bounds the whole head, so
# giving it gunicorn's 4094 or 8190 refuses (502) the large cookies gunicorn served.
_LIMIT_SIZE = (
    "nothing to set: nginx bounds each line and header (large_client_header_buffers) and "
    "sends them all in one block, which --buffer-size bounds (65535 by default, the most); "
    "set to gunicorn's per-line size, it refuses with a 502 the requests whose headers add "
    "up to more (a large cookie)"
)
_LIMIT_FIELDS = (
    "use --max-vars N (512 by default): nginx sends one var per uwsgi_param (about 15) and "
    "one per header, so add the params to gunicorn's count"
)
_TIMEOUT = (
    "gunicorn's --timeout (kill a stuck worker) is --harakiri SECONDS here, off unless set "
    "(gunicorn's is 30 s by default; the Docker image sets 30); it cuts any request over "
    "it, with --threads too, where gthread's --timeout only watches the worker's heartbeat"
)
#: gunicorn's server hooks (its config file's, a TOML file's key or a flag here): README's table.
_HOOK = "gunicorn's {} hook is, here, {} (README: gunicorn's hooks)"
_HOOKS = {
    "on_starting": "the app's import (in the master)",
    "when_ready": "systemd's READY=1 (Type=notify), or the stats server's /health",
    "post_fork": "a function decorated with @uwsgiapp.postfork in the app",
    "post_worker_init": "a function decorated with @uwsgiapp.postfork in the app",
    "pre_request": "WSGI middleware around the app",
    "post_request": "WSGI middleware around the app",
    "worker_exit": "an atexit function in the app (run by a worker that ends as asked)",
    "on_exit": "an atexit function registered at import (the master runs it at its exit)",
    "worker_abort": "--harakiri's line with the stuck request's stack",
    "child_exit": "the master's line for each worker's end",
    "worker_int": "the app's finally blocks and atexit functions (a quick stop runs them)",
    "pre_fork": "none",
    "on_reload": "none",
    "nworkers_changed": "none (TTIN/TTOU say the new count in the log)",
    "pre_exec": "none",
}
_LOG_CONFIG = (
    "configure the app's logging in the app (logging.config.dictConfig at import); the "
    "server's own lines go to --error-log-file"
)
_TLS = "terminate TLS in nginx"
_LOG_FORMAT = "uWSGI's log-format is --access-log TEMPLATE ('%(addr) %(uri) %(status) %(msecs)')"
_NO_HTTP = "nginx parses HTTP and passes uwsgiapp the request as uwsgi vars: nothing to set"
_NO_ASGI = "uwsgiapp serves WSGI apps only"
_SYSLOG = (
    "no syslog here: under systemd the error log on stderr goes to the journal; or have a "
    "collector read --error-log-file"
)
_STATSD = "there is no statsd: --stats ADDR --stats-http serves /metrics for Prometheus"
_CONTROL = (
    "there is no control socket: signal the master (HUP reload, TTIN/TTOU one worker more or "
    "less, TERM stop) and read --stats ADDR ('uwsgiapp top ADDR')"
)
_DIRTY = (
    "there are no dirty workers: run long blocking jobs in a process of their own (a systemd "
    "unit, a compose service)"
)
_PASTE = (
    "give the WSGI callable as APP (module:callable); for a PasteDeploy ini, call "
    "paste.deploy.loadapp in a small module and name that"
)
_RELOAD = (
    "'uwsgiapp dev APP' reloads on code changes; --touch-reload FILE reloads when FILE changes"
)
_STDIO = (
    "nothing to set: the app's stdout and stderr stay the process's own (--capture-output "
    "sends them to --error-log-file)"
)
_UMASK = ADVICE["umask"]
_NAME = ADVICE_PREFIXES["procname"]
_SET = (
    "uWSGI's --set KEY=VALUE: give our option itself (processes=4 is --workers 4; 'uwsgiapp "
    "serve --help' lists them, each also a UWSGIAPP_* variable); a %(KEY) placeholder the ini "
    "reads but does not define comes from the environment variable UWSGI_KEY"
)

#: Options of gunicorn's and uWSGI's command lines → what to use here.
_SENDFILE = "nothing to set: a wsgi.file_wrapper response is sent with sendfile"
_PORT = (
    "serve speaks uwsgi to nginx on --socket HOST:PORT (or a unix socket); for a browser, "
    "'uwsgiapp dev APP --host H --port N'"
)
FOREIGN_OPTIONS: Mapping[str, str] = {
    "--bind": _BIND,
    "-b": _BIND,
    "--http": "uwsgiapp speaks only nginx's uwsgi protocol: put nginx in front, "
    "or run 'uwsgiapp dev APP' for local HTTP",
    "-w": "gunicorn's -w N is --workers N; uWSGI's -w MODULE (--wsgi) is the APP argument "
    "(module:callable)",
    "-p": "uWSGI's -p N is --workers N; gunicorn's -p FILE is --pidfile FILE",
    "--processes": "use --workers N",
    "-s": _SOCKET,
    "--wsgi": "give the app as the APP argument (module:callable)",
    "--callable": "give the app as the APP argument: module:callable or path/to/file.py:callable",
    "--manage-script-name": "nothing to set: a SCRIPT_NAME nginx sends is stripped from "
    "PATH_INFO; without nginx's help, --mount /prefix",
    "--stop": "send the master TERM for a graceful stop: kill -TERM $(cat PIDFILE) (INT or QUIT "
    "stop at once)",
    "--http-socket": "uwsgiapp speaks only nginx's uwsgi protocol: put nginx in front, "
    "or run 'uwsgiapp dev APP' for local HTTP",
    "--home": "run the uwsgiapp installed in that virtualenv (VENV/bin/uwsgiapp)",
    "-H": "run the uwsgiapp installed in that virtualenv (VENV/bin/uwsgiapp)",
    "--virtualenv": "run the uwsgiapp installed in that virtualenv (VENV/bin/uwsgiapp)",
    "--timeout": _TIMEOUT,
    "-t": _TIMEOUT,
    "--access-logfile": "use --access-log-file PATH (it turns the access log on; "
    "--access-log combined writes gunicorn's line)",
    "--error-logfile": "use --error-log-file PATH",
    "--log-file": "use --error-log-file PATH",
    "--logto": "use --error-log-file PATH (and --access-log-file for the request lines)",
    "--preload": "the app is loaded in the master by default already (--lazy-apps loads it "
    "in each worker instead)",
    "--reload": "uWSGI's --reload PIDFILE is kill -HUP $(cat PIDFILE) (a graceful reload); "
    "gunicorn's --reload (on code changes) is 'uwsgiapp dev APP'",
    "--py-autoreload": "'uwsgiapp dev APP' reloads on code changes",
    "-c": "use --config FILE.toml ('uwsgiapp serve ... --print-config' writes one; a "
    "gunicorn.conf.py is not read: give its settings as options or in that file)",
    "-k": _WORKER_CLASS,
    "--worker-class": _WORKER_CLASS,
    "--module": "give the app as the APP argument (module:callable)",
    "--wsgi-file": "give the app as the APP argument (path/to/file.py:callable)",
    "--master": ALWAYS_ON["master"],
    "--die-on-term": ALWAYS_ON["die-on-term"],
    "--vacuum": ALWAYS_ON["vacuum"],
    "--enable-threads": "threads always work; --threads N gives each worker request threads",
    "--worker-connections": "for gunicorn's async workers; here use --threads N (or more "
    "--workers) to serve more requests at once",
    "--statsd-host": _STATSD,
    "--reload-mercy": "use --graceful-timeout SECONDS",
    "--worker-reload-mercy": "use --graceful-timeout SECONDS",
    "--disable-logging": "the access log is off by default (--access-log uwsgi turns it on)",
    "--pid": "use --pidfile PATH",
    "--user": "use --uid USER",
    "-u": "use --uid USER",
    "--group": "use --gid GROUP",
    "-g": "use --gid GROUP",
    "--daemon": "run it under systemd, Docker or another supervisor",
    "-D": "run it under systemd, Docker or another supervisor",
    "--daemonize": "run it under systemd, Docker or another supervisor",
    "--forwarded-allow-ips": _PROXY,
    "--secure-scheme-headers": _PROXY,
    "--proxy-protocol": "nginx passes the client's address as REMOTE_ADDR (uwsgi_param)",
    "--proxy-allow-from": "nginx passes the client's address as REMOTE_ADDR (uwsgi_param)",
    "-e": "use --env NAME=VALUE",
    "--umask": _UMASK,
    "--keep-alive": "nginx keeps the clients' connections alive; each uwsgi connection "
    "carries one request",
    "--name": _NAME,
    "--reuse-port": "the master binds each socket once for every worker",
    "--log-syslog": _SYSLOG,
    "--backlog": "use --listen N",
    "--limit-request-line": _LIMIT_SIZE,
    "--limit-request-fields": _LIMIT_FIELDS,
    "--limit-request-field_size": _LIMIT_SIZE,
    "--log-config": _LOG_CONFIG,
    "--logconfig-dict": _LOG_CONFIG,
    "--log-config-dict": _LOG_CONFIG,
    "--log-config-json": _LOG_CONFIG,
    "--worker-tmp-dir": "nothing to set: workers report to the master in shared memory",
    "--certfile": _TLS,
    "--keyfile": _TLS,
    "--ca-certs": _TLS,
    "--paste": _PASTE,
    "--log-format": _LOG_FORMAT,
    "--logformat": _LOG_FORMAT,
    "--access-logformat": "--access-log takes uWSGI's log-format fields ('%(addr) %(uri) "
    "%(status) %(msecs)'), not gunicorn's %(h)s; --access-log combined is gunicorn's default line",
    "--protocol": "uwsgiapp speaks only nginx's uwsgi protocol (gunicorn's --protocol uwsgi): "
    "nothing to set",
    "--root-path": "the prefix is SCRIPT_NAME: uwsgi_param SCRIPT_NAME /prefix in nginx, or "
    "--mount /prefix",
    "--forwarder-headers": "SCRIPT_NAME and REMOTE_USER come from nginx as uwsgi vars "
    "(uwsgi_param SCRIPT_NAME /prefix), not from headers",
    "--header-map": _NO_HTTP,
    "--strip-header-spaces": _NO_HTTP,
    "--http-parser": _NO_HTTP,
    "--casefold-http-method": _NO_HTTP,
    "--permit-obsolete-folding": _NO_HTTP,
    "--permit-unconventional-http-method": _NO_HTTP,
    "--permit-unconventional-http-version": _NO_HTTP,
    "--http-protocols": "nginx speaks HTTP/2 and HTTP/3 to clients; uwsgiapp speaks uwsgi",
    "--http2-cleartext": "nginx speaks HTTP/2 to clients; uwsgiapp speaks uwsgi",
    "--http2-max-concurrent-streams": _NO_HTTP,
    "--http2-initial-window-size": _NO_HTTP,
    "--http2-max-frame-size": _NO_HTTP,
    "--http2-max-header-list-size": _NO_HTTP,
    "--port": _PORT,
    "--host": _PORT,
    "--no-sendfile": _SENDFILE,
    "--sendfile": _SENDFILE,
    "--cert-reqs": _TLS,
    "--ciphers": _TLS,
    "--ssl-version": _TLS,
    "--do-handshake-on-connect": _TLS,
    "--suppress-ragged-eofs": _TLS,
    "--log-syslog-to": _SYSLOG,
    "--log-syslog-prefix": _SYSLOG,
    "--log-syslog-facility": _SYSLOG,
    "--disable-redirect-access-to-syslog": _SYSLOG,
    "--statsd-prefix": _STATSD,
    "--dogstatsd-tags": _STATSD,
    "--enable-backlog-metric": "--stats ADDR reports the listen queue (listen_queue; "
    "--stats-http's /metrics)",
    "--control-socket": _CONTROL,
    "--no-control-socket": _CONTROL,
    "--control-socket-mode": _CONTROL,
    "--dirty-app": _DIRTY,
    "--dirty-workers": _DIRTY,
    "--dirty-threads": _DIRTY,
    "--dirty-timeout": _DIRTY,
    "--dirty-graceful-timeout": _DIRTY,
    "--asgi-loop": _NO_ASGI,
    "--asgi-lifespan": _NO_ASGI,
    "--asgi-disconnect-grace-period": _NO_ASGI,
    "--websocket-max-message-size": _NO_ASGI + " (no WebSockets)",
    "--reload-engine": _RELOAD,
    "--reload-extra-file": _RELOAD,
    "--paster": _PASTE,
    "--paste-global": _PASTE,
    "--logger-class": _LOG_CONFIG,
    "--initgroups": "nothing to set: --uid gives the processes the user's supplementary groups",
    "-R": _STDIO,
    "--enable-stdio-inheritance": _STDIO,
    "--spew": "no tracing option: 'uwsgiapp dev APP' runs the app under werkzeug's debugger",
    "-m": _UMASK,
    "-n": _NAME,
    "--set": _SET,
    "-S": _SET,
    "--set-placeholder": _SET,
    "--set-ph": _SET,
    **{"--" + name.replace("_", "-"): _HOOK.format(name, here) for name, here in _HOOKS.items()},
}


#: gunicorn.conf.py's setting names that are not its flag's with "_" for "-" (a TOML file
#: written from one has them; ``accesslog`` was "did you mean access-log?", a format): the flag.
GUNICORN_SETTINGS: Mapping[str, str] = {
    "accesslog": "--access-logfile",
    "errorlog": "--error-logfile",
    "keepalive": "--keep-alive",
    "preload_app": "--preload",
    "access_log_format": "--access-logformat",
    "proxy_allow_ips": "--proxy-allow-from",
    "logconfig": "--log-config",
    "syslog": "--log-syslog",
    "syslog_addr": "--log-syslog-to",
    "syslog_prefix": "--log-syslog-prefix",
    "syslog_facility": "--log-syslog-facility",
    "proc_name": "--name",
    "limit_request_field_size": "--limit-request-field_size",
    "sendfile": "--no-sendfile",
    "raw_paste_global_conf": "--paste-global",
}
