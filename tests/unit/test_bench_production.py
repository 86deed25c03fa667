"""The benchmark's production runs without a load generator: which apps and requests they
measure (``--no-production``, ``--no-instruments``, ``--endpoints``), their report section's
ratios, ``bench.ab --app``, and the instrumented app itself: served, it answers as the
production app does and each instrument records every request."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Appended, not prepended: ``fastrapi_compat`` must stay the installed wheel, and ``bench``
# lives only in the repository root.
ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT))

from bench import ab  # noqa: E402
from bench.endpoints import PRODUCTION_HEADERS, checked_requests, production_endpoints  # noqa: E402
from bench.options import parse_options  # noqa: E402
from bench.production import production_apps, production_cases, production_meta  # noqa: E402
from bench.report import render  # noqa: E402
from bench.report_production import production_lines  # noqa: E402
from bench.results import BenchResults, Measurement, ServerRun  # noqa: E402
from bench.runner import estimate_seconds  # noqa: E402
from bench.servers import INSTRUMENTED_APP, OURS_NATIVE, PRODUCTION_APP, UVICORN, all_servers  # noqa: E402


def test_both_production_apps_run_by_default_and_flags_turn_them_off() -> None:
    assert production_apps(parse_options([])) == [PRODUCTION_APP, INSTRUMENTED_APP]
    assert production_apps(parse_options(["--no-instruments"])) == [PRODUCTION_APP]
    assert production_apps(parse_options(["--no-production"])) == []
    assert production_meta(parse_options(["--no-production"]), None) is None


def test_production_requests_come_from_the_allowed_origin_and_follow_endpoints() -> None:
    options = parse_options(["--endpoints", "/plain,/big,/deps"])
    cases = production_cases(options)
    assert [(e.name, c) for e, c in cases] == [("/plain", 64), ("/deps", 64)]
    assert all(dict(e.extra_headers) == dict(PRODUCTION_HEADERS) for e, _ in cases)
    assert [e.name for e in production_endpoints(["/big", "/sync"])] == []
    checked = [e.name for e in checked_requests(False, "production")]
    assert checked[:4] == ["/plain", "/items/{id}", "POST /items", "/deps"] and "404 + CORS" in checked


def test_the_estimate_counts_the_production_runs() -> None:
    servers = all_servers(native_tier=True)
    base = ["--no-scaling", "--no-middleware", "--no-workers", "--endpoints", "/plain"]
    without = estimate_seconds(parse_options([*base, "--no-production"]), servers)
    one = estimate_seconds(parse_options([*base, "--no-instruments"]), servers)
    both = estimate_seconds(parse_options(base), servers)
    assert without < one < both
    assert both - one == pytest.approx(one - without)  # the same cases on each app


def test_measurements_of_each_app_are_found_apart() -> None:
    results = BenchResults(
        meta={},
        measurements=[
            Measurement(UVICORN, "/plain", 64, 10, requests_per_sec=1.0),
            Measurement(UVICORN, "/plain", 64, 10, requests_per_sec=2.0, variant="production"),
        ],
    )
    assert results.find(UVICORN, "/plain", 64, 10).requests_per_sec == 1.0  # type: ignore[union-attr]
    assert results.find(UVICORN, "/plain", 64, 10, variant="production").requests_per_sec == 2.0  # type: ignore[union-attr]
    assert results.find(UVICORN, "/plain", 64, 10, variant="instrumented") is None


def _m(server: str, endpoint: str, rps: float, variant: str = "") -> Measurement:
    return Measurement(server, endpoint, 64, 10, requests_per_sec=rps, p50_ms=1.0, p99_ms=2.5, check="identical",
                       variant=variant)  # fmt: skip


def _production_results(instruments_unavailable: str | None = None) -> tuple[BenchResults, list[ServerRun]]:
    options = parse_options([])
    meta = production_meta(options, instruments_unavailable)
    results = BenchResults(
        meta={"default_extra_routes": 10, "connections": [64], "production": meta},
        measurements=[
            _m(UVICORN, "/plain", 4_000),
            _m(OURS_NATIVE, "/plain", 30_000),
            _m(UVICORN, "/plain", 2_000, "production"),
            _m(OURS_NATIVE, "/plain", 7_000, "production"),
            _m(UVICORN, "/plain", 1_000, "instrumented"),
            _m(OURS_NATIVE, "/plain", 1_200, "instrumented"),
        ],
    )
    runs = [ServerRun(UVICORN, "FastAPI + uvicorn", ""), ServerRun(OURS_NATIVE, "fastrapi-compat (native tier)", "")]
    return results, runs


def _row(lines: list[str], start: str, server: str) -> list[str]:
    row = next(line for line in lines if line.startswith(start) and server in line)
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_the_section_gives_each_app_its_ratio_to_uvicorn_on_the_same_app() -> None:
    results, runs = _production_results()
    lines = production_lines(results, runs)
    text = "\n".join(lines)
    assert "## Production-style app, and with Sentry + OpenTelemetry + Prometheus (64 connections)" in text
    assert "≥ 3× on the production app, ≥ 1.5× with the instruments" in text
    # endpoint, server, default app, production (req/s, × uvicorn, p99), instrumented (same), answers
    assert _row(lines, "| `/plain`", "native") == [
        "`/plain`", "fastrapi-compat (native tier)", "30,000", "7,000", "3.50×", "2.50", "1,200", "1.20×", "2.50", "✓ / ✓",
    ]  # fmt: skip
    assert _row(lines, "| `/plain`", "uvicorn")[4] == ""  # no ratio of uvicorn to itself


def test_the_section_is_in_the_report_and_says_why_the_instruments_did_not_run() -> None:
    results, runs = _production_results("not installed (--no-install): sentry-sdk")
    runs[1].not_run[INSTRUMENTED_APP.label] = "not installed (--no-install): sentry-sdk"
    results.servers = runs
    results.meta.update(_report_meta())
    markdown = render(results)
    assert "## Production-style app, and with Sentry" in markdown
    assert "The instrumented app was not run: not installed (--no-install): sentry-sdk." in markdown
    assert f"not run on the {INSTRUMENTED_APP.label}: not installed" in markdown


def _report_meta() -> dict[str, object]:
    return {
        "date": "today", "machine": {"cpu": "x", "cores": 2, "kernel": "6"}, "git": "abc", "engine": "e",
        "versions": {}, "warmup_s": 1, "duration_s": 1, "plain_connections": [],
        "server_core": 1, "wrk_core": 0, "wrk_threads": 1, "scaled_extra_routes": None,
        "middleware": None, "workers": None, "profiled": False, "repeat": 1,
    }  # fmt: skip


def test_no_section_without_the_production_runs() -> None:
    results = BenchResults(meta={"default_extra_routes": 10, "connections": [64], "production": None})
    assert production_lines(results, []) == []


def test_ab_serves_the_app_it_is_given() -> None:
    args = ab.parse_args(["old.whl", "new.whl", "--app", "bench.apps.fastapi_app:app_production"])
    assert args.app == "bench.apps.fastapi_app:app_production"
    argv = ab.server_argv(Path("/nowhere"), args.app)
    assert argv[argv.index("run") + 1] == "bench.apps.fastapi_app:app_production"
    assert ab.parse_args(["old.whl", "new.whl"]).app == ab.DEFAULT_APP


def test_ab_refuses_an_app_without_an_attribute(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ab.parse_args(["old.whl", "new.whl", "--app", "bench.apps.fastapi_app"])
    assert "--app takes MODULE:ATTR" in capsys.readouterr().err


SERVE_INSTRUMENTED = textwrap.dedent(
    """
    import json, sys, time
    sys.path.append(sys.argv[1])
    from bench.apps import fastapi_app, instrumented_app
    from fastrapi_compat.testclient import TestClient, engine_stats

    app = fastapi_app.app_instrumented
    client = TestClient(app)
    origin = {"Origin": "https://example.com"}
    answers = [client.get("/plain", headers=origin), client.get("/deps?page=3", headers=origin),
               client.post("/items", json={"name": "a", "price": 1.0}, headers=origin)]
    metrics = client.get("/metrics").text
    from opentelemetry import trace
    trace.get_tracer_provider().force_flush()
    import sentry_sdk
    sentry_sdk.flush()
    print(json.dumps({
        "answers": [[r.status_code, r.json(), r.headers.get("access-control-allow-origin"),
                     "x-request-id" in r.headers, "x-process-time" in r.headers] for r in answers],
        "prometheus": 'http_requests_total{handler="/plain",method="GET",status="2xx"} 1.0' in metrics,
        "counts": instrumented_app.counts(),
        "http": engine_stats()["http"],
    }))
    """
)


def test_the_instrumented_app_answers_and_every_instrument_records() -> None:
    pytest.importorskip("prometheus_fastapi_instrumentator")
    pytest.importorskip("opentelemetry.instrumentation.fastapi")
    pytest.importorskip("sentry_sdk")
    done = subprocess.run(
        [sys.executable, "-c", SERVE_INSTRUMENTED, str(ROOT)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["answers"] == [
        [200, {"message": "Hello, World", "ok": True}, "https://example.com", True, True],
        [200, {"page": 3, "size": 25}, "https://example.com", True, True],
        [200, {"id": 1, "name": "a", "price": 1.0, "tags": []}, "https://example.com", True, True],
    ]
    assert result["prometheus"] and result["http"] == 4
    counts = result["counts"]
    assert counts.get("spans", 0) >= 4, counts  # at least the server span of each request
    sentry = sum(n for key, n in counts.items() if key in ("sentry transaction", "sentry span"))
    assert sentry >= 4, counts  # one transaction (or segment span) per request


def test_profile_frames_are_grouped_by_instrument_and_layer() -> None:
    from bench.profile import component

    assert component("capture (sentry_sdk/integrations/asgi.py:12)") == "sentry-sdk"
    assert component("__call__ (opentelemetry/instrumentation/asgi/__init__.py:779)") == "opentelemetry"
    assert (
        component("dispatch (prometheus_fastapi_instrumentator/middleware.py:1)")
        == "prometheus (client and instrumentator)"
    )
    assert component("timer (bench/apps/fastapi_app.py:120)") == "the app's own code and middleware"
    assert component("call_next (starlette/middleware/base.py:3)") == "starlette BaseHTTPMiddleware"
    assert component("handle (starlette/routing.py:3)") == "starlette"


def test_profile_summary_counts_self_and_inclusive_samples(tmp_path: Path) -> None:
    from bench.profile import summarize

    raw = tmp_path / "raw.txt"
    raw.write_text(
        "proc;run (fastrapi_compat/serve/server.py:350);call_next (starlette/middleware/base.py:3) 3\n"
        "proc;run (fastrapi_compat/serve/server.py:350);capture (sentry_sdk/api.py:1) 1\n"
    )
    text = summarize(raw)
    assert "4 samples" in text
    assert "  75.0   starlette BaseHTTPMiddleware" in text and "  25.0   sentry-sdk" in text
    assert " 100.0   run (serve/server.py)" in text


def test_profile_refuses_bad_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.profile import _parse

    assert _parse(["--app", "app_instrumented"]).server == "fastrapi-compat-native"
    with pytest.raises(SystemExit):
        _parse(["--seconds", "0"])
    assert "--seconds and --connections must be positive" in capsys.readouterr().err
