"""docker-compose.yml, Dockerfile and .dockerignore, checked without Docker.

Docker cannot run on CI machines, so these tests check what can be checked statically: the
compose structure the issue asks for, that the app command is the one the local stack runs
(which tests/deploy/test_local_stack.py runs for real), that every flag in it and in the
Dockerfile's CMD is one ``uwsgiapp serve`` accepts and resolves to a valid Config, and that
nginx and the app agree on variables, ports and timeouts. The optional checks against PyYAML
and the ``docker-compose`` tool run only where those are installed.
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
    TEMPLATE,
    load_stack,
    parse_yaml_subset,
)

from uwsgiapp.cli import build_parser, resolve_serve_config
from uwsgiapp.config import Config


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = parse_yaml_subset(COMPOSE_FILE.read_text())
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
    assert nginx["ports"] == ["8080:80"]
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
    assert app["healthcheck"]["test"] == ["CMD", "uwsgiapp", "ping", "--quiet", "127.0.0.1:3031"]
    # Longer than the app's graceful timeout, so Docker's KILL does not cut a graceful stop.
    grace = int(app["stop_grace_period"].rstrip("s"))
    argv = [load_stack().interpolate(a, {}) for a in app["command"]]
    assert grace > serve_config(argv).graceful_timeout


def test_app_command_resolves_to_a_valid_config(compose: dict[str, Any]) -> None:
    stack = load_stack()
    argv = [stack.interpolate(a, {}) for a in compose["services"]["app"]["command"]]
    config = serve_config(argv)
    assert config.app == "examples/app.py:app"
    assert (ROOT / "examples" / "app.py").is_file()
    assert config.socket == ("0.0.0.0:3031",)
    assert config.workers == 2  # ${WORKERS:-2}
    assert config.buffer_size == 65535
    # The healthcheck pings from loopback: loopback must be allowed, and '*' is not needed.
    assert "127.0.0.1" in config.uwsgi_allow_from
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
    assert re.fullmatch(r"python:3\.\d+-slim", by_name["FROM"][0])
    user = by_name["USER"][-1]
    assert user not in ("root", "0")
    assert by_name["STOPSIGNAL"] == ["SIGTERM"]
    assert by_name["EXPOSE"] == ["3031"]
    healthcheck = by_name["HEALTHCHECK"][0]
    assert json.loads(healthcheck.split("CMD", 1)[1]) == [
        "uwsgiapp",
        "ping",
        "--quiet",
        "127.0.0.1:3031",
    ]
    cmd = json.loads(by_name["CMD"][0])
    config = serve_config(cmd)
    assert config.socket == ("0.0.0.0:3031",)
    assert "127.0.0.1" in config.uwsgi_allow_from
    for copy in by_name["COPY"]:
        for source in shlex.split(copy)[:-1]:
            assert (ROOT / source).exists(), source
    # Pure Python: nothing in the image build needs a compiler.
    assert "gcc" not in text and "build-essential" not in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "run", "tests"):
        assert path in ignored


def test_yaml_subset_reader_rejects_what_it_does_not_understand() -> None:
    from deploy.deploy_testkit import YamlSubsetError

    for bad in ("a: &x 1\n", "a:\n  - b: 1\n", "a: 1\na: 2\n", "a: 'x'\n", "- a\nb: 1\n"):
        with pytest.raises((YamlSubsetError, ValueError)):
            parse_yaml_subset(bad)


def test_agrees_with_pyyaml_when_installed(compose: dict[str, Any]) -> None:
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(COMPOSE_FILE.read_text()) == compose


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
