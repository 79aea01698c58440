"""What start-up says about each socket: who may connect, and where a TCP socket is bound."""

from __future__ import annotations

import re

import pytest

from uwsgiapp.server.listeners import bind_all
from uwsgiapp.supervisor.boot import _who_may_connect


@pytest.mark.parametrize(
    ("spec", "allow", "said"),
    [
        # ':PORT' is every interface (uWSGI's meaning): the line says so.
        (":0", ["127.0.0.1"], r" \(bound to 0\.0\.0\.0:\d+; peers allowed: 127\.0\.0\.1 "),
        ("127.0.0.1:0", ["*"], r" \(bound to 127\.0\.0\.1:\d+; peers allowed: any "),
        ("127.0.0.1:0", ["10.0.0.0/8", "::1"], r"peers allowed: ::1, 10\.0\.0\.0/8 \("),
    ],
)
def test_a_tcp_socket_says_where_it_is_bound_and_who_may_connect(
    spec: str, allow: list[str], said: str
) -> None:
    (listener,) = bind_all([spec], backlog=8, chmod=0o660, allow_from=allow)
    try:
        assert re.search(said, _who_may_connect(listener)), _who_may_connect(listener)
    finally:
        listener.close()
