"""The cheaper options from every source, their checks, and Bloomberg's production ini."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli.cli_testkit import run_cli

from uwsgiapp.config import Config, ConfigError, make_config
from uwsgiapp.config.configload import resolve
from uwsgiapp.config.uwsgiini import ini_layer
from uwsgiapp.supervisor.cheaper import CheaperOptions

#: "Configuring uWSGI for Production Deployment" (Bloomberg), its cheaper part.
BLOOMBERG = """[uwsgi]
module = hello:app
master = true
enable-threads = true
vacuum = true
single-interpreter = true
die-on-term = true
need-app = true
disable-logging = true
log-4xx = true
log-5xx = true
harakiri = 60
max-requests = 1000
max-worker-lifetime = 3600
reload-on-rss = 2048
worker-reload-mercy = 60
cheaper-algo = busyness
processes = 128
cheaper = 8
cheaper-initial = 16
cheaper-overload = 1
cheaper-step = 16
cheaper-busyness-multiplier = 30
cheaper-busyness-min = 20
cheaper-busyness-max = 70
cheaper-busyness-backlog-alert = 16
cheaper-busyness-backlog-step = 2
"""
#: Its cheaper keys alone, with uWSGI's strict: every one is honoured, so it starts.
CHEAPER_ONLY = (
    "[uwsgi]\nmodule = hello:app\nstrict = true\n"
    + BLOOMBERG.split("worker-reload-mercy = 60\n")[1]
)


@pytest.mark.parametrize(
    ("values", "option", "says"),
    [
        ({"workers": 4, "cheaper": 4}, "--cheaper", "must be lower than --workers (4)"),
        ({"workers": 4, "cheaper": -1}, "--cheaper", "must be >= 0"),
        ({"workers": 8, "cheaper": 2, "cheaper_initial": 1}, "--cheaper-initial", "between"),
        ({"workers": 8, "cheaper": 2, "cheaper_initial": 9}, "--cheaper-initial", "between"),
        ({"workers": 8, "cheaper": 2, "cheaper_algo": "fast"}, "--cheaper-algo", "one of spare"),
        ({"workers": 8, "cheaper": 2, "cheaper_algo": "spare2"}, "--cheaper-algo", "spare2"),
        ({"workers": 8, "cheaper": 2, "cheaper_step": 0}, "--cheaper-step", ">= 1"),
        ({"workers": 8, "cheaper": 2, "cheaper_overload": 0}, "--cheaper-overload", ">= 1"),
        (
            {"workers": 8, "cheaper": 2, "cheaper_busyness_min": 60},
            "--cheaper-busyness-min",
            "not be over --cheaper-busyness-max (50)",
        ),
        (
            {"workers": 8, "cheaper": 2, "cheaper_busyness_max": 101},
            "--cheaper-busyness-max",
            "0..",
        ),
        ({"workers": 8, "cheaper_step": 4}, "--cheaper-step", "needs --cheaper N"),
        ({"workers": 8, "cheaper_algo": "busyness"}, "--cheaper-algo", "needs --cheaper N"),
    ],
)
def test_bad_cheaper_values_name_the_option(
    values: dict[str, object], option: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(app="a:b", **values)
    assert str(err.value).startswith(option + ":") and says in str(err.value)


def test_a_bad_value_stops_start_up_with_exit_2_naming_it(tmp_path: Path) -> None:
    r = run_cli("serve", "hello:app", "--workers", "4", "--cheaper", "4", cwd=tmp_path)
    assert r.returncode == 2
    assert b"--cheaper (from command line --cheaper): must be lower than --workers" in r.stderr
    env = {"UWSGIAPP_CHEAPER": "1", "UWSGIAPP_CHEAPER_ALGO": "nope"}
    r = run_cli("serve", "hello:app", "--workers", "4", "--check-config", cwd=tmp_path, env=env)
    assert r.returncode == 2 and b"--cheaper-algo" in r.stderr


def test_toml_and_print_config(tmp_path: Path) -> None:
    (tmp_path / "app.toml").write_text(
        'app = "hello:app"\nworkers = 6\ncheaper = 2\ncheaper-algo = "backlog"\n'
    )
    r = run_cli("serve", "--config", "app.toml", "--print-config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "cheaper = 2" in out and 'cheaper-algo = "backlog"' in out


def test_bloombergs_ini_runs_16_of_128_with_its_busyness_settings(tmp_path: Path) -> None:
    (tmp_path / "uwsgi.ini").write_text(BLOOMBERG)
    result = ini_layer(str(tmp_path / "uwsgi.ini"), environ={})
    config = resolve([result.layer]).config
    said = [w.split("'")[1] for w in result.warnings]
    assert said == [], result.warnings  # every key of it is honoured
    assert config.max_worker_lifetime == 3600
    assert (config.access_log, config.log_4xx, config.log_5xx) == ("uwsgi", True, True)
    opts = CheaperOptions.from_config(config)
    assert opts is not None
    assert (opts.minimum, opts.initial, opts.maximum, opts.step, opts.overload) == (
        8,
        16,
        128,
        16,
        1,
    )
    assert opts.algo == "busyness"
    assert (opts.busyness_min, opts.busyness_max, opts.multiplier) == (20, 70, 30)
    assert (opts.backlog_alert, opts.backlog_step) == (16, 2)
    # strict = true: the keys it honours do not stop the start; those it has not still do.
    (tmp_path / "strict.ini").write_text(CHEAPER_ONLY)
    r = run_cli("serve", "--ini", "strict.ini", "--print-config", cwd=tmp_path)
    assert r.returncode == 0 and b"cheaper-busyness-backlog-step = 2" in r.stdout, r.stderr
    (tmp_path / "more.ini").write_text(CHEAPER_ONLY + "cheaper-rss-limit-soft = 100\n")
    r = run_cli("serve", "--ini", "more.ini", "--print-config", cwd=tmp_path)
    assert r.returncode == 2 and b"cheaper-rss-limit-soft" in r.stderr


def test_without_cheaper_there_are_no_cheaper_options() -> None:
    assert CheaperOptions.from_config(make_config(app="a:b", workers=4)) is None


def _ini(tmp_path: Path, text: str) -> tuple[Config, list[str]]:
    """The config an ini alone resolves to, and the warnings said on the way."""
    (tmp_path / "uwsgi.ini").write_text("[uwsgi]\nmodule = hello:app\nprocesses = 8\n" + text)
    resolved = resolve([ini_layer(str(tmp_path / "uwsgi.ini"), environ={}).layer])
    return resolved.config, list(resolved.warnings)


def test_an_inis_cheaper_keys_with_cheaper_0_are_ignored_with_a_warning(tmp_path: Path) -> None:
    # A templated ini turns cheaper off with cheaper = 0 and leaves its other keys in: uWSGI
    # runs it (cheaper off), and so does uwsgiapp, saying what it ignores.
    text = "cheaper = 0\ncheaper-algo = busyness\ncheaper-step = 4\ncheaper-initial = 9\n"
    config, said = _ini(tmp_path, text)
    assert CheaperOptions.from_config(config) is None
    assert (config.cheaper_algo, config.cheaper_step, config.cheaper_initial) == ("spare", 1, 0)
    assert len(said) == 1 and said[0].startswith("cheaper is 0 (off): ignored")
    assert "cheaper-algo (line 5); " in said[0] and "cheaper-initial (line 7)" in said[0]
    r = run_cli("serve", "--ini", "uwsgi.ini", "--print-config", cwd=tmp_path)
    assert r.returncode == 0 and b"warning: cheaper is 0 (off): ignored" in r.stderr
    assert b'cheaper-algo = "spare"' in r.stdout
    # The command line, the environment and a TOML file are still refused (exit 2).
    r = run_cli("serve", "--ini", "uwsgi.ini", "--cheaper-step", "2", cwd=tmp_path)
    assert r.returncode == 2 and b"--cheaper-step (from command line" in r.stderr
    env = {"UWSGIAPP_CHEAPER_ALGO": "backlog"}
    r = run_cli("serve", "--ini", "uwsgi.ini", "--check-config", cwd=tmp_path, env=env)
    assert r.returncode == 2 and b"--cheaper-algo (from env" in r.stderr
    (tmp_path / "app.toml").write_text('app = "hello:app"\ncheaper-overload = 2\n')
    r = run_cli("serve", "--config", "app.toml", "--check-config", cwd=tmp_path)
    assert r.returncode == 2 and b"--cheaper-overload (from config file" in r.stderr


@pytest.mark.parametrize(("initial", "clamped"), [(12, 8), (1, 2)])
def test_an_inis_cheaper_initial_out_of_range_is_clamped_as_uwsgi_does(
    tmp_path: Path, initial: int, clamped: int
) -> None:
    config, said = _ini(tmp_path, f"cheaper = 2\ncheaper-initial = {initial}\n")
    assert config.cheaper_initial == clamped
    assert said == [
        f"ini {tmp_path / 'uwsgi.ini'} [uwsgi] cheaper-initial (line 5): {initial} is outside "
        f"cheaper (2)..processes (8): {clamped} workers at start, as uWSGI corrects it"
    ]
    with pytest.raises(ConfigError, match="between"):
        make_config(app="a:b", workers=8, cheaper=2, cheaper_initial=initial)


def test_an_inis_zero_for_a_busyness_key_is_its_default_as_in_uwsgis_plugin(
    tmp_path: Path,
) -> None:
    keys = (
        "min",
        "max",
        "multiplier",
        "penalty",
        "backlog-alert",
        "backlog-step",
        "backlog-multiplier",
        "backlog-nonzero",
    )
    zeros = "".join(f"cheaper-busyness-{key} = 0\n" for key in keys)
    config, said = _ini(tmp_path, "cheaper = 2\ncheaper-algo = busyness\n" + zeros)
    assert said == []
    opts = CheaperOptions.from_config(config)
    assert opts == CheaperOptions(minimum=2, maximum=8, initial=2, algo="busyness")
    assert (opts.busyness_min, opts.backlog_alert, opts.penalty) == (25, 33, 2)
    # Elsewhere a 0 stays a 0 (or is refused where it is below the least).
    literal = make_config(app="a:b", workers=8, cheaper=2, cheaper_busyness_min=0)
    assert literal.cheaper_busyness_min == 0


@pytest.mark.parametrize(
    ("text", "low"),
    [
        ("cheaper-busyness-max = 20\n", "the default cheaper-busyness-min: 25"),
        ("cheaper-busyness-min = 0\ncheaper-busyness-max = 20\n", "(0: the default"),
        ("cheaper-busyness-min = 30\ncheaper-busyness-max = 20\n", "(line 6): 30"),
    ],
    ids=["default-min", "zero-min", "min-over"],
)
def test_an_inis_busyness_min_over_its_max_is_lowered_to_it_as_uwsgi_acts(
    tmp_path: Path, text: str, low: str
) -> None:
    # uWSGI starts workers above the max before it looks at the min: a min over the max acts
    # as the max. It ran these inis; the min over the max was refused here.
    config, said = _ini(tmp_path, "cheaper = 2\ncheaper-algo = busyness\n" + text)
    opts = CheaperOptions.from_config(config)
    assert opts is not None and (opts.busyness_min, opts.busyness_max) == (20, 20)
    assert len(said) == 1 and low in said[0]
    assert said[0].endswith(
        "is over cheaper-busyness-max (20): 20, as uWSGI's busyness acts "
        "(it starts workers above the max before it looks at the min)"
    )
    with pytest.raises(ConfigError, match="must not be over"):
        make_config(app="a:b", workers=8, cheaper=2, cheaper_busyness_max=20)


def test_a_busyness_min_from_elsewhere_beside_an_inis_max_is_not_lowered(tmp_path: Path) -> None:
    # The ini's reading applies to the ini's values: a min the command line or the
    # environment gives stays, and validation names it; an ini's max out of range is named.
    (tmp_path / "uwsgi.ini").write_text(
        "[uwsgi]\nmodule = hello:app\nprocesses = 8\ncheaper = 2\ncheaper-busyness-max = 20\n"
    )
    r = run_cli(
        "serve",
        "--ini",
        "uwsgi.ini",
        "--cheaper-busyness-min",
        "30",
        "--check-config",
        cwd=tmp_path,
    )
    assert r.returncode == 2 and b"--cheaper-busyness-min (from command line" in r.stderr
    assert b"must not be over --cheaper-busyness-max (20), got 30" in r.stderr
    (tmp_path / "uwsgi.ini").write_text(
        "[uwsgi]\nmodule = hello:app\nprocesses = 8\ncheaper = 2\ncheaper-busyness-max = -5\n"
    )
    r = run_cli("serve", "--ini", "uwsgi.ini", "--check-config", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert b"--cheaper-busyness-max (from ini" in r.stderr and b"0..100, got -5" in r.stderr


def test_an_inis_cheaper_step_0_is_one_at_a_time_as_in_uwsgi(tmp_path: Path) -> None:
    config, said = _ini(tmp_path, "cheaper = 2\ncheaper-step = 0\n")
    assert config.cheaper_step == 1 and said == []
    with pytest.raises(ConfigError, match=">= 1"):
        make_config(app="a:b", workers=8, cheaper=2, cheaper_step=0)
