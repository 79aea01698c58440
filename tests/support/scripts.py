"""Load a script of the repo (bench/, scripts/) as a module, for tests of its pure parts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_script(relative: str) -> ModuleType:
    """Import ``ROOT/relative`` (e.g. ``"bench/bench_codec.py"``) as ``script_<file name>``.

    Registered in ``sys.modules`` (dataclasses look their module up there while the script runs),
    under a name no real module has.
    """
    path = ROOT / relative
    name = f"script_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
