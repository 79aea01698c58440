"""The PEP 517 build backend: setuptools', plus the choice of a compiled or a pure-Python build.

A wheel build (``pip install .``, ``pip wheel .``, ``python -m build``) compiles the hot-path
modules listed in ``uwsgiapp/buildinfo.py`` with mypyc when it can, and builds pure Python when it
cannot; ``UWSGIAPP_COMPILE`` forces either:

* unset (or ``auto``): compile when a C compiler and Python's headers work (probed by compiling a
  file that includes ``Python.h``), else pure Python; a failed compile also falls back to pure;
* ``1``: compile or fail the build;
* ``0``: never compile (mypy is not even installed for the build).

Editable installs (``pip install -e .``, what ``make test`` uses) stay pure Python unless
``UWSGIAPP_COMPILE=1``: extensions built next to the sources would shadow the edited ``.py`` files.

mypy (which ships mypyc) is asked for only when the build will compile: a platform with no
compiler never needs it; where a compiler works but mypy cannot be fetched (offline, a mirror
without it), ``UWSGIAPP_COMPILE=0`` builds pure Python. setup.py does the compiling; every hook
not defined here is setuptools' own.
"""

from __future__ import annotations

import os
import sysconfig
import tempfile

from setuptools import build_meta as _setuptools  # (also puts its distutils in place)
from setuptools.build_meta import *  # noqa: F403  (the hooks this module does not override)

ENV = "UWSGIAPP_COMPILE"
MYPY_REQUIREMENT = "mypy>=1.10"

_FORCE = {"1", "yes", "true", "on"}
_NEVER = {"0", "no", "false", "off"}


def compile_mode() -> str:
    """``"force"``, ``"never"`` or ``"auto"``, from ``UWSGIAPP_COMPILE``."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in _FORCE:
        return "force"
    if value in _NEVER:
        return "never"
    if value in ("", "auto"):
        return "auto"
    raise SystemExit(f"{ENV}={value!r}: use 1 (compile or fail), 0 (pure Python) or leave it unset")


def toolchain_problem() -> str | None:
    """Why no C extension can be built here, or None when a compiler and Python's headers work."""
    from distutils.ccompiler import new_compiler
    from distutils.errors import CCompilerError, DistutilsError
    from distutils.sysconfig import customize_compiler

    include = sysconfig.get_paths()["include"]
    if not os.path.isfile(os.path.join(include, "Python.h")):
        return f"no Python headers ({include}/Python.h; on Debian: apt-get install python3-dev)"
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("#include <Python.h>\nint uwsgiapp_probe(void) { return 0; }\n")
        compiler = new_compiler()
        customize_compiler(compiler)
        try:
            compiler.compile([source], output_dir=tmp, include_dirs=[include])
        except (CCompilerError, DistutilsError, OSError) as exc:
            return f"no working C compiler ({exc})"
    return None


def plan(editable: bool) -> tuple[bool, bool, str]:
    """(compile?, required?, why) for this build; ``required``: a failure fails the build."""
    mode = compile_mode()
    if mode == "never":
        return False, False, f"{ENV}=0"
    if mode == "force":
        return True, True, f"{ENV}=1"
    if editable:
        return False, False, f"an editable install (set {ENV}=1 to compile one)"
    problem = toolchain_problem()
    if problem:
        return False, False, problem
    return True, False, "a C compiler and Python's headers are present"


def _mypy(editable: bool) -> list[str]:
    return [MYPY_REQUIREMENT] if plan(editable)[0] else []


def get_requires_for_build_wheel(config_settings: dict[str, object] | None = None) -> list[str]:
    return [*_setuptools.get_requires_for_build_wheel(config_settings), *_mypy(False)]


def get_requires_for_build_editable(config_settings: dict[str, object] | None = None) -> list[str]:
    return [*_setuptools.get_requires_for_build_editable(config_settings), *_mypy(True)]
