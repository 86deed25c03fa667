"""tests/instrument_suites/run.py's comparison logic: what counts as a regression, the known
differences file, the engine's counters, the plugin's summary, and which sdists hold tests."""

from __future__ import annotations

import importlib.util
import json
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "instrument_suites_run", ROOT / "tests" / "instrument_suites" / "run.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run = _load()
R = run.Result


def test_a_test_passing_stock_and_not_through_the_engine_is_a_regression() -> None:
    stock = {"a::t1": R("passed"), "a::t2": R("passed"), "a::t3": R("failed", "x"), "a::t4": R("passed")}
    engine = {"a::t1": R("passed"), "a::t2": R("failed", "boom"), "a::t3": R("passed"), "a::t4": R("skipped")}
    result = run.compare(stock, engine, {})
    assert [e["id"] for e in result.regressions] == ["a::t2", "a::t4"]
    assert result.regressions[0] == {"id": "a::t2", "outcome": "failed", "message": "boom"}
    assert result.fixed == ["a::t3"]
    assert result.listed == [] and result.stale == []


def test_a_test_missing_from_the_engine_run_is_a_regression() -> None:
    result = run.compare({"a::t1": R("passed")}, {}, {})
    assert result.regressions == [{"id": "a::t1", "outcome": "missing", "message": "not run through the engine"}]


def test_a_listed_difference_is_not_a_regression_and_a_stale_one_is_reported() -> None:
    stock = {"a::t1": R("passed"), "a::t2": R("passed")}
    engine = {"a::t1": R("failed", "socket"), "a::t2": R("passed")}
    known = {"a::t1": "over a socket", "a::t2": "fixed since", "a::gone": "removed test"}
    result = run.compare(stock, engine, known)
    assert result.regressions == []
    assert [e["id"] for e in result.listed] == ["a::t1"]
    assert result.stale == ["a::gone", "a::t2"]


def test_failing_on_both_sides_is_neither_regression_nor_fixed() -> None:
    result = run.compare({"a::t": R("failed")}, {"a::t": R("failed")}, {})
    assert result.regressions == [] and result.fixed == []


def test_known_differences_are_read_per_suite() -> None:
    text = (
        "# comment\n\n"
        "opentelemetry tests.test_x::test_a  over a socket the peer closes first\n"
        "slowapi tests.test_y::test_b — the reason\n"
        "opentelemetry tests.test_x::test_c\n"
    )
    assert run.load_known(text, "opentelemetry") == {
        "tests.test_x::test_a": "over a socket the peer closes first",
        "tests.test_x::test_c": "",
    }
    assert run.load_known(text, "slowapi") == {"tests.test_y::test_b": "the reason"}
    assert run.load_known(text, "prometheus") == {}


def test_the_committed_known_differences_name_real_suites() -> None:
    text = run.KNOWN.read_text() if run.KNOWN.exists() else ""
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            assert line.split()[0] in run.SUITES, line


def test_engine_counts_add_up_every_process(tmp_path: Path) -> None:
    (tmp_path / "1.json").write_text(
        json.dumps({"http": 10, "websocket": 1, "native": 8, "reasons": {"r1": 2}, "under": {"u": 8}})
    )
    (tmp_path / "2.json").write_text(
        json.dumps({"http": 5, "websocket": 0, "native": 1, "reasons": {"r1": 1, "r2": 3}})
    )
    totals, reasons, under = run.engine_counts(tmp_path)
    assert totals == {"http": 15, "websocket": 1, "native": 9}
    assert reasons == {"r1": 3, "r2": 3}
    assert under == {"u": 8}


def test_the_plugins_summary_is_taken_from_the_log() -> None:
    log = (
        "....F.\n"
        "============ fastrapi-compat engine ============\n"
        "tests run: 6\n"
        "native tier: 5 of 6 HTTP requests (83%)\n"
        "=========== short test summary info ===========\n"
        "FAILED tests/test_x.py::test_y\n"
    )
    assert run.plugin_summary(log) == ["tests run: 6", "native tier: 5 of 6 HTTP requests (83%)"]
    assert run.plugin_summary("no summary here\n") == []
    quiet = "= fastrapi-compat engine =\ntests run: 2\n2 passed, 1 skipped in 0.5s\n"
    assert run.plugin_summary(quiet) == ["tests run: 2"]


def _sdist(path: Path, files: dict[str, str]) -> Path:
    source = path.parent / "src"
    for name, text in files.items():
        target = source / "pkg-1.0" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source / "pkg-1.0", arcname="pkg-1.0")
    return path


