"""A seconds-long run of the whole harness, for a test: uvicorn and our engine (ASGI tier),
``/plain`` only, 1 s per run, and the app alone, into a temporary directory; fails if nothing
was parsed."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.__main__ import write_outputs
from bench.options import parse_options
from bench.runner import run
from bench.servers import OURS_ASGI, UVICORN


def smoke() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp:
        out = Path(tmp)
        options = parse_options(
            [
                "--quick", "--warmup", "1", "--duration", "1",
                "--servers", f"{UVICORN},{OURS_ASGI}", "--endpoints", "/plain",
                "--plain-connections", "", "--no-scaling", "--no-middleware", "--no-production", "--no-workers",
                "--no-plot",
                "--output", str(out),
            ]
        )  # fmt: skip
        options.print_markdown = False
        results = run(options)
        markdown = write_outputs(results, options)

        measured = {m.server: m for m in results.measurements}
        assert set(measured) == {UVICORN, OURS_ASGI}, measured
        for server, m in measured.items():
            assert m.skipped is None, f"{server}: {m.skipped}"
            assert m.check == "identical", f"{server}: answers differ ({m.check})"
            assert m.requests_per_sec and m.requests_per_sec > 0, m
            assert m.p50_ms is not None and m.p99_ms is not None and m.p99_ms >= m.p50_ms, m
            assert m.requests and m.non_2xx == 0, m
        for r in results.servers:
            assert r.idle_rss_kib and r.loaded_rss_kib, r
        assert (out / "results.json").exists() and "| `/plain` | 64 |" in markdown
        alone = results.meta["app_alone_us"]
        assert isinstance(alone, dict) and set(alone) == {"/plain"} and alone["/plain"] > 0, alone
        assert "## Time per request: the app alone" in markdown


if __name__ == "__main__":
    smoke()
    print("bench smoke: ok")
