"""uWSGI's log-format as an --access-log template: the line uWSGI writes for a template, field
for field, from the same packet (recorded from uWSGI 2.0.31 below)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from handler_kit import hello, make_handler, packet, run
from test_logs import _restore_access_logger  # noqa: F401  (autouse: each test's log closed)

from uwsgiapp.config import ConfigError, make_config
from uwsgiapp.logfields import KNOWN, is_template, unsupported
from uwsgiapp.server import logtemplate
from uwsgiapp.server.logs import make_access_log

TEMPLATE = (
    "A=%(addr) U=%(user) M=%(method) URI=%(uri) P=%(proto) S=%(status) SZ=%(size) HS=%(hsize) "
    "RS=%(rsize) H=%(headers) CL=%(cl) MS=%(msecs) US=%(micros) SECS=%(secs) T=%(time) "
    "LT=%(ltime) FT=%(ftime) CT=%(ctime) PID=%(pid) WID=%(wid) CORE=%(core) SW=%(switches) "
    "V=%(vars) PK=%(pktsize) HOST=%(host) UA=%(uagent) REF=%(referer) VAR=%(var.HTTP_X_Y) "
    "RSS=%(rss) RSSM=%(rssM) VSZ=%(vsz) RERR=%(rerr) WERR=%(werr) IOERR=%(ioerr) "
    "MOD1=%(modifier1) LV=%(foo) TMS=%(tmsecs) END"
)
#: What uWSGI 2.0.31 wrote for TEMPLATE (log-format in its ini) and PACKET, answered by an app
#: that returned b"x" with no headers.
UWSGI_WROTE = (
    "A=127.0.0.1 U=ann M=POST URI=/p?q=1 P=HTTP/1.1 S=200 SZ=20 HS=19 RS=1 H=0 CL=3 MS=4 "
    "US=4843 SECS=0.004843 T=1796664077 LT=07/Dec/2026:17:21:17 +0000 "
    "FT=07/Dec/2026:17:21:17 +0000 CT=Mon Dec  7 17:21:17 2026 PID=30001 WID=1 CORE=0 SW=2 "
    'V=40 PK=502 HOST=localhost:8080 UA=curl "8" REF=https://r.example/ VAR=hello RSS=0 '
    "RSSM=0 VSZ=0 RERR=0 WERR=0 IOERR=0 MOD1=0 LV=- TMS=1796664077028 END"
)
EXTRA = {
    "HTTP_X_Y": "hello",
    "HTTP_USER_AGENT": 'curl "8"',
    "HTTP_REFERER": "https://r.example/",
    "REMOTE_USER": "ann",
}
#: Fields that differ by the request's time and process, or by choice (see the test).
MOVING = {"MS", "US", "SECS", "T", "LT", "FT", "CT", "PID", "TMS", "WID"}


def _fields(line: str) -> dict[str, str]:
    # "CT=Mon Dec  7 ..." and "UA=curl "8"" hold spaces: split at the names, known in order.
    names = [part.split("=", 1)[0] for part in TEMPLATE.split(" ") if "=" in part]
    out: dict[str, str] = {}
    rest = line
    for name, after in zip(names, [*names[1:], "END"], strict=True):
        assert rest.startswith(f"{name}="), (name, rest)
        value, _, rest = rest[len(name) + 1 :].partition(
            f" {after}" + ("" if after == "END" else "=")
        )
        rest = f"{after}=" + rest if after != "END" else rest
        out[name] = value
    return out


def _app(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def,type-arg]
    environ["wsgi.input"].read()
    start_response("200 OK", [])
    return [b"x"]


def test_a_template_line_is_uwsgis_field_for_field(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    access = make_access_log(TEMPLATE, str(path))
    before = time.time()
    run(make_handler(_app, access_log=access), packet("POST", "/p?q=1", b"abc", **EXTRA))
    ours, theirs = _fields(path.read_text().rstrip("\n")), _fields(UWSGI_WROTE)
    differ = {name for name in theirs if ours[name] != theirs[name]}
    # uWSGI's vsz and rss are 0 unless its memory report is on; its switches count async
    # switches (1 or 2). werr and modifier1 are 0 as uWSGI's usually are (not kept here).
    assert differ - MOVING == {"RSS", "RSSM", "VSZ", "SW"}, (ours, theirs)
    assert int(ours["RSS"]) > 1 << 20 and int(ours["VSZ"]) > int(ours["RSS"])
    assert int(ours["RSSM"]) == int(ours["RSS"]) >> 20
    assert (ours["SW"], ours["WERR"], ours["IOERR"], ours["MOD1"]) == ("1", "0", "0", "0")
    # The moving ones: the same shapes, of this request.
    assert ours["PID"] == str(os.getpid()) and ours["WID"] == "0"  # no worker in this test
    assert abs(int(ours["T"]) - before) < 2 and abs(int(ours["TMS"]) / 1000 - before) < 2
    assert int(ours["US"]) // 1000 == int(ours["MS"]) and float(ours["SECS"]) < 2
    assert time.strptime(ours["LT"], "%d/%b/%Y:%H:%M:%S %z") and ours["FT"] == ours["LT"]
    assert time.strptime(ours["CT"], "%a %b %d %H:%M:%S %Y")


def test_a_json_template_escapes_its_values(tmp_path: Path) -> None:
    # uWSGI writes a value as it is: a quote in a User-Agent broke the JSON record.
    path = tmp_path / "access.log"
    template = (
        '{"ua": "%(uagent)", "uri": "%(uri)", "status": %(status), "x": "%(var.HTTP_X)", '
        '"werr": %(werr), "m1": %(modifier1)}'
    )
    access = make_access_log(template, str(path))
    agent = 'evil "agent" \\ \x1b[31m'
    # The request's UTF-8 as the client wrote it, as the 'json' format says it (review).
    uri = "/caf\u00e9?b".encode().decode("latin-1")
    run(make_handler(hello, access_log=access), packet("GET", uri, HTTP_USER_AGENT=agent))
    record = json.loads(path.read_text())
    assert record == {"ua": agent, "uri": "/café?b", "status": 200, "x": "-", "werr": 0, "m1": 0}


def test_a_plain_template_escapes_controls_and_marks_empty_values(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    access = make_access_log("%(method) %(uri) %(referer) %(user) [%(foo)] 100%", str(path))
    run(make_handler(hello, access_log=access), packet("GET", "/x\r\ny"))
    assert path.read_text() == "GET /x\\x0D\\x0Ay - - [-] 100%\n"


def test_options_take_a_template_and_start_up_names_the_fields_logged_as_dash() -> None:
    assert is_template("%(addr)") and not is_template("combined") and not is_template("%(")
    assert make_config(access_log="%(addr) %(uri)").access_log == "%(addr) %(uri)"
    with pytest.raises(ConfigError, match=r"combined, or a uWSGI log-format template"):
        make_config(access_log="apache")
    said = unsupported("%(addr) %(werr) %(metric.x) %(mylogvar) %(var.HTTP_X) %(ioerr) %(werr)")
    assert [line.split(" here")[0] for line in said] == [
        "--access-log: the field %(werr) is always 0",
        "--access-log: the field %(metric.x) is logged as '-'",
        "--access-log: the field %(mylogvar) is logged as '-'",
        "--access-log: the field %(ioerr) counts the body's read errors only",
    ]
    assert "uwsgi.set_logvar" in said[2]
    assert unsupported(" ".join(f"%({name})" for name in KNOWN - {"ioerr"})) == []
    # What the options take for a field is what the logger fills.
    assert set(logtemplate._FIELDS) == KNOWN


class _Wrapped:
    """A middleware's own ``wsgi.input`` (a body logger's, a size limiter's)."""

    def __init__(self, stream: object) -> None:
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)  # type: ignore[attr-defined, no-any-return]


def test_rerr_counts_the_servers_body_read_under_a_middlewares_wsgi_input(
    tmp_path: Path,
) -> None:
    # %(rerr) looked at environ["wsgi.input"]: a middleware's wrapper there hid the failure.
    def app(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def,type-arg]
        environ["wsgi.input"] = _Wrapped(environ["wsgi.input"])
        try:
            environ["wsgi.input"].read(200_000)
        except OSError:
            start_response("400 Bad Request", [])
            return [b"incomplete"]
        start_response("200 OK", [])
        return [b"whole"]

    path = tmp_path / "access.log"
    access = make_access_log("%(status) RERR=%(rerr)", str(path))
    data = packet("POST", "/upload", bytes(200_000))
    run(make_handler(app, access_log=access), data[:50_000], shut_wr=True)
    run(make_handler(app, access_log=access), data)
    assert path.read_text().splitlines() == ["400 RERR=1", "200 RERR=0"]
