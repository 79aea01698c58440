"""The Config for ``uwsgiapp serve``: its parsed arguments, the environment, and the files they
name, merged by precedence (command line > environment > ``--config`` > ``--ini`` >
``UWSGIAPP_DEFAULT_*`` variables > defaults)."""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Mapping, MutableMapping
from dataclasses import replace

from uwsgiapp.config.activation import adopt_activated, one_each, systemd_sockets
from uwsgiapp.config.configload import (
    DEFAULT_SOURCE,
    IMPLIED_BY,
    Layer,
    Raw,
    Resolved,
    convert,
    default_env_layer,
    env_layer,
    option_specs,
    resolve,
    spec_for,
)
from uwsgiapp.config.fromgunicorn import brought_along, port_unused
from uwsgiapp.config.iniids import STARTED_EUID, skip_ini_ids
from uwsgiapp.config.model import ConfigError
from uwsgiapp.config.printconfig import format_value
from uwsgiapp.config.readfile import take_writable_notes
from uwsgiapp.config.tomlfile import toml_layer
from uwsgiapp.config.uwsgiini import SIMPLE_KEYS, IniResult, check_http_only, ini_layer
from uwsgiapp.logfields import log_warnings

__all__ = ["SYSTEMD_SOURCE", "resolve_serve_config", "script_name_warning", "systemd_sockets"]

#: The source the sockets systemd passed (socket activation) are said to come from.
SYSTEMD_SOURCE = "systemd socket activation"


def resolve_serve_config(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    *,
    warnings: list[str] | None = None,
    fixed: MutableMapping[str, str] | None = None,
) -> Resolved:
    """Resolve the Config for ``serve`` from parsed ``args``, ``environ``, and the files they
    name. Raises ConfigError.

    ``warnings``, when given, receives each warning as it is found: when a ConfigError
    follows, the caller can still show what led to it (``$(UWSGI_WORKERS) is not set`` before
    "expected an integer, got ''"). ``fixed``: what the ini's start-time magic variables
    stood for, kept from one resolution to the next (a HUP's).
    """
    env = os.environ if environ is None else environ
    warnings = [] if warnings is None else warnings
    take_writable_notes()  # from this resolution's files only
    activated = systemd_sockets(env)
    defaults = default_env_layer(env, warnings)
    layers = [defaults, *_platform_layers(env, activated)]
    ini = IniResult()
    if args.ini:
        ini = ini_layer(args.ini, environ=env, warnings=warnings, fixed=fixed)
        layers.append(ini.layer)
    files = dict(ini.layer)
    if args.config:
        layers.append(toml_layer(args.config))
        files.update(layers[-1])
    environment = env_layer(env, warnings)
    layers.append(environment)
    if said := _uwsgi_variables(env, ini.environ_read):
        warnings.append(said)
    warnings.extend(brought_along(env, config_given=bool(args.config)))
    _mount_with_app(environment)
    cli = _cli_layer(args)
    layers.append(cli)
    warnings.extend(_overrides(files, environment, cli) + _default_unseen(defaults, layers, env))
    for name in [n for n in defaults if any(n in layer for layer in layers[1:])]:
        if not _adds_up(name):
            del defaults[name]  # outranked: its value is not used, valid or not
    resolved, more = adopt_activated(resolve(layers, warnings=warnings), activated)
    resolved, once = one_each(resolved)
    resolved, skipped = skip_ini_ids(resolved, STARTED_EUID)
    more += once + skipped
    check_http_only(ini, resolved.sources["socket"], DEFAULT_SOURCE)
    given = dict(pair.split("=", 1) for pair in resolved.config.env if "=" in pair)  # --env
    more += _socket_warnings(args, resolved)
    more += script_name_warning({**env, **given}, resolved.config.mount)
    more += _web_concurrency_unused(env, resolved) + port_unused(env, resolved)
    more += log_warnings(resolved.config)  # a template's fields, JSON lines into a pipe
    more += take_writable_notes()
    unused = sorted(set(activated) - set(resolved.config.socket))
    if unused:
        more.append(
            f"systemd passed {len(activated)} socket(s) (LISTEN_FDS), but "
            f"{resolved.sources['socket']} names the sockets: {', '.join(unused)} stay unused "
            "(name them, fd://3, or name no socket)"
        )
    return replace(resolved, warnings=(*resolved.warnings, *more)) if more else resolved


_WEB_CONCURRENCY = "env WEB_CONCURRENCY"


