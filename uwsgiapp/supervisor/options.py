"""A ``HUP`` reads the options again (command line, environment, ``--config``, ``--ini``), as
uWSGI (which re-reads its ini) and gunicorn (its config file) do: ``--env``, ``--workers`` and
the options only a worker reads as it starts (:data:`WORKER_OPTIONS`: the reload's new workers
take them) take effect with the reload; any other option that changed needs a restart, which
one line says (before, the reload kept every option as read at start without a word).

The command line gives the way to read them (:func:`watch`); the master asks at each ``HUP``
(:func:`on_hup`). Decisions are :func:`changed` and :func:`env_changes`, pure functions.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping

from uwsgiapp import __version__
from uwsgiapp.config import Config
from uwsgiapp.supervisor.actions import Log, LogLevel

__all__ = [
    "LIVE",
    "WORKER_OPTIONS",
    "changed",
    "env_changes",
    "for_workers",
    "on_hup",
    "start_environ",
    "watch",
]

#: What only a worker reads, as it starts (its request limits, its recycling): the workers a
#: reload starts take them, as uWSGI's HUP (it re-executes itself) and gunicorn's apply them.
WORKER_OPTIONS = (
    "buffer_size",
    "max_vars",
    "limit_post",
    "socket_timeout",
    "max_requests",
    "max_requests_jitter",
)
#: The options a reload applies; the others are read at start only.
LIVE = ("env", "workers", *WORKER_OPTIONS)

_current: Config | None = None
_reread: Callable[[], Config] | None = None
#: The environment before --env was applied at start: what a variable dropped from it gets.
_environ: Mapping[str, str] = {}
#: What the last HUP changed, for :func:`rollback`: the options, and the variables it set.
_undo: tuple[Config, dict[str, str | None]] | None = None
#: The variables the last HUP set, held out of the master's environment while its trial
#: import runs (:func:`hold_environ`).
_held: dict[str, str | None] = {}
#: The worker options the last HUP read are held back too (see :func:`for_workers`).
_held_workers = False


def watch(started_with: Config, reread: Callable[[], Config], environ: Mapping[str, str]) -> None:
    """The options the server started with, how to read them again, and the environment
    before ``--env`` was applied."""
    global _current, _reread, _environ
    _current, _reread, _environ = started_with, reread, environ


def start_environ() -> Mapping[str, str] | None:
    """The environment the command started with, before ``--env`` (a binary upgrade's new
    master starts with it); None when the server was not started by the command."""
    return _environ if _reread is not None else None


def for_workers(config: Config) -> Config:
    """``config`` with the :data:`WORKER_OPTIONS` as the last HUP applied them (a worker
    forked now takes them; the master's own ``config`` keeps the start's); while a child
    tries the new code (:func:`hold_environ`), as before that HUP: a worker forked meanwhile
    runs the old code, and kept the new options after a failed reload."""
    applied = _undo[0] if _held_workers and _undo is not None else _current
    if applied is None:
        return config
    return dataclasses.replace(config, **{name: getattr(applied, name) for name in WORKER_OPTIONS})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def changed(old: Config, new: Config) -> list[str]:
    """The options whose value differs, by field name, in the order of :class:`Config`."""
    return [
        f.name for f in dataclasses.fields(Config) if getattr(old, f.name) != getattr(new, f.name)
    ]


def env_changes(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """What to set and what to remove in the environment for ``--env`` going from ``old`` to
    ``new`` (a variable dropped from ``--env`` is removed: it was ours)."""
    to_set = {name: value for name, value in new.items() if old.get(name) != value}
    return to_set, [name for name in old if name not in new]


#: What a USR2's new master takes over as it is: the sockets it inherits (their files' mode and
#: owner) and the user the old master dropped to (it starts as that user).
KEPT_BY_USR2 = frozenset({"chmod_socket", "chown_socket", "uid", "gid"})


def _info(text: str) -> Log:
    return Log(LogLevel.INFO, text)


def on_hup(most_workers: int, running: int = 0) -> tuple[int | None, list[Log]]:
    """Read the options again: apply ``--env`` to this process's environment (the re-import,
    and the workers forked after, read it); return the new ``--workers`` (None if unchanged;
    at most ``most_workers``, what the status table holds) and what to log. ``running``: the
    workers wanted now; where TTIN/TTOU changed it, the reload goes back to ``--workers``, as
    gunicorn's does. What a restart must still apply, or what could not be read (the next
    start would fail on it), is a warning."""
    global _current, _undo
    if _current is None or _reread is None:
        return None, []
    _undo = None  # an earlier HUP's: a rollback or hold now must not undo what it applied
    try:
        new = _reread()
    except Exception as exc:  # a bad value (ConfigError), a file gone or unreadable now
        text = f"HUP: cannot read the options again ({exc}): keeping those read before"
        return None, [Log(LogLevel.WARNING, text)]
    names = changed(_current, new)
    said: list[Log] = [Log(LogLevel.WARNING, line) for line in [installed_elsewhere()] if line]
    to_set, to_remove = env_changes(_current.env_vars(), new.env_vars())
    _undo = (_current, {name: os.environ.get(name) for name in (*to_set, *to_remove)})
    if to_set or to_remove:  # not for the same variables in another order
        # A variable dropped from --env gets the value it had before (or none).
        _set_environ({**to_set, **{name: _environ.get(name) for name in to_remove}})
        said.append(_info(f"HUP: --env read again: {len(to_set)} set, {len(to_remove)} removed"))
    rest = [name for name in names if name not in LIVE]
    for kept, applies in (
        (False, "a restart or a USR2 upgrade applies it"),
        (
            True,
            "a restart applies it (a USR2 upgrade takes over the sockets, and the user, as "
            "they are)",
        ),
    ):
        these = [name for name in rest if (name in KEPT_BY_USR2) == kept]
        if these:
            options = ", ".join(_flag(name) for name in these)
            said.append(
                Log(
                    LogLevel.WARNING,
                    f"HUP: {options} changed since the start: {applies} (a reload applies "
                    "--env, --workers and the options a worker reads as it starts)",
                )
            )
    if taken := [name for name in names if name in WORKER_OPTIONS]:
        values = ", ".join(f"{_flag(name)} {getattr(new, name)}" for name in taken)
        said.append(_info(f"HUP: {values} read again: the new workers take them"))
    workers = min(new.workers, most_workers) if "workers" in names else None
    if workers is not None:
        said.append(_info(f"HUP: --workers read again: {workers}"))
        if workers < new.workers:  # the table was sized at start (4 slots a worker)
            more = f"HUP: --workers {new.workers} is more than this start allows"
            said.append(Log(LogLevel.WARNING, more))
    elif running and running != min(new.workers, most_workers):
        workers = min(new.workers, most_workers)
        said.append(_info(f"HUP: back to --workers {workers} (TTIN/TTOU had made it {running})"))
    # What runs now: the live options new, the others as they were.
    _current = dataclasses.replace(new, **{name: getattr(_current, name) for name in rest})
    return workers, said


def installed_elsewhere(running: str = __version__) -> str:
    """What to say when the uwsgiapp installed now is not the one this master runs (a ``pip
    install -U`` before the HUP): the reload keeps the running one; "" when they are one."""
    import importlib.metadata  # here: it loads email, csv, zipfile (1.5 MB in every worker)

    try:
        installed = importlib.metadata.version("uwsgiapp")
    except importlib.metadata.PackageNotFoundError:
        return ""
    if installed == running:
        return ""
    return (
        f"HUP: uwsgiapp {installed} is installed, this master runs {running}: the reload keeps "
        f"{running} (a USR2 or a restart runs {installed}); with --lazy-apps the workers "
        f"would import the parts of uwsgiapp the master has not loaded (uwsgiapp.web) from "
        f"{installed} beside {running}'s"
    )


def hold_environ() -> None:
    """The last HUP's ``--env`` stays out of the master's environment while a child tries the
    new code (forked already, the child has it): a worker forked meanwhile runs the old code,
    and kept the new variables after a failed reload."""
    global _held, _held_workers
    if _undo is not None:
        _held = {name: os.environ.get(name) for name in _undo[1]}
        _set_environ(_undo[1])
        _held_workers = True


def release_environ() -> None:
    """The child imported the new code: the master takes the ``--env`` its HUP read."""
    global _held, _held_workers
    _set_environ(_held)
    _held, _held_workers = {}, False


def rollback() -> int | None:
    """The reload the last HUP started was called off (the new code did not import): its
    environment and options go back; the ``--workers`` it had, or None if unchanged."""
    global _current, _undo, _held, _held_workers
    _held, _held_workers = {}, False
    if _undo is None or _current is None:
        return None
    previous, environ = _undo
    _undo = None
    _set_environ(environ)
    workers = previous.workers if previous.workers != _current.workers else None
    _current = previous
    return workers


def _set_environ(values: Mapping[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
