"""The lint config classifies imports the same whatever the checkout holds besides the sources.

``make run`` leaves its files in ``./run/`` (nginx's config, temp dirs), and ruff takes any
top-level directory for a first-party package: with that directory there, the bench scripts'
``import run`` (bench/run.py, a sibling on their ``sys.path``) moved to another import section
and ``make lint`` (so ``make test``) failed after ``make run``, on a machine without ruff's cache.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed")
def test_bench_imports_sort_the_same_beside_make_runs_directory(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "bench", tmp_path / "bench", ignore=shutil.ignore_patterns("out"))
    (tmp_path / "uwsgiapp").symlink_to(ROOT / "uwsgiapp")  # first-party, as in the checkout
    (tmp_path / "protocol").symlink_to(ROOT / "protocol")
    (tmp_path / "run" / "nginx").mkdir(parents=True)  # what `make run` leaves
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "I", "bench"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