def _platform_layers(env: Mapping[str, str], activated: list[str]) -> list[Layer]:
    """Defaults the platform sets: the sockets systemd passed (socket activation), used unless
    a socket is named anywhere; gunicorn's WEB_CONCURRENCY (PaaS buildpacks set it)."""
    layers: list[Layer] = []
    if activated:
        source = f"{SYSTEMD_SOURCE} (LISTEN_FDS={len(activated)})"
        layers.append({"socket": Raw(activated, source)})
    if env.get("WEB_CONCURRENCY", "").strip():
        layers.append({"workers": Raw(env["WEB_CONCURRENCY"].strip(), _WEB_CONCURRENCY)})
    return layers


def _web_concurrency_unused(env: Mapping[str, str], resolved: Resolved) -> list[str]:
    """gunicorn's ``WEB_CONCURRENCY`` set to another count than a higher source's ``--workers``
    (a compose file's pinned ``--workers 2`` beside ``WEB_CONCURRENCY=8`` in its environment:
    it looked as if the variable did nothing)."""
    value = env.get("WEB_CONCURRENCY", "").strip()
    source = resolved.sources["workers"]
    if not value or source == _WEB_CONCURRENCY or value == str(resolved.config.workers):
        return []
    return [
        f"{_WEB_CONCURRENCY}={value} is not used: {source} sets --workers {resolved.config.workers}"
    ]


def _socket_warnings(args: argparse.Namespace, resolved: Resolved) -> list[str]:
    """A bare port where a unix socket's path goes; an ini that names no socket at all."""
    config = resolved.config
    said = [
        f"--{option} {spec} is a unix socket file named {spec!r} in the working directory; for "
        f"TCP write 127.0.0.1:{spec} (or :{spec}, every interface)"
        for option, spec in [*(("socket", s) for s in config.socket), ("stats", config.stats)]
        if spec.isdigit()
    ]
    quiet = getattr(args, "print_config", False)  # the printed config says "default" itself
    if args.ini and not quiet and resolved.sources["socket"] == DEFAULT_SOURCE:
        said.append(  # uWSGI refuses to start without one; it may be in a base image's ini
            f"no socket in the ini nor anywhere else: listening on the default "
            f"{', '.join(config.socket)} (uWSGI would not start; set socket in the ini, or "
            "--socket)"
        )
    return said


#: UWSGI_* variables uWSGI sets for itself (its emperor, reloads) and does not read as options.
_UWSGI_OWN = frozenset(
    {
        "UWSGI_RELOADS",
        "UWSGI_VASSALS_DIR",
        "UWSGI_EMPEROR_FD",
        "UWSGI_BROODLORD_NUM",
        "UWSGI_EMPEROR_FD_CONFIG",
        "UWSGI_EMPEROR_PROXY",
        "UWSGI_JAIL_PID",
        "UWSGI_ORIGINAL_PROC_NAME",
    }
)


def script_name_warning(env: Mapping[str, str], mount: str) -> list[str]:
    """The warning for a ``SCRIPT_NAME`` in the environment, gunicorn's way of mounting the app
    under a prefix (``SCRIPT_NAME=/api gunicorn app:app``), which we do not read: unsaid, the
    app's links lost the prefix and its routes answered 404. Nothing when ``mount`` is it."""
    prefix = env.get("SCRIPT_NAME", "").strip()
    if not prefix or prefix.rstrip("/") == mount:
        return []
    mount_as = prefix.rstrip("/") or "/PREFIX"
    return [
        f"SCRIPT_NAME={prefix} is set in the environment but not read (gunicorn takes it as the "
        f"app's prefix): use --mount {mount_as}, or have nginx send it "
        f"(uwsgi_param SCRIPT_NAME {mount_as};)"
    ]


def _uwsgi_variables(env: Mapping[str, str], read: set[str]) -> str:
    """The warning for ``UWSGI_*`` variables, which uWSGI reads as options (images built for
    uWSGI set UWSGI_INI, UWSGI_PROCESSES, UWSGI_CHEAPER…), or "". The ini's own ``read``
    ones (``$(UWSGI_WORKERS)``) are not said."""
    names = sorted(
        k for k in env if k.startswith("UWSGI_") and k not in _UWSGI_OWN and k not in read
    )
    if not names:
        return ""
    ours = []
    for name in names:
        key = name.removeprefix("UWSGI_").lower().replace("_", "-")
        spec = spec_for(SIMPLE_KEYS[key]) if key in SIMPLE_KEYS else None
        if key == "ini":
            ours.append(f"{name}: --ini FILE")
        elif spec is not None:
            ours.append(f"{name}: {spec.env}")
    return (
        f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} set but not read: uWSGI"
        " takes each UWSGI_* variable as an option, uwsgiapp does not (an --ini file may"
        " still use them as %(name) placeholders). Use --ini FILE and UWSGIAPP_* variables"
        + (f" ({'; '.join(ours)})" if ours else " ('uwsgiapp serve --help' lists each option's)")
    )


