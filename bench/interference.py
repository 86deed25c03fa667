"""How much of the pinned cores went to *other* processes during a run; the server's, each
of its workers' and wrk's own CPU use.

The machine may be shared (tests of other work, builds): a run is only meaningful if the
server's core served the server and the load generator's core ran wrk. For each run this
reads the cores' busy time from ``/proc/stat`` and subtracts what the server's process tree
(``/proc/PID/stat``) and this process's waited-for children (wrk) used; the rest is foreign.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.process import process_tree, workers

_TICK = os.sysconf("SC_CLK_TCK")
DISTURBED_PCT = 10.0  # share of a pinned core used by others that makes a run suspect


def _core_ticks(core: int) -> tuple[int, int]:
    """(busy, total) jiffies of one core."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]  # idle + iowait
            total = sum(values[:8])  # without guest, already in user
            return total - idle, total
    return 0, 0


def _cores_ticks(cores: Sequence[int]) -> tuple[int, int]:
    """(busy, total) jiffies of ``cores`` together."""
    ticks = [_core_ticks(c) for c in cores]
    return sum(busy for busy, _ in ticks), sum(total for _, total in ticks)


def _tree_ticks(pid: int) -> dict[int, int]:
    """CPU jiffies (user + system) of ``pid`` and each of its descendants."""
    ticks = {}
    for p in process_tree(pid):
        try:
            text = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        ticks[p] = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Interference:
    server_core_foreign_pct: float | None
    wrk_core_foreign_pct: float | None
    server_cpu_pct: float | None  # the server's own CPU use, % of one core
    wrk_cpu_pct: float | None = None  # wrk's, % of one core
    # each of the server's worker processes (if it is a supervisor), % of one core
    worker_cpu_pct: tuple[float, ...] = ()


class CoreMonitor:
    """Start before a run, :meth:`stop` after it. With several cores, the foreign share is
    of those cores together; when the server and wrk share their cores, both are subtracted
    from the same cores (and both shares are that one)."""

    def __init__(self, server_pid: int, server_cores: Sequence[int], wrk_cores: Sequence[int]):
        self.pid = server_pid
        self.server_cores, self.wrk_cores = server_cores, wrk_cores
        self._server = _cores_ticks(server_cores)
        self._wrk = _cores_ticks(wrk_cores)
        self._tree = _tree_ticks(server_pid)
        self._children = _children_seconds()
        self._started = time.monotonic()

    def stop(self) -> Interference:
        now = _tree_ticks(self.pid)
        per_process = {p: t - self._tree.get(p, 0) for p, t in now.items()}
        tree_ticks = sum(per_process.values())
        wrk_ticks = (_children_seconds() - self._children) * _TICK
        wall_ticks = (time.monotonic() - self._started) * _TICK
        shared = set(self.server_cores) == set(self.wrk_cores)
        server_foreign = _foreign_pct(self.server_cores, self._server, tree_ticks + (wrk_ticks if shared else 0))
        wrk_foreign = server_foreign if shared else _foreign_pct(self.wrk_cores, self._wrk, wrk_ticks)
        split = tuple(100.0 * per_process.get(p, 0) / wall_ticks
                      for p in workers(self.pid))  # fmt: skip
        return Interference(
            server_foreign,
            wrk_foreign,
            server_cpu_pct=100.0 * tree_ticks / wall_ticks,
            wrk_cpu_pct=100.0 * wrk_ticks / wall_ticks,
            worker_cpu_pct=split,
        )


def _foreign_pct(cores: Sequence[int], before: tuple[int, int], own_ticks: float) -> float | None:
    """Share of ``cores`` (in %) busy with other processes than ours since ``before``."""
    if not cores:
        return None
    busy, total = _cores_ticks(cores)
    elapsed = total - before[1]
    if elapsed <= 0:
        return None
    return max(0.0, 100.0 * (busy - before[0] - own_ticks) / elapsed)


def busy_pct(cores: list[int], window_s: float = 0.5) -> float:
    """Highest busy share among ``cores`` over ``window_s`` (every process counted)."""
    before = {c: _core_ticks(c) for c in cores}
    time.sleep(window_s)
    worst = 0.0
    for c in cores:
        busy, total = _core_ticks(c)
        if total > before[c][1]:
            worst = max(worst, 100.0 * (busy - before[c][0]) / (total - before[c][1]))
    return worst


def wait_until_quiet(
    cores: list[int],
    max_wait_s: float,
    threshold: float = DISTURBED_PCT,
    quiet_for_s: float = 3.0,
) -> float:
    """Wait (at most ``max_wait_s``) until no core in ``cores`` has been busier than
    ``threshold`` percent for ``quiet_for_s`` in a row (a gap between two tests of someone
    else's is not enough); return the seconds waited. Call it while nothing of ours runs."""
    started = time.monotonic()
    quiet_since: float | None = None
    while time.monotonic() - started < max_wait_s:
        if busy_pct(cores) < threshold:
            if quiet_since is None:
                quiet_since = time.monotonic()
            if time.monotonic() - quiet_since >= quiet_for_s:
                break
        else:
            quiet_since = None
    return time.monotonic() - started
