"""--ini values that look like they end in a comment: uWSGI has no inline comments."""

from __future__ import annotations

from pathlib import Path

from uwsgiapp.config import Config
from uwsgiapp.config.configload import resolve
from uwsgiapp.config.uwsgiini import ini_layer


def load(tmp_path: Path, body: str) -> tuple[Config, list[str]]:
    path = tmp_path / "site.ini"
    path.write_text(f"[uwsgi]\nmodule = app:app\n{body}\n")
    result = ini_layer(str(path), environ={})
    return resolve([result.layer]).config, result.warnings


def test_numbers_and_flags_read_as_uwsgi_reads_them(tmp_path: Path) -> None:
    """uWSGI's own Django tutorial writes 'harakiri = 20 # respawn ...': atoi reads 20."""
    config, warnings = load(
        tmp_path,
        "harakiri = 20 # respawn processes taking more than 20 seconds\n"
        "processes = 4 ; four\n"
        "processes = 5 # 100% sure\n"  # the comment is not expanded either
        "lazy-apps = true # fork-unsafe library\n"
        "chmod-socket = 664\t# group writes\n"
        "vacuum = true # clean up",
    )
    assert (config.harakiri, config.workers, config.lazy_apps) == (20.0, 5, True)
    assert config.chmod_socket == 0o664
    # One line for them all (Bloomberg's production ini wrote twenty), each key once
    (said,) = [w for w in warnings if "uWSGI has no inline comments" in w]
    assert said.endswith(
        "uWSGI has no inline comments: the text after the number or flag of harakiri (line 3),"
        " processes (line 4), lazy-apps (line 6), chmod-socket (line 7), vacuum (line 8) is"
        " ignored, as uWSGI ignores it; put comments on lines of their own"
    ), said


def test_strings_keep_the_text_with_a_warning(tmp_path: Path) -> None:
    config, warnings = load(
        tmp_path,
        "socket = /tmp/x.sock  # the socket\n"
        "env = DJANGO_SETTINGS_MODULE=mysite.settings # set a variable\n"
        "pidfile = /tmp/project-master.pid ; a pidfile\n"
        "env = KEEP=a;b#c",  # no blank before: not comment-like
    )
    assert config.socket == ("/tmp/x.sock  # the socket",)
    assert config.pidfile == "/tmp/project-master.pid ; a pidfile"
    assert "DJANGO_SETTINGS_MODULE=mysite.settings # set a variable" in config.env
    said = [w for w in warnings if "looks like a comment" in w]
    assert len(said) == 3
    assert any("'socket = /tmp/x.sock  # the socket' (line 3)" in w for w in said)
    assert all("the whole text is the value" in w for w in said)
