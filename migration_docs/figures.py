"""The migration guide's benchmark figures, drawn from ``bench/results/results.json`` (the last
``make bench`` run): ``docs/img/throughput.png`` (bench/plot.py's requests/s chart) and
``docs/img/latency.png`` (p99 latency per endpoint, uvicorn against the engine's two tiers).

Run from the repository root: ``python migration_docs/figures.py`` (``make docs-figures``); needs
matplotlib (in migration_docs/requirements.txt). The PNGs are committed, so building the guide
does not need this.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.plot import plot  # noqa: E402
from bench.results import BenchResults  # noqa: E402

SERVERS = (
    ("uvicorn", "FastAPI + uvicorn"),
    ("fastrapi-compat-asgi", "fastrapi-compat, ASGI tier"),
    ("fastrapi-compat-native", "fastrapi-compat, native tier"),
)


def latency(results: BenchResults, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = results.meta
    conns, routes = meta["connections"][0], meta["default_extra_routes"]
    rows = [m for m in results.measurements if m.server == "uvicorn" and m.connections == conns
            and m.extra_routes == routes and not m.middleware and m.workers is None]  # fmt: skip
    endpoints = [m.endpoint for m in rows]
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(SERVERS)
    for i, (key, label) in enumerate(SERVERS):
        values = []
        for name in endpoints:
            m = results.find(key, name, conns, routes)
            values.append(m.p99_ms if m and m.p99_ms else 0.0)
        positions = [x + (i - (len(SERVERS) - 1) / 2) * width for x in range(len(endpoints))]
        bars = ax.bar(positions, values, width, label=label)
        ax.bar_label(bars, labels=[f"{v:.0f}" if v >= 10 else f"{v:.1f}" for v in values], fontsize=7, padding=2)
    ax.set_yscale("log")
    ax.set_xticks(range(len(endpoints)), endpoints)
    ax.set_ylabel("p99 latency, ms (log scale, lower is better)")
    ax.set_title(f"wrk, {conns} connections, server on 1 core ({meta['duration_s']:g} s runs, {meta['date'][:10]})")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    results = BenchResults.read(ROOT / "bench" / "results" / "results.json")
    out = ROOT / "migration_docs" / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    plot(results, out / "throughput.png")
    latency(results, out / "latency.png")
    print(f"wrote {out / 'throughput.png'} and {out / 'latency.png'}")


if __name__ == "__main__":
    main()
