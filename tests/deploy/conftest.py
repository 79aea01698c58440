"""Fixtures shared by the Docker tests (marker ``docker``), and their figures in the summary.

One engine check, one run of deploy/images/offline.sh and one build of the app image per
session; the compose and Swarm modules start their own stacks from them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from deploy.docker_kit import (
    APP_IMAGE,
    BASE_IMAGES,
    FIGURES,
    OFFLINE_SCRIPT,
    REQUIRED_ENV,
    SKIPPED,
    compose_cli,
    engine_problem,
    run,
)


@pytest.fixture(scope="session")
def docker_compose() -> list[str]:
    """The compose CLI (``docker compose`` or ``docker-compose``) for a working engine.

    Without an engine the Docker tests skip, saying why in the summary; where .ci/run started
    one (it sets UWSGIAPP_DOCKER_REQUIRED=1) they fail instead: there they must run."""
    problem = engine_problem()
    cli = None if problem else compose_cli()
    if cli is None and problem is None:
        problem = "neither `docker compose` nor `docker-compose` is installed"
    if problem or cli is None:
        if os.environ.get(REQUIRED_ENV) == "1":
            pytest.fail(f"{REQUIRED_ENV}=1 but Docker cannot be used: {problem}")
        SKIPPED.append(str(problem))
        pytest.skip(f"DOCKER TESTS NOT RUN: {problem}")
    return cli


@pytest.fixture(scope="session")
def docker_images(docker_compose: list[str]) -> Iterator[None]:
    """The base images (stand-ins from offline.sh where no registry has them) and the app
    image, built once for the session (and removed after it)."""
    started = time.monotonic()
    result = run([str(OFFLINE_SCRIPT), *BASE_IMAGES], timeout=900)
    took = time.monotonic() - started
    built = [line for line in result.stderr.splitlines() if " built " in line]
    FIGURES["base images (deploy/images/offline.sh)"] = (
        f"{took:.0f} s: " + "; ".join(b.split(": ", 1)[1] for b in built)
        if built
        else f"{took:.1f} s (present: nothing to build)"
    )
    started = time.monotonic()
    try:
        run(
            [*docker_compose, "build", "--build-arg", f"BUILD_STAGE_LABEL={APP_IMAGE}", "app"],
            timeout=600,
            env={"APP_IMAGE": APP_IMAGE},
        )
        FIGURES[f"app image ({APP_IMAGE}, compose build)"] = f"{time.monotonic() - started:.1f} s"
        yield
    finally:
        run(["docker", "image", "rm", APP_IMAGE], check=False)
        # The build stage's untagged image (the builder without BuildKit keeps it).
        label = f"label=uwsgiapp.build-stage={APP_IMAGE}"
        run(["docker", "image", "prune", "--force", "--filter", label], check=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SKIPPED:
        terminalreporter.section("Docker tests NOT RUN", sep="!", red=True, bold=True)
        for reason in dict.fromkeys(SKIPPED):
            terminalreporter.write_line(reason)
    if FIGURES:
        terminalreporter.section("Docker figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
