"""The checks of ``--cheaper`` and its options (uWSGI's cheaper subsystem), kept out of the
model's :meth:`~uwsgiapp.config.model.Config.validate`: each bad value is an (option, message)
that it raises as a :class:`~uwsgiapp.config.model.ConfigError`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The algorithms ``--cheaper-algo`` takes (uWSGI's names).
ALGOS = ("spare", "backlog", "busyness")
_NOT_HERE = {
    "spare2": "uWSGI's spare2 is not implemented: spare, or busyness for a gentler one",
    "manual": "uWSGI's manual algorithm waits for its master FIFO, which uwsgiapp has not: "
    "without --cheaper, TTIN/TTOU change --workers by hand",
}
#: The least value of each integer option (those of busyness only matter with busyness).
_LEAST = (
    ("cheaper_step", 1),
    ("cheaper_overload", 1),
    ("cheaper_busyness_min", 0),
    ("cheaper_busyness_multiplier", 1),
    ("cheaper_busyness_penalty", 0),
    ("cheaper_busyness_backlog_alert", 0),
    ("cheaper_busyness_backlog_step", 1),
    ("cheaper_busyness_backlog_multiplier", 1),
    ("cheaper_busyness_backlog_nonzero", 1),
)


def cheaper_problem(config: Any, defaults: Any) -> tuple[str, str] | None:
    """The first bad cheaper value of ``config`` as (option, message), or None.

    ``defaults``: a Config of default values (a cheaper option changed without ``--cheaper``
    would do nothing).
    """
    names = ("cheaper_initial", "cheaper_algo", *(name for name, _ in _LEAST))
    if config.cheaper < 0:
        return "cheaper", f"must be >= 0 (0 = off), got {config.cheaper}"
    if not config.cheaper:
        for name in names:
            if getattr(config, name) != getattr(defaults, name):
                return name, "needs --cheaper N (without it, --workers run all the time)"
        return None
    if config.cheaper >= config.workers:
        return "cheaper", (
            f"must be lower than --workers ({config.workers}), as uWSGI requires: --workers "
            f"is the most workers that run, --cheaper the fewest; got {config.cheaper}"
        )
    initial = config.cheaper_initial
    if initial and not config.cheaper <= initial <= config.workers:
        return "cheaper_initial", (
            f"must be between --cheaper ({config.cheaper}) and --workers ({config.workers}) "
            f"(or 0: --cheaper's), got {initial}"
        )
    if config.cheaper_algo not in ALGOS:
        why = _NOT_HERE.get(config.cheaper_algo, f"must be one of {', '.join(ALGOS)}")
        return "cheaper_algo", f"{why}; got {config.cheaper_algo!r}"
    for name, least in _LEAST:
        if getattr(config, name) < least:
            return name, f"must be >= {least}, got {getattr(config, name)}"
    low, high = config.cheaper_busyness_min, config.cheaper_busyness_max
    if not 0 <= high <= 100:
        return "cheaper_busyness_max", f"must be a percentage, 0..100, got {high}"
    if low > high:
        return (
            "cheaper_busyness_min",
            f"must not be over --cheaper-busyness-max ({high}), got {low}",
        )
    return None


#: How the source of an ini's value begins (:mod:`~uwsgiapp.config.uwsgiini`'s ``where``).
INI_SOURCE = "ini "
#: The keys the cheaper subsystem reads besides ``cheaper`` (uWSGI ignores them while
#: ``cheaper`` is 0).
CHEAPER_KEYS = ("cheaper_initial", "cheaper_algo", *(name for name, _ in _LEAST))
#: busyness's keys whose 0 means "the default" in uWSGI's plugin (cheaper_busyness.c's init).
ZERO_IS_DEFAULT = (
    "cheaper_busyness_min",
    "cheaper_busyness_max",
    "cheaper_busyness_multiplier",
    "cheaper_busyness_penalty",
    "cheaper_busyness_backlog_alert",
    "cheaper_busyness_backlog_step",
    "cheaper_busyness_backlog_multiplier",
    "cheaper_busyness_backlog_nonzero",
)


def ini_leniency(values: dict[str, Any], sources: dict[str, str], defaults: Any) -> list[str]:
    """uWSGI's reading of an ini's cheaper keys, applied to the merged ``values`` (field name:
    value) before validation; ``sources`` says where each came from. What the command line,
    the environment or a TOML file set stays as it is (validation refuses what is wrong).

    - ``cheaper`` 0 (off, a common templated ``cheaper = 0``): the ini's other cheaper keys are
      ignored, with a warning (uWSGI turns cheaper off when its count is 0);
    - an ini's ``cheaper-initial`` outside ``cheaper``..``processes`` is clamped, with a
      warning (as uWSGI does);
    - an ini's 0 for a busyness key is that key's default (as uWSGI's plugin reads it), and
      ``cheaper-step = 0`` is 1 (uWSGI starts one worker at a time then);
    - an ini's busyness min over its max (``cheaper-busyness-max = 20`` beside the default
      min of 25) is lowered to the max, with a warning: uWSGI checks the max first, so its
      min then only acts below the max.

    Returns the warnings.
    """
    said = []

    def from_ini(name: str) -> bool:
        return name in values and sources[name].startswith(INI_SOURCE)

    cheaper = values.get("cheaper", defaults.cheaper)
    if cheaper == 0:
        ignored = [n for n in CHEAPER_KEYS if from_ini(n) and values[n] != getattr(defaults, n)]
        for name in ignored:
            del values[name]
        if ignored:
            keys = "; ".join(sources.pop(name) for name in ignored)
            said.append(f"cheaper is 0 (off): ignored, as uWSGI ignores them: {keys}")
        return said
    for name in ZERO_IS_DEFAULT:
        if from_ini(name) and values[name] == 0:
            values[name] = getattr(defaults, name)
            sources[name] += " (0: the default, as uWSGI's busyness reads it)"
    if from_ini("cheaper_step") and values["cheaper_step"] == 0:
        values["cheaper_step"] = 1
        sources["cheaper_step"] += " (0: one at a time, as uWSGI starts them)"
    said += _busyness_bounds(values, sources, defaults, from_ini)
    workers = values.get("workers", defaults.workers)
    initial = values.get("cheaper_initial", 0)
    if from_ini("cheaper_initial") and initial and 0 < cheaper < workers:
        clamped = min(max(initial, cheaper), workers)
        if clamped != initial:
            values["cheaper_initial"] = clamped
            said.append(
                f"{sources['cheaper_initial']}: {initial} is outside cheaper ({cheaper}).."
                f"processes ({workers}): {clamped} workers at start, as uWSGI corrects it"
            )
    return said


def _busyness_bounds(
    values: dict[str, Any],
    sources: dict[str, str],
    defaults: Any,
    from_ini: Callable[[str], bool],
) -> list[str]:
    """An ini's busyness min over its max, lowered to the max (see :func:`ini_leniency`)."""
    low_name, high_name = "cheaper_busyness_min", "cheaper_busyness_max"
    if not (from_ini(low_name) or from_ini(high_name)):
        return []
    if low_name in values and not from_ini(low_name):
        return []  # the command line's, the environment's or a TOML file's: validation's
    low = values.get(low_name, defaults.cheaper_busyness_min)
    high = values.get(high_name, defaults.cheaper_busyness_max)
    if low <= high or not 0 <= high <= 100:
        return []  # in order (or a max out of range: validation names it)
    if from_ini(low_name):
        where = sources[low_name]
    else:
        where = "the default cheaper-busyness-min"
        sources[low_name] = f"{sources[high_name]} (the min lowered to it)"
    values[low_name] = high
    return [
        f"{where}: {low} is over cheaper-busyness-max ({high}): {high}, as uWSGI's busyness "
        "acts (it starts workers above the max before it looks at the min)"
    ]
