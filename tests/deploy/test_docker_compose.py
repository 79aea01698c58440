"""docker-compose.yml run for real: build, health, routes, logs, scaling under load, stop.

One compose project (a unique name) for the module, published on a free port on 127.0.0.1
(NGINX_BIND/NGINX_PORT). The tests run in file order and build on each other: one replica,
three, one of three stopped and back, one again, then ``down``. The fixture's finalizer removes
whatever is left (containers, networks) even when a test failed.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deploy.docker_kit import (
    APP_IMAGE,
    FIGURES,
    POST_BODY,
    RESETS_PER_STOP,
    ROOT,
    DockerError,
    Load,
    LoadResult,
    access_log_upstreams,
    container_ips,
    free_port,
    health,
    inspect,
    request,
    run,
    upstream_hosts,
    wait_until,
)

pytestmark = pytest.mark.docker

STATIC = ROOT / "examples" / "static"
COMPOSE_FILE = ROOT / "docker-compose.yml"
#: The app's stop_grace_period in docker-compose.yml.
GRACE = 35.0
#: The uid:gid the stack's app runs as: an OpenShift-style one, with no passwd entry.
ARBITRARY_USER = "1000770000:0"


@dataclass
class Compose:
    cli: list[str]
    project: str
    port: int
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, timeout: float = 180) -> str:
        argv = [*self.cli, "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        return run(argv, timeout=timeout, env=self.env).stdout

    def containers(self, service: str, all_states: bool = False) -> list[str]:
        argv = ["docker", "ps", "-q", "--no-trunc"] + (["-a"] if all_states else [])
        argv += ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            argv += ["--filter", f"label=com.docker.compose.service={service}"]
        return sorted(run(argv).stdout.split())

    def networks(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        return run(["docker", "network", "ls", "-q", "--filter", label]).stdout.split()

    def nginx_log(self) -> str:
        (nginx,) = self.containers("nginx")
        return run(["docker", "logs", nginx]).stdout  # the access log is on stdout

    def remove_all(self) -> None:
        """``down``, then force-remove anything of the project that is left."""
        try:
            self("down", "--volumes", "--remove-orphans", "--timeout", "40", timeout=180)
        except DockerError as exc:
            print(f"compose down failed, removing by label: {exc}", file=sys.stderr)
        leftovers = self.containers("", all_states=True)
        if leftovers:
            run(["docker", "rm", "-f", *leftovers], check=False)
        for network in self.networks():
            run(["docker", "network", "rm", network], check=False)


@pytest.fixture(scope="module")
def stack(docker_compose: list[str], docker_images: None) -> Iterator[Compose]:
    port = free_port()
    project = f"uwsgiapp-test-{os.getpid()}-{secrets.token_hex(3)}"
    env = {
        "NGINX_BIND": "127.0.0.1",
        "NGINX_PORT": str(port),
        "WORKERS": "2",
        "APP_IMAGE": APP_IMAGE,
        # OpenShift's arbitrary user (no passwd entry, group 0), on top of the compose file's
        # read-only root, no capabilities and no-new-privileges: every test below runs so.
        "APP_USER": ARBITRARY_USER,
    }
    compose = Compose(docker_compose, project, port, env)
    try:
        started = time.monotonic()
        # The image is the session's (docker_images built it with `compose build`).
        compose("up", "-d", timeout=300)
        ids = compose.containers("app") + compose.containers("nginx")
        assert len(ids) == 2, ids
        wait_until("both services healthy", lambda: health(ids) == ["healthy"] * 2, 90)
        FIGURES["compose up -d to both healthy"] = f"{time.monotonic() - started:.1f} s"
        yield compose
    finally:
        compose.remove_all()


def test_up_healthy_and_serving_the_example(stack: Compose) -> None:
    status, headers, body = request(stack.port, "GET", "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<form method="post" action="/greet">' in body
    assert headers["Server"].startswith("nginx")

    form = urllib.parse.urlencode({"name": "Ada <Lovelace>"}).encode()
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = request(stack.port, "POST", "/greet", form, ctype)
    assert status == 200
    assert b"Hello, Ada &lt;Lovelace&gt;!" in body

    status, headers, body = request(stack.port, "GET", "/api/info?x=1")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    info = json.loads(body)
    assert info["args"] == {"x": "1"}
    assert info["app"] == "uwsgiapp example"
    status, _, body = request(
        stack.port, "POST", "/api/echo", b'{"n": [1, 2]}', {"Content-Type": "application/json"}
    )
    assert (status, json.loads(body)) == (200, {"received": {"n": [1, 2]}})

    # The example app has no static route: a 200 here is nginx's, from the mounted volume.
    status, headers, body = request(stack.port, "GET", "/static/hello.txt")
    assert status == 200
    assert body == (STATIC / "hello.txt").read_bytes()
    assert headers["Accept-Ranges"] == "bytes"
    assert request(stack.port, "GET", "/static/missing.txt")[0] == 404

    status, _, body = request(stack.port, "GET", "/no/such/page")
    assert status == 404
    assert b"No page at <code>/no/such/page</code>" in body


def test_the_image_runs_the_compiled_build(stack: Compose) -> None:
    """The Dockerfile's build stage compiles the hot path; the app container runs that build."""
    (app,) = stack.containers("app")
    version = run(["docker", "exec", app, "uwsgiapp", "--version"]).stdout
    assert "(compiled: uwsgiproto.varblock, " in version, version


