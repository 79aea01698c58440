"""Kubernetes' service-link variables of a Service named uwsgiapp are not reported as unknown
options; a user's UWSGIAPP_* typo still is."""

from __future__ import annotations

import pytest
from cli.cli_testkit import run_cli

from uwsgiapp.config.configload import DEFAULT_ENV_PREFIX, ENV_PREFIX
from uwsgiapp.config.servicelinks import is_service_link

#: What the kubelet sets in every pod of a namespace with a Service "uwsgiapp" on 3031/TCP.
KUBELET = {
    "UWSGIAPP_SERVICE_HOST": "10.96.0.12",
    "UWSGIAPP_SERVICE_PORT": "3031",
    "UWSGIAPP_SERVICE_PORT_UWSGI": "3031",
    "UWSGIAPP_PORT": "tcp://10.96.0.12:3031",
    "UWSGIAPP_PORT_3031_TCP": "tcp://10.96.0.12:3031",
    "UWSGIAPP_PORT_3031_TCP_PROTO": "tcp",
    "UWSGIAPP_PORT_3031_TCP_PORT": "3031",
    "UWSGIAPP_PORT_3031_TCP_ADDR": "10.96.0.12",
    # A Service "uwsgiapp-stats", on IPv6.
    "UWSGIAPP_STATS_SERVICE_HOST": "fd00::12",
    "UWSGIAPP_STATS_PORT_9191_TCP_ADDR": "fd00::12",
}


@pytest.mark.parametrize(("name", "value"), KUBELET.items())
def test_the_kubelets_variables_are_service_links(name: str, value: str) -> None:
    assert is_service_link(name, value, ENV_PREFIX)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UWSGIAPP_PORT", "8000"),  # a user who meant --socket
        ("UWSGIAPP_SERVICE_HOST", "app.example"),
        ("UWSGIAPP_PORT_3031_TCP_PORT", "8000"),
        ("UWSGIAPP_PORT_3031_TCP_PROTO", "udp"),
        ("UWSGIAPP_WORKRS", "4"),
        ("UWSGIAPP_STATS", "10.96.0.12"),
    ],
)
def test_what_a_user_writes_is_not(name: str, value: str) -> None:
    assert not is_service_link(name, value, ENV_PREFIX)


def test_a_service_named_uwsgiapp_default_is_known_under_the_default_prefix() -> None:
    assert is_service_link("UWSGIAPP_DEFAULT_SERVICE_HOST", "10.96.0.13", DEFAULT_ENV_PREFIX)


def test_serve_says_nothing_about_them_and_still_reports_a_typo() -> None:
    # They gave seven warnings at every start, each with a "did you mean" (UWSGIAPP_LIMIT_POST
    # for UWSGIAPP_SERVICE_HOST).
    env = {**KUBELET, "UWSGIAPP_DEFAULT_SERVICE_PORT": "3031", "UWSGIAPP_WORKRS": "4"}
    r = run_cli("serve", "app:app", "--print-config", env=env)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.decode().splitlines() if "unknown environment" in line]
    assert lines == [
        "uwsgiapp serve: warning: ignoring unknown environment variable UWSGIAPP_WORKRS "
        "(did you mean UWSGIAPP_WORKERS?)"
    ]
