"""--ini option logic: if-*/else/endif and for*/endfor blocks, as uWSGI applies them."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from uwsgiapp.config import ConfigError
from uwsgiapp.config.configload import resolve
from uwsgiapp.config.inilogic import MAX_LOGIC_ENTRIES
from uwsgiapp.config.uwsgiini import ini_layer

ENV = {"SET": "yes", "EMPTY": "", "PORT": "8000"}


def env_of(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> list[str]:
    """The ``env`` option the section gives (its lines say which blocks applied)."""
    return list(load(tmp_path, body, environ)[0])


def load(
    tmp_path: Path, body: str, environ: dict[str, str] | None = None
) -> tuple[tuple[str, ...], list[str]]:
    path = tmp_path / "site.ini"
    path.write_text(f"[uwsgi]\nmodule = app:app\n{body}\n")
    result = ini_layer(str(path), environ=ENV if environ is None else environ)
    return resolve([result.layer]).config.env, result.warnings


# (block lines, expected env) — each applied line says which test passed and its %(_).
CASES: list[tuple[str, list[str]]] = [
    ("if-env = SET\nenv = A=%(_)\nendif =", ["A=yes"]),
    ("if-env = UNSET\nenv = A=1\nendif =", []),
    ("ifenv = EMPTY\nenv = A=[%(_)]\nendif", ["A=[]"]),  # set, even if empty
    ("if-env = PORT=8000\nenv = A=%(_)\nend =", ["A=8000"]),
    ("if-env = PORT=9000\nenv = A=1\nendif =", []),
    ("if-not-env = UNSET\nenv = A=1\nendif =\nif-not-env = SET\nenv = B=1\nendif", ["A=1"]),
    ("if-not-env = SET\nenv = A=1\nendif =", []),
    ("if-not-env = PORT=9000\nenv = A=%(_)\nendif =", ["A=8000"]),
    ("if-not-env = PORT=8000\nenv = A=1\nendif =", []),
    ("env = B=2\nif-opt = env\nenv = A=[%(_)]\nendif =", ["B=2", "A=[B=2]"]),
    ("env = B=2\nif-opt = env=B=3\nenv = A=1\nendif =", ["B=2"]),
    ("if-not-opt = harakiri\nenv = A=1\nendif =\nif-not-opt = env\nenv = B=1\nendif", ["A=1"]),
    ("if-env = UNSET\nenv = A=1\nelse =\nenv = B=1\nendif =\nenv = C=1", ["B=1", "C=1"]),
    ("if-env = SET\nenv = A=1\nelse =\nenv = B=1\nendif =", ["A=1"]),
    (
        "for = a b  c\nenv = X_%(_)=%(_)\nenv = Y=1\nendfor =",
        ["X_a=a", "X_b=b", "X_c=c", *["Y=1"] * 3],
    ),
    ("for-times = 3\nenv = N%(_)=1\nend-for =", ["N1=1", "N2=1", "N3=1"]),
    (
        "if-plugin = python3\nenv = A=%(_)\nendif =\nif-plugin = php\nenv = B=1\nendif",
        ["A=python3"],
    ),
    ("if-not-reload =\nenv = A=1\nendif =\nif-reload =\nenv = B=1\nendif", ["A=1"]),
    ("if-hostname = %h\nenv = A=1\nendif =\nif-not-hostname = %h\nenv = B=1\nendif", ["A=1"]),
    (
        "if-not-hostname-match = ^no-such-host$\nenv = A=1\nendif =\n"
        "if-hostname-match = ^no-such-host$\nenv = B=1\nendif",
        ["A=1"],
    ),
    ("if-env = $(UNSET_TOO)\nenv = A=1\nendif =", []),  # expands to '': no such variable
    ("if-not-env = UNSET\nenv = A=%(_)\nendif =", ["A=UNSET"]),  # %(_): the name tested
    # An option whose value uses a placeholder: compared as written (no traceback).
    ("base = /srv\nchdir = %(base)/x\nif-opt = chdir\nenv = A=1\nendif =", ["A=1"]),
]


@pytest.mark.parametrize(("body", "expected"), CASES)
def test_blocks(tmp_path: Path, body: str, expected: list[str]) -> None:
    assert env_of(tmp_path, body) == expected


def test_outside_a_block_every_line_applies_and_a_skipped_key_is_no_placeholder(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"uses %\(base\), which is not defined"):
        env_of(tmp_path, "if-env = UNSET\nbase = /srv\nendif =\nchdir = %(base)")
    assert env_of(tmp_path, "if-env = SET\nbase = /srv\nendif =\nenv = B=%(base)") == ["B=/srv"]


@pytest.mark.parametrize(
    ("key", "negated_key", "make"),
    [
        ("if-exists", "if-not-exists", "file"),
        ("if-exists", "if-not-exists", "dir"),
        ("if-file", "if-not-file", "file"),
        ("if-dir", "if-not-dir", "dir"),
        ("if-directory", "if-not-dir", "dir"),
    ],
)
def test_path_tests(tmp_path: Path, key: str, negated_key: str, make: str) -> None:
    there = tmp_path / "there"
    there.mkdir() if make == "dir" else there.write_text("x")
    body = (
        f"{key} = {there}\nenv = A=%(_)\nendif =\n"
        f"{key} = {tmp_path / 'missing'}\nenv = B=1\nendif =\n"
        f"{negated_key} = {tmp_path / 'missing'}\nenv = C=1\nendif =\n"
        f"{negated_key} = {there}\nenv = D=1\nendif ="
    )
    assert env_of(tmp_path, body) == [f"A={there}", "C=1"]


def test_path_tests_tell_files_from_directories(tmp_path: Path) -> None:
    body = f"if-file = {tmp_path}\nenv = A=1\nendif =\nif-dir = %d\nenv = B=%(_)\nendif ="
    assert env_of(tmp_path, body) == [f"B={tmp_path}/"]


def test_for_glob_and_for_readline(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("")
    (tmp_path / "b.conf").write_text("")
    (tmp_path / "d.conf").mkdir()
    (tmp_path / "list.txt").write_text("one\r\ntwo\n")
    body = (
        "for-glob = %d*.conf\nenv = G=%(_)\nendfor =\n"
        "for-glob = %dnothing*\nenv = N=%(_)\nendfor =\n"
        "for-readline = %dlist.txt\nenv = L=%(_)\nendfor ="
    )
    assert env_of(tmp_path, body) == [
        f"G={tmp_path}/a.conf",
        f"G={tmp_path}/b.conf",
        f"G={tmp_path}/d.conf/",
        f"N={tmp_path}/nothing*",  # no match: the pattern itself, as glob(3) NOCHECK
        "L=one",
        "L=two",
    ]


def test_for_readline_over_a_dotenv_file_skips_its_blank_and_comment_lines(
    tmp_path: Path,
) -> None:
    # The idiom of Django templates: a .env file shared with docker compose, read line by
    # line into env. uWSGI hands every line to putenv, which sets nothing for a blank line
    # or a comment, and starts; each such line stopped uwsgiapp's start ("expected NAME=VALUE").
    (tmp_path / ".env").write_text("# settings\nDJANGO_SETTINGS_MODULE=site.settings\n\nA=1\n")
    env, warnings = load(tmp_path, "for-readline = %d.env\nenv = %(_)\nendfor =")
    assert list(env) == ["DJANGO_SETTINGS_MODULE=site.settings", "A=1"]
    assert any("'env = # settings' (line 4) sets nothing: ignored" in w for w in warnings)
    assert any("'env = ' (line 4) sets nothing: ignored" in w for w in warnings)


def test_a_read_lines_percent_signs_are_its_own_text(tmp_path: Path) -> None:
    # uWSGI expands %x only as it reads the ini: a .env line keeps its % (a password's %c was
    # the hostname's, and a comment's "100% done" stopped the start); %(name) still expands.
    (tmp_path / ".env").write_text("PASSWORD=ab%cd\nB=x%%y\n# 100% done\nC=%(tag)\n")
    body = (
        "tag = t1\nfor-readline = %d.env\nenv = %(_)\nendfor =\n"
        "for = 5%% 6%%\nenv = W=%(_)\nendfor ="
    )
    env, _ = load(tmp_path, body)
    assert list(env) == ["PASSWORD=ab%cd", "B=x%%y", "C=t1", "W=5%", "W=6%"]


def test_nested_blocks_are_refused(tmp_path: Path) -> None:
    body = "if-env = SET\nenv = A=1\nif-exists = /\nenv = B=1\nendif =\nendif ="
    with pytest.raises(ConfigError) as info:
        env_of(tmp_path, body)
    assert "'if-exists' (line 5) opens a block inside the 'if-env' block of line 3" in str(
        info.value
    )
    assert "cannot nest" in str(info.value)


def test_a_placeholder_in_a_condition_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="placeholders are not expanded in a condition"):
        env_of(tmp_path, "base = /srv\nif-exists = %(base)\nenv = A=1\nendif =")


def test_unclosed_block_and_if_reload_warn(tmp_path: Path) -> None:
    env, warnings = load(tmp_path, "if-reload =\nenv = R=1\nendif =\nif-env = SET\nenv = A=1")
    assert env == ("A=1",)
    assert any("'if-reload' block (line 3) is never applied" in w for w in warnings)
    assert any("the 'if-env' block of line 6 has no endif" in w for w in warnings)
    assert not any("not supported" in w for w in warnings)


def test_for_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"more than {MAX_LOGIC_ENTRIES} lines"):
        env_of(tmp_path, "for-times = 100000000\nenv = N%(_)=1\nendfor =")


def test_hostname(tmp_path: Path) -> None:
    name = socket.gethostname()
    assert env_of(tmp_path, f"if-hostname = {name}\nenv = H=%(_)\nendif =") == [f"H={name}"]
