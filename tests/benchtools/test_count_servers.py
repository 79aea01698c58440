"""bench/count_servers.py: its reading of callgrind's events and the simulated-misses table
(no valgrind here)."""

from __future__ import annotations

from types import ModuleType

import pytest
from support.scripts import load_script

SIMULATED_PROFILE = """\
version: 1
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim
fn=(1) main
0 10 4 2 1
summary: 1000 400 200 30 20 10 3 2 1 90 9
"""


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return load_script("bench/count_servers.py")


def test_events_are_named_by_the_events_line_and_omitted_trailing_ones_are_zero(
    tool: ModuleType,
) -> None:
    events = tool.callgrind_events(SIMULATED_PROFILE)
    assert events["Ir"] == 1000
    assert events["I1mr"] == 30
    assert events["Bcm"] == 9
    assert events["Bi"] == 0 and events["Bim"] == 0
    assert tool.callgrind_events("version: 1\nevents: Ir\n") == {}


def test_the_simulated_table_shows_each_server_and_the_ratio(
    tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    tool.print_simulated(
        {"uwsgiapp": {"I1mr": 1100.0, "Bcm": 250.0}, "uwsgi": {"I1mr": 1000.0, "Bcm": 0.0}}
    )
    lines = {line.split("  ")[1].strip(): line for line in capsys.readouterr().out.splitlines()}
    assert lines["L1 instruction misses"].split()[-3:] == ["1100.0", "1000.0", "1.10"]
    assert lines["conditional mispredicted"].split()[-3:] == ["250.0", "0.0", "-"]
    assert lines["L1 data read misses"].split()[-3:] == ["0.0", "0.0", "-"]
