"""Which cores the servers and wrk run on: the main runs (server on one core, wrk on another),
and the workers run, decided from the cores this process may use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

# One definition, shared with `fastrapi-compat bench` (which places its servers the same way).
from fastrapi_compat.tools.bench_load import allowed_cores

__all__ = ["WORKERS", "Placement", "allowed_cores", "main_placement", "workers_meta", "workers_placement"]

WORKERS = 2  # the workers run: 1 worker against this many


@dataclass(frozen=True)
class Placement:
    """``taskset`` cores of the server and of wrk (empty: not pinned) and wrk's threads."""

    server_cores: tuple[int, ...] = ()
    wrk_cores: tuple[int, ...] = ()
    wrk_threads: int = 1

    @property
    def shared(self) -> bool:
        """Server and wrk compete for the same cores."""
        return not self.server_cores or set(self.server_cores) == set(self.wrk_cores)

    @property
    def cores(self) -> list[int]:
        """Every pinned core (for waiting until they are quiet)."""
        return sorted({*self.server_cores, *self.wrk_cores})

    def to_json(self) -> dict[str, Any]:
        return {
            "server_cores": list(self.server_cores),
            "wrk_cores": list(self.wrk_cores),
            "wrk_threads": self.wrk_threads,
            "shared": self.shared,
        }


def main_placement(server_core: int | None, wrk_core: int | None) -> Placement:
    """The main runs': the server on ``server_core``, wrk (one thread) on ``wrk_core``."""
    return Placement(
        server_cores=() if server_core is None else (server_core,),
        wrk_cores=() if wrk_core is None else (wrk_core,),
    )


def workers_placement(allowed: list[int], pin: bool) -> Placement:
    """With a core for wrk and one per worker: wrk (one thread: a second one on the same core
    only adds switches) on the first core, every server on the next :data:`WORKERS` — the
    1-worker server on the same cores as the 2-worker one, so that the ratio is what a second
    worker adds on the same machine. Otherwise (or with ``--no-pin``) servers and wrk share
    every allowed core, and wrk gets two threads so that it is not held to one core while the
    workers have two."""
    if pin and len(allowed) >= WORKERS + 1:
        return Placement(tuple(allowed[1 : WORKERS + 1]), (allowed[0],), wrk_threads=1)
    cores = tuple(allowed)
    return Placement(cores, cores, wrk_threads=min(WORKERS, len(cores)))


def workers_meta(allowed: list[int], pin: bool, placement: Placement) -> dict[str, Any]:
    """How the workers run was placed, and why (for ``results.json`` and the report)."""
    if not pin:
        why = "--no-pin"
    elif placement.shared:
        why = f"{len(allowed)} usable core(s), fewer than the {WORKERS + 1} needed for one per worker and one for wrk"
    else:
        why = f"{len(allowed)} usable cores: one per worker and one for wrk"
    return {
        "workers": WORKERS,
        "allowed_cores": allowed,
        "cpu_count": os.cpu_count(),
        **placement.to_json(),
        "harness_cores": allowed_cores(),  # this process, once pinned for the main runs
        "why": why,
    }