def test_the_app_runs_hardened_as_an_arbitrary_user(stack: Compose) -> None:
    """The compose file's settings hold in the running container, and the tools the image
    offers work there: a read-only root, no capabilities, a uid with no passwd entry."""
    (app,) = stack.containers("app")
    state = "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}}"
    assert inspect([app], state) == ["true [ALL] [no-new-privileges:true]"]
    probe = (
        "id -u; id -g; grep CapEff /proc/1/status; uwsgiapp top --once; "
        'uwsgiapp ping 127.0.0.1:3031; touch "$HOME/probe" 2>&1 || true'
    )
    out = run(["docker", "exec", app, "sh", "-c", probe]).stdout
    uid, gid, caps, *rest = out.splitlines()
    assert f"{uid}:{gid}" == ARBITRARY_USER, out
    assert caps.split() == ["CapEff:", "0000000000000000"], out
    assert any(line.startswith("workers: 2 ") for line in rest), out  # top --once
    assert any(line.startswith("pong from 127.0.0.1:3031") for line in rest), out
    assert "Read-only file system" in rest[-1], out  # HOME, group 0's to write, but read-only
    assert "Traceback" not in stack("logs", "--no-color", "app")


def test_an_arbitrary_uid_has_a_home_it_may_write(docker_images: None) -> None:
    """OpenShift runs an image as an arbitrary uid with group 0: HOME must still be a
    directory it may write (libraries keep caches there); it was / before."""
    probe = 'echo "$HOME"; touch "$HOME/probe" && id -u'
    argv = ["docker", "run", "--rm", "--user", "123456:0", APP_IMAGE, "sh", "-c", probe]
    home, uid = run(argv, timeout=60).stdout.split()
    assert (home, uid) == ("/home/app", "123456")


def test_logs_app_holds_the_error_log(stack: Compose) -> None:
    logs = stack("logs", "--no-color", "app")
    assert "[INFO] listening on 0.0.0.0:3031" in logs
    assert "starting 2 workers" in logs
    # And nginx's JSON access log names the upstream each request went to.
    lines = access_log_upstreams(stack.nginx_log(), "/api/info?x=1")
    assert lines and lines[0].endswith(":3031")


def test_scale_up_every_replica_answers_within_10_s(stack: Compose) -> None:
    started = time.monotonic()
    stack("up", "-d", "--scale", "app=3")
    scaled = time.monotonic()
    replicas = stack.containers("app")
    assert len(replicas) == 3
    expected = container_ips(replicas)
    assert len(expected) == 3
    seen: dict[str, object] = {}
    attempt = 0

    def all_answer() -> bool:
        nonlocal attempt
        attempt += 1
        marker = f"/healthz?scale={attempt}-{secrets.token_hex(2)}"
        statuses = [request(stack.port, "GET", marker)[0] for _ in range(60)]
        assert statuses == [200] * 60
        hosts = upstream_hosts(access_log_upstreams(stack.nginx_log(), marker))
        seen.update(hosts=dict(hosts), attempt=attempt)
        return set(hosts) == expected

    wait_until("every replica answers", all_answer, 30, interval=0.5)
    took = time.monotonic() - scaled
    FIGURES["compose up -d --scale app=3: every replica answering"] = (
        f"{took:.1f} s after the command returned, {time.monotonic() - started:.1f} s in all "
        f"({seen})"
    )
    assert took <= 10, seen


