"""Two builds of fastrapi-compat side by side: ``python -m bench.ab OLD NEW``.

OLD and NEW are wheels (``.whl``) or folders holding an unpacked one. Each is put first on
``PYTHONPATH`` of its own server (``fastrapi-compat run`` of the benchmark's stock FastAPI app,
or of ``--app MODULE:ATTR`` such as ``bench.apps.fastapi_app:app_production``; native tier where
the engine can), pinned to one core with wrk on another; the two are measured in interleaved
rounds (the order swapped each round), every endpoint a warm-up then a measured run, and each
round's own ratio NEW/OLD is taken, seconds apart. The report gives per endpoint the medians
and the median of the paired ratios: what a change (a refactor, an optimisation) did to
throughput, with the machine's drift between rounds cancelled as far as it can be.

The same build can be compared with itself under two sets of ``run`` flags (``--old-flags`` /
``--new-flags``, e.g. ``--new-flags=--no-sched-batch``), and with the server on every allowed
core instead of one (``--server-cores all``: wrk keeps its own core and shares the other).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import statistics
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.endpoints import ENDPOINTS, Endpoint, endpoint_by_name
from bench.install import ensure_wrk
from bench.placement import allowed_cores, main_placement
from bench.process import ServerProcess, free_port
from bench.wrk import run_wrk

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 30.0
DEFAULT_APP = "bench.apps.fastapi_app:app"


@dataclass
class Series:
    """One endpoint's requests/s per round, for each side."""

    old: list[float] = field(default_factory=list)
    new: list[float] = field(default_factory=list)
    old_p99: list[float] = field(default_factory=list)
    new_p99: list[float] = field(default_factory=list)

    def ratios(self) -> list[float]:
        return [new / old for old, new in zip(self.old, self.new, strict=True) if old > 0]

    def line(self, name: str) -> str:
        ratios = self.ratios()
        return (
            f"{name:14} old {statistics.median_low(self.old):9,.0f}  new {statistics.median_low(self.new):9,.0f}"
            f"  new/old {statistics.median_low(ratios):.3f} (paired median; {min(ratios):.2f}-{max(ratios):.2f})"
            f"  p99 ms old {statistics.median_low(self.old_p99):.2f} new {statistics.median_low(self.new_p99):.2f}"
        )


def unpacked(build: str, into: Path) -> Path:
    """The folder to put on ``PYTHONPATH`` for ``build`` (a wheel is unpacked into ``into``)."""
    path = Path(build).resolve()
    if path.is_dir():
        if (path / "python" / "fastrapi_compat").is_dir():  # a clone built in place (make build-dev)
            return path / "python"
        if not (path / "fastrapi_compat").is_dir():
            raise SystemExit(f"Error: {path} holds no fastrapi_compat package")
        return path
    if path.suffix != ".whl" or not path.is_file():
        raise SystemExit(f"Error: {build} is neither a wheel nor a folder")
    with zipfile.ZipFile(path) as wheel:
        wheel.extractall(into)
    return into


def server_argv(site: Path, app: str = DEFAULT_APP) -> list[str]:
    """``fastrapi-compat run APP`` from the build in ``site`` (its cli module, wherever it lives)."""
    module = "fastrapi_compat.tools.cli" if (site / "fastrapi_compat" / "tools").is_dir() else "fastrapi_compat.cli"
    code = f"import sys; from {module} import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, "run", app, "--log-level", "warning"]


def measure(
    site: Path, flags: Sequence[str], endpoints: Sequence[Endpoint], args: argparse.Namespace, work: Path
) -> list[tuple[float, float]]:
    """Each endpoint's (requests/s, p99 ms) from one server of the build in ``site``."""
    cores = allowed_cores()
    placement = main_placement(cores[1], cores[0]) if len(cores) >= 2 else main_placement(None, None)
    if args.server_cores == "all":
        placement = dataclasses.replace(placement, server_cores=())
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "FASTRAPI_TIER": "auto"}
    env.pop("PYTHONSAFEPATH", None)
    # From a folder of its own: nothing of the clone's but bench/ is to be found by accident.
    with ServerProcess(
        [*server_argv(site, args.app), "--port", str(port), *flags],
        host="127.0.0.1",
        port=port,
        env=env,
        cwd=work,
        log_path=work / f"server-{port}.log",
        cores=placement.server_cores,
    ) as server:
        server.wait_ready(endpoints[0].target, STARTUP_TIMEOUT)
        url = f"http://127.0.0.1:{port}"
        results = []
        for endpoint in endpoints:
            for seconds in (args.warmup, args.duration):  # the warm-up's result is dropped
                run = run_wrk(
                    url,
                    endpoint,
                    connections=args.connections,
                    seconds=seconds,
                    cores=placement.wrk_cores,
                    script_dir=work,
                )
            results.append((run.requests_per_sec, run.p99_ms))
        return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the baseline: a wheel or a folder with one unpacked")
    parser.add_argument("new", help="the build to compare with it")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--endpoints", default=",".join(e.name for e in ENDPOINTS))
    parser.add_argument(
        "--app",
        default=DEFAULT_APP,
        metavar="MODULE:ATTR",
        help=f"the app both builds serve ({DEFAULT_APP}; e.g. bench.apps.fastapi_app:app_production), "
        "imported from the repository root",
    )
    parser.add_argument("--old-flags", default="", help="extra `run` flags of the old side's server")
    parser.add_argument("--new-flags", default="", help="extra `run` flags of the new side's server")
    parser.add_argument(
        "--server-cores",
        choices=("one", "all"),
        default="one",
        help="the server pinned to one core (default) or on every allowed core (wrk keeps its own)",
    )
    args = parser.parse_args(argv)
    module, sep, attr = args.app.partition(":")
    if not sep or not module or not attr:
        parser.error(f"--app takes MODULE:ATTR, not {args.app!r}")
    if args.rounds < 1 or args.duration <= 0 or args.warmup <= 0 or args.connections < 1:
        parser.error("--rounds, --warmup, --duration and --connections must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    endpoints = [endpoint_by_name(name.strip()) for name in args.endpoints.split(",") if name.strip()]
    problem = ensure_wrk()
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 1
    series = {endpoint.name: Series() for endpoint in endpoints}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        work = Path(tmp)
        sites = {side: unpacked(build, work / side) for side, build in (("old", args.old), ("new", args.new))}
        flags = {"old": shlex.split(args.old_flags), "new": shlex.split(args.new_flags)}
        for index in range(args.rounds):
            order = ("old", "new") if index % 2 == 0 else ("new", "old")
            for side in order:
                measured = measure(sites[side], flags[side], endpoints, args, work)
                for endpoint, (rate, p99) in zip(endpoints, measured, strict=True):
                    getattr(series[endpoint.name], side).append(rate)
                    getattr(series[endpoint.name], f"{side}_p99").append(p99)
            print(f"round {index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    for name, values in series.items():
        print(values.line(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
