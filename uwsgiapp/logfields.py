"""The fields of uWSGI's ``log-format`` (an ``--access-log`` template): which names there are,
and what start-up says of those this server cannot fill. The logger is
:mod:`uwsgiapp.server.logtemplate`; this module is what the options need of it, without the
server's imports."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from uwsgiapp.logtargets import is_pipe

if TYPE_CHECKING:
    from uwsgiapp.config import Config

__all__ = ["FIELD", "KNOWN", "is_json_template", "is_template", "log_warnings", "unsupported"]

#: One field of a template: ``%(name)``.
FIELD: Final = re.compile(r"%\(([^)]+)\)")

#: The names a template's fields may have besides ``var.NAME`` (a request variable).
KNOWN: Final = frozenset(
    [
        "uri",
        "method",
        "user",
        "addr",
        "host",
        "proto",
        "uagent",
        "referer",
        "status",
        "size",
        "hsize",
        "rsize",
        "headers",
        "cl",
        "micros",
        "msecs",
        "secs",
        "time",
        "tmsecs",
        "tmicros",
        "epoch",
        "ltime",
        "ftime",
        "ctime",
        "pid",
        "wid",
        "core",
        "switches",
        "vars",
        "pktsize",
        "vsz",
        "rss",
        "vszM",
        "rssM",
        "rerr",
        "ioerr",
    ]
)

#: Numbers uWSGI has and this server does not keep, and why: logged as 0, uWSGI's usual value
#: (a JSON template's unquoted field stays a number).
ZEROED: Final = {
    "modifier1": "the packet's modifiers are not kept past its head (nginx sends 0)",
    "modifier2": "the packet's modifiers are not kept past its head (nginx sends 0)",
    "werr": "write errors are not counted a request",
}
#: Counted here in part: what the warning says of them.
PARTLY: Final = {
    "ioerr": "counts the body's read errors only here (as %(rerr)): write errors are not counted"
}


def is_template(fmt: str) -> bool:
    """Whether an ``--access-log`` value is a template (it has a ``%(name)`` field)."""
    return FIELD.search(fmt) is not None


def is_json_template(fmt: str) -> bool:
    """A template for JSON lines (it starts with ``{``): its values are written JSON-escaped."""
    return fmt.lstrip().startswith("{") and is_template(fmt)


def is_request_var(name: str) -> bool:
    """``var.NAME``: the request's variable NAME (``var.HTTP_X_FORWARDED_FOR``)."""
    return name.startswith("var.") and len(name) > 4


def log_warnings(config: Config) -> list[str]:
    """What start-up says of the logs' options: a template's fields logged as ``-`` or 0
    (:func:`unsupported`), and JSON lines that several workers write straight into a pipe."""
    said = unsupported(config.access_log)
    access = config.access_log == "json" or is_json_template(config.access_log)
    for json_lines, option, target, fd in (
        (access, "--access-log", config.access_log_file, 1),
        (config.error_log_format == "json", "--error-log-format", config.error_log_file, 2),
    ):
        if json_lines and config.workers > 1 and not config.log_master and is_pipe(target, fd):
            said.append(
                f"{option}: JSON lines go into a pipe (or socket) from {config.workers} workers "
                "without --log-master: one over 4 KiB (a long URL or User-Agent, a traceback) "
                "can interleave with another worker's, and both records break; --log-master "
                "writes every line whole"
            )
    return said


def unsupported(template: str) -> list[str]:
    """What to say of each field of ``template`` that is logged as ``-`` whatever the request
    (a name uWSGI fills and this server cannot, or one neither knows)."""
    said = []
    for name in dict.fromkeys(FIELD.findall(template)):
        if name in ZEROED:
            said.append(f"--access-log: the field %({name}) is always 0 here: {ZEROED[name]}")
            continue
        if name in PARTLY:
            said.append(f"--access-log: the field %({name}) {PARTLY[name]}")
            continue
        if name in KNOWN or is_request_var(name):
            continue
        if name.startswith("metric."):
            why = "uwsgiapp has no metrics subsystem (see --stats)"
        else:
            why = "no such field (in uWSGI, a logvar the app sets with uwsgi.set_logvar())"
        said.append(f"--access-log: the field %({name}) is logged as '-' here: {why}")
    return said
