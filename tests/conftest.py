"""Shared fixtures: real nginx in front of a real ``uwsgiapp serve``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.procs import Nginx, Server, nginx_binary, stack


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
