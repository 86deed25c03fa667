"""What ``fastrapi-compat bench`` shows: its progress bar, the table per operation and the PNG
plot (matplotlib, from the ``bench`` extra)."""

from __future__ import annotations

from typing import IO

from fastrapi_compat.tools.bench import BenchReport

PLOT_INSTALL = "pip install '.[bench]' in a clone of fastrapi-compat (or pip install 'WHEEL[bench]' with its wheel)"


class ProgressBar:
    """``[#####-----] 12/24 round 1/2 GET /items (engine)`` rewritten in place on ``out``;
    nothing at all when ``out`` is not a terminal."""

    def __init__(self, out: IO[str], width: int = 30) -> None:
        self.out = out
        self.width = width
        self.enabled = out.isatty()
        self._last = 0

    def __call__(self, done: int, total: int, what: str) -> None:
        if not self.enabled:
            return
        filled = self.width * done // max(total, 1)
        line = f"[{'#' * filled}{'-' * (self.width - filled)}] {done}/{total} {what}"[:119]
        self.out.write("\r" + line.ljust(self._last))
        self._last = len(line)
        if done >= total:
            self.out.write("\n")
        self.out.flush()


def missing_for_plot() -> str:
    """Why the plot cannot be drawn here ("" when it can)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f"the plot needs matplotlib, from the bench extra: {PLOT_INSTALL} (or --no-plot)."
    return ""


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value >= 1 else f"{value * 1000:.0f} us"


def table(report: BenchReport) -> str:
    options = report.options
    lines = [
        f"fastrapi-compat bench {options.target}: {report.servers['uvicorn']} vs {report.servers['engine']}",
        f"load generator: {report.generator}; it shares this machine with the servers "
        f"({report.placement}), so absolute numbers are lower than on a dedicated client",
        f"{options.rounds} round(s) x {len(report.operations)} operation(s) x 2 servers, "
        f"{report.slot_seconds:.2f} s each, interleaved; 127.0.0.1 only",
        "",
    ]
    header = ("OPERATION", "TIER", "UVICORN REQ/S", "ENGINE REQ/S", "RATIO", "UVICORN P99", "ENGINE P99", "NON-2XX U/E")
    rows = [header]
    for op in report.operations:
        stock, engine = report.get("uvicorn", op.label), report.get("engine", op.label)
        ratio = engine.requests_per_sec / stock.requests_per_sec if stock.requests_per_sec else 0.0
        rows.append(
            (
                op.label,
                op.tier,
                f"{stock.requests_per_sec:,.0f}",
                f"{engine.requests_per_sec:,.0f}",
                f"{ratio:.2f}x",
                _ms(stock.p99_ms),
                _ms(engine.p99_ms),
                f"{stock.non_2xx}/{engine.non_2xx}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    native = sum(op.tier == "native" for op in report.operations)
    lines.append(f"{native} of {len(report.operations)} operations native (fastrapi-compat explain says why):")
    for op in report.operations:
        lines.append(f"  {op.label}: {op.tier}{f' ({op.reason})' if op.reason else ''}")
    flagged = [
        (server, op.label, m)
        for op in report.operations
        for server in ("uvicorn", "engine")
        if (m := report.get(server, op.label)).non_2xx or m.errors
    ]
    if flagged:
        lines.append("")
        lines.append("answers that were not 2xx, and socket errors (requests/s counts them too):")
        for server, label, m in flagged:
            codes = ", ".join(f"{n} x {code}" for code, n in sorted(m.statuses.items()))
            errors = f"; {m.errors} socket error(s)" if m.errors else ""
            lines.append(f"  {label} on {server}: {m.non_2xx} of {m.requests} ({codes or 'none'}){errors}")
    for note in report.skipped:
        lines.append(f"not measured: {note}")
    return "\n".join(lines)


def plot(report: BenchReport, path: str) -> None:
    """Requests/s per operation and server (bars, the ratio above each pair) and p99 latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [op.label for op in report.operations]
    height = 1.2 + 0.45 * len(labels)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, max(3.5, height)), gridspec_kw={"width_ratios": [3, 2]})
    bar = 0.38
    ys = range(len(labels))
    for k, server in enumerate(("uvicorn", "engine")):
        rps = [report.get(server, label).requests_per_sec for label in labels]
        p99 = [report.get(server, label).p99_ms for label in labels]
        positions = [y + (k - 0.5) * bar for y in ys]
        name = report.servers[server]
        ax.barh(positions, rps, bar, label=name)
        ax2.barh(positions, p99, bar, label=name)
    for y, label in zip(ys, labels):
        stock = report.get("uvicorn", label).requests_per_sec
        engine = report.get("engine", label).requests_per_sec
        if stock:
            ax.annotate(f"{engine / stock:.2f}x", (max(stock, engine), y), xytext=(4, -4), textcoords="offset points")
    for axis in (ax, ax2):
        axis.set_yticks(list(ys), labels)
        axis.invert_yaxis()
        axis.grid(axis="x", alpha=0.3)
    ax2.set_yticklabels([])
    ax.set_xlabel("requests / s (higher is better)")
    ax2.set_xlabel("p99 latency, ms (lower is better)")
    ax.margins(x=0.15)
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"fastrapi-compat bench {report.options.target} ({report.generator})", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