def _overrides(files: Layer, environment: Layer, cli: Layer) -> list[str]:
    """Warnings for what a higher source overrides: a variable set in a compose override
    beside a command that names the same option (the command line wins, which is easy to
    miss); a variable beside a file (an image's environment beside the user's ini); a
    command-line list beside a file's. A variable the command line overrides is dropped:
    not used, it must not stop the start for being invalid."""
    said = []
    for name in sorted(environment.keys() & cli.keys()):
        said.append(_overridden(name, environment[name], cli[name]))
        if not _adds_up(name):
            del environment[name]
    said.extend(
        _env_over_file(name, environment[name], files[name])
        for name in sorted(environment.keys() & files.keys())
    )
    return [*filter(None, said), *_lists_replaced(files, cli)]


def _adds_up(name: str) -> bool:
    """Whether the option's values from several sources add up (``env``) rather than the
    highest source's replacing the others'."""
    spec = spec_for(name)
    return spec is not None and spec.kind == "pairs"


def _env_over_file(name: str, env: Raw, file: Raw) -> str:
    """The warning for a variable that overrides a file's value with another, or ""."""
    spec = spec_for(name)
    assert spec is not None
    if file.source.startswith(IMPLIED_BY) or "(uWSGI's default" in file.source:
        return ""  # not written in the file
    if spec.kind == "pairs":
        env, file = _clashing(env, file)
        if not env.value:
            return ""
    try:
        ours, theirs = convert(spec, env.value, env.source), convert(spec, file.value, file.source)
    except ConfigError:
        return ""  # resolve() names the bad value
    if ours == theirs:
        return ""
    if spec.kind == "pairs":  # the app's environment: secrets, never printed
        return (
            f"{env.source} overrides {file.source} for {_names(env.value)} (values not shown; "
            f"the environment outranks files: unset {spec.env} to use the file's values)"
        )
    value = env.value.replace("\n", "; ") if isinstance(env.value, str) else env.value
    why = (
        f"; a health check running 'python -m uwsgiapp.stats.health' (the uwsgiapp image's)"
        f" reads {spec.env}: to keep the file's value, set {spec.env} to it"
        if name in _HEALTH_CHECKED
        else f" (the environment outranks files: unset {spec.env} to use the file's value)"
    )
    return (
        f"{env.source}={value} overrides {file.source}: "
        f"{spec.option} = {format_value(spec, theirs)}{why}"
    )


#: Options the health check (uwsgiapp.stats.health) reads from the environment, not the server.
_HEALTH_CHECKED = frozenset({"stats", "stats_http"})


def _default_unseen(defaults: Layer, layers: list[Layer], env: Mapping[str, str]) -> list[str]:
    """A UWSGIAPP_DEFAULT_STATS(_HTTP) outranked, but read by the check (none above it)."""
    return [
        f"UWSGIAPP_DEFAULT_{name.upper()} is outranked by {above[-1].source}: a health check "
        f"running 'python -m uwsgiapp.stats.health' reads the variable, not the server: set "
        f"UWSGIAPP_{name.upper()} to the value in use"
        for name in sorted(_HEALTH_CHECKED & defaults.keys())
        if f"UWSGIAPP_{name.upper()}" not in env
        and (above := [layer[name] for layer in layers[1:] if name in layer])
    ]


def _lists_replaced(files: Layer, cli: Layer) -> list[str]:
    """A list option (``socket``, ``pythonpath``…) the command line gives replaces the list
    of the ``--ini``/``--config`` file, where uWSGI adds them up: said, naming what is lost."""
    said = []
    for name in sorted(files.keys() & cli.keys()):
        spec = spec_for(name)
        if spec is None or spec.kind != "list":
            continue
        file, given = files[name], cli[name]
        try:
            kept = convert(spec, given.value, given.source)
            dropped = [v for v in convert(spec, file.value, file.source) if v not in kept]
        except ConfigError:
            continue  # resolve() names the bad value
        if dropped:
            said.append(
                f"{given.source} replaces {file.source}: {', '.join(dropped)} "
                f"{'is' if len(dropped) == 1 else 'are'} not used (the command line's list wins "
                f"over a file's; uWSGI would use both: give each with --{spec.option} to keep it)"
            )
    return said


