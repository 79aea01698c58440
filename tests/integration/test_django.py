"""A real Django project (startproject, an app with a model in the admin, sqlite) served by
``uwsgiapp serve mysite.wsgi:application --chdir ... --env DJANGO_SETTINGS_MODULE=...`` behind a
real nginx, as Django's deployment docs set it up. Skipped when Django is not installed."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import djangoproj
from support.procs import Nginx, Server, wait_until

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(importlib.util.find_spec("django") is None, reason="Django not installed"),
]


class Site:
    """The project's paths and the running stack."""

    def __init__(self, root: Path, nginx: Nginx) -> None:
        self.root = root
        self.nginx = nginx
        self.signals = root / "signals.log"
        self.blob = root / "blob.bin"

    def marks(self) -> list[str]:
        return self.signals.read_text().split() if self.signals.exists() else []


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("django")
    project = djangoproj.build(root)
    (root / "blob.bin").write_bytes(os.urandom(300_000))
    env = [
        "DJANGO_SETTINGS_MODULE=mysite.settings",
        f"TEST_UPLOAD_DIR={root}",
        f"TEST_SIGNAL_LOG={root / 'signals.log'}",
        f"TEST_BLOB={root / 'blob.bin'}",
    ]
    server = Server(root / "server", "mysite.wsgi:application", chdir=str(project), env=env)
    nginx = Nginx(root / "nginx", server.upstream)
    try:
        server.start()
        nginx.start()
        yield Site(root, nginx)
    finally:
        nginx.stop()
        server.stop()


def _admin_edit(site: Site, host: str, headers: dict[str, str], origin: str, text: str) -> None:
    """Log in to the admin and change Question 1's text, as a browser would (cookies, CSRF)."""
    jar: dict[str, str] = {}

    def go(method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        sent = {"Host": host, **headers, "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            sent |= {"Content-Type": "application/x-www-form-urlencoded", "Origin": origin}
            sent["Referer"] = origin + path
        status, head, data = site.nginx.request(method, path, body, sent)
        for cookie in head.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            jar[name] = rest.split(";")[0]
        return status, head.get("Location", ""), data.decode()

    def token(page: str) -> str:
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert found, page[:500]
        return found.group(1)

    status, _, page = go("GET", "/admin/login/?next=/admin/")
    assert status == 200
    login = {"csrfmiddlewaretoken": token(page), "username": "admin", "password": "pw"}
    status, location, page = go("POST", "/admin/login/?next=/admin/", login | {"next": "/admin/"})
    assert (status, location) == (302, "/admin/"), page[:500]
    status, _, page = go("GET", "/admin/polls/question/1/change/")
    assert status == 200
    edit = {"csrfmiddlewaretoken": token(page), "text": text, "_save": "Save"}
    status, location, page = go("POST", "/admin/polls/question/1/change/", edit)
    assert (status, location) == (302, "/admin/polls/question/"), page[:500]
    assert site.nginx.request("GET", "/question/", headers={"Host": host})[2] == text.encode()


def test_admin_login_and_edit_over_plain_http(site: Site) -> None:
    _admin_edit(site, "127.0.0.1", {}, "http://127.0.0.1", "edited over http")


def test_admin_login_and_edit_behind_a_tls_proxy(site: Site) -> None:
    # SECURE_PROXY_SSL_HEADER: the request is https, so CSRF checks the https Origin against
    # CSRF_TRUSTED_ORIGINS; a plain http Origin would be refused.
    https = {"X-Forwarded-Proto": "https"}
    _admin_edit(site, "example.test", https, "https://example.test", "edited over https")
    with pytest.raises(AssertionError):
        _admin_edit(site, "example.test", https, "http://example.test", "refused")


def test_a_big_upload_goes_to_the_temp_dir_and_is_removed_after(site: Site) -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\n'
        + b"a" * 50_000
        + b"\r\n--B--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=B"}
    status, _, data = site.nginx.request("POST", "/upload/", body, headers)
    assert status == 200, data
    answer = json.loads(data)
    assert answer["size"] == 50_000 and answer["exists"]
    assert Path(answer["path"]).parent == site.root
    # Removed as the response closes, which may come just after nginx passed the response on
    # (a rerun in a loaded full run): waited for, bounded.
    wait_until(lambda: not Path(answer["path"]).exists(), 10, "the upload's temp file removed")


def test_request_finished_once_when_the_client_leaves_a_stream(site: Site) -> None:
    # The previous test's request_finished comes as its response closes, which may be after
    # nginx passed the response on (it came in this test's count once, on a loaded machine).
    settled = lambda: site.marks().count("started") == site.marks().count("finished")  # noqa: E731
    wait_until(settled, 30, "the earlier requests' request_finished")
    before = len(site.marks())
    with socket.create_connection(("127.0.0.1", site.nginx.port), timeout=10) as client:
        client.sendall(b"GET /stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert client.recv(1000)
    wait_until(lambda: len(site.marks()) >= before + 2, 30, "request_finished after the leave")
    assert site.marks()[before:] == ["started", "finished"]


def test_a_file_response_of_a_seeked_file_sends_the_rest(site: Site) -> None:
    # wsgi.file_wrapper sends from the file's position (uWSGI's sendfile starts at 0).
    blob = site.blob.read_bytes()
    for at in (0, 1234, 299_999):
        status, head, data = site.nginx.request("GET", f"/seeked/?at={at}")
        assert status == 200 and data == blob[at:]
        assert head["Content-Length"] == str(len(blob) - at)


def test_an_async_view_answers(site: Site) -> None:
    assert site.nginx.request("GET", "/pause/")[:3:2] == (200, b"async ok")
