"""The cgroup's OOM kill count (:mod:`uwsgiapp.supervisor.oomkills`), over cgroup trees laid
out as cgroup v2 and v1 lay them out, in a temporary directory."""

from __future__ import annotations

from pathlib import Path

from uwsgiapp.supervisor.oomkills import (
    OomKills,
    cgroup_dirs,
    limit_text,
    parse_oom_kills,
    rss_limit_problem,
)

V2_EVENTS = "low 0\nhigh 0\nmax 12\noom 3\noom_kill {n}\noom_group_kill 0\n"
V1_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill {n}\n"


def _tree(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (tmp_path / "proc_cgroup").write_text(proc)
    return tmp_path / "proc_cgroup", root


def test_the_count_and_the_limit_lines() -> None:
    assert parse_oom_kills(V2_EVENTS.format(n=7)) == 7
    assert parse_oom_kills(V1_CONTROL.format(n=0)) == 0
    assert parse_oom_kills("oom 2\n") is None
    assert limit_text("157286400\n") == "150 MB"
    assert limit_text("max\n") == ""
    assert limit_text("9223372036854771712\n") == ""  # v1's "no limit"


def test_v2_a_service_path_then_the_top_of_a_namespaced_container(tmp_path: Path) -> None:
    assert cgroup_dirs("0::/system.slice/app.service\n", str(tmp_path)) == [
        (str(tmp_path / "system.slice/app.service"), "memory.events", "memory.max"),
        (str(tmp_path), "memory.events", "memory.max"),
    ]


def test_a_rise_is_said_once_with_the_limit_v2(tmp_path: Path) -> None:
    proc, root = _tree(
        tmp_path,
        "0::/\n",
        {"memory.events": V2_EVENTS.format(n=2), "memory.max": "157286400\n"},
    )
    oom = OomKills(str(proc), str(root))
    assert oom.rose() is None  # the count at start: earlier kills are not this worker's
    (root / "memory.events").write_text(V2_EVENTS.format(n=3))
    assert oom.rose() == (
        "the kernel's OOM killer: its memory cgroup (limit 150 MB) counts 1 OOM kill more"
    )
    assert oom.rose() is None


def test_v1_docker_path_absent_the_mounts_top_is_read(tmp_path: Path) -> None:
    # cgroup v1 in a container: /proc/self/cgroup names the host's path, which the container's
    # mount does not have; its own cgroup is the mount's top.
    proc, root = _tree(
        tmp_path,
        "4:memory:/docker/0123abc\n0::/\n",
        {
            "memory/memory.oom_control": V1_CONTROL.format(n=0),
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
    oom = OomKills(str(proc), str(root))
    (root / "memory/memory.oom_control").write_text(V1_CONTROL.format(n=2))
    assert oom.rose() == "the kernel's OOM killer: its memory cgroup counts 2 OOM kills more"


def test_no_cgroup_says_nothing(tmp_path: Path) -> None:
    assert OomKills(str(tmp_path / "none"), str(tmp_path)).rose() is None
    proc, root = _tree(tmp_path, "0::/\n", {})
    assert OomKills(str(proc), str(root)).rose() is None


def test_reload_on_rss_past_the_memory_limit_is_said(tmp_path: Path) -> None:
    # A 512 MB container with 4 workers and --reload-on-rss 300: the OOM killer's SIGKILL
    # (requests cut) came long before any graceful recycle, and nothing said why.
    (tmp_path / "cg").mkdir()
    (tmp_path / "cg" / "memory.events").write_text("oom_kill 0\n")
    (tmp_path / "cg" / "memory.max").write_text(f"{512 * 1024 * 1024}\n")
    (tmp_path / "proc").write_text("0::/\n")
    limit = OomKills(str(tmp_path / "proc"), str(tmp_path / "cg")).limit()
    assert limit == 512
    said = rss_limit_problem(300, 4, limit)
    assert said is not None and said.startswith(
        "--reload-on-rss 300 MB for each of 4 workers is more than the memory cgroup's limit, "
        "512 MB: the OOM killer may kill a worker"
    )
    assert "under 128 MB" in said
    assert rss_limit_problem(128, 4, limit) is None  # fits
    assert rss_limit_problem(0, 4, limit) is None  # off
    (tmp_path / "cg" / "memory.max").write_text("max\n")
    assert OomKills(str(tmp_path / "proc"), str(tmp_path / "cg")).limit() is None
    assert OomKills(str(tmp_path / "none"), str(tmp_path / "cg")).limit() is None
