"""Compiled and pure-Python builds: what ``--version`` says, what the build backend chooses.

``make test`` runs the suite twice, with ``PYTEST_UWSGIAPP_BUILD`` telling which build is
installed: ``pure`` (the sources) and ``compiled`` (``UWSGIAPP_COMPILE=1 pip install .``).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from cli.cli_testkit import REPO, run_cli
from support.scripts import load_script

from uwsgiapp import __version__
from uwsgiapp.buildinfo import COMPILED_MODULES

EXPECTED = os.environ.get("PYTEST_UWSGIAPP_BUILD", "")


def runs_compiled(module: ModuleType) -> bool:
    """Told by the module itself: a C extension, whose functions are builtins, not Python's."""
    own = module.__name__
    functions = [v for v in vars(module).values() if getattr(v, "__module__", "") == own]
    native = [f for f in functions if type(f).__name__ == "builtin_function_or_method"]
    python = [f for f in functions if type(f).__name__ == "function"]
    compiled = Path(module.__file__ or "").suffix == ".so"
    assert not (python if compiled else native), (module.__file__, python or native)
    return compiled


def test_version_names_the_build() -> None:
    compiled = [name for name in COMPILED_MODULES if runs_compiled(importlib.import_module(name))]
    if not compiled:
        build = "pure Python"
    elif len(compiled) == len(COMPILED_MODULES):
        build = "compiled: " + ", ".join(compiled)
    else:
        build = "partly compiled: " + ", ".join(compiled)
    r = run_cli("--version")
    assert (r.returncode, r.stdout.decode().strip()) == (0, f"uwsgiapp {__version__} ({build})")
    if EXPECTED == "compiled":
        assert compiled == list(COMPILED_MODULES)
    elif EXPECTED == "pure":
        assert compiled == []


@pytest.mark.skipif(EXPECTED != "compiled", reason="the compiled build is not the one installed")
def test_compiled_build_is_the_installed_one() -> None:
    """The compiled pass runs the venv's package, never the checkout's sources."""
    import uwsgiapp
    import uwsgiproto

    for package in (uwsgiapp, uwsgiproto):
        assert not Path(package.__file__ or "").resolve().is_relative_to(REPO / "uwsgiapp")
        assert "site-packages" in Path(package.__file__ or "").parts
    # The construct shells stay interpreted; the loops they call are compiled.
    schema = importlib.import_module("uwsgiproto.schema")
    assert Path(schema.__file__ or "").suffix == ".py"
    assert type(schema.parse_var_block).__name__ == "builtin_function_or_method"


def test_a_compiled_build_refuses_the_source_codec_instead_of_crashing() -> None:
    # The checkout's protocol/ first on sys.path: the pure build runs with it; the compiled one
    # would segfault on the first request (seen), so importing it must fail and say why.
    import uwsgiapp

    env = {"PYTHONPATH": str(REPO / "protocol"), "PYTHONSAFEPATH": "1"}
    r = run_cli("--version", cwd=REPO / "tests", env=env)
    if EXPECTED == "compiled" or runs_compiled(importlib.import_module("uwsgiapp.server.intake")):
        assert r.returncode == 1
        err = r.stderr.decode()
        assert "ImportError: uwsgiapp in " in err and "is a compiled build" in err
        assert f"Take {REPO / 'protocol'} off sys.path" in err
    else:
        assert (r.returncode, r.stdout.decode()) == (0, f"uwsgiapp {__version__} (pure Python)\n")
        assert Path(uwsgiapp.__file__ or "").parent == REPO / "uwsgiapp"


