"""docker-compose.yml, deploy/stack.yml, Dockerfile and .dockerignore, checked statically.

The Docker tests (test_docker_compose.py, test_docker_swarm.py) run these files for real; the
checks here are the ones a run would not make plain: that the app command is the one the local
stack runs (which tests/deploy/test_local_stack.py runs for real) and the same in the Swarm
stack, that every flag in it and in the Dockerfile's CMD is one ``uwsgiapp serve`` accepts and
resolves to a valid Config, that nginx and the app agree on variables, ports and timeouts, and
that stop grace periods outlast the app's graceful timeout. ``docker-compose config`` runs where
that tool is installed.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from typing import Any

import pytest
from deploy.deploy_testkit import (
    COMPOSE_FILE,
    DOCKERFILE,
    ROOT,
    STACK_FILE,
    TEMPLATE,
    load_stack,
    load_yaml,
)

from uwsgiapp.cli import build_parser
from uwsgiapp.config import Config
from uwsgiapp.config.serve import resolve_serve_config
from uwsgiapp.stats.health import stats_source
from uwsgiapp.supervisor.actions import QUICK_GRACE
from uwsgiapp.supervisor.arbiter import TICK

#: Seconds between `docker stop`'s TERM and its KILL, unless told otherwise (`-t`, compose's
#: stop_grace_period).
DOCKER_STOP_TIMEOUT = 10.0


def master_done_after_term(graceful_timeout: float) -> float:
    """Seconds after TERM by which the master has killed (and logged) a worker that neither
    finished its request in the graceful timeout nor ended at the SIGINT that cut it."""
    return graceful_timeout + QUICK_GRACE + TICK


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def swarm_stack() -> dict[str, Any]:
    data = load_yaml(STACK_FILE)
    assert isinstance(data, dict)
    return data


def serve_config(argv: list[str]) -> Config:
    """Resolve ``uwsgiapp serve ...`` argv exactly as the CLI would (no environment)."""
    assert argv[:2] == ["uwsgiapp", "serve"], argv
    args = build_parser().parse_args(argv[1:])
    return resolve_serve_config(args, environ={}).config


def template_vars() -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", TEMPLATE.read_text()))


def test_services_and_nginx_service(compose: dict[str, Any]) -> None:
    assert set(compose) == {"services"}
    services = compose["services"]
    assert set(services) == {"app", "nginx"}
    nginx = services["nginx"]
    assert nginx["image"].startswith("nginx:")
    # 8080 on every interface unless NGINX_BIND / NGINX_PORT say otherwise (the tests publish
    # on a free port on 127.0.0.1).
    assert nginx["ports"] == ["${NGINX_BIND:-0.0.0.0}:${NGINX_PORT:-8080}:80"]
    assert nginx["depends_on"] == {"app": {"condition": "service_healthy"}}
    mounts = dict(v.split(":", 2)[:2] for v in nginx["volumes"])
    assert mounts["./deploy/nginx/templates"] == "/etc/nginx/templates"
    assert all(v.endswith(":ro") for v in nginx["volumes"])
    # The static volume is mounted where the template's alias points.
    static_target = mounts["./examples/static"]
    assert nginx["environment"]["NGINX_STATIC_ROOT"] == static_target
    assert (ROOT / "examples" / "static").is_dir()
    assert nginx["environment"]["NGINX_LISTEN"] == "80"
    assert nginx["environment"]["UWSGIAPP_UPSTREAM"] == "app:3031"
    # Docker's embedded DNS, asked again every second: nginx follows replicas with no reload.
    assert re.fullmatch(
        r"resolver 127\.0\.0\.11 valid=1s ipv6=off;", nginx["environment"]["NGINX_RESOLVER"]
    )
    assert nginx["healthcheck"]["test"][0] == "CMD"
    assert "/nginx-health" in nginx["healthcheck"]["test"][-1]
    assert "location = /nginx-health" in TEMPLATE.read_text()


def test_template_variables_are_the_ones_compose_and_stack_set(compose: dict[str, Any]) -> None:
    env = compose["services"]["nginx"]["environment"]
    assert template_vars() == set(env)
    stack = load_stack()
    assert set(stack.nginx_values(8080, "127.0.0.1:3031")) == set(env)


def test_app_service(compose: dict[str, Any]) -> None:
    app = compose["services"]["app"]
    assert app["build"] == "."
    assert app["expose"] == ["3031"]
    assert "ports" not in app, "the uwsgi port must never be published"
    # Hardened as container platforms run it (the Docker tests run it so, as an arbitrary uid).
    assert app["user"] == "${APP_USER:-10001:10001}"
    assert (app["read_only"], app["tmpfs"], app["cap_drop"]) == (True, ["/tmp"], ["ALL"])
    assert app["security_opt"] == ["no-new-privileges:true"]
    # The master answers the check (the stats server the image's environment sets): a worker
    # would answer a ping only after the requests queued for it.
    assert app["healthcheck"]["test"] == ["CMD", "python", "-I", "-m", "uwsgiapp.stats.health"]
    # Longer than the app's whole stop, so Docker's KILL does not cut a graceful stop.
    grace = int(app["stop_grace_period"].rstrip("s"))
    argv = [load_stack().interpolate(a, {}) for a in app["command"]]
    assert grace > master_done_after_term(serve_config(argv).graceful_timeout)


def test_app_command_resolves_to_a_valid_config(compose: dict[str, Any]) -> None:
    stack = load_stack()
    argv = [stack.interpolate(a, {}) for a in compose["services"]["app"]["command"]]
    config = serve_config(argv)
    assert config.app == "examples/app.py:app"
    assert (ROOT / "examples" / "app.py").is_file()
    assert config.socket == ("0.0.0.0:3031",)
    assert config.workers == 2  # ${WORKERS:-2}
    assert config.buffer_size == 65535
    # Peers: loopback, the private ranges and the pod networks' shared range; never '*'.
    for peer in ("127.0.0.1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"):
        assert peer in config.uwsgi_allow_from
    assert "*" not in config.uwsgi_allow_from
    raw = compose["services"]["app"]["command"]
    assert serve_config([stack.interpolate(a, {"WORKERS": "5"}) for a in raw]).workers == 5


def test_local_stack_runs_the_compose_command(compose: dict[str, Any]) -> None:
    stack = load_stack()
    text = COMPOSE_FILE.read_text()
    raw = compose["services"]["app"]["command"]
    # Two independent readers of the file agree.
    assert stack.compose_command(text) == raw
    local = stack.local_app_command(text, "127.0.0.1:4242", {})
    expected = [stack.interpolate(a, {}) for a in raw]
    expected[expected.index("--socket") + 1] = "127.0.0.1:4242"
    expected[expected.index("--uwsgi-allow-from") + 1] = "127.0.0.1"
    assert local == expected
    changed = [
        (a, b)
        for a, b in zip(expected, [stack.interpolate(a, {}) for a in raw], strict=True)
        if a != b
    ]
    assert len(changed) == 2


def test_read_timeout_above_harakiri(compose: dict[str, Any]) -> None:
    stack = load_stack()
    argv = [stack.interpolate(a, {}) for a in compose["services"]["app"]["command"]]
    harakiri = serve_config(argv).harakiri
    assert harakiri > 0
    m = re.search(r"^\s*uwsgi_read_timeout (\d+)s;", TEMPLATE.read_text(), re.M)
    assert m, "uwsgi_read_timeout must be set in seconds"
    assert int(m.group(1)) > harakiri


def test_app_vars_block_fits_what_nginx_accepts(compose: dict[str, Any]) -> None:
    stack = load_stack()
    argv = [stack.interpolate(a, {}) for a in compose["services"]["app"]["command"]]
    m = re.search(r"^\s*large_client_header_buffers (\d+) (\d+)k;", TEMPLATE.read_text(), re.M)
    assert m
    assert int(m.group(1)) * int(m.group(2)) * 1024 <= serve_config(argv).buffer_size


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    instructions = [
        line.split(None, 1) for line in joined.splitlines() if line and not line.startswith("#")
    ]
    by_name: dict[str, list[str]] = {}
    for name, rest in instructions:
        by_name.setdefault(name, []).append(rest.strip())
    # Two stages of one base: a build stage compiles the wheel (mypyc), the final one installs it.
    build, final = by_name["FROM"]
    m = re.fullmatch(r"(python:3\.\d+-slim) AS build", build)
    assert m and final == m.group(1)
    user = by_name["USER"][-1]
    # A number (Kubernetes' runAsNonRoot cannot check a name), not root's.
    assert re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", user), user
    # Under an arbitrary uid (OpenShift), HOME is still a directory group 0 may write.
    assert "HOME=/home/app" in by_name["ENV"]
    assert any("chgrp 0 /home/app && chmod g=u /home/app" in run for run in by_name["RUN"])
    assert 'org.opencontainers.image.licenses="MIT"' in " ".join(by_name["LABEL"])
    assert by_name["STOPSIGNAL"] == ["SIGTERM"]
    assert by_name["EXPOSE"] == ["3031"]
    healthcheck = by_name["HEALTHCHECK"][0]
    assert json.loads(healthcheck.split("CMD", 1)[1]) == [
        "python",
        "-I",
        "-m",
        "uwsgiapp.stats.health",
    ]
    # What the check reads is the server's own setting: a stats server on loopback, HTTP.
    env = dict(pair.split("=", 1) for pair in shlex.split(by_name["ENV"][-1]))
    config = resolve_serve_config(
        build_parser().parse_args(["serve", "app:app"]), environ=env
    ).config
    assert config.stats == "127.0.0.1:9191" and config.stats_http
    # A hung container is not healthy for ever. At `docker stop`, a request still running is
    # cut and a worker that stays is killed, both by the master (logged, exit code 0), before
    # Docker's KILL: with 8 s, the master's kill came at 10 s, Docker's won (exit code 137).
    assert config.harakiri == 30
    assert master_done_after_term(config.graceful_timeout) < DOCKER_STOP_TIMEOUT
    source = stats_source("", env)
    assert (source.host, source.port, source.http_path) == ("127.0.0.1", 9191, "/")
    cmd = json.loads(by_name["CMD"][0])
    config = serve_config(cmd)
    assert config.socket == ("0.0.0.0:3031",)
    assert "127.0.0.1" in config.uwsgi_allow_from
    for copy in by_name["COPY"]:
        if copy.startswith("--from=build "):
            continue
        for source in shlex.split(copy)[:-1]:
            assert (ROOT / source).exists(), source
    # The compiler is in the build stage only; that stage compiles or fails (never a pure image).
    final_stage = text[text.index(f"FROM {final}\n") :]
    assert "gcc" in text and "gcc" not in final_stage and "build-essential" not in text
    assert "UWSGIAPP_COMPILE=1 pip wheel" in text
    assert "COPY --from=build /wheels /wheels" in final_stage
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "run", "tests"):
        assert path in ignored


def test_docker_compose_config_when_installed(tmp_path: Any) -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose (Debian package, no engine needed) is not installed")
    result = subprocess.run(
        [tool, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_swarm_stack_runs_the_compose_services(
    compose: dict[str, Any], swarm_stack: dict[str, Any]
) -> None:
    services = swarm_stack["services"]
    assert set(services) == {"app", "nginx"}
    app, compose_app = services["app"], compose["services"]["app"]
    for key in ("image", "command", "healthcheck"):
        if key == "healthcheck":
            assert app[key]["test"] == compose_app[key]["test"]
        else:
            assert app[key] == compose_app[key], key
    argv = [load_stack().interpolate(a, {}) for a in app["command"]]
    grace = int(app["stop_grace_period"].rstrip("s"))
    assert grace > master_done_after_term(serve_config(argv).graceful_timeout)
    assert "ports" not in app, "the uwsgi port must never be published"
    deploy = app["deploy"]
    # nginx balances over the tasks itself: the service name must answer with every task.
    assert deploy["endpoint_mode"] == "dnsrr"
    assert deploy["update_config"]["order"] == "start-first"
    assert deploy["rollback_config"]["order"] == "start-first"
    assert deploy["replicas"] == "${APP_REPLICAS:-3}"

    nginx, compose_nginx = services["nginx"], compose["services"]["nginx"]
    assert nginx["image"] == compose_nginx["image"]
    assert nginx["environment"] == compose_nginx["environment"]
    assert nginx["healthcheck"]["test"] == compose_nginx["healthcheck"]["test"]
    assert nginx["ports"] == [
        {"target": 80, "published": "${NGINX_PORT:-8080}", "protocol": "tcp", "mode": "host"}
    ]
    # One task holds a host-mode port: the old one has to stop before the new one starts.
    assert nginx["deploy"]["update_config"]["order"] == "stop-first"


def test_swarm_stack_configs_are_the_template_and_every_static_file(
    swarm_stack: dict[str, Any],
) -> None:
    nginx = swarm_stack["services"]["nginx"]
    files = {
        c["target"]: (STACK_FILE.parent / swarm_stack["configs"][c["source"]]["file"]).resolve()
        for c in nginx["configs"]
    }
    assert files.pop("/etc/nginx/templates/default.conf.template") == TEMPLATE
    static_root = nginx["environment"]["NGINX_STATIC_ROOT"]
    static = ROOT / "examples" / "static"
    assert files == {f"{static_root}/{p.name}": p for p in static.iterdir() if p.is_file()}
