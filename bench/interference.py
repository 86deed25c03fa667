"""How much of the two pinned cores went to *other* processes during a run.

The machine may be shared (tests of other work, builds): a run is only meaningful if the
server's core served the server and the load generator's core ran wrk. For each run this
reads the cores' busy time from ``/proc/stat`` and subtracts what the server's process tree
(``/proc/PID/stat``) and this process's waited-for children (wrk) used; the rest is foreign.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from bench.process import process_tree

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


def _tree_ticks(pid: int) -> int:
    ticks = 0
    for p in process_tree(pid):
        try:
            text = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Interference:
    server_core_foreign_pct: float | None
    wrk_core_foreign_pct: float | None
    server_cpu_pct: float | None  # the server's own CPU use, % of one core


class CoreMonitor:
    """Start before a run, :meth:`stop` after it."""

    def __init__(self, server_pid: int, server_core: int | None, wrk_core: int | None):
        self.pid, self.server_core, self.wrk_core = server_pid, server_core, wrk_core
        self._server = _core_ticks(server_core) if server_core is not None else None
        self._wrk = _core_ticks(wrk_core) if wrk_core is not None else None
        self._tree = _tree_ticks(server_pid)
        self._children = _children_seconds()

    def stop(self) -> Interference:
        tree_ticks = _tree_ticks(self.pid) - self._tree
        server_foreign = wrk_foreign = server_cpu = None
        if self.server_core is not None and self._server is not None:
            busy, total = _core_ticks(self.server_core)
            elapsed = total - self._server[1]
            if elapsed > 0:
                foreign = busy - self._server[0] - tree_ticks
                server_foreign = max(0.0, 100.0 * foreign / elapsed)
                server_cpu = 100.0 * tree_ticks / elapsed
        if self.wrk_core is not None and self._wrk is not None:
            busy, total = _core_ticks(self.wrk_core)
            elapsed = total - self._wrk[1]
            if elapsed > 0:
                own = (_children_seconds() - self._children) * _TICK
                foreign = busy - self._wrk[0] - own
                wrk_foreign = max(0.0, 100.0 * foreign / elapsed)
        return Interference(server_foreign, wrk_foreign, server_cpu)


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