def test_protocol_mismatch_is_a_compiled_package_beside_a_source_codec(tmp_path: Path) -> None:
    from importlib.machinery import EXTENSION_SUFFIXES

    from uwsgiapp import protocol_mismatch

    compiled_app, pure_app = tmp_path / "a" / "uwsgiapp", tmp_path / "b" / "uwsgiapp"
    compiled_codec, source_codec = tmp_path / "c" / "uwsgiproto", tmp_path / "d" / "uwsgiproto"
    for d in (compiled_app / "server", pure_app / "server", compiled_codec, source_codec):
        d.mkdir(parents=True)
    (compiled_app / "server" / f"intake{EXTENSION_SUFFIXES[0]}").touch()
    (pure_app / "server" / "intake.py").touch()
    (compiled_codec / f"layout{EXTENSION_SUFFIXES[-1]}").touch()
    (source_codec / "layout.py").touch()
    assert protocol_mismatch(str(compiled_app), str(compiled_codec)) is None
    assert protocol_mismatch(str(pure_app), str(source_codec)) is None
    assert protocol_mismatch(str(pure_app), str(compiled_codec)) is None
    message = protocol_mismatch(str(compiled_app), str(source_codec))
    assert message is not None and str(source_codec) in message and "UWSGIAPP_COMPILE=0" in message


# --- the build backend's choice ------------------------------------------------------------


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.delenv("UWSGIAPP_COMPILE", raising=False)
    return load_script("build_backend/uwsgiapp_build.py")


@pytest.mark.parametrize(
    ("value", "editable", "expected"),
    [
        ("0", False, (False, False)),
        ("0", True, (False, False)),
        ("1", False, (True, True)),
        ("1", True, (True, True)),
        (None, True, (False, False)),  # editable installs stay pure unless forced
    ],
)
def test_plan_follows_the_environment(
    backend: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
    editable: bool,
    expected: tuple[bool, bool],
) -> None:
    if value is not None:
        monkeypatch.setenv("UWSGIAPP_COMPILE", value)
    assert backend.plan(editable)[:2] == expected


def test_plan_without_a_compiler_is_pure(
    backend: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "false")
    compile_, required, why = backend.plan(False)
    assert (compile_, required) == (False, False)
    assert "no working C compiler" in why
    assert backend._mypy(False) == []  # mypy is not even installed for the build


def test_plan_refuses_an_unknown_value(
    backend: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UWSGIAPP_COMPILE", "maybe")
    with pytest.raises(SystemExit, match="UWSGIAPP_COMPILE='maybe'"):
        backend.plan(False)


# --- real builds, from a copy of the sources -------------------------------------------------

SOURCES = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "LICENSE",
    "build_backend",
    "uwsgiapp",
    "protocol",
)


def copy_sources(tmp_path: Path) -> Path:
    """A copy of what a build of the checkout reads (the checkout's build/ stays untouched)."""
    tree = tmp_path / "src"
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            skip = shutil.ignore_patterns("__pycache__", "*.so")
            shutil.copytree(source, tree / name, ignore=skip)
        else:
            tree.mkdir(exist_ok=True)
            shutil.copy2(source, tree / name)
    return tree


