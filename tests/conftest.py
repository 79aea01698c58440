"""Shared fixtures: real nginx in front of a real ``uwsgiapp serve``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.procs import Nginx, Server, nginx_binary, short_tmpdir_prefix, stack

ROOT = str(Path(__file__).resolve().parents[1])
#: Set (to 1) by ``make test-compiled``: the tests, and every process they start, run the package
#: installed in the venv (a compiled build), not the checkout's sources.
INSTALLED = os.environ.get("PYTEST_UWSGIAPP_INSTALLED") == "1"

if INSTALLED:
    # ``python -m`` would put the working directory (often this checkout) first on sys.path.
    os.environ["PYTHONSAFEPATH"] = "1"
    for _package, _source in (("uwsgiapp", "uwsgiapp"), ("uwsgiproto", "protocol/uwsgiproto")):
        _where = Path(__import__(_package).__file__ or "").resolve().parent
        if _where == Path(ROOT, _source):
            raise RuntimeError(f"PYTEST_UWSGIAPP_INSTALLED=1, yet {_package} is from {_where}")
else:
    # Every process the tests start (``python -m uwsgiapp``, scripts) runs this checkout's code,
    # even when the venv's editable install points at another work tree. The codec's import
    # package (uwsgiproto) lives in protocol/.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, os.path.join(ROOT, "protocol"), os.environ.get("PYTHONPATH", "")) if p
    )


@pytest.fixture(scope="session")
def nginx_available() -> None:
    """Fail clearly (not skip) when nginx is missing: CI installs it."""
    if nginx_binary() is None:
        pytest.fail("nginx is not installed; run the tests through `make test` or .ci/run")


@pytest.fixture(scope="module")
def worker_stack(
    tmp_path_factory: pytest.TempPathFactory, nginx_available: None
) -> Iterator[tuple[Server, Nginx]]:
    """One single-worker server on a unix socket behind nginx, shared by a test module."""
    workdir: Path = tmp_path_factory.mktemp("stack")
    with stack(workdir, "nginx_app:app", limit_post=32 * 1024 * 1024) as pair:
        yield pair


@pytest.fixture(scope="session", autouse=True)
def _remove_short_tmpdirs() -> Iterator[None]:
    """Remove the socket dirs the session's servers used (they are not under tmp_path)."""
    yield
    for path in Path(tempfile.gettempdir()).glob(short_tmpdir_prefix(os.getpid()) + "*"):
        shutil.rmtree(path, ignore_errors=True)