def _names(pairs: str) -> str:
    """The names of ``NAME=VALUE`` lines, without their values."""
    return ", ".join(line.partition("=")[0] for line in pairs.splitlines() if line)


def _clashing(env: Raw, cli: Raw) -> tuple[Raw, Raw]:
    """Of two ``NAME=VALUE`` lists (which add up), the items of the names both set to
    different values."""
    spec = spec_for("env")
    assert spec is not None

    def items(raw: Raw) -> dict[str, str]:
        pairs = convert(spec, raw.value, raw.source)
        return dict(item.partition("=")[::2] for item in pairs if "=" in item)

    low, high = items(env), items(cli)
    names = [n for n in low if n in high and low[n] != high[n]]
    return (
        Raw("\n".join(f"{n}={low[n]}" for n in names), env.source),
        Raw([f"{n}={high[n]}" for n in names], cli.source),
    )


def _overridden(name: str, env: Raw, cli: Raw) -> str:
    """The warning for a variable the command line overrides with another value, or ""."""
    spec = spec_for(name)
    assert spec is not None
    if spec.kind == "pairs":
        env, cli = _clashing(env, cli)
        if not env.value:
            return ""  # the command line's items add to the variable's
    invalid = ""
    try:
        if convert(spec, env.value, env.source) == convert(spec, cli.value, cli.source):
            return ""  # UWSGIAPP_LAZY_APPS=1 beside --lazy-apps is no news
    except ConfigError as exc:
        if exc.source == env.source:  # not used: said, not fatal (resolve() names a bad CLI value)
            invalid = f" (its value is not valid either: {exc.message}; ignored)"
    flag = f"--{spec.option}"
    if spec.kind == "pairs":  # the app's environment: secrets, never printed
        return (
            f"{env.source} is overridden by command line {flag} for {_names(env.value)} "
            "(values not shown)"
        )
    if name == "app":
        argv = [str(cli.value)]  # the positional APP
    elif spec.kind == "bool":
        argv = [flag if cli.value else f"--no-{spec.option}"]
    elif isinstance(cli.value, list):
        argv = [part for value in cli.value for part in (flag, str(value))]
    else:
        argv = [flag, str(cli.value)]
    said = f"{env.source}={env.value} is overridden by command line {shlex.join(argv)}{invalid}"
    if name in _HEALTH_CHECKED:
        said += (
            f"; a health check running 'python -m uwsgiapp.stats.health' (the uwsgiapp image's"
            f" HEALTHCHECK) reads {spec.env}, not the command line: set {spec.env} instead"
        )
    return said


def _cli_layer(args: argparse.Namespace) -> Layer:
    """The options the command line gives."""
    cli: Layer = {}
    for spec in option_specs():
        value = getattr(args, spec.name, None)
        if value is not None:
            cli[spec.name] = Raw(value, f"command line --{spec.option}")
    if args.app_positional:
        cli["app"] = Raw(args.app_positional, "command line APP")
    _mount_with_app(cli)
    return cli


def _mount_with_app(layer: Layer) -> None:
    """uWSGI's ``--mount /point=app`` (Flask's uWSGI page writes it so): the point is our
    ``mount`` and the app our ``app``, unless the same source names another app. A ``=`` in a
    mount point is never meant: it was taken whole as the SCRIPT_NAME prefix."""
    mount = layer.get("mount")
    if mount is None or not isinstance(mount.value, str) or "=" not in mount.value:
        return
    point, _, target = mount.value.partition("=")
    if not point.startswith("/") or not target:
        raise ConfigError(
            "mount", f"expected /point or /point=app, got {mount.value!r}", mount.source
        )
    target = target if ":" in target else f"{target}:application"  # uWSGI's default callable
    app = layer.get("app")
    if app is not None and app.value != target:
        raise ConfigError(
            "mount",
            f"{mount.value!r} names the app {target!r}, and {app.source} names {app.value!r}: "
            "give the app once",
            mount.source,
        )
    layer["mount"] = Raw(point.rstrip("/"), mount.source)
    layer["app"] = Raw(target, mount.source)
