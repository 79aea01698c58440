"""A named socket taken as the one systemd passed with its address (config/activation.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from uwsgiapp.config.activation import activated_by_address


@pytest.fixture
def v6_sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A dual-stack [::] socket (ListenStream=PORT's) and a v6-only one, bound, never used."""
    made = []
    try:
        for v6only in (0, 1):
            sock = socket.socket(socket.AF_INET6)
            made.append(sock)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
            sock.bind(("::", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 here: {exc}")
    yield made[0], made[1]
    for sock in made:
        sock.close()


def test_the_any_address_of_both_families_is_named_by_the_ipv4_spellings(
    v6_sockets: tuple[socket.socket, socket.socket],
) -> None:
    both, v6only = v6_sockets
    port, only = both.getsockname()[1], v6only.getsockname()[1]
    passed = [f"fd://{both.fileno()}", f"fd://{v6only.fileno()}"]
    specs = (f":{port}", f"0.0.0.0:{port}", f"[::]:{port}", f"0.0.0.0:{only}", f"[::]:{only}")
    found = activated_by_address(specs, passed)
    # A v6-only socket is no IPv4 one: 0.0.0.0 bound it itself (adopted, IPv4 was refused).
    assert found == {
        f":{port}": passed[0],
        f"0.0.0.0:{port}": passed[0],
        f"[::]:{port}": passed[0],
        f"[::]:{only}": passed[1],
    }


def test_a_relative_path_is_taken_from_chdir(tmp_path: Path) -> None:
    base = tmp_path
    (base / "site").mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(base / "app.sock"))
        passed = [f"fd://{sock.fileno()}"]
        assert activated_by_address(("../app.sock",), passed, str(base / "site")) == {
            "../app.sock": passed[0]
        }
        assert activated_by_address(("other.sock",), passed, str(base)) == {}


def test_a_socket_named_twice_is_bound_once(tmp_path: Path) -> None:
    """The second bind failed, "Address already in use", naming no holder: exit 3 (uWSGI
    binds it once)."""
    from uwsgiapp.cli import build_parser
    from uwsgiapp.config.serve import resolve_serve_config

    path = str(tmp_path / "app.sock")
    argv = ["serve", "a:app", "--socket", "127.0.0.1:9", "--socket", path]
    argv += ["--socket", f"unix:{path}", "--socket", "127.0.0.1:9"]
    resolved = resolve_serve_config(build_parser(argv).parse_args(argv), {})
    assert resolved.config.socket == ("127.0.0.1:9", path)
    assert f"--socket unix:{path}, 127.0.0.1:9 named twice (command line --socket): bound once" in (
        resolved.warnings
    )
