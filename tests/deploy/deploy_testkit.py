"""Helpers for the deploy tests: the stack script as a module, a small YAML reader, processes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
TEMPLATE = ROOT / "deploy" / "nginx" / "templates" / "default.conf.template"
STATIC = ROOT / "examples" / "static"


def load_stack() -> ModuleType:
    """scripts/stack.py, imported as a module (it is a script, not a package)."""
    name = "uwsgiapp_stack_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "stack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --- a strict reader for the YAML our compose file uses ---------------------------------------
#
# No YAML library is a dependency, so this reads the subset docker-compose.yml is written in:
# block mappings, block lists of scalars, JSON-style flow lists (possibly over several lines),
# plain or double-quoted scalars, comments. Anything else raises, so the file cannot silently
# drift into YAML this reader (and scripts/stack.py) would misread. When PyYAML or the
# docker-compose tool is installed, the tests also compare against them.


class YamlSubsetError(ValueError):
    pass


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith(("'", "{", "&", "*", "!", "|", ">")):
        raise YamlSubsetError(f"unsupported YAML value: {text!r}")
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    if text.lower() in ("yes", "no", "on", "off", "null", "~", "y", "n"):
        raise YamlSubsetError(f"ambiguous YAML scalar, quote it: {text!r}")
    return text


def _strip_comment(line: str) -> str:
    if line.lstrip().startswith("#"):
        return ""
    # " #" starts a comment outside quotes; our values never contain it inside quotes.
    return re.sub(r"\s+#.*$", "", line) if '"' not in line else line


def parse_yaml_subset(text: str) -> Any:
    lines: list[tuple[int, str]] = []
    raw = text.splitlines()
    i = 0
    while i < len(raw):
        line = _strip_comment(raw[i]).rstrip()
        i += 1
        if not line.strip():
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise YamlSubsetError("tabs in indentation")
        # Join a flow list spanning lines.
        while line.count("[") > line.count("]"):
            if i >= len(raw):
                raise YamlSubsetError("unterminated flow list")
            line += " " + raw[i].strip()
            i += 1
        lines.append((len(line) - len(line.lstrip()), line.strip()))
    value, rest = _block(lines, 0, lines[0][0] if lines else 0)
    if rest != len(lines):
        raise YamlSubsetError(f"unexpected indentation at {lines[rest][1]!r}")
    return value


def _block(lines: list[tuple[int, str]], pos: int, indent: int) -> tuple[Any, int]:
    if lines[pos][1].startswith("- "):
        items: list[Any] = []
        while pos < len(lines) and lines[pos][0] == indent and lines[pos][1].startswith("- "):
            item = lines[pos][1][2:]
            if re.match(r"^[A-Za-z_][\w.-]*:", item):
                raise YamlSubsetError(f"mappings in lists are not in the subset: {item!r}")
            items.append(_scalar(item))
            pos += 1
        return items, pos
    mapping: dict[str, Any] = {}
    while pos < len(lines) and lines[pos][0] == indent:
        text = lines[pos][1]
        m = re.match(r"^([A-Za-z_][\w.-]*):(?:\s+(.*))?$", text)
        if not m:
            raise YamlSubsetError(f"not a 'key: value' line: {text!r}")
        key, value = m.group(1), m.group(2)
        if key in mapping:
            raise YamlSubsetError(f"duplicate key {key!r}")
        pos += 1
        if value:
            mapping[key] = _scalar(value)
        elif pos < len(lines) and lines[pos][0] > indent:
            mapping[key], pos = _block(lines, pos, lines[pos][0])
        else:
            mapping[key] = None
    return mapping, pos


# --- processes -----------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
