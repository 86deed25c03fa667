"""py-spy sampling of a server while wrk loads it, and a plain-text summary of where the
time goes (self and inclusive share per frame, and per layer: engine, FastAPI, Starlette,
each instrument, the app's own middleware).

``python -m bench --py-spy`` records every measured run; ``python -m bench.profile`` profiles
one server on one app and endpoint (e.g. the production app's ``/plain`` on the native tier):

    python -m bench.profile --app app_production --endpoint /plain [--server fastrapi-compat-native]
                            [--seconds 10] [--connections 64] [--native] [--output DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.install import py_spy_path
from bench.process import pinned


class PySpyRecording:
    """``py-spy record`` of ``pid`` (and its children) for ``seconds``, raw collapsed stacks."""

    def __init__(self, pid: int, output: Path, seconds: float, cores: Sequence[int], native: bool):
        self.output = output
        argv = [
            py_spy_path(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
            "--rate", "250", "--format", "raw", "--output", str(output), "--subprocesses",
        ]  # fmt: skip
        # --native (Rust/C frames too) pauses the process per sample; py-spy refuses it with
        # --nonblocking.
        argv.append("--native" if native else "--nonblocking")
        self.proc = subprocess.Popen(
            pinned(argv, cores),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.timeout = seconds + 60

    def finish(self) -> str | None:
        """Wait for py-spy; None if it wrote its file, else what it said."""
        try:
            out, _ = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        if self.proc.returncode == 0 and self.output.exists():
            return None
        lines = (out or "").strip().splitlines()
        return lines[-1] if lines else f"py-spy exited with {self.proc.returncode}"


def _frame_name(frame: str) -> str:
    # raw py-spy frames look like "handle (starlette/routing.py:123)"; drop the line number
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    short = "/".join(path.split("/")[-2:]) if path else ""
    return f"{name} ({short})" if short else name


# (substring of a frame's file, component) — first match wins; self time is grouped by these.
_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("fastrapi_compat/_native", "fastrapi-compat engine (Rust, on the Python thread)"),
    ("sentry_sdk/", "sentry-sdk"),
    ("opentelemetry/", "opentelemetry"),
    ("prometheus", "prometheus (client and instrumentator)"),
    ("bench/apps/", "the app's own code and middleware"),
    ("starlette/middleware/base.py", "starlette BaseHTTPMiddleware"),
    ("fastrapi_compat/", "fastrapi-compat (Python)"),
    ("fastrapi", "FastrAPI"),
    ("granian", "granian"),
    ("uvicorn/", "uvicorn"),
    ("httptools", "uvicorn"),
    ("fastapi/", "fastapi"),
    ("starlette/", "starlette"),
    ("pydantic", "pydantic"),
    ("anyio/", "anyio (thread pool)"),
    ("json", "json"),
    ("asyncio", "asyncio / uvloop"),
    ("loop.c", "asyncio / uvloop"),
    ("loop-watcher.c", "asyncio / uvloop"),
    ("core.c", "asyncio / uvloop"),
    ("uv", "asyncio / uvloop"),
    ("libc.so", "libc (syscalls)"),
)


def component(frame: str) -> str:
    """Which layer a raw py-spy frame ``name (file:line)`` belongs to."""
    _, _, where = frame.partition(" (")
    for needle, name in _COMPONENTS:
        if needle in where:
            return name
    return "interpreter / other"


def summarize(collapsed: Path, top: int = 25) -> str:
    """Top frames by self samples and by inclusive samples, as percentages of all samples."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        raw = stack.split(";")
        frames = [_frame_name(f) for f in raw]
        total += count
        self_counts[frames[-1]] += count
        layers[component(raw[-1])] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return "(no samples)\n"
    lines = [f"{total} samples", "", "self %   component"]
    lines += [f"{100 * n / total:6.1f}   {name}" for name, n in layers.most_common()]
    lines += ["", "self %   frame"]
    lines += [f"{100 * n / total:6.1f}   {name}" for name, n in self_counts.most_common(top)]
    lines += ["", "incl %   frame"]
    lines += [f"{100 * n / total:6.1f}   {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    from bench.endpoints import ENDPOINTS
    from bench.servers import all_servers

    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--app", default="app_production", help="an app of bench.apps.fastapi_app (app_production)")
    parser.add_argument("--server", default="fastrapi-compat-native",
                        choices=[s.key for s in all_servers(native_tier=True)])  # fmt: skip
    parser.add_argument("--endpoint", default="/plain", choices=[e.name for e in ENDPOINTS])
    parser.add_argument("--seconds", type=float, default=10.0, help="recorded under load (10)")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--native", action="store_true", help="Rust and C frames too (pauses the server per sample)")
    parser.add_argument("--output", type=Path, default=Path("bench/results/profiles"))
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.connections < 1:
        parser.error("--seconds and --connections must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Profile one server under load; print the summary and where the raw stacks are."""
    from bench import install
    from bench.endpoints import PRODUCTION_ENDPOINTS, endpoint_by_name
    from bench.environment import ROOT, locate_engine, server_env
    from bench.placement import allowed_cores, main_placement
    from bench.process import ServerFailed, ServerProcess, free_port
    from bench.servers import AppVariant, all_servers, server_by_key
    from bench.wrk import WrkError, run_wrk

    args = _parse(argv)
    for problem in (install.ensure_wrk(), install.ensure_py_spy()):
        if problem is not None:
            print(f"Error: {problem}", file=sys.stderr)
            return 1
    spec = server_by_key(all_servers(native_tier=True), args.server)
    production = args.app in ("app_production", "app_instrumented")
    app = AppVariant(args.app, args.app, variant="production" if production else "")
    endpoint = endpoint_by_name(args.endpoint)
    if production:
        endpoint = next((e for e in PRODUCTION_ENDPOINTS if e.name == endpoint.name), endpoint)
    cores = allowed_cores()
    placement = main_placement(cores[1], cores[0]) if len(cores) >= 2 else main_placement(None, None)
    args.output.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "_" for c in endpoint.name).strip("_")
    output = (args.output / f"{spec.slug}-{args.app}-{slug}.txt").resolve()
    host, port = "127.0.0.1", free_port("127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        env = server_env(locate_engine()[0])
        env.update(spec.env)
        try:
            with ServerProcess(spec.argv(host, port, app), host=host, port=port, env=env, cwd=ROOT,
                               log_path=Path(tmp) / "server.log", cores=placement.server_cores) as server:  # fmt: skip
                server.wait_ready(endpoint.target, 120)
                load = {"connections": args.connections, "cores": placement.wrk_cores, "script_dir": Path(tmp)}
                url = f"http://{host}:{port}"
                if args.warmup:
                    run_wrk(url, endpoint, seconds=args.warmup, **load)
                recording = PySpyRecording(server.pid, output, args.seconds, placement.wrk_cores, args.native)
                result = run_wrk(url, endpoint, seconds=args.seconds, **load)
                problem = recording.finish()
        except (ServerFailed, WrkError) as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
    if problem is not None:
        print(f"Error: py-spy: {problem}", file=sys.stderr)
        return 1
    summary = summarize(output)
    output.with_suffix(".summary.txt").write_text(summary)
    print(f"{spec.label} on {args.app}, {endpoint.method} {endpoint.target}: {result.requests_per_sec:,.0f} req/s "
          f"under py-spy (disturbed), {args.connections} connections")  # fmt: skip
    print(summary)
    print(f"raw stacks: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
