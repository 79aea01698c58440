"""What pyproject.toml cannot say: the mypyc-compiled extensions of a compiled build.

All metadata is in pyproject.toml. A wheel build compiles the modules listed in
``uwsgiapp/buildinfo.py`` (``COMPILED_MODULES``) when ``build_backend/uwsgiapp_build.py``'s plan
says so (``UWSGIAPP_COMPILE``: unset tries and falls back to pure Python, ``1`` compiles or fails,
``0`` never compiles; editable installs stay pure unless ``1``). Metadata steps (``egg_info``,
``dist_info``) never run mypyc: it takes a while.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "build_backend"))

from uwsgiapp_build import plan  # noqa: E402

#: setup.py commands that build extensions (``bdist_wheel`` is what PEP 517 builds run).
BUILDS = {"bdist_wheel", "build", "build_ext", "install"}
EDITABLE = {"editable_wheel", "develop"}


def say(message: str) -> None:
    print(f"uwsgiapp build: {message}", file=sys.stderr, flush=True)


def compiled_modules() -> tuple[str, ...]:
    """``COMPILED_MODULES`` from uwsgiapp/buildinfo.py, read without importing the package."""
    tree = ast.parse((HERE / "uwsgiapp" / "buildinfo.py").read_text(encoding="utf-8"))
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "COMPILED_MODULES":
            names = ast.literal_eval(node.value)  # type: ignore[attr-defined]
            return tuple(names)
    raise RuntimeError("uwsgiapp/buildinfo.py has no COMPILED_MODULES")


def source_path(module: str) -> str:
    """The source file of ``module``, relative to this directory (uwsgiproto lives in protocol/)."""
    parts = module.split(".")
    root = ["protocol"] if parts[0] == "uwsgiproto" else []
    return "/".join([*root, *parts]) + ".py"


def mypyc_extensions(required: bool) -> list[Any]:
    """The extensions mypyc generates (C sources under build/); [] when it cannot, if allowed."""
    paths = [source_path(name) for name in compiled_modules()]
    try:
        from mypyc.build import mypycify

        # One shared library (uwsgiapp__mypyc) holds the compiled code; each module gets a stub.
        # No debug info: it doubled the library (1.8 MB) and held this machine's build paths.
        return list(mypycify(paths, opt_level="3", debug_level="0", group_name="uwsgiapp"))
    except (Exception, SystemExit) as exc:
        if required:
            raise
        say(f"mypyc could not compile the hot path ({exc!r}); building pure Python")
        return []


class OptionalBuildExt(build_ext):
    """build_ext that, unless compiling is required, falls back to pure Python on a failure."""

    required = False

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            if self.required:
                say(
                    f"UWSGIAPP_COMPILE=1, but compiling the hot path failed ({exc}): install a C "
                    "compiler and Python's headers (Debian: apt-get install gcc python3-dev), "
                    "or leave UWSGIAPP_COMPILE unset to build pure Python where compiling fails"
                )
                raise
            say(f"compiling failed ({exc}); building pure Python")
            # No half-compiled package: a module's stub without the shared library cannot import.
            for output in self.get_outputs():
                if os.path.exists(output):
                    os.remove(output)
            # Nor a platform wheel (cp311-cp311-linux_x86_64) of pure Python: the wheel command
            # took it for a compiled one before the build ran.
            self.distribution.ext_modules = []
            wheel = self.distribution.command_obj.get("bdist_wheel")
            if wheel is not None:
                wheel.root_is_pure = True  # type: ignore[attr-defined]


def forget_earlier_builds() -> None:
    """Empty build/lib*: files of an earlier build (an extension no longer compiled, or any of
    them before a pure build) would otherwise be copied into this wheel."""
    for stale in (HERE / "build").glob("lib*"):
        shutil.rmtree(stale, ignore_errors=True)


def compiled_in_tree() -> list[Path]:
    """The extensions a compiled editable install built next to the sources (each module's
    stub, and the shared library they load), for any Python."""
    found = sorted(HERE.glob("uwsgiapp__mypyc.*.so"))
    for module in compiled_modules():
        source = HERE / source_path(module)
        found += sorted(source.parent.glob(f"{source.stem}.*.so"))
    return found


def forget_compiled_in_tree() -> None:
    """Before a pure editable install: remove what a compiled one built in the tree, which
    would shadow the edited ``.py`` files (and, its shared library gone, fail to import)."""
    stale = compiled_in_tree()
    for path in stale:
        path.unlink()
    if stale:
        say(f"removed {len(stale)} compiled files of an earlier compiled editable install")


def main() -> None:
    commands = set(sys.argv[1:])
    ext_modules: list[Any] = []
    if commands & BUILDS:
        forget_earlier_builds()
    if commands & (BUILDS | EDITABLE):
        compile_, required, why = plan(editable=bool(commands & EDITABLE))
        say(f"{'compiling the hot path with mypyc' if compile_ else 'pure Python'}: {why}")
        if commands & EDITABLE and not compile_:
            forget_compiled_in_tree()
        if compile_:
            OptionalBuildExt.required = required
            ext_modules = mypyc_extensions(required)
    setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})


main()
