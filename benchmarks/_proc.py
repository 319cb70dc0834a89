"""What a benchmark reads about another process from /proc (Linux): its resident memory and CPU time."""

from __future__ import annotations

import os


def rss_mb(pid: int) -> float | None:
    """The resident set size of process ``pid`` in MB (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tree_rss_mb(pid: int) -> float | None:
    """The resident set size of process ``pid`` and all its descendants in MB (None when it is gone).

    A parser that runs its input in a child process (the ink runtime) spends its memory there.
    """
    total = rss_mb(pid)
    if total is None:
        return None
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return total
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                children = [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
        for child in children:
            total += tree_rss_mb(child) or 0.0
    return total


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
