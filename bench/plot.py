"""``results.png``: requests/s per endpoint and server (grouped bars), and route scaling."""

from __future__ import annotations

from pathlib import Path

from bench.endpoints import ENDPOINTS
from bench.results import BenchResults


def plot(results: BenchResults, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = results.meta
    conns = meta["connections"][0]
    default, scaled = meta["default_extra_routes"], meta.get("scaled_extra_routes")
    runs = [r for r in results.servers if not r.skipped]
    endpoints = [e.name for e in ENDPOINTS
                 if any(m.endpoint == e.name for m in results.measurements)]  # fmt: skip

    has_scaling = bool(scaled) and any(m.extra_routes == scaled for m in results.measurements)
    fig, axes = plt.subplots(
        1, 2 if has_scaling else 1, figsize=(15 if has_scaling else 11, 5.5),
        gridspec_kw={"width_ratios": [3, 1]} if has_scaling else None, squeeze=False,
    )  # fmt: skip
    ax = axes[0][0]
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        values = []
        for name in endpoints:
            m = results.find(run.key, name, conns, default)
            values.append(m.requests_per_sec if m and m.requests_per_sec else 0.0)
        positions = [x + (i - (len(runs) - 1) / 2) * width for x in range(len(endpoints))]
        bars = ax.bar(positions, values, width, label=run.label)
        ax.bar_label(bars, labels=[f"{v / 1000:.1f}k" if v else "✗" for v in values],
                     fontsize=7, rotation=90, padding=2)  # fmt: skip
    ax.set_xticks(range(len(endpoints)), endpoints)
    ax.set_ylabel("requests / s (higher is better)")
    ax.set_title(f"wrk, {conns} connections, server on 1 core ({meta['duration_s']:g} s runs)")
    ax.legend(fontsize=8)
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)

    if has_scaling:
        ax2 = axes[0][1]
        for i, run in enumerate(runs):
            pair = [results.find(run.key, "/plain", conns, n) for n in (default, scaled)]
            values = [m.requests_per_sec if m and m.requests_per_sec else 0.0 for m in pair]
            positions = [x + (i - (len(runs) - 1) / 2) * width for x in range(2)]
            ax2.bar(positions, values, width, label=run.label)
        ax2.set_xticks(range(2), [f"{default} routes", f"{scaled:,} routes"])
        ax2.set_title("/plain vs route count")
        ax2.grid(axis="y", alpha=0.3)

    fig.suptitle(
        f"fastrapi-compat benchmark · {meta['date']} · commit {meta['git']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
