"""What a HUP's re-import keeps of the old code: nothing, once the old modules are replaced.
Real processes, real signals, a real nginx in front."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from support.procs import stack, wait_until

pytestmark = pytest.mark.nginx

#: symtable is of the standard library (kept); its C part, _symtable, is compiled into every
#: CPython (as zlib, _csv, _heapq, _locale... are into Debian's and Ubuntu's python3).
BUILTIN_APP = """
import sys
import symtable

def app(environ, start_response):
    same = sys.modules["_symtable"] is symtable._symtable
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"one _symtable" if same else b"two _symtables"]
"""


def test_hup_keeps_the_modules_compiled_into_the_interpreter(
    tmp_path: Path, nginx_available: None
) -> None:
    # A module compiled into the interpreter has no file, so it was taken for the app's and
    # imported afresh, while the kept stdlib module that imported it first held the old one:
    # a Django project under Debian's python3 logged "3 of the old modules are still held",
    # and an app's `except zlib.error` no longer caught what the kept gzip raised.
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "builtinapp.py").write_text(BUILTIN_APP)
    options = {"workers": 1, "pythonpath": [str(appdir)]}
    with stack(tmp_path, "builtinapp:app", **options) as (server, nginx):
        assert nginx.request("GET", "/")[2] == b"one _symtable"
        for reloads in (1, 2):
            server.signal(signal.SIGHUP)
            wait_until(lambda n=reloads: server.log().count("ready, stopping") == n, 10, "a reload")
            wait_until(lambda: nginx.request("GET", "/")[2] == b"one _symtable", 10, "new code")
    found = re.findall(r"reload: app re-imported \((\d+) modules\) in [0-9.]+ s(.*)", server.log())
    assert found == [("1", "")] * 2, found  # the app alone; nothing of the old code held
