"""Whether a worker's SIGKILL was the kernel's OOM killer: its cgroup counts OOM kills.

In a container (or a systemd service) with a memory limit, the kernel kills the process that
went over it, a worker, with SIGKILL, and says so only in the kernel log, which a container
cannot read. The cgroup's own count tells it for sure: ``oom_kill`` in ``memory.events``
(cgroup v2) or in ``memory.oom_control`` (v1). The master reads it at start and again when a
worker dies by a SIGKILL; a count that rose names the OOM killer and the limit.
Only read, never written; absent (no cgroup, or another layout), nothing is said.
"""

from __future__ import annotations

import os

#: Where the cgroup file systems are mounted.
CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_dirs(proc_cgroup: str, root: str = CGROUP_ROOT) -> list[tuple[str, str, str]]:
    """The memory cgroup's (directory, events file, limit file) to try, from the text of
    ``/proc/self/cgroup``: this process's own path first, then the mount's top (in a container
    with its own cgroup namespace, or cgroup v1's docker path, the top is its cgroup)."""
    found: list[tuple[str, str, str]] = []
    for line in proc_cgroup.splitlines():
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        path = path.strip().lstrip("/")
        if controllers == "":  # v2: one unified hierarchy
            for base in (os.path.join(root, path), root):
                found.append((base, "memory.events", "memory.max"))
        elif "memory" in controllers.split(","):
            for base in (os.path.join(root, "memory", path), os.path.join(root, "memory")):
                found.append((base, "memory.oom_control", "memory.limit_in_bytes"))
    return list(dict.fromkeys(found))


def parse_oom_kills(text: str) -> int | None:
    """The ``oom_kill N`` line of a memory.events / memory.oom_control text."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def limit_mb(raw: str) -> float | None:
    """A limit file's value in MB: 'max' and v1's huge 'no limit' → None."""
    raw = raw.strip()
    if not raw.isdigit() or int(raw) >= 1 << 60:
        return None
    return int(raw) / (1024 * 1024)


def limit_text(raw: str) -> str:
    """A limit file's value for a log line: 'max' and v1's huge 'no limit' → ''."""
    mb = limit_mb(raw)
    return "" if mb is None else f"{mb:.0f} MB"


def rss_limit_problem(reload_on_rss_mb: int, workers: int, limit: float | None) -> str | None:
    """What to say when ``--reload-on-rss`` lets the workers together pass the memory
    cgroup's ``limit`` (MB): the OOM killer comes first (a SIGKILL mid-request), not the
    graceful recycle; None if it fits or there is no limit."""
    if not reload_on_rss_mb or limit is None or reload_on_rss_mb * workers <= limit:
        return None
    return (
        f"--reload-on-rss {reload_on_rss_mb} MB for each of {workers} worker"
        f"{'' if workers == 1 else 's'} is more than the memory cgroup's limit, {limit:.0f} MB: "
        f"the OOM killer may kill a worker (its requests cut) before it is recycled; "
        f"under {limit / workers:.0f} MB (the limit over --workers; the master and the page cache "
        "take their share of it too) recycles first"
    )


class OomKills:
    """The cgroup's OOM kill count, read at start and on each unexplained SIGKILL."""

    def __init__(self, proc_cgroup: str = "/proc/self/cgroup", root: str = CGROUP_ROOT) -> None:
        self._files: tuple[str, str] | None = None
        try:
            candidates = cgroup_dirs(_read_text(proc_cgroup), root)
        except OSError:
            candidates = []
        for base, events, limit in candidates:
            count = _read_count(os.path.join(base, events))
            if count is not None:
                self._files = (os.path.join(base, events), os.path.join(base, limit))
                self.count = count
                return
        self.count = 0

    def limit(self) -> float | None:
        """The memory cgroup's limit in MB, or None (no cgroup found, or no limit)."""
        try:
            return None if self._files is None else limit_mb(_read_text(self._files[1]))
        except OSError:
            return None

    def rose(self) -> str | None:
        """None if the count did not rise since the last look; else what to say of it (the
        kills counted, and the memory limit where one is set)."""
        if self._files is None:
            return None
        count = _read_count(self._files[0])
        if count is None or count <= self.count:
            return None
        more, self.count = count - self.count, count
        try:
            limit = limit_text(_read_text(self._files[1]))
        except OSError:
            limit = ""
        return (
            f"the kernel's OOM killer: its memory cgroup{f' (limit {limit})' if limit else ''}"
            f" counts {more} OOM kill{'' if more == 1 else 's'} more"
        )


def _read_count(path: str) -> int | None:
    try:
        return parse_oom_kills(_read_text(path))
    except OSError:
        return None


def _read_text(path: str) -> str:
    # Bytes, decoded as UTF-8: after --uid the stdlib may be out of the user's reach (a Python
    # under /root), and a text file's "ascii" codec would be a first import then (LookupError).
    with open(path, "rb") as fh:
        return fh.read(65536).decode("utf-8", "replace")
