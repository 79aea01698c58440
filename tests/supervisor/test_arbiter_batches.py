"""The arbiter carrying out a batch of actions: a stop signal that arrives amid many forks is
acted on before the next fork, not after the whole batch (a mistyped --workers 100000 could
not be stopped)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from uwsgiapp.config import Config
from uwsgiapp.supervisor import actions as A
from uwsgiapp.supervisor.arbiter import Arbiter


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    return []


def test_a_term_amid_the_start_forks_stops_the_forking(tmp_path: Path) -> None:
    arbiter = Arbiter(
        Config(app="x:app", workers=40).validate(),
        listeners=[],
        app=_app,
        build_handler=lambda app, config: None,  # type: ignore[arg-type,return-value]
    )
    children: list[subprocess.Popen[bytes]] = []

    def spawn(wid: int, generation: int) -> None:
        # A real process of ours in place of a worker (the stop below signals it).
        child = subprocess.Popen(["sleep", "30"])
        children.append(child)
        arbiter.policy.spawned(wid, generation, child.pid, time.monotonic())
        if len(children) == 3:
            arbiter.signals.append("TERM")  # as the handler queues it, during that fork

    arbiter._spawn = spawn  # type: ignore[method-assign]
    try:
        actions = arbiter.policy.start()
        assert sum(isinstance(a, A.Spawn) for a in actions) == 40
        assert arbiter._execute(actions) is None
        assert len(children) == 3, "the forks after the TERM were dropped"
        assert arbiter.policy.mode is A.Mode.STOPPING
        for child in children:  # each was told to stop
            assert child.wait(10) is not None
    finally:
        for child in children:
            child.kill()
            child.wait()
