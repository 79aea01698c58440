"""Fill the one :class:`~uwsgiapp.config.Config` from its sources, remembering where each value
came from.

Sources, lowest to highest precedence::

    defaults < UWSGIAPP_DEFAULT_<OPTION> env vars (an image's defaults)
             < files (--ini, then --config) < UWSGIAPP_<OPTION> env vars < command line

Every source yields *layers* (the TOML file's in :mod:`uwsgiapp.config.tomlfile`, the ini's in
:mod:`uwsgiapp.config.uwsgiini`): ``{field name: Raw(value, source)}`` with the value still as the
source wrote it (a string, or a TOML value). :func:`resolve` converts each value by the field's
type, builds the Config and validates it once; any bad value raises
:class:`~uwsgiapp.config.ConfigError` naming the option and the source it came from.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from uwsgiapp.config.cheaperopts import ini_leniency
from uwsgiapp.config.initerms import atoi_hint
from uwsgiapp.config.model import LOG_FILTERS, Config, ConfigError, option_fields
from uwsgiapp.config.netopts import blank_stats_peers
from uwsgiapp.config.servicelinks import not_an_option
from uwsgiapp.foreignopts import FOREIGN_OPTIONS, GUNICORN_SETTINGS
from uwsgiapp.logtargets import is_stream

__all__ = [
    "DEFAULT_ENV_PREFIX",
    "DEFAULT_SOURCE",
    "ENV_PREFIX",
    "FALSE_WORDS",
    "IMPLIED_BY",
    "TRUE_WORDS",
    "Layer",
    "OptionSpec",
    "Raw",
    "Resolved",
    "convert",
    "default_env_layer",
    "env_layer",
    "merge_pairs",
    "option_specs",
    "parse_bool",
    "resolve",
    "spec_for",
    "suggest",
]

ENV_PREFIX = "UWSGIAPP_"
#: ``UWSGIAPP_DEFAULT_<OPTION>``: a default an image or platform sets, below every file.
DEFAULT_ENV_PREFIX = "UWSGIAPP_DEFAULT_"
#: The source of a value no layer set.
DEFAULT_SOURCE = "default"
#: Every option at its default (what an ignored value falls back to).
_DEFAULT_CONFIG: Final = Config()
#: How the source of a value one option implies for another begins.
IMPLIED_BY = "implied by "

Kind = Literal["bool", "int", "float", "str", "list", "pairs"]
_KINDS: dict[Any, Kind] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    tuple[str, ...]: "list",
}
#: The words a boolean may be written as (any case) in env vars, files and ``--ini``: one list.
TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE_WORDS: Final = frozenset({"0", "false", "no", "off", "n", "f"})
#: Fields holding file modes, written in octal everywhere (``660`` means ``0o660``).
_OCTAL_FIELDS = frozenset({"chmod_socket"})


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionSpec:
    """How one Config field is spelled in each source and what type its values have."""

    name: str
    """The field name, e.g. ``buffer_size``."""
    kind: Kind
    default: Any
    help: str
    octal: bool = False

    @property
    def option(self) -> str:
        """The option name: ``buffer-size`` (CLI ``--buffer-size``, TOML key ``buffer-size``)."""
        return self.name.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable: ``UWSGIAPP_BUFFER_SIZE``."""
        return ENV_PREFIX + self.name.upper()


def _build_specs() -> dict[str, OptionSpec]:
    hints = typing.get_type_hints(Config)
    specs: dict[str, OptionSpec] = {}
    for f in option_fields():
        kind = f.metadata.get("kind") or _KINDS.get(hints[f.name])
        if kind is None:  # pragma: no cover - guards future Config fields
            raise TypeError(f"Config.{f.name}: no converter for type {hints[f.name]!r}")
        specs[f.name] = OptionSpec(
            name=f.name,
            kind=kind,
            default=f.default,
            help=str(f.metadata.get("help", "")),
            octal=bool(f.metadata.get("octal")) or f.name in _OCTAL_FIELDS,
        )
    return specs


_SPECS = _build_specs()


def option_specs() -> tuple[OptionSpec, ...]:
    """Every option, in Config field order."""
    return tuple(_SPECS.values())


def spec_for(key: str) -> OptionSpec | None:
    """The option called ``key`` (``buffer-size`` or ``buffer_size``), or None."""
    return _SPECS.get(key.strip().replace("-", "_").lower())


# --- conversion ----------------------------------------------------------------------------


