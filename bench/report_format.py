"""The report's cell formats (requests/s, ratios, milliseconds, marks), shared by its sections."""

from __future__ import annotations

from bench.interference import DISTURBED_PCT
from bench.results import Measurement, ServerRun
from bench.servers import FASTRAPI


def _rps(m: Measurement | None) -> str:
    if m is None:
        return "–"
    if m.skipped:
        return "✗ " + m.skipped.splitlines()[0].split(":")[0]
    return f"{m.requests_per_sec:,.0f}"


def _rps_spread(m: Measurement) -> str:
    """``12,345`` or, with ``--repeat``, ``12,345 (11,900–12,800)``."""
    runs = [r for r in m.extra.get("runs_rps", []) if r is not None]
    text = _rps(m)
    if len(runs) > 1 and m.requests_per_sec is not None:
        text += f" ({min(runs):,.0f}–{max(runs):,.0f})"
    return text


def _ratio(m: Measurement | None, base: Measurement | None) -> str:
    if m is None or base is None or m.requests_per_sec is None or not base.requests_per_sec:
        return "–"
    return f"{m.requests_per_sec / base.requests_per_sec:.2f}×"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _mib(kib: int | None) -> str:
    return "–" if kib is None else f"{kib / 1024:.1f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _is_disturbed(m: Measurement) -> bool:
    foreign = (
        m.extra.get("server_core_foreign_pct"),
        m.extra.get("wrk_core_foreign_pct"),
    )
    return any(f is not None and f >= DISTURBED_PCT for f in foreign)


def _foreign(m: Measurement) -> str:
    server = m.extra.get("server_core_foreign_pct")
    wrk = m.extra.get("wrk_core_foreign_pct")
    if server is None or wrk is None:
        return "–"
    flag = " ⚠" if _is_disturbed(m) else ""
    return f"{server:.0f} / {wrk:.0f}{flag}"


def _label(run: ServerRun) -> str:
    return run.label + ("¹" if run.key == FASTRAPI else "")


def _check(m: Measurement) -> str:
    marks = {
        "identical": "✓",
        "gzip-equal": "≈ gzip-equal",
        "json-equal": "≈ JSON-equal",
    }
    mark = marks.get(m.check, m.check or "–")
    problems = []
    if m.non_2xx:
        problems.append(f"{m.non_2xx:,} non-2xx")
    if m.socket_errors:
        problems.append(f"{m.socket_errors:,} socket errors")
    return mark + (f" ({', '.join(problems)})" if problems else "")


def _flagged(m: Measurement | None) -> str:
    return _rps(m) + (" ⚠" if m is not None and _is_disturbed(m) else "")