def test_stopping_one_of_three_under_load_fails_nothing(stack: Compose) -> None:
    replicas = stack.containers("app")
    assert len(replicas) == 3
    with (
        Load(stack.port, threads=4) as load,
        Load(stack.port, "/api/echo", threads=2, body=POST_BODY) as posts,
    ):
        time.sleep(1.5)
        # What `compose stop` does to each container: TERM, then KILL after the grace period.
        run(["docker", "stop", "--time", str(int(GRACE)), replicas[1]], timeout=GRACE + 20)
        time.sleep(2.5)
    # Back to three for the next test, whatever the figures say.
    run(["docker", "start", replicas[1]])
    wait_until("three healthy replicas", lambda: health(replicas) == ["healthy"] * 3, 60)
    result = load.result
    FIGURES["compose: stop 1 of 3 replicas under load"] = result.summary()
    FIGURES["compose: stop 1 of 3 replicas, POSTs meanwhile"] = posts.result.summary()
    assert result.requests > 100 and posts.result.requests > 50
    assert result.failed == 0, result.summary()
    assert _only_resets(posts.result, stops=1), posts.result.summary()


def test_scale_down_to_one_under_load_fails_nothing(stack: Compose) -> None:
    assert len(stack.containers("app")) == 3
    with (
        Load(stack.port, threads=4) as load,
        Load(stack.port, "/api/echo", threads=2, body=POST_BODY) as posts,
    ):
        time.sleep(1.5)
        stack("up", "-d", "--scale", "app=1", timeout=GRACE + 60)
        time.sleep(2.5)
    result = load.result
    FIGURES["compose: scale 3 -> 1 under load"] = result.summary()
    FIGURES["compose: scale 3 -> 1, POSTs meanwhile"] = posts.result.summary()
    assert len(stack.containers("app")) == 1
    assert result.requests > 100 and posts.result.requests > 50
    assert result.failed == 0, result.summary()
    assert _only_resets(posts.result, stops=2), posts.result.summary()


def _only_resets(result: LoadResult, stops: int) -> bool:
    """Nothing failed but, at most, the POSTs reset in the residual window of each stop (502s;
    no socket error, no 504)."""
    return (
        result.failed <= RESETS_PER_STOP * stops
        and set(result.statuses) <= {200, 502}
        and not result.errors
    )


def _local_stack_rate(tmp_path: Path, seconds: float) -> str:
    """The same route, load and worker count through `make run`'s stack (scripts/stack.py)."""
    port = free_port()
    log = tmp_path / "stack.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "scripts/stack.py", "--port", str(port), "--run-dir", str(tmp_path)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_until("local stack", lambda: "stack running" in log.read_text(errors="replace"), 30)
        with Load(port, threads=4, max_seconds=seconds) as load:
            time.sleep(seconds)
        return load.result.summary()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_throughput_figures(stack: Compose, tmp_path: Path, nginx_available: None) -> None:
    """Not a benchmark: a quick req/s through the compose stack (one replica, 2 workers) and,
    with the same load generator and route, through `make run`'s stack on loopback."""
    with Load(stack.port, threads=4, max_seconds=5) as load:
        time.sleep(5)
    result = load.result
    FIGURES["compose stack, 1 replica, GET /healthz, 4 keep-alive threads"] = result.summary()
    assert result.failed == 0
    FIGURES["make run stack, same load"] = _local_stack_rate(tmp_path, 5)


def test_zz_down_within_the_grace_period(stack: Compose) -> None:
    """Runs last (file order): stops the stack with the compose file's own stop timeouts."""
    started = time.monotonic()
    stack("down", timeout=GRACE + 60)
    took = time.monotonic() - started
    FIGURES["compose down"] = f"{took:.1f} s"
    assert took < GRACE
    assert stack.containers("", all_states=True) == []
    assert stack.networks() == []
