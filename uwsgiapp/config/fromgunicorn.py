"""What a gunicorn or Flask user brings along: ``GUNICORN_CMD_ARGS`` and a
``gunicorn.conf.py``, not read here, each named in a warning with what stands for it, so that
no setting is lost without a word; ``FLASK_DEBUG``, which the apps read."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from typing import Final

from uwsgiapp.clihints import hint_for
from uwsgiapp.config.configload import DEFAULT_SOURCE, Resolved, spec_for

__all__ = [
    "brought_along",
    "debug_flag_set",
    "gunicorn_args_warning",
    "gunicorn_conf_warning",
    "port_unused",
]

#: gunicorn's options whose name is not ours → our option (its ``UWSGIAPP_*`` variable).
GUNICORN_NAMES: Final[Mapping[str, str]] = {
    "-w": "workers",
    "-b": "socket",
    "--bind": "socket",
    "-t": "harakiri",
    "--timeout": "harakiri",
    "--backlog": "listen",
    "-u": "uid",
    "--user": "uid",
    "-g": "gid",
    "--group": "gid",
    "-p": "pidfile",
    "--pid": "pidfile",
    "--access-logfile": "access_log_file",
    "--error-logfile": "error_log_file",
    "--log-file": "error_log_file",
    "-e": "env",
}

#: Where ours does not do what gunicorn's did.
_NOTES: Final[Mapping[str, str]] = {
    "harakiri": " (a request's time limit, off unless set; gunicorn's kills a silent worker)",
}


def gunicorn_args_warning(value: str) -> str:
    """GUNICORN_CMD_ARGS is not read: what each of its options is here (``-w 4`` is
    ``UWSGIAPP_WORKERS=4``; one of gunicorn's own, the command line's hint)."""
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    said: list[str] = []
    envs: list[str] = []  # -e/--env, each NAME=VALUE: one variable holds them, a line each
    for i, word in enumerate(words):
        if not word.startswith("-") or word == "-":  # "-": a value (stdout), not an option
            continue
        if word.startswith("--") or len(word) == 2:
            name, eq, given = word.partition("=")
        else:  # -w4: a short option with its value
            name, eq, given = word[:2], "=", word[2:]
        ours = GUNICORN_NAMES.get(name, name[2:] if name.startswith("--") else "")
        spec = spec_for(ours) if ours else None
        if spec is not None:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            value = given if eq else nxt if nxt and (nxt == "-" or nxt[0] != "-") else "1"
            if spec.name == "env":
                envs.append(value)
            else:
                said.append(f"{name} is {spec.env}={value}{_NOTES.get(spec.name, '')}")
        elif hint := hint_for(name, ()):
            said.append(hint)
    said += _env_said(envs)
    return (
        "GUNICORN_CMD_ARGS is set but not read: uwsgiapp reads UWSGIAPP_* variables "
        "('uwsgiapp serve --help' lists each option's)" + "".join(f"; {s}" for s in said)
    )


def _env_said(envs: list[str]) -> list[str]:
    """What gunicorn's ``-e`` options are here: ``SCRIPT_NAME`` (gunicorn's prefix) is
    ``--mount``; the others one ``UWSGIAPP_ENV``, a line each (set one after the other, the
    last alone stayed)."""
    said = []
    names = [e.partition("=")[2] for e in envs if e.startswith("SCRIPT_NAME=")]
    mount = names[-1] if names else None  # gunicorn's: the last
    if mount is not None:
        said.append(f"-e SCRIPT_NAME={mount} (gunicorn's prefix) is UWSGIAPP_MOUNT={mount}")
    others = [e for e in envs if not e.startswith("SCRIPT_NAME=")]
    if len(others) == 1:
        said.append(f"-e/--env is UWSGIAPP_ENV={others[0]}")
    elif others:
        # Bash's $'...': a backslash and a quote escaped, the lines joined by \n.
        lines = "\\n".join(e.replace("\\", "\\\\").replace("'", "\\'") for e in others)
        said.append(f"-e/--env is UWSGIAPP_ENV, one a line: UWSGIAPP_ENV=$'{lines}'")
    return said


def debug_flag_set(env: Mapping[str, str]) -> bool:
    """Whether ``FLASK_DEBUG`` in ``env`` makes Flask and uwsgiapp.web apps in debug mode."""
    return env.get("FLASK_DEBUG", "").lower() not in ("", "0", "false", "no")


def gunicorn_conf_warning(directory: str = ".") -> str | None:
    """A ``gunicorn.conf.py`` where gunicorn reads it by default (the working directory):
    not read, so its bind, workers and timeout would be lost without a word."""
    path = os.path.join(directory, "gunicorn.conf.py")
    if not os.path.isfile(path):
        return None
    return (
        f"{os.path.abspath(path)} is not read (gunicorn reads it by default; uwsgiapp reads "
        "no Python config): give its settings as options ('uwsgiapp serve --help': bind is "
        "--socket, workers --workers, timeout --harakiri) or in a TOML file (--config; "
        "--print-config writes one); the README says where gunicorn's hooks go (post_fork: "
        "@uwsgiapp.postfork)"
    )


def brought_along(env: Mapping[str, str], config_given: bool) -> list[str]:
    """The start-up warnings for what ``env`` and the working directory bring along (a
    ``gunicorn.conf.py`` only where no ``--config`` is given)."""
    said = []
    if env.get("GUNICORN_CMD_ARGS"):
        said.append(gunicorn_args_warning(env["GUNICORN_CMD_ARGS"]))
    if not config_given and (conf := gunicorn_conf_warning()):
        said.append(conf)
    if debug_flag_set(env):
        said.append(
            f"FLASK_DEBUG={env['FLASK_DEBUG']} is set: Flask and uwsgiapp.web apps are made in "
            "debug mode (a view's error skips the app's error handlers: the server answers "
            "500); a development setting, unset it in production"
        )
    return said


def port_unused(env: Mapping[str, str], resolved: Resolved) -> list[str]:
    """A platform's ``PORT`` (its HTTP port; gunicorn binds ``0.0.0.0:$PORT``) beside the
    default socket: not read (HTTP could not be served)."""
    port = env.get("PORT", "").strip()
    if not port:
        return []
    if resolved.sources["socket"] != DEFAULT_SOURCE:  # gunicorn's -b 0.0.0.0:$PORT, as hinted
        taken = [s for s in resolved.config.socket if s.rpartition(":")[2] == port]
        return [
            f"--socket {s}: on PORT={port}, where a platform sends HTTP (gunicorn serves HTTP "
            "on it), this socket speaks nginx's uwsgi protocol: an HTTP client or router gets "
            "an empty reply (put nginx on the port, uwsgi_pass to another --socket); nginx's "
            "own uwsgi_pass to it is fine"
            for s in taken
        ]
    return [
        f"PORT={port} is set but not read (gunicorn listens on 0.0.0.0:$PORT for HTTP): "
        f"uwsgiapp speaks only nginx's uwsgi protocol, here on the default "
        f"{', '.join(resolved.config.socket)}; put nginx on the port (uwsgi_pass to --socket)"
    ]
