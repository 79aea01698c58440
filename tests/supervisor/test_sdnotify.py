"""systemd's Type=notify: READY=1 once the first workers serve, RELOADING=1 and READY=1 around a
reload (Type=notify-reload), STOPPING=1 at a stop. The
policy driven directly, then a real server sending to a real datagram socket."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from supervisor.policy_sim import Sim, started
from support.procs import Server, short_tmpdir

from uwsgiapp.supervisor.actions import Notify, Signal
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.sdnotify import notify_address


def notes(actions: list[object]) -> list[str]:
    return [a.state for a in actions if isinstance(a, Notify)]


def test_a_reload_says_reloading_then_ready_once_the_new_workers_serve() -> None:
    # Type=notify-reload: systemd sends the HUP and waits for RELOADING=1, then READY=1.
    sim = started(workers=2)  # forked, made ready, one tick: READY=1 went then
    assert sim.policy.ready_said
    actions = sim.run(sim.policy.on_signal("HUP", sim.now))
    assert notes(actions) == ["RELOADING=1\nSTATUS=reloading"]
    assert not notes(sim.tick())  # the new workers boot
    sim.make_all_ready()
    said = [n for _ in range(5) for n in notes(sim.tick())]
    assert said == ["READY=1\nSTATUS=reloaded: 2 workers serving"]


def test_a_failed_reload_says_ready_too() -> None:
    # Without it systemd would wait for the reload's end until its timeout, then fail it.
    sim = started(workers=2)
    sim.run(sim.policy.on_signal("HUP", sim.now))
    actions = sim.run(sim.policy.reimport_failed(sim.now))
    assert notes(actions) == ["READY=1\nSTATUS=reload failed: the old workers serve"]
    assert not [n for _ in range(5) for n in notes(sim.tick())]


def test_ready_is_said_when_the_first_worker_serves() -> None:
    # Not when all do: one that keeps failing (a lazy app that cannot load in it, an RSS
    # limit that recycles it at once) would keep systemd waiting until it kills the service.
    sim = Sim(Policy(workers=2))
    sim.run(sim.policy.start())
    assert not notes(sim.tick())  # booting
    first = min(sim.policy.records)
    sim.ready.add(first)
    assert notes(sim.tick()) == ["READY=1\nSTATUS=1 of 2 workers serving"]
    sim.make_all_ready()
    assert not notes(sim.tick())


def test_ready_is_said_even_if_every_worker_is_recycled_as_it_serves() -> None:
    sim = Sim(Policy(workers=1, reload_on_rss_mb=10))
    sim.run(sim.policy.start())
    sim.make_all_ready()
    actions = sim.run(sim.policy.on_tick(sim.now, 1000.0, sim.status, lambda pid: 500.0))
    (said,) = notes(actions)  # its one worker served, then was retired in the same tick
    assert said.startswith("READY=1\n")


def test_a_stop_says_stopping_first() -> None:
    sim = started(workers=1)
    actions = sim.run(sim.policy.on_signal("TERM", sim.now))
    assert notes(actions) == ["STOPPING=1"]
    first_signal = next(i for i, a in enumerate(actions) if isinstance(a, Signal))
    assert isinstance(actions[first_signal - 1], Notify)  # before the workers are told


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@/org/freedesktop/systemd1/notify/1", "\0/org/freedesktop/systemd1/notify/1"),
        ("", None),
        (None, None),
        ("vsock:2:1234", None),
    ],
)
def test_notify_address(value: str | None, address: str | None) -> None:
    assert notify_address(value) == address


def test_a_real_server_says_ready_reloading_ready_then_stopping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = os.path.join(short_tmpdir(), "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(path)
        manager.settimeout(20)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        server = Server(tmp_path, "supervisor_app:app", workers=2).start()
        try:
            ready = manager.recv(4096).decode()
            assert ready.startswith("READY=1\nSTATUS=") and " of 2 workers serving" in ready
            assert ready.endswith(f"\nMAINPID={server.pid}")
            server.signal(signal.SIGHUP)
            reloading = manager.recv(4096).decode().split("\n")
            assert reloading[:2] == ["RELOADING=1", "STATUS=reloading"]
            began = int(reloading[2].removeprefix("MONOTONIC_USEC="))
            assert 0 < time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000 - began < 20_000_000
            ready = manager.recv(4096).decode()
            assert ready.startswith("READY=1\nSTATUS=reloaded: 2 workers serving\nMAINPID=")
            server.signal(signal.SIGTERM)
            assert manager.recv(4096) == b"STOPPING=1"
            assert server.wait(15) == 0
        finally:
            server.stop()
