#!/usr/bin/env python3
"""Run the reliability suite at its long size and write docs/RELIABILITY.md from what it measured.

    make reliability                      # the documented command
    python scripts/reliability.py [-k EXPR] [--out docs/RELIABILITY.md]

Exits with pytest's exit code; the report is written whatever the outcome, failures included.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr) else ""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment() -> list[tuple[str, str]]:
    """What the run ran on: versions, machine, commit."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return [
        ("commit", _run(["git", "rev-parse", "--short", "HEAD"])),
        ("python", platform.python_version()),
        ("nginx", _run([nginx, "-v"]).replace("nginx version: ", "")),
        ("werkzeug", _version("werkzeug")),
        ("construct", _version("construct")),
        ("machine", f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}"),
    ]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


#: Every path the server opens, creates, hands over, replaces or removes while it may be root
#: (the master before ``--uid/--gid``, or for good when run as root without them), how it avoids
#: following a link the app user planted, and the test that covers it. Kept by hand: a new
#: privileged file operation adds a row here (tests/server/test_safefiles.py checks the tests
#: named here exist).
ROOT_PATHS: list[tuple[str, str, str]] = [
    (
        "error log (`--error-log-file`), opened at start-up",
        "`O_NOFOLLOW|O_CREAT|O_APPEND|O_CLOEXEC`, must be a regular file with one link as root; "
        "start-up stops with exit 3 naming the path",
        "tests/integration/test_root_files.py::test_a_log_linked_to_a_root_file_stops_start_up",
    ),
    (
        "access log (`--access-log-file`), opened by the master and by each worker",
        "the same open",
        "tests/integration/test_root_files.py::test_a_log_linked_to_a_root_file_stops_start_up",
    ),
    (
        "a log path whose link points at a missing file (`/etc/cron.d/x`)",
        "`O_NOFOLLOW` fails before `O_CREAT` could create the target",
        "tests/integration/test_root_files.py::test_a_log_linked_to_a_missing_root_path_is_not_created",
    ),
    (
        "a link on the way to a log or the pidfile (`logs -> /etc` in the app user's directory)",
        "the directories are opened one at a time with `O_PATH|O_NOFOLLOW`; a link among them "
        "is followed only in a directory only root can write, or if root owns it in a sticky one",
        "tests/integration/test_root_files.py::"
        "test_a_link_the_app_user_planted_on_the_way_stops_start_up; "
        "tests/server/test_safefiles.py::test_as_root_a_sticky_directory_follows_only_roots_own_links",
    ),
    (
        "`--chdir` through a link the app user planted, with relative log, pidfile and socket "
        "paths",
        "relative paths are joined to `--chdir` as written (not to the directory it led to), "
        "so the link is walked and refused as any other",
        "tests/integration/test_root_files.py::"
        "test_a_chdir_through_a_planted_link_does_not_carry_root_there",
    ),
    (
        "a log path hard-linked to a root file",
        "refused as root when the file has more than one link",
        "tests/integration/test_root_files.py::test_a_hard_link_to_a_root_file_is_refused",
    ),
    (
        "log hand-over to `--uid/--gid`",
        "`fchown` on the fd opened as above (never `chown(path)`)",
        "tests/integration/test_root_files.py::"
        "test_logs_are_handed_over_and_usr1_never_follows_a_planted_link",
    ),
    (
        "USR1 reopen (master and workers)",
        "the same open; a refused path keeps the old file and logs one line",
        "tests/integration/test_root_files.py::"
        "test_logs_are_handed_over_and_usr1_never_follows_a_planted_link; "
        "tests/integration/test_log_rotation.py",
    ),
    (
        "pidfile (`--pidfile`) write",
        "a new file beside it (`O_EXCL|O_NOFOLLOW`), renamed over the path "
        "(a link is replaced, not followed)",
        "tests/integration/test_root_files.py::"
        "test_the_pidfile_replaces_a_planted_link_and_is_removed_at_exit",
    ),
    (
        "pidfile removal at exit",
        "opened `O_NOFOLLOW`, removed only if it is a regular file that still holds our pid",
        "tests/integration/test_root_files.py::test_a_pidfile_taken_over_by_another_server_is_left_alone",
    ),
    (
        "unix socket bind and mode",
        "the directories on the way walked as for the logs; created by `bind()` through the "
        "walked directory (`/proc/self/fd/N/name`) with its final mode under the umask; no "
        "`chmod(path)`; `lstat` checks it is a socket",
        "tests/integration/test_root_files.py::test_the_default_socket_mode_is_0660",
    ),
    (
        "unix socket hand-over to `--uid/--gid`",
        "opened `O_PATH|O_NOFOLLOW`, checked to be the inode we bound, changed through that fd",
        "tests/server/test_safefiles.py::"
        "test_chown_socket_refuses_a_path_that_is_no_longer_our_socket",
    ),
    (
        "stale socket removal at start, socket removal at stop (vacuum)",
        "`lstat`: only a socket (at start) or the inode we bound (at stop) is unlinked; "
        "`unlink` never follows a link; the probe of a socket found at start connects through "
        "an `O_PATH|O_NOFOLLOW` fd of the file, checked to be a socket (a link swapped in after "
        "the `lstat` is not followed)",
        "tests/integration/test_supervisor_ops.py::"
        "test_uid_gid_socket_in_a_root_owned_dir_is_left_with_a_warning; "
        "tests/server/test_safefiles.py::"
        "test_the_stale_socket_probe_connects_to_the_file_itself_never_through_a_link",
    ),
    (
        "the working directory (`--chdir`), entered before anything is opened or bound",
        "`chdir` to the configured path made absolute (the operator's own setting; a HUP "
        "enters it again); relative socket, pidfile and log paths are taken from it and opened "
        "as above",
        "tests/integration/test_chdir.py::"
        "test_relative_socket_pidfile_and_log_live_in_the_chdir_and_are_removed",
    ),
]


