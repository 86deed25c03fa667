"""bench.callgrind's arithmetic and plumbing that needs no valgrind: reading a dump's total,
the 5 % guard against the baseline, the targets it knows, its one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# Appended, not prepended: ``fastrapi_compat`` must stay the installed wheel, and ``bench``
# lives only in the repository root.
sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench import callgrind  # noqa: E402


def test_read_total_takes_the_totals_line(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.1"
    dump.write_text("# callgrind format\nevents: Ir\nsummary: 120\nfn=main\n0 120\ntotals: 123\n")
    assert callgrind.read_total(dump) == 123
    dump.write_text("events: Ir\nsummary: 77\n")
    assert callgrind.read_total(dump) == 77
    dump.write_text("events: Ir\n")
    with pytest.raises(callgrind.CallgrindError, match="no totals"):
        callgrind.read_total(dump)


def test_compare_fails_only_on_growth_over_the_tolerance() -> None:
    baseline = {"native /plain": 100_000.0, "native POST /items": 200_000.0}
    assert callgrind.compare({"native /plain": 105_000.0, "native POST /items": 150_000.0}, baseline) == []
    failures = callgrind.compare({"native /plain": 105_001.0, "native POST /items": 200_000.0}, baseline)
    assert failures == ["native /plain: 105,001 instructions/request, +5.0% over 100,000"]
    missing = callgrind.compare({"native /items/{id}": 1.0}, baseline)
    assert missing and "no baseline" in missing[0] and "--update-baseline" in missing[0]


def test_the_guarded_targets_are_the_issues_three_and_the_preflight_and_in_the_baseline() -> None:
    assert callgrind.GUARDED == (
        "native /plain",
        "native /items/{id}",
        "native POST /items",
        "native preflight (Rust only)",
    )
    for key in callgrind.GUARDED:
        assert callgrind.target_by_key(key).server == "native"
    stored = json.loads(callgrind.BASELINE.read_text())
    assert set(stored["counts"]) == set(callgrind.GUARDED)
    assert all(isinstance(v, int) and v > 0 for v in stored["counts"].values())
    assert stored["environment"]["python"]


def test_unknown_target_and_bad_request_count_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert callgrind.main(["--targets", "native /nope"]) == 1
    assert capsys.readouterr().err.startswith("Error: unknown target 'native /nope' (known: native /plain")
    assert callgrind.main(["--targets", "native /plain", "--requests", "0"]) == 1
    assert capsys.readouterr().err == "Error: --requests must be at least 1\n"
