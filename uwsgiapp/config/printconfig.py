"""``--print-config``: option values in TOML syntax, each with the source it came from
(what ``--config`` reads back)."""

from __future__ import annotations

import json
import re
from typing import Any

from uwsgiapp.config.configload import OptionSpec, Resolved, option_specs

__all__ = ["format_config", "format_value"]


def format_value(spec: OptionSpec, value: Any) -> str:
    """A value in TOML syntax (what ``--config`` reads back)."""
    if spec.octal:
        return json.dumps(f"0{value:o}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if spec.kind == "pairs":
        # The last of a name wins, as when they are set in order (an ini may set one twice);
        # a TOML table cannot hold a key twice.
        pairs = dict(item.split("=", 1) for item in value)
        return "{" + ", ".join(f"{_toml_key(k)} = {json.dumps(v)}" for k, v in pairs.items()) + "}"
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return json.dumps(value)


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def format_config(resolved: Resolved) -> str:
    """The resolved configuration as TOML, each line commented with its source."""
    lines = ["# uwsgiapp configuration: value  # where it came from (usable with --config)"]
    rows = [
        (f"{spec.option} = {format_value(spec, getattr(resolved.config, spec.name))}", spec.name)
        for spec in option_specs()
    ]
    width = max(len(text) for text, _ in rows)
    for text, name in rows:
        lines.append(f"{text.ljust(width)}  # {resolved.sources[name]}")
    return "\n".join(lines) + "\n"