def test_an_sdist_without_tests_is_recognised(tmp_path: Path) -> None:
    with_tests = _sdist(tmp_path / "a" / "pkg-1.0.tar.gz", {"pkg/__init__.py": "", "tests/test_x.py": ""})
    without = _sdist(tmp_path / "b" / "pkg-1.0.tar.gz", {"pkg/__init__.py": "", "README.md": ""})
    run.extract(with_tests, tmp_path / "x")
    run.extract(without, tmp_path / "y")
    assert (tmp_path / "x" / "pkg" / "__init__.py").exists()  # the sdist's top folder is dropped
    assert run.has_tests(tmp_path / "x") and not run.has_tests(tmp_path / "y")


def test_sdist_versions() -> None:
    assert run.sdist_version(Path("prometheus_fastapi_instrumentator-8.1.0.tar.gz")) == "8.1.0"
    assert run.sdist_version(Path("opentelemetry_instrumentation_fastapi-0.66b2.tar.gz")) == "0.66b2"
    with pytest.raises(ValueError):
        run.sdist_version(Path("not-an-sdist.zip"))


def test_the_summary_says_why_a_suite_did_not_run_and_shows_the_native_share() -> None:
    reports = [
        {"suite": "slowapi", "dist": "slowapi", "version": "0.1.10", "status": "not run", "reason": "no tests"},
        {
            "suite": "opentelemetry",
            "dist": "opentelemetry-instrumentation-fastapi",
            "version": "0.66b2",
            "status": "ran",
            "source": "sdist x",
            "stock": {"passed": 10, "failed": 0, "skipped": 1},
            "engine": {"passed": 9, "failed": 1, "skipped": 1},
            "regressions": [{"id": "t::a", "outcome": "failed", "message": "m"}],
            "flaky": [],
            "known_differences_seen": [],
            "known_differences_not_seen": [],
            "fixed": [],
            "engine_requests": 20,
            "native_requests": 15,
            "native_share": 0.75,
            "plugin_summary": ["tests run: 11"],
            "stock_seconds": 1.0,
            "engine_seconds": 2.0,
        },
    ]
    text = run.summary(reports)
    assert "| slowapi | 0.1.10 | not run |" in text and "- not run: no tests" in text
    assert "| opentelemetry-instrumentation-fastapi | 0.66b2 | 10 | 9 | 1 | 20 | 15 (75.0 %) |" in text
    assert "REGRESSION `t::a`" in text and "tests run: 11" in text


def test_bad_source_flag_is_one_clear_error() -> None:
    with pytest.raises(SystemExit, match="Error: --source takes NAME=SOURCE"):
        run._pairs(["nothing"], "source")


def test_test_tooling_is_looked_for_in_the_suites_own_folder(tmp_path: Path) -> None:
    assert run._importable("json")  # the environment's
    assert not run._importable("no_such_tool_xyz", tmp_path)
    (tmp_path / "no_such_tool_xyz").mkdir()
    (tmp_path / "no_such_tool_xyz" / "__init__.py").write_text("")
    assert run._importable("no_such_tool_xyz", tmp_path)  # installed there by an earlier run
    assert not run._importable("no_such_tool_xyz")  # never in the environment


def test_every_pytest_plugin_a_suite_needs_is_isolated() -> None:
    # pytest-asyncio in the environment breaks other pytest sessions (a deprecation warning
    # at configure, an error under -W error): test tooling never goes there
    for suite in run.SUITES.values():
        for requirement in suite.requires:
            if requirement.module.startswith("pytest") or requirement.module in ("opentelemetry.test", "mock", "hiro"):
                assert requirement.isolated, requirement


def test_without_install_a_missing_requirement_is_one_reason(tmp_path: Path) -> None:
    suite = run.Suite("x", "x-dist", (run.Requirement("no_such_tool_xyz", "no-such-tool=={version}", isolated=True),))
    reason = run.ensure_requirements(suite, "1.2", False, tmp_path)
    assert reason == "missing no_such_tool_xyz (--no-install): pip install no-such-tool==1.2"


def test_a_suite_without_pytest_configuration_gets_its_own_rootdir(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    run.pin_rootdir(bare)
    assert (bare / "pytest.ini").read_text() == "[pytest]\n"
    configured = tmp_path / "configured"
    configured.mkdir()
    (configured / "pyproject.toml").write_text("[tool.pytest.ini_options]\nasyncio_mode = 'auto'\n")
    run.pin_rootdir(configured)
    assert not (configured / "pytest.ini").exists() and run.has_pytest_config(configured)
