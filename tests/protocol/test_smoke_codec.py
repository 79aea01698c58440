"""Round trip of the real nginx captures through decoder and encoder."""

from pathlib import Path

import pytest

import uwsgiproto

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "valid"


@pytest.mark.parametrize("name", ["nginx_get_hello.bin", "nginx_post_json.bin"])
def test_real_capture_round_trips(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    event, body = uwsgiproto.decode(data)
    assert isinstance(event, uwsgiproto.Request)
    assert event.vars["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert uwsgiproto.build_request(list(event.vars.items()), body) == data
