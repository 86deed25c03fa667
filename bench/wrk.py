"""The load generator: one fixed-duration ``wrk --latency`` run, and the parser of its report."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.endpoints import Endpoint
from bench.process import pinned

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


class WrkError(RuntimeError):
    """wrk failed, or printed a report this parser does not understand."""


@dataclass(frozen=True)
class WrkResult:
    requests_per_sec: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def _ms(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS[unit]


def parse_wrk_output(text: str) -> WrkResult:
    """Requests/s, latency percentiles and error counts from wrk's ``--latency`` report."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text, re.MULTILINE)
    if not rps or not total:
        raise WrkError("no 'Requests/sec' / 'N requests in' line in wrk's output:\n" + text)
    percentiles: dict[str, float] = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.MULTILINE):
        percentiles[pct] = _ms(value, unit)
    if set(percentiles) != {"50", "75", "90", "99"}:
        raise WrkError("no latency distribution in wrk's output (run with --latency):\n" + text)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p75_ms=percentiles["75"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        requests=int(total.group(1)),
        seconds=_ms(total.group(2), total.group(3)) / 1e3,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def _lua_string(data: bytes) -> str:
    """A Lua string literal for ``data`` (every byte outside printable ASCII escaped)."""
    out = []
    for byte in data:
        char = chr(byte)
        if char in '"\\' or not 32 <= byte < 127:
            out.append(f"\\{byte:03d}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def lua_script(method: str, body: bytes | None, headers: Mapping[str, str]) -> str:
    """A wrk script that sends every request with ``method``, ``body`` and ``headers``."""
    lines = [f"wrk.method = {_lua_string(method.encode())}"]
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    for name, value in headers.items():
        lines.append(f"wrk.headers[{_lua_string(name.encode())}] = {_lua_string(value.encode())}")
    return "\n".join(lines) + "\n"


def run_wrk(
    base_url: str,
    endpoint: Endpoint,
    *,
    connections: int,
    seconds: float,
    cores: Sequence[int],
    script_dir: Path,
    threads: int = 1,
    timeout_s: int = 5,
) -> WrkResult:
    """One run of ``seconds`` (fixed duration; the subprocess is bounded too)."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s}s",
        "--latency",
    ]
    if endpoint.method != "GET" or endpoint.body is not None or endpoint.headers:
        script = script_dir / f"wrk-{endpoint.method.lower()}-{abs(hash(endpoint))}.lua"
        script.write_text(lua_script(endpoint.method, endpoint.body, endpoint.headers))
        argv += ["-s", str(script)]
    argv.append(base_url + endpoint.target)
    try:
        done = subprocess.run(
            pinned(argv, cores),
            capture_output=True,
            text=True,
            timeout=seconds + timeout_s + 30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish in {exc.timeout:.0f} s") from exc
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip() or done.stdout}")
    return parse_wrk_output(done.stdout)
