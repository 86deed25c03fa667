"""py-spy sampling of a server while wrk loads it, and a plain-text summary of where the
time goes (self and inclusive share per frame)."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.process import pinned


class PySpyRecording:
    """``py-spy record`` of ``pid`` (and its children) for ``seconds``, raw collapsed stacks."""

    def __init__(self, pid: int, output: Path, seconds: float, cores: Sequence[int], native: bool):
        self.output = output
        argv = [
            "py-spy", "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
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
