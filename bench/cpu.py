"""CPU time per request: ``python -m bench.cpu``.

On a machine others use too, requests/s moves with whatever else runs; the CPU time the server
spends per request moves much less. Each server (FastAPI + uvicorn, and fastrapi-compat from the
installed build or from one or more builds given with ``--build NAME=WHEEL_OR_FOLDER``) serves
the same app of ``bench/apps/fastapi_app.py`` pinned to one core, wrk on another; per round and
endpoint of the production apps (``Origin`` on every request, as the production runs send it),
each server gets a warm-up then a measured wrk run, the servers in an order that rotates each
round. The server's CPU time (``utime + stime`` of its process tree, from ``/proc``) over the
measured run, divided by the requests wrk counted, is its CPU time per request; each round's
ratio uvicorn / server is taken (the runs are seconds apart), and the median over rounds reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.ab import unpacked
from bench.endpoints import production_endpoints
from bench.install import ensure_wrk
from bench.interference import _tree_ticks
from bench.placement import allowed_cores, main_placement
from bench.process import ServerProcess, free_port
from bench.wrk import run_wrk

ROOT = Path(__file__).resolve().parents[1]
TICK = 1.0 / os.sysconf("SC_CLK_TCK")
UVICORN = "uvicorn"


def server_argv(name: str, app: str, port: int) -> list[str]:
    target = f"bench.apps.fastapi_app:{app}"
    if name == UVICORN:
        return [
            sys.executable, "-m", "uvicorn", target, "--port", str(port), "--loop", "uvloop",
            "--http", "httptools", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    code = "import sys; from fastrapi_compat.tools.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, "run", target, "--port", str(port), "--log-level", "warning"]


def cpu_seconds(pid: int) -> float:
    return sum(_tree_ticks(pid).values()) * TICK


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default="app_instrumented", help="an app of bench.apps.fastapi_app")
    parser.add_argument("--build", action="append", default=[], metavar="NAME=WHEEL_OR_FOLDER",
                        help="a build of fastrapi-compat to measure (repeatable; default: the installed one)")  # fmt: skip
    parser.add_argument("--endpoints", default="/plain,/items/{id},POST /items,/deps")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or args.warmup <= 0 or args.connections < 1:
        parser.error("--rounds, --warmup, --duration and --connections must be positive")
    for build in args.build:
        if "=" not in build:
            parser.error(f"--build takes NAME=WHEEL_OR_FOLDER, not {build!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problem = ensure_wrk()
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 1
    endpoints = production_endpoints([name.strip() for name in args.endpoints.split(",") if name.strip()])
    cores = allowed_cores()
    placement = main_placement(cores[1], cores[0]) if len(cores) >= 2 else main_placement(None, None)
    # microseconds of CPU per request: per server, endpoint, round
    per_request: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
        work = Path(tmp)
        sites: dict[str, Path | None] = {UVICORN: None}
        for build in args.build:
            name, _, path = build.partition("=")
            sites[name] = unpacked(path, work / name)
        if not args.build:
            sites["fastrapi-compat"] = None
        names = list(sites)
        for index in range(args.rounds):
            order = names[index % len(names) :] + names[: index % len(names)]
            for name in order:
                site = sites[name]
                path = f"{site}{os.pathsep}{ROOT}" if site is not None else str(ROOT)
                env = {**os.environ, "PYTHONPATH": path, "FASTRAPI_TIER": "auto"}
                env.pop("PYTHONSAFEPATH", None)
                port = free_port()
                with ServerProcess(
                    server_argv(name, args.app, port), host="127.0.0.1", port=port, env=env, cwd=work,
                    log_path=work / f"server-{port}.log", cores=placement.server_cores,
                ) as server:  # fmt: skip
                    server.wait_ready(endpoints[0].target, 60.0)
                    url = f"http://127.0.0.1:{port}"
                    for endpoint in endpoints:
                        wrk = dict(connections=args.connections, cores=placement.wrk_cores, script_dir=work)
                        run_wrk(url, endpoint, seconds=args.warmup, **wrk)
                        before = cpu_seconds(server.pid)
                        result = run_wrk(url, endpoint, seconds=args.duration, **wrk)
                        used = cpu_seconds(server.pid) - before
                        if result.requests and not result.non_2xx and not result.socket_errors:
                            value = used / result.requests * 1e6
                            per_request.setdefault(name, {}).setdefault(endpoint.name, []).append(value)
            print(f"round {index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(
        f"CPU time per request (µs, median of {args.rounds} rounds), app {args.app}; ratio = uvicorn / server, paired"
    )
    for endpoint in endpoints:
        base = per_request.get(UVICORN, {}).get(endpoint.name, [])
        for name in names:
            values = per_request.get(name, {}).get(endpoint.name, [])
            if not values:
                print(f"{endpoint.name:12} {name:18} no clean run")
                continue
            line = f"{endpoint.name:12} {name:18} {statistics.median(values):8.1f} µs"
            ratios = [b / v for b, v in zip(base, values, strict=False) if v > 0]
            if name != UVICORN and ratios:
                line += f"  ×{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