def _parse_octal(spec: OptionSpec, value: Any, source: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0o777:
            return value  # written as 0o660 in TOML, or already a mode
        text = str(value)  # 660 written as a plain TOML integer means 0o660
    elif isinstance(value, str):
        text = value.strip().lower()
        text = text[2:] if text.startswith("0o") else text
        if len(text) < 3 and text.isdigit():  # '66' was 0o066: the owner left out, as uWSGI
            raise ConfigError(  # refuses ("invalid chmod value")
                spec.name,
                f"expected three octal digits (owner, group, others), as 660, got {value!r}",
                source,
            )
    else:
        raise ConfigError(spec.name, f"expected an octal mode like 660, got {value!r}", source)
    try:
        return int(text, 8)
    except ValueError:
        raise ConfigError(
            spec.name, f"expected an octal mode like 660, got {value!r}", source
        ) from None


def parse_bool(text: str) -> bool | None:
    """True or False for one of :data:`TRUE_WORDS` / :data:`FALSE_WORDS` (any case, surrounding
    spaces ignored), None for anything else."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _convert_pairs(value: Any, bad: Callable[[str], ConfigError]) -> tuple[str, ...]:
    """``NAME=VALUE`` items, never split on commas (values hold them): a string (one item per
    line: the environment variable, whose blank and ``#`` lines are skipped, as docker's
    --env-file skips them), a list (repeated flags, ini keys), or a TOML table."""
    if isinstance(value, str):
        lines = value.splitlines()
        return tuple(line for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if isinstance(value, dict) and all(
        isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
        for v in value.values()
    ):
        return tuple(f"{name}={v}" for name, v in value.items())
    raise bad('a table of NAME = "value" (or NAME=VALUE strings)')


def convert(spec: OptionSpec, value: Any, source: str) -> Any:
    """Convert a raw value from ``source`` to the field's type, or raise ConfigError."""

    def bad(expected: str, hint: str = "") -> ConfigError:  # hint: what uWSGI read
        got = "values not shown" if spec.kind == "pairs" else f"got {value!r}"  # secrets
        return ConfigError(spec.name, f"expected {expected}, {got}{hint}", source)

    if spec.octal:
        return _parse_octal(spec, value, source)
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and (flag := parse_bool(value)) is not None:
            return flag
        raise bad("a boolean (true/false, yes/no, on/off, 1/0)")
    if spec.kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise bad("an integer", atoi_hint(spec.name, value, source))
    if spec.kind == "float":
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            raise bad("a number", atoi_hint(spec.name, value, source))
        return number
    if spec.kind == "pairs":
        return _convert_pairs(value, bad)
    if spec.kind == "list":
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(part.strip() for v in value for part in v.split(",") if part.strip())
        raise bad("a list of strings (or a comma-separated string)")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # e.g. uid = 1000 in TOML
    raise bad("a string")


# --- layers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Raw:
    """A value as a source wrote it, and that source (``env UWSGIAPP_X``, ``config file f``…)."""

    value: Any
    source: str


Layer = dict[str, Raw]


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest of ``choices``, or nothing; for gunicorn's or
    uWSGI's name of one of our options (``timeout``, ``UWSGIAPP_BIND``), what to use instead
    (the nearest name would mislead: gunicorn's ``timeout`` is our ``harakiri``)."""
    plain = "--" + word.removeprefix(ENV_PREFIX).lower().replace("_", "-")
    option = GUNICORN_SETTINGS.get(word, plain)
    if option in FOREIGN_OPTIONS:
        return f" ({FOREIGN_OPTIONS[option]})"
    import difflib  # only for a name that is not known

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def env_layer(
    environ: Mapping[str, str], warnings: list[str] | None = None, *, prefix: str = ENV_PREFIX
) -> Layer:
    """``UWSGIAPP_<OPTION>`` variables; unknown ``UWSGIAPP_*`` names are reported in
    ``warnings`` (a typo must not silently fall back to the default), but not those Kubernetes
    sets for a Service named uwsgiapp (:mod:`~uwsgiapp.config.servicelinks`). With ``prefix``
    :data:`DEFAULT_ENV_PREFIX`, the ``UWSGIAPP_DEFAULT_<OPTION>`` ones instead."""
    layer: Layer = {}
    known = {prefix + spec.name.upper(): spec for spec in _SPECS.values()}
    for key, value in environ.items():
        if not key.startswith(prefix) or (
            prefix == ENV_PREFIX and key.startswith(DEFAULT_ENV_PREFIX)
        ):
            continue
        spec = known.get(key)
        if spec is not None:
            # A ConfigMap's `|` block ends in a newline: a text value kept it (a pidfile named
            # "x.pid\n"), where numbers, lists and booleans are read without it.
            layer[spec.name] = Raw(value.strip() if spec.kind == "str" else value, f"env {key}")
        elif warnings is not None and not not_an_option(key, value, prefix):
            hint = _FILE_VARIABLES.get(key[len(prefix) :]) or suggest(key, known)
            warnings.append(f"ignoring unknown environment variable {key}{hint}")
    return layer


#: Variables one tries for the config files, which have none: the flag they meant.
_FILE_VARIABLES: Final = {
    name: f" (files have no variable: pass {flag} FILE on the command line)"
    for name, flag in (("CONFIG", "--config"), ("INI", "--ini"), ("TOML", "--config"))
}


def default_env_layer(environ: Mapping[str, str], warnings: list[str] | None = None) -> Layer:
    """``UWSGIAPP_DEFAULT_<OPTION>`` variables: defaults an image sets (the project's
    Dockerfile: harakiri, graceful-timeout), ranked below the files a user brings."""
    return env_layer(environ, warnings, prefix=DEFAULT_ENV_PREFIX)


# --- resolution ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """The validated Config and, for every option, where its value came from."""

    config: Config
    sources: Mapping[str, str]
    warnings: tuple[str, ...] = field(default=())


def _error_message(exc: ConfigError) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        return message
    return str(exc).split(": ", 1)[-1]


def _imply_access_log(values: dict[str, Any], sources: dict[str, str]) -> None:
    """A file for the access log named anywhere (``-`` and /dev/stdout too: gunicorn's
    ``--access-logfile -``), with no format chosen anywhere, turns the log on (uwsgi lines),
    as gunicorn's --access-logfile does: naming a file that stays empty helps nobody."""
    target = values.get("access_log_file", "-")
    named = sources["access_log_file"] != DEFAULT_SOURCE
    if sources["access_log"] == DEFAULT_SOURCE and named and target != "":
        values["access_log"] = "uwsgi"
        sources["access_log"] = f"{IMPLIED_BY}{sources['access_log_file'].removeprefix(IMPLIED_BY)}"
    # So do --log-4xx, --log-5xx, --log-slow, --log-big: the requests to keep (as under
    # uWSGI's disable-logging): the log off, they kept nothing, without a word.
    filters = [name for name in LOG_FILTERS if values.get(name)]
    if sources["access_log"] == DEFAULT_SOURCE and filters:
        values["access_log"] = "uwsgi"
        sources["access_log"] = f"{IMPLIED_BY}{sources[filters[0]].removeprefix(IMPLIED_BY)}"


def _drop_implied_by_logto(values: dict[str, Any], sources: dict[str, str]) -> None:
    """An ini's logto implies capture_output and the access log's file; a higher layer that
    sends the error log back to stderr (``--error-log-file -``) takes both with it. With the
    access log off (``disable-logging``) the implied file is dropped: a warning asked to turn
    on the log the ini had turned off, to write it."""
    if values.get("access_log") == "off" and sources["access_log_file"].startswith(IMPLIED_BY):
        values["access_log_file"], sources["access_log_file"] = "-", DEFAULT_SOURCE
    if not is_stream(values.get("error_log_file", "-")):
        return
    for name, default in (("capture_output", False), ("access_log_file", "-")):
        if sources[name].startswith(IMPLIED_BY):
            values[name] = default
            sources[name] = DEFAULT_SOURCE


def merge_pairs(lower: Sequence[str], higher: Sequence[str]) -> tuple[str, ...]:
    """``NAME=VALUE`` items of two sources merged by name, as uWSGI adds up ``env`` from its
    sources: ``higher``'s value of a name wins. An item without ``=`` is kept as it is, for
    validation to name it."""
    names = {item.partition("=")[0] for item in higher if "=" in item}
    kept = [item for item in lower if "=" not in item or item.partition("=")[0] not in names]
    return (*kept, *higher)


def resolve(layers: Sequence[Layer], *, warnings: Sequence[str] = ()) -> Resolved:
    """Merge ``layers`` (lowest precedence first), convert, build and validate the Config;
    raises :class:`ConfigError` naming the option and the source of the offending value."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {name: DEFAULT_SOURCE for name in _SPECS}
    raws: dict[str, Any] = {}  # the winning raw value of each option
    for layer in layers:
        for name, raw in layer.items():
            raws[name] = raw.value
            spec = _SPECS[name]
            value = convert(spec, raw.value, raw.source)
            if spec.kind == "pairs" and values.get(name):  # uWSGI adds up env items
                values[name] = merge_pairs(values[name], value)
                sources[name] = f"{sources[name]} + {raw.source}"
            else:
                values[name] = value
                sources[name] = raw.source
    _drop_implied_by_logto(values, sources)
    _imply_access_log(values, sources)
    warnings = [*warnings, *ini_leniency(values, sources, _DEFAULT_CONFIG)]
    if values.get("capture_output") and is_stream(values.get("error_log_file", "-")):
        # gunicorn's `--capture-output --error-logfile -` (a Dockerfile's): nothing to do.
        values["capture_output"], sources["capture_output"] = False, DEFAULT_SOURCE
        warnings.append(
            "--capture-output is ignored: the error log is the process's own stream, where "
            "the app's output goes already (gunicorn ignores it with errorlog '-' too)"
        )
    for name in _SPECS.keys() - sources.keys():  # what ini_leniency ignored
        sources[name] = DEFAULT_SOURCE
    if bad := blank_stats_peers(raws.get("stats_allow_from")):
        raise ConfigError(*bad, sources["stats_allow_from"])
    config = Config(**values)
    try:
        config.validate()
    except ConfigError as exc:
        source = sources.get(exc.option, "")
        raise ConfigError(exc.option, _error_message(exc), source) from None
    return Resolved(config=config, sources=sources, warnings=tuple(warnings))
