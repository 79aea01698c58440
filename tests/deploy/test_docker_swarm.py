"""deploy/stack.yml on a real single-node Swarm: deploy, serve, a rolling update under load.

The module joins the engine to a swarm only if it is in none (`docker swarm init` on loopback)
and then leaves it again; an engine that is already a manager is used as it is and left in its
swarm. The stack gets a unique name and a free port (NGINX_PORT; a host-mode port is bound on
every interface: Swarm has no host address for it). The finalizers remove the stack, and the
swarm and its docker_gwbridge network if this module made them, even when a test failed.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from deploy.deploy_testkit import ROOT, STACK_FILE
from deploy.docker_kit import (
    APP_IMAGE,
    FIGURES,
    POST_BODY,
    REQUIRED_ENV,
    DockerError,
    Load,
    access_log_upstreams,
    container_ips,
    free_port,
    health,
    request,
    run,
    upstream_hosts,
    wait_until,
)

pytestmark = pytest.mark.docker

REPLICAS = 3


def swarm_state() -> tuple[str, bool]:
    fields = "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"
    out = run(["docker", "info", "--format", fields])
    state, manager = out.stdout.split()
    return state, manager == "true"


def network_exists(name: str) -> bool:
    return run(["docker", "network", "inspect", name], check=False).returncode == 0


@dataclass
class Swarm:
    made_here: bool
    gwbridge_made_here: bool

    def leave(self) -> None:
        if not self.made_here:
            return
        if swarm_state()[0] != "inactive":
            run(["docker", "swarm", "leave", "--force"], timeout=60)
        # `swarm init` creates docker_gwbridge, and `leave` keeps it.
        if self.gwbridge_made_here and network_exists("docker_gwbridge"):
            run(["docker", "network", "rm", "docker_gwbridge"], check=False)


@pytest.fixture(scope="module")
def swarm(docker_compose: list[str]) -> Iterator[Swarm]:
    state, manager = swarm_state()
    if state == "active":
        if not manager:
            pytest.fail("this engine is a swarm worker: deploy/stack.yml needs a manager")
        made = Swarm(made_here=False, gwbridge_made_here=False)
    elif state == "inactive":
        # Leaving a swarm detaches the engine's running standalone containers from their
        # networks (moby/moby#38900): on a machine that runs other containers (a developer's
        # Compose projects), the swarm this test would make and leave is not ours to risk.
        others = run(["docker", "ps", "-q"]).stdout.split()
        if others and os.environ.get(REQUIRED_ENV) != "1":
            pytest.skip(
                f"{len(others)} containers run on this engine, and leaving the swarm this test "
                f"makes would detach them from their networks (moby#38900); {REQUIRED_ENV}=1 "
                "runs it anyway"
            )
        gwbridge = network_exists("docker_gwbridge")
        started = time.monotonic()
        # On loopback: nothing listens for other nodes.
        run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1",
             "--listen-addr", "127.0.0.1:2377"], timeout=60)  # fmt: skip
        FIGURES["docker swarm init"] = f"{time.monotonic() - started:.1f} s"
        made = Swarm(made_here=True, gwbridge_made_here=not gwbridge)
    else:
        pytest.fail(f"the engine's swarm state is {state!r}; expected active or inactive")
    try:
        yield made
    finally:
        made.leave()


@dataclass
class Stack:
    name: str
    port: int

    def service(self, name: str) -> str:
        return f"{self.name}_{name}"

    def containers(self, service: str) -> list[str]:
        label = f"label=com.docker.swarm.service.name={self.service(service)}"
        return sorted(run(["docker", "ps", "-q", "--no-trunc", "--filter", label]).stdout.split())

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.stack.namespace={self.name}"
        found = run(["docker", "ps", "-aq", "--filter", label]).stdout.split()
        found += run(["docker", "network", "ls", "-q", "--filter", label]).stdout.split()
        found += run(["docker", "service", "ls", "-q", "--filter", label]).stdout.split()
        return found

    def nginx_log(self) -> str:
        return "".join(run(["docker", "logs", c]).stdout for c in self.containers("nginx"))

    def remove(self) -> None:
        if self.leftovers():
            run(["docker", "stack", "rm", self.name], timeout=60, check=False)
            wait_until("stack removed", lambda: not self.leftovers(), 90, interval=0.5)


@pytest.fixture(scope="module")
def stack(swarm: Swarm, docker_images: None) -> Iterator[Stack]:
    deployed = Stack(f"uwsgiapp-t{os.getpid()}{secrets.token_hex(2)}", free_port())
    env = {"NGINX_PORT": str(deployed.port), "APP_REPLICAS": str(REPLICAS), "APP_IMAGE": APP_IMAGE}
    try:
        started = time.monotonic()
        run(["docker", "stack", "deploy", "-c", str(STACK_FILE), deployed.name], env=env)

        def ready() -> bool:
            apps = deployed.containers("app")
            if len(apps) != REPLICAS or health(apps) != ["healthy"] * REPLICAS:
                return False
            try:
                return request(deployed.port, "GET", "/healthz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until("3 healthy replicas answering through nginx", ready, 120, interval=0.5)
        FIGURES["docker stack deploy to 3 healthy replicas serving"] = (
            f"{time.monotonic() - started:.1f} s"
        )
        yield deployed
    finally:
        try:
            deployed.remove()
        except (AssertionError, DockerError) as exc:
            print(f"stack removal: {exc}", file=sys.stderr)


def test_stack_serves_the_example(stack: Stack) -> None:
    status, _, body = request(stack.port, "GET", "/")
    assert status == 200
    assert b'<form method="post" action="/greet">' in body
    status, _, body = request(stack.port, "GET", "/api/info?swarm=1")
    assert status == 200
    assert json.loads(body)["args"] == {"swarm": "1"}
    status, _, body = request(stack.port, "GET", "/static/style.css")
    assert status == 200
    assert body == (ROOT / "examples" / "static" / "style.css").read_bytes()
    assert request(stack.port, "GET", "/no/such/page")[0] == 404
    spec = json.loads(run(["docker", "service", "inspect", stack.service("app")]).stdout)[0]
    assert spec["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
    assert spec["Spec"]["Mode"]["Replicated"]["Replicas"] == REPLICAS
    assert spec["Spec"]["UpdateConfig"]["Order"] == "start-first"


def served_by(stack: Stack, count: int = 60) -> dict[str, int]:
    marker = f"/healthz?served-by={secrets.token_hex(3)}"
    statuses = [request(stack.port, "GET", marker)[0] for _ in range(count)]
    assert statuses == [200] * count
    return dict(upstream_hosts(access_log_upstreams(stack.nginx_log(), marker)))


def test_every_replica_serves(stack: Stack) -> None:
    expected = container_ips(stack.containers("app"))
    assert len(expected) == REPLICAS
    wait_until("all replicas in nginx's answers", lambda: set(served_by(stack)) == expected, 15)


def test_rolling_update_under_load_fails_nothing(stack: Stack) -> None:
    before = set(stack.containers("app"))
    with (
        Load(stack.port, threads=4, max_seconds=300) as load,
        Load(stack.port, "/api/echo", threads=2, max_seconds=300, body=POST_BODY) as posts,
    ):
        time.sleep(2)
        started = time.monotonic()
        run(
            ["docker", "service", "update", "--force", "--detach=false", "--quiet",
             stack.service("app")],
            timeout=240,
        )  # fmt: skip
        took = time.monotonic() - started
        time.sleep(2)
    result = load.result
    FIGURES["swarm rolling update (start-first, 3 replicas) under load"] = (
        f"update {took:.1f} s; {result.summary()}"
    )
    FIGURES["swarm rolling update, POSTs meanwhile"] = posts.result.summary()
    spec = json.loads(run(["docker", "service", "inspect", stack.service("app")]).stdout)[0]
    assert spec.get("UpdateStatus", {}).get("State") == "completed", spec.get("UpdateStatus")
    assert result.requests > 100 and posts.result.requests > 50
    assert result.failed == 0, result.summary()
    assert posts.result.failed == 0, posts.result.summary()

    # Every task was replaced, and nginx now sends requests to the new ones (and only them).
    after = stack.containers("app")
    assert len(after) == REPLICAS
    assert not before & set(after)
    new_ips = container_ips(after)
    seen: dict[str, int] = {}

    def new_tasks_serve() -> bool:
        seen.update(served_by(stack))
        return set(seen) == new_ips

    wait_until("the new tasks serve", new_tasks_serve, 15)


def test_zz_stack_rm_and_swarm_leave(stack: Stack, swarm: Swarm) -> None:
    """Runs last (file order): what the finalizers do, checked."""
    started = time.monotonic()
    stack.remove()
    FIGURES["docker stack rm (until everything is gone)"] = f"{time.monotonic() - started:.1f} s"
    assert stack.leftovers() == []
    swarm.leave()
    if swarm.made_here:
        assert swarm_state()[0] == "inactive"
        assert not (swarm.gwbridge_made_here and network_exists("docker_gwbridge"))
