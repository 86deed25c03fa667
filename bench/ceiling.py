"""The in-run ceiling: a bare hyper server (``bench/hyper_ceiling``, built from the crate's own
workspace with the same locked hyper and tokio) answering every request with the bytes the
engine answers ``GET /plain`` with. Built here with cargo; measured on ``/plain`` like the
servers; the report puts every server's ``/plain`` and the Rust-only preflight as a share of it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from bench.endpoints import PLAIN, PREFLIGHT
from bench.environment import ROOT
from bench.results import BenchResults, Measurement
from bench.servers import DEFAULT_APP, AppVariant, ServerSpec

HYPER = "hyper-ceiling"
PACKAGE = "hyper-ceiling"


def build() -> tuple[Path | None, str]:
    """``cargo build --release -p hyper-ceiling``: (the binary, "") or (None, why not)."""
    if not shutil.which("cargo"):
        return None, "cargo not found"
    argv = ["cargo", "build", "--release", "-p", PACKAGE, "--message-format=json-render-diagnostics"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return None, f"cargo build -p {PACKAGE} failed: {lines[-1] if lines else done.returncode}"
    for line in done.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            if message.get("target", {}).get("name") == PACKAGE:
                return Path(message["executable"]), ""
    return None, f"cargo built {PACKAGE} but named no executable"


def spec(binary: Path) -> ServerSpec:
    """The bare hyper server as a bench slot (one thread: a current-thread tokio runtime)."""

    def command(host: str, port: int, app: AppVariant, workers: int | None) -> list[str]:
        return [str(binary), "--host", host, "--port", str(port)]

    return ServerSpec(HYPER, "bare hyper (ceiling)", command, note="bench/hyper_ceiling: /plain's bytes, no Python")


def ceiling_lines(results: BenchResults, labels: dict[str, str]) -> list[str]:
    """Each server's ``/plain`` and the native tier's Rust-only preflight, req/s as a share of
    the bare hyper server's in the same run (``labels``: server key -> table label)."""
    conns = results.meta["connections"][0]
    routes = results.meta["default_extra_routes"]
    hyper = results.find(HYPER, PLAIN.name, conns, routes)
    if hyper is None or not hyper.requests_per_sec:
        reason = (results.meta.get("ceiling") or {}).get("not_run")
        return ["", "## Ceiling: a bare hyper server", "", f"Not run: {reason}."] if reason else []
    rows: list[tuple[str, Measurement]] = [("bare hyper server (`bench/hyper_ceiling`)", hyper)]
    for key, label in labels.items():
        m = results.find(key, PLAIN.name, conns, routes)
        if m is not None and m.requests_per_sec:
            rows.append((f"{label}, `/plain`", m))
    preflight = results.find("fastrapi-compat-native", PREFLIGHT.name, conns, routes, middleware=True)
    floor = None  # the Rust-only answer's p99, what each row's p99 is divided by
    if preflight is not None and preflight.requests_per_sec:
        rows.append(("fastrapi-compat (native tier), CORS preflight: Rust only, no Python", preflight))
        floor = preflight.p99_ms
    lines = [
        "",
        f"## Ceiling: a bare hyper server ({conns} connections)",
        "",
        "The same hyper and tokio as the engine, one thread, answering every request with the "
        "engine's `/plain` bytes and doing nothing else: what HTTP/1.1 over loopback TCP costs "
        "on this machine. Each row's req/s as a share of it (measured in this run, after the "
        "default app's runs). *p99 / Rust only*: each row's p99 over the p99 of the native "
        "tier's Rust-only answer (the preflight) in the same run.",
        "",
        "| server | req/s | share of bare hyper | p99 ms | p99 / Rust only |",
        "|---|--:|--:|--:|--:|",
    ]
    top = hyper.requests_per_sec
    for name, m in rows:
        rps = m.requests_per_sec or 0.0
        p99 = f"{m.p99_ms:.2f}" if m.p99_ms is not None else "—"
        versus = f"{m.p99_ms / floor:.2f}" if m.p99_ms is not None and floor else "—"
        lines.append(f"| {name} | {rps:,.0f} | {rps / top:.2f} | {p99} | {versus} |")
    return lines


__all__ = ["DEFAULT_APP", "HYPER", "build", "ceiling_lines", "spec"]
