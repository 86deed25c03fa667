"""The benchmark's own arithmetic and plumbing that needs no load generator: which middleware
requests it measures, the app timed with no server, and the report sections built on them
(the latency floor, the app alone, the paired ratios)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

# Appended, not prepended: ``fastrapi_compat`` must stay the installed wheel, and ``bench``
# lives only in the repository root.
sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench import ab, app_alone  # noqa: E402
from bench.endpoints import PREFLIGHT, Endpoint, endpoint_by_name, middleware_endpoints  # noqa: E402
from bench.report import _app_alone, _ceiling, _paired, paired_ratios  # noqa: E402
from bench.results import BenchResults, Measurement, ServerRun  # noqa: E402
from bench.runner import app_alone_meta  # noqa: E402
from bench.servers import FASTRAPI, GRANIAN, OURS_ASGI, OURS_NATIVE, UVICORN  # noqa: E402


def test_preflight_is_measured_with_plain_only() -> None:
    assert [e.name for e in middleware_endpoints(["/plain", "/big"])] == ["/plain", "/big", PREFLIGHT.name]
    assert [e.name for e in middleware_endpoints(["/big"])] == ["/big"]
    assert PREFLIGHT.method == "OPTIONS"
    assert dict(PREFLIGHT.extra_headers)["Access-Control-Request-Method"] == "GET"


def test_app_alone_times_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_alone, "BUDGET_S", 0.02)
    timings = asyncio.run(app_alone.measure([endpoint_by_name("/plain"), endpoint_by_name("POST /items")]))
    assert set(timings) == {"/plain", "POST /items"}
    assert all(0 < us < 1e6 for us in timings.values()), timings


def test_app_alone_refuses_an_endpoint_that_does_not_answer_200(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_alone, "BUDGET_S", 0.02)
    missing = Endpoint("missing", "GET", "/no-such-route")
    with pytest.raises(app_alone.AppAloneError, match=r"missing: the app answered \[404\]"):
        asyncio.run(app_alone.measure([missing]))


def _results(*measurements: Measurement, **meta: object) -> BenchResults:
    return BenchResults(
        meta={"default_extra_routes": 10, "connections": [64], **meta},
        measurements=list(measurements),
    )


def _m(server: str, endpoint: str, rps: float, p50: float = 1.0, p99: float = 2.0, **kw: object) -> Measurement:
    return Measurement(server, endpoint, 64, 10, requests_per_sec=rps, p50_ms=p50, p99_ms=p99, **kw)  # type: ignore[arg-type]


def _row(lines: list[str], start: str) -> list[str]:
    row = next(line for line in lines if line.startswith(start))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_ceiling_puts_the_mean_little_fixes_next_to_p99() -> None:
    results = _results(
        _m(OURS_NATIVE, PREFLIGHT.name, 64_000, p50=0.9, p99=1.5, middleware=True),
        _m(OURS_NATIVE, "/plain", 32_000, p50=1.8, p99=4.0),
    )
    lines = _ceiling(results)
    assert "needs more than 32,000 req/s" in "\n".join(lines)
    # mean = 64 connections / req/s: 1 ms and 2 ms; p99 / mean 1.5 and 2.0
    assert _row(lines, "| `preflight`")[1:] == ["64,000", "1.00", "0.90", "1.50", "1.50"]
    assert _row(lines, "| `/plain`")[1:] == ["32,000", "2.00", "1.80", "4.00", "2.00"]


def test_ceiling_is_left_out_without_a_preflight_run() -> None:
    assert _ceiling(_results(_m(OURS_NATIVE, "/plain", 32_000))) == []


def test_app_alone_section_subtracts_the_app_from_each_server() -> None:
    runs = [ServerRun(key, key, "") for key in (UVICORN, GRANIAN, OURS_NATIVE, OURS_ASGI)]
    results = _results(
        _m(UVICORN, "/plain", 4_000),  # 250 µs per request
        _m(GRANIAN, "/plain", 5_000),  # 200 µs
        _m(OURS_NATIVE, "/plain", 40_000),  # 25 µs
        _m(OURS_ASGI, "/plain", 8_000),  # 125 µs
        app_alone_us={"/plain": 100.0},
    )
    row = _row(_app_alone(results, runs), "| `/plain`")
    assert row == ["`/plain`", "100", "250 (+150)", "200 (+100)", "25", "125 (+25)", "1.60×", "2.00×"]


def test_app_alone_section_says_why_it_is_missing() -> None:
    lines = _app_alone(_results(app_alone_us="timed out"), [])
    assert lines[-1] == "The app alone was not measured: timed out."
    assert _app_alone(_results(), []) == []


def test_app_alone_takes_the_median_of_the_rounds_that_measured() -> None:
    rounds: list[dict[str, float] | str] = [
        {"/plain": 120.0, "/big": 1_500.0},
        "timed out",
        {"/plain": 100.0, "/big": 1_900.0},
        {"/plain": 140.0, "/big": 1_700.0},
    ]
    meta = app_alone_meta(rounds)
    assert meta["app_alone_us"] == {"/plain": 120.0, "/big": 1_700.0}
    assert meta["app_alone_rounds"] == rounds
    # one round: its timings, no per-round list; no round measured: the last failure
    assert app_alone_meta([{"/plain": 90.0}]) == {"app_alone_us": {"/plain": 90.0}}
    assert app_alone_meta(["failed", "timed out"])["app_alone_us"] == "timed out"
    # an even count takes the lower median, as the servers' median run does
    assert app_alone_meta([{"/plain": 100.0}, {"/plain": 140.0}])["app_alone_us"] == {"/plain": 100.0}


def test_app_alone_section_says_when_the_app_was_timed() -> None:
    one = _app_alone(_results(app_alone_us={"/plain": 100.0}), [])
    assert any("measured right after the server runs" in line for line in one)
    rounds = [{"/plain": 100.0}, {"/plain": 110.0}, {"/plain": 90.0}]
    three = _app_alone(_results(app_alone_us={"/plain": 100.0}, app_alone_rounds=rounds), [])
    assert any("after each of the 3 rounds of server runs; the median of those rounds" in line for line in three)


def test_paired_ratios_pair_rounds_in_order() -> None:
    ours = _m(OURS_ASGI, "/plain", 5_000, extra={"runs_rps": [5_000.0, 3_000.0, 6_000.0]})
    granian = _m(GRANIAN, "/plain", 4_000, extra={"runs_rps": [4_000.0, 3_000.0, 4_000.0]})
    # round by round: 1.25, 1.0, 1.5 -- not the ratio of the medians (5,000 / 4,000)
    assert paired_ratios(ours, granian) == [1.0, 1.25, 1.5]
    assert paired_ratios(ours, _m(GRANIAN, "/plain", 4_000)) == []  # no --repeat
    short = _m(GRANIAN, "/plain", 4_000, extra={"runs_rps": [4_000.0, 3_000.0]})
    assert paired_ratios(ours, short) == []
    failed = _m(GRANIAN, "/plain", 4_000, extra={"runs_rps": [4_000.0, None, 4_000.0]})
    assert paired_ratios(ours, failed) == []


def test_paired_section_shows_the_median_of_the_rounds() -> None:
    results = _results(
        _m(OURS_NATIVE, "/plain", 20_000, extra={"runs_rps": [20_000.0, 30_000.0, 10_000.0]}),
        _m(FASTRAPI, "/plain", 10_000, extra={"runs_rps": [10_000.0, 10_000.0, 10_000.0]}),
        _m(OURS_ASGI, "/plain", 5_000),
    )
    row = _row(_paired(results), "| `/plain`")
    assert row == ["`/plain`", "64", "2.00× (1.00, 2.00, 3.00)", "–"]
    assert _paired(_results(_m(OURS_NATIVE, "/plain", 20_000))) == []


# --- bench.ab: two builds side by side ------------------------------------------------------------


def test_ab_reports_the_median_of_paired_ratios() -> None:
    series = ab.Series(
        old=[100.0, 50.0, 200.0, 100.0],
        new=[110.0, 60.0, 180.0, 100.0],
        old_p99=[4.0, 5.0, 6.0, 7.0],
        new_p99=[1.0, 2.0, 3.0, 9.0],
    )
    assert series.ratios() == pytest.approx([1.1, 1.2, 0.9, 1.0])
    line = series.line("/plain")
    # each round's own ratio, not the ratio of the medians (100 vs 100 would say 1.000)
    assert "new/old 1.000" in line  # median_low of 0.9, 1.0, 1.1, 1.2
    assert "0.90-1.20" in line
    assert "old       100" in line and "new       100" in line
    assert "p99 ms old 5.00 new 2.00" in line  # median_low of each side's p99


def test_ab_compares_one_build_under_two_sets_of_flags() -> None:
    args = ab.parse_args(
        ["a.whl", "a.whl", "--new-flags=--no-sched-batch --timeout-keep-alive 5", "--server-cores", "all"]
    )
    assert (args.old_flags, args.new_flags, args.server_cores) == ("", "--no-sched-batch --timeout-keep-alive 5", "all")
    assert ab.parse_args(["a.whl", "b.whl"]).server_cores == "one"
    with pytest.raises(SystemExit):
        ab.parse_args(["a.whl", "b.whl", "--server-cores", "two"])


def test_ab_unpacks_a_wheel_and_takes_a_folder(tmp_path: Path) -> None:
    wheel = tmp_path / "fastrapi_compat-0.1.0-py3-none-any.whl"
    import zipfile

    with zipfile.ZipFile(wheel, "w") as out:
        out.writestr("fastrapi_compat/__init__.py", "")
        out.writestr("fastrapi_compat/tools/cli.py", "")
    site = ab.unpacked(str(wheel), tmp_path / "site")
    assert (site / "fastrapi_compat" / "tools" / "cli.py").is_file()
    assert ab.unpacked(str(site), tmp_path / "unused") == site
    assert "fastrapi_compat.tools.cli" in ab.server_argv(site)[2]
    old = tmp_path / "old"
    (old / "fastrapi_compat").mkdir(parents=True)
    assert "from fastrapi_compat.cli import" in ab.server_argv(old)[2]  # a build from before the layout
    with pytest.raises(SystemExit, match="neither a wheel nor a folder"):
        ab.unpacked(str(tmp_path / "missing.whl"), tmp_path / "x")
    with pytest.raises(SystemExit, match="no fastrapi_compat package"):
        ab.unpacked(str(tmp_path), tmp_path / "x")


def test_ceiling_section_shares_each_server_against_bare_hyper() -> None:
    from bench.ceiling import HYPER, ceiling_lines

    results = _results(
        _m(HYPER, "/plain", 100_000.0, p99=1.0),
        _m(OURS_NATIVE, "/plain", 40_000.0),
        _m(UVICORN, "/plain", 5_000.0),
        Measurement(OURS_NATIVE, PREFLIGHT.name, 64, 10, middleware=True, requests_per_sec=80_000.0, p99_ms=1.5),
    )
    lines = ceiling_lines(results, {UVICORN: "FastAPI + uvicorn", OURS_NATIVE: "fastrapi-compat (native tier)"})
    # p99 / Rust only: each p99 over the preflight's 1.5 ms (the helper's default p99 is 2.0 ms)
    assert _row(lines, "| bare hyper") == [
        "bare hyper server (`bench/hyper_ceiling`)",
        "100,000",
        "1.00",
        "1.00",
        "0.67",
    ]
    assert _row(lines, "| FastAPI + uvicorn")[1:] == ["5,000", "0.05", "2.00", "1.33"]
    assert _row(lines, "| fastrapi-compat (native tier), `/plain`")[1:3] == ["40,000", "0.40"]
    assert _row(lines, "| fastrapi-compat (native tier), CORS preflight")[1:] == ["80,000", "0.80", "1.50", "1.00"]
    without_preflight = ceiling_lines(_results(_m(HYPER, "/plain", 100_000.0, p99=1.0)), {})
    assert _row(without_preflight, "| bare hyper")[-1] == "—"
    not_run = _results(ceiling={"not_run": "cargo not found"})
    assert ceiling_lines(not_run, {})[-1] == "Not run: cargo not found."
