"""Helpers for the deploy tests: the stack script as a module, YAML files, processes."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from support.procs import alive as alive  # re-exported: the deploy tests take it from here

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
STACK_FILE = ROOT / "deploy" / "stack.yml"
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


def load_yaml(path: Path) -> Any:
    """A compose or stack file as data (PyYAML, from the ``[test]`` extra). scripts/stack.py
    reads the app command without a YAML library; test_compose.py checks that both agree."""
    import yaml

    return yaml.safe_load(path.read_text())


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