def render(entries: list[dict[str, Any]], command: str, seconds: float, code: int) -> str:
    """The Markdown report from the JSON lines the tests wrote."""
    outcomes = {e["nodeid"]: e for e in entries if e["kind"] == "outcome"}
    figures = {e["nodeid"]: e for e in entries if e["kind"] == "figures"}
    passed = sum(1 for e in outcomes.values() if e["outcome"] == "passed")
    lines = [
        "# Reliability report",
        "",
        "Generated by `make reliability` (`scripts/reliability.py`); do not edit by hand.",
        "Each case is a test in `tests/reliability/`; CI runs the same tests at a smaller size.",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- command: `{command}`",
        f"- result: {passed} of {len(outcomes)} cases passed (pytest exit code {code}), "
        f"{seconds / 60:.1f} min",
    ]
    lines += [f"- {name}: {value}" for name, value in environment()]
    lines += ["", "| case | outcome | figures |", "|---|---|---|"]
    for nodeid, outcome in outcomes.items():
        fig = figures.get(nodeid, {})
        title = fig.get("case") or nodeid.split("::")[-1]
        values = "; ".join(f"{k}: {_fmt(v)}" for k, v in fig.get("figures", {}).items())
        lines.append(f"| {title} | {outcome['outcome']} | {values or '—'} |")
    lines += ["", "## Paths touched as root", ""]
    lines += [
        "The app user often owns the directories of the logs, the pidfile and the socket; "
        "nothing the master does as root follows a link planted there.",
        "",
        "| path | how | test |",
        "|---|---|---|",
    ]
    lines += [f"| {what} | {how} | `{test}` |" for what, how, test in ROOT_PATHS]
    lines += ["", "## Cases", ""]
    for nodeid, outcome in outcomes.items():
        fig = figures.get(nodeid, {})
        lines.append(f"### {fig.get('case') or nodeid}")
        lines.append("")
        lines.append(f"`{nodeid}`: **{outcome['outcome']}** in {fig.get('seconds', '?')} s.")
        if fig.get("claim"):
            lines += ["", fig["claim"]]
        if fig.get("figures"):
            lines.append("")
            lines += [f"- {k}: {_fmt(v)}" for k, v in fig["figures"].items()]
        if outcome.get("failure"):
            lines += ["", "Failure:", "", "```", outcome["failure"], "```"]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    """Run the long suite, then write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="pytest -k expression (a subset of the cases)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "RELIABILITY.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = Path(tmp) / "results.jsonl"
        env = dict(os.environ, RELIABILITY_SIZE="long", RELIABILITY_OUT=str(jsonl))
        argv = [sys.executable, "-m", "pytest", "-q", "tests/reliability"]
        if args.k:
            argv += ["-k", args.k]
        started = datetime.datetime.now().timestamp()
        code = subprocess.call(argv, cwd=ROOT, env=env)
        seconds = datetime.datetime.now().timestamp() - started
        entries = [json.loads(x) for x in jsonl.read_text().splitlines()] if jsonl.exists() else []
    command = "make reliability" + (f" RELIABILITY_ARGS='-k {args.k}'" if args.k else "")
    Path(args.out).write_text(render(entries, command, seconds, code) + "\n")
    print(f"wrote {args.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
