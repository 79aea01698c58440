"""uWSGI's ``disable-logging`` with ``log-4xx``/``log-5xx``/``log-slow``/``log-big`` (the most
copied production ini): a real ``uwsgiapp serve --ini`` behind a real nginx logs the requests
those keys name, and no other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.procs import stack, wait_until

pytestmark = pytest.mark.nginx


def test_an_ini_with_disable_logging_logs_only_the_failed_and_slow_requests(
    tmp_path: Path, nginx_available: None
) -> None:
    access = tmp_path / "access.log"
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[uwsgi]\ndisable-logging = true\nlog-4xx = false\nlog-5xx = true\nlog-slow = 300\n"
        "log-big = 1000000\n"
    )
    options = {"ini": str(ini), "access_log_file": str(access), "access_log": "json"}
    with stack(tmp_path, "nginx_app:app", **options) as (server, nginx):
        asked = ["/", "/reject", "/boom", "/sleep?0.5", "/sleep?0.01", "/file?100"]  # 3 MB
        statuses = [nginx.request("GET", path)[0] for path in asked]
        assert statuses == [200, 401, 500, 200, 200, 200]
        wait_until(lambda: access.read_text().count("\n") >= 3, 10, "three access lines")
        records = [json.loads(line) for line in access.read_text().splitlines()]
        assert [(r["uri"], r["status"]) for r in records] == [
            ("/boom", 500),
            ("/sleep?0.5", 200),
            ("/file?100", 200),
        ], server.log()
