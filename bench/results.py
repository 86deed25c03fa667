"""What one benchmark run found, as plain data (written to ``results.json``, read back by
the report and the plot)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Measurement:
    """One wrk run: a server, an endpoint, a connection count, an app (its size, whether it has
    the CORS + GZip middleware, or the production runs' ``variant``), and in the workers run the
    server's worker count."""

    server: str
    endpoint: str
    connections: int
    extra_routes: int
    middleware: bool = False
    workers: int | None = None  # the workers run: 1 or 2 workers; None: the other runs
    variant: str = ""  # the production runs' app ("production", "instrumented"); "": the others
    requests_per_sec: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int | None = None
    non_2xx: int = 0
    socket_errors: int = 0
    check: str = ""  # verification outcome of this endpoint (identical / json-equal / ...)
    skipped: str | None = None  # why it was not measured
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int, int, bool, int | None, str]:
        """What :meth:`BenchResults.find` looks it up by."""
        return (self.server, self.endpoint, self.connections, self.extra_routes,
                self.middleware, self.workers, self.variant)  # fmt: skip


@dataclass
class ServerRun:
    """One server slot (in the workers run: one slot with one worker count): how it was
    started, what it cost in memory, how it stopped."""

    key: str
    label: str
    command: str
    note: str = ""
    skipped: str | None = None
    startup_s: float | None = None
    idle_rss_kib: int | None = None
    loaded_rss_kib: int | None = None
    peak_rss_kib: int | None = None
    scaled_startup_s: float | None = None
    scaled_idle_rss_kib: int | None = None
    # every answer compared with uvicorn's; those on another app than the default say which
    verdicts: list[dict[str, str]] = field(default_factory=list)
    # app label -> why this server was not measured on that app (default app: ``skipped``)
    not_run: dict[str, str] = field(default_factory=dict)
    workers: int | None = None  # the workers run's slots
    stopped_in_s: float | None = None  # from SIGINT until it exited (workers run)
    # its processes still running after it exited (killed then; workers run)
    left_running: list[int] = field(default_factory=list)


@dataclass
class BenchResults:
    meta: dict[str, Any] = field(default_factory=dict)
    servers: list[ServerRun] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    workers: list[ServerRun] = field(default_factory=list)  # the workers run's slots

    def server(self, key: str) -> ServerRun | None:
        return next((s for s in self.servers if s.key == key), None)

    def find(
        self,
        server: str,
        endpoint: str,
        connections: int,
        extra_routes: int,
        middleware: bool = False,
        workers: int | None = None,
        variant: str = "",
    ) -> Measurement | None:
        key = (server, endpoint, connections, extra_routes, middleware, workers, variant)
        return next((m for m in self.measurements if m.key == key), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "servers": [asdict(s) for s in self.servers],
            "measurements": [asdict(m) for m in self.measurements],
            "workers": [asdict(s) for s in self.workers],
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> BenchResults:
        data = json.loads(path.read_text())
        return cls(
            meta=data["meta"],
            servers=[ServerRun(**s) for s in data["servers"]],
            measurements=[Measurement(**m) for m in data["measurements"]],
            workers=[ServerRun(**s) for s in data.get("workers", [])],
        )
