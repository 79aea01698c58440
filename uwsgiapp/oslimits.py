"""The operating system's limits as messages name them: one wording wherever a limit is hit
(the master's fork, a worker's request threads)."""

from __future__ import annotations

__all__ = ["THREAD_LIMIT"]

#: What most often refuses a new process or thread (fork's EAGAIN; "can't start new thread").
THREAD_LIMIT = (
    "the process limit: the user's RLIMIT_NPROC (ulimit -u, systemd's LimitNPROC=) or the "
    "pids cgroup's pids.max (systemd's TasksMax=, docker run --pids-limit); threads count too"
)
