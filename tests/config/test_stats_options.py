"""The --stats options: validated once, naming the option; the env variable fills them."""

from __future__ import annotations

import pytest

from uwsgiapp.config import ConfigError, make_config
from uwsgiapp.config.configload import resolve


@pytest.mark.parametrize(
    ("values", "option", "fragment"),
    [
        ({"stats_http": True}, "--stats-http", "needs --stats ADDR"),
        ({"stats_minified": True}, "--stats-minified", "needs --stats ADDR"),
        ({"stats": "@abstract"}, "--stats", "unix socket path or host:port"),
        ({"stats": "fd://3"}, "--stats", "unix socket path or host:port"),
        ({"stats": "http://127.0.0.1:9191/"}, "--stats", "is a URL: give the address to listen on"),
        ({"stats": "/tmp/a.sock", "socket": ("/tmp/a.sock",)}, "--stats", "also a --socket"),
    ],
)
def test_bad_stats_values(values: dict[str, object], option: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(app="a:b", **values)
    assert str(info.value).startswith(option + ":") or str(info.value).startswith(option + " ")
    assert fragment in str(info.value)


def test_good_stats_values() -> None:
    assert make_config(app="a:b", stats="127.0.0.1:9191").stats == "127.0.0.1:9191"
    config = make_config(app="a:b", stats="/run/s.sock", stats_http=True, stats_minified=True)
    assert config.stats_http and config.stats_minified


def test_env_fills_stats() -> None:
    from uwsgiapp.config.configload import env_layer

    layer = env_layer({"UWSGIAPP_STATS": "/run/s.sock", "UWSGIAPP_STATS_HTTP": "yes"})
    config = resolve([layer]).config
    assert (config.stats, config.stats_http) == ("/run/s.sock", True)


@pytest.mark.parametrize("given", ["", " ", ["", " "]])
def test_a_stats_allow_from_set_to_nothing_is_refused(given: object) -> None:
    # An unset ${STATS_ALLOW} in a compose file: taken as unset, the stats took
    # --uwsgi-allow-from's peers ('*' may be one), where the file meant to narrow them (review).
    from uwsgiapp.config.configload import Raw

    layer = {
        "stats": Raw("127.0.0.1:9191", "env UWSGIAPP_STATS"),
        "uwsgi_allow_from": Raw("*", "env UWSGIAPP_UWSGI_ALLOW_FROM"),
        "stats_allow_from": Raw(given, "env UWSGIAPP_STATS_ALLOW_FROM"),
        "app": Raw("a:app", "command line APP"),
    }
    with pytest.raises(ConfigError) as info:
        resolve([layer])
    assert str(info.value).startswith(
        "--stats-allow-from (from env UWSGIAPP_STATS_ALLOW_FROM): empty: it names no peer"
    )
    del layer["stats_allow_from"]  # unset: --uwsgi-allow-from's, as the help says
    assert resolve([layer]).config.stats_allow_from == ()