def build_wheel(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``pip wheel --no-deps`` of a copy of the checkout."""
    tree = copy_sources(tmp_path)
    dist = str(tmp_path / "dist")
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, "."],
        cwd=tree,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.packaging
@pytest.mark.slow
def test_no_compiler_builds_a_pure_wheel(tmp_path: Path) -> None:
    """Unset ``UWSGIAPP_COMPILE`` never fails for lack of a compiler: it builds pure Python."""
    r = build_wheel(tmp_path, CC="false", UWSGIAPP_COMPILE="")
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("uwsgiapp-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "uwsgiproto/varblock.py" in names and not [n for n in names if n.endswith(".so")]
    assert [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]  # MIT's notice


@pytest.mark.packaging
@pytest.mark.slow
def test_a_build_that_falls_back_after_the_probe_is_a_pure_wheel(tmp_path: Path) -> None:
    """The probe compiles, the hot path does not (a compiler that fails on mypyc's C): the
    wheel was pure Python tagged cp311-cp311-linux_x86_64, installable on this platform only."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler to pass the probe with")
    wrapper = tmp_path / "cc-probe-only"
    calls = tmp_path / "calls"
    wrapper.write_text(
        f'#!/bin/sh\ncase "$*" in *probe.c*) echo probe >> {calls}; exec {gcc} "$@";; esac\n'
        f"echo build >> {calls}\nexit 1\n"
    )
    wrapper.chmod(0o755)
    r = build_wheel(tmp_path, CC=str(wrapper), UWSGIAPP_COMPILE="")
    assert r.returncode == 0, r.stderr
    assert set(calls.read_text().split()) == {"probe", "build"}  # it passed, then mypyc's failed
    (wheel,) = (tmp_path / "dist").glob("uwsgiapp-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (info,) = [n for n in names if n.endswith(".dist-info/WHEEL")]
        assert "Root-Is-Purelib: true" in archive.read(info).decode()
    assert "uwsgiapp/server/exchange.py" in names and not [n for n in names if ".so" in n]
    assert not [n for n in names if ".data/" in n]  # in the wheel's root, not platlib


@pytest.mark.packaging
@pytest.mark.slow
def test_forced_compile_without_a_compiler_fails(tmp_path: Path) -> None:
    r = build_wheel(tmp_path, CC="false", UWSGIAPP_COMPILE="1")
    assert r.returncode != 0
    assert not list((tmp_path / "dist").glob("*.whl"))
    # It failed where the C compiler ran (mypyc's check passed): any earlier failure, a type
    # error in the build environment, would make this test pass for the wrong reason.
    assert "['false', " in r.stderr + r.stdout, r.stderr[-3000:]
    assert "UWSGIAPP_COMPILE=1, but compiling the hot path failed" in r.stderr  # and what to do


@pytest.mark.packaging
def test_the_compiled_modules_type_check_without_site_packages(tmp_path: Path) -> None:
    """What the image's build stage sees: mypyc checks the compiled modules and everything they
    import, in a build environment where werkzeug is not installed. The local builds find the
    venv's packages, so an import path from a compiled module to werkzeug (the dev server, through
    the command line) passed here and failed only in the image (``docker compose build``)."""
    paths = [
        ("protocol/" if name.startswith("uwsgiproto") else "") + name.replace(".", "/") + ".py"
        for name in COMPILED_MODULES
    ]
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-site-packages", "--cache-dir", str(tmp_path), *paths],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.packaging
@pytest.mark.slow
def test_a_pure_editable_install_removes_what_a_compiled_one_built_in_the_tree(
    tmp_path: Path,
) -> None:
    """After ``UWSGIAPP_COMPILE=1 pip install -e .``, a plain ``pip install -e .`` left the
    extensions beside the sources: they shadowed the .py files, and ``import uwsgiproto``
    failed ("No module named 'uwsgiapp__mypyc'")."""
    tree = copy_sources(tmp_path)
    suffix = ".cpython-311-x86_64-linux-gnu.so"
    planted = [
        tree / f"uwsgiapp__mypyc{suffix}",
        tree / "protocol/uwsgiproto" / f"varblock{suffix}",
    ]
    planted.append(tree / "uwsgiapp/server" / f"exchange{suffix}")
    for path in planted:
        path.write_bytes(b"")
    mine = tree / "uwsgiapp/server" / f"mine{suffix}"  # no module of ours: not touched
    mine.write_bytes(b"")
    code = f"import uwsgiapp_build as b; print(b.build_editable({str(tmp_path / 'dist')!r}))"
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree / "build_backend"), "UWSGIAPP_COMPILE": ""},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "removed 3 compiled files of an earlier compiled editable install" in r.stderr
    assert not [p for p in planted if p.exists()] and mine.exists()


def test_the_start_line_names_the_interpreter() -> None:
    """An app's ModuleNotFoundError under another virtualenv's uwsgiapp: 'Python 3.11.2' alone
    did not say which one runs."""
    from uwsgiapp.buildinfo import running_version

    said = running_version()
    assert said.startswith(f"uwsgiapp {__version__}, ")
    assert said.endswith(f", Python {sys.version.split()[0]} at {sys.executable}")
