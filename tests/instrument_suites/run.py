"""Instrumentation libraries' own test suites, run stock and with ``pytest --fastrapi-engine``,
compared test by test.

    python tests/instrument_suites/run.py [--suite opentelemetry] [--source prometheus=DIR]
                                          [--report report.json] [--markdown report.md]

Issue 21's acceptance: the suites of opentelemetry-instrumentation-fastapi,
prometheus-fastapi-instrumentator and slowapi pass through the engine as on stock, with most of
their requests native under their middleware. For each suite the harness downloads the sdist of
the installed release from PyPI (cached under ``.cache/``, never committed), extracts it twice,
runs pytest on one copy as it is and on the other with ``--fastrapi-engine`` (the plugin serves
every ``TestClient`` and ``httpx.ASGITransport`` app with the engine; nothing in the tests is
edited), and compares the outcomes. The engine run's counters (requests, native, what native
routes ran under, why others were not) come from ``FASTRAPI_STATS_DIR`` and the plugin's own
summary is kept in the report.

Only opentelemetry-instrumentation-fastapi ships its tests in its sdist; the other two do not
(their sdists hold the package alone). Such a suite is reported as not run, with that reason,
unless ``--source NAME=DIR`` names a checkout of the project holding its ``tests/`` (the harness
copies it; it never fetches anything but PyPI packages). What a suite needs besides the
package is pip-installed when missing (``--no-install`` refuses); its test tooling
(``opentelemetry-test-utils``, ``pytest-asyncio``, ...) goes into the suite's own folder under the
work directory, on ``PYTHONPATH`` for that suite's runs only, so that a pytest plugin one suite
needs never reaches another pytest session.

Exits 1 when a test passes stock but not through the engine (again when run alone) and is not
listed in ``known_differences.txt`` (a list that may only shrink).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
KNOWN = HERE / "known_differences.txt"
DEFAULT_WORKDIR = ROOT / ".cache" / "instrument-suites"
SUITE_TIMEOUT_S = 900  # one pytest run; the whole otel suite takes well under a minute
SUMMARY_TITLE = "fastrapi-compat engine"


def _load_fastapi_suite() -> ModuleType:
    """tests/fastapi_suite/run.py (a script, not a package): its junit parsing is shared."""
    spec = importlib.util.spec_from_file_location("_fastapi_suite_run", ROOT / "tests" / "fastapi_suite" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_shared = _load_fastapi_suite()
Result = _shared.Result
parse_junit = _shared.parse_junit
node_id = _shared.node_id


@dataclass(frozen=True)
class Requirement:
    """Something a suite imports: ``module``, pip-installed as ``spec`` (``{version}`` is the
    suite's release) when it cannot be imported. An ``isolated`` one (test tooling: a pytest
    plugin such as pytest-asyncio changes every later pytest run in the environment) goes,
    without its dependencies, into the suite's own folder, on ``PYTHONPATH`` for its runs only."""

    module: str
    spec: str
    isolated: bool = False


@dataclass(frozen=True)
class Suite:
    """One library's test suite: its PyPI distribution, what its tests import, where they are."""

    name: str
    dist: str
    requires: tuple[Requirement, ...]
    tests: str = "tests"


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite(
            "opentelemetry",
            "opentelemetry-instrumentation-fastapi",
            (
                Requirement(
                    "opentelemetry.instrumentation.fastapi", "opentelemetry-instrumentation-fastapi=={version}"
                ),
                Requirement("opentelemetry.test", "opentelemetry-test-utils=={version}", isolated=True),
            ),
        ),
        Suite(
            "prometheus",
            "prometheus-fastapi-instrumentator",
            (
                Requirement("prometheus_fastapi_instrumentator", "prometheus-fastapi-instrumentator=={version}"),
                Requirement("requests", "requests"),
                Requirement("asgiref", "asgiref"),
                Requirement("httpx2", "httpx2"),
                Requirement("devtools", "devtools", isolated=True),
                Requirement("asttokens", "asttokens", isolated=True),
                Requirement("executing", "executing", isolated=True),
                Requirement("pytest_asyncio", "pytest-asyncio", isolated=True),
            ),
        ),
        Suite(
            "slowapi",
            "slowapi",
            (
                Requirement("slowapi", "slowapi=={version}"),
                Requirement("requests", "requests"),
                Requirement("hiro", "hiro", isolated=True),
                Requirement("mock", "mock", isolated=True),
            ),
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# Comparison (unit-tested: tests/unit/test_instrument_suites.py)


@dataclass
class Comparison:
    """One suite's stock results against the engine's."""

    regressions: list[dict[str, str]] = field(default_factory=list)  # pass stock, not here, unlisted
    listed: list[dict[str, str]] = field(default_factory=list)  # the same, listed as known
    fixed: list[str] = field(default_factory=list)  # fail stock, pass here
    stale: list[str] = field(default_factory=list)  # listed but passing (or gone): remove them
    flaky: list[dict[str, str]] = field(default_factory=list)  # failed, passed when run alone


def compare(stock: Mapping[str, object], engine: Mapping[str, object], known: Mapping[str, str]) -> Comparison:
    """Test by test: a test that passed stock and did not pass through the engine (failed,
    errored, skipped, or not run at all) is a regression unless ``known`` lists it."""
    result = Comparison()
    missing = Result("missing", "not run through the engine")
    for test_id, outcome in sorted(stock.items()):
        other = engine.get(test_id, missing)
        if outcome.outcome == "passed" and other.outcome != "passed":  # type: ignore[attr-defined]
            entry = {"id": test_id, "outcome": other.outcome, "message": other.message}  # type: ignore[attr-defined]
            (result.listed if test_id in known else result.regressions).append(entry)
        elif outcome.outcome == "failed" and other.outcome == "passed":  # type: ignore[attr-defined]
            result.fixed.append(test_id)
    result.stale = sorted(set(known) - {e["id"] for e in result.listed})
    return result


def load_known(text: str, suite: str) -> dict[str, str]:
    """``known_differences.txt``: ``<suite> <junit id> <reason>`` per line, ``#`` comments."""
    known: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        test_id, _, reason = rest.strip().partition(" ")
        if name == suite and test_id:
            known[test_id] = reason.strip(" -—")
    return known


def engine_counts(stats_dir: Path) -> tuple[dict[str, int], Counter[str], Counter[str]]:
    """Requests the engine served over every process of a run (``FASTRAPI_STATS_DIR``), the
    fallback reasons, and what native routes ran under."""
    totals = {"http": 0, "websocket": 0, "native": 0}
    reasons: Counter[str] = Counter()
    under: Counter[str] = Counter()
    for path in sorted(stats_dir.glob("*.json")):
        data = json.loads(path.read_text())
        for key in totals:
            totals[key] += int(data.get(key, 0))
        reasons.update(data.get("reasons", {}))
        under.update(data.get("under", {}))
    return totals, reasons, under


_PYTEST_END = re.compile(r"^(\d+ (passed|failed|skipped|errors?|deselected|xfailed|xpassed)\b|(FAILED|ERROR) )")


def plugin_summary(log: str) -> list[str]:
    """The ``--fastrapi-engine`` plugin's end-of-session section of a pytest log."""
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("=") and SUMMARY_TITLE in line:
            section = []
            for rest in lines[index + 1 :]:
                if rest.startswith("=") or _PYTEST_END.match(rest):
                    break
                section.append(rest)
            return section
    return []


def has_tests(root: Path, tests: str = "tests") -> bool:
    """Whether ``root`` holds a test suite (a ``test_*.py`` under ``tests``)."""
    folder = root / tests
    return folder.is_dir() and any(folder.rglob("test_*.py"))


_SDIST_NAME = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)\.tar\.gz$")


def sdist_version(path: Path) -> str:
    """``prometheus_fastapi_instrumentator-8.1.0.tar.gz`` -> ``8.1.0``."""
    match = _SDIST_NAME.match(path.name)
    if not match:
        raise ValueError(f"not an sdist name: {path.name}")
    return match.group("version")


# ---------------------------------------------------------------------------------------------
# Running


def say(message: str) -> None:
    print(message, flush=True)


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def download_sdist(dist: str, version: str | None, cache: Path) -> Path:
    """The sdist of ``dist`` (``version``, else the newest) from PyPI, cached."""
    cache.mkdir(parents=True, exist_ok=True)
    normalized = re.sub(r"[-_.]+", "_", dist).lower()
    if version is not None:
        for candidate in cache.glob("*.tar.gz"):
            match = _SDIST_NAME.match(candidate.name)
            if match and re.sub(r"[-_.]+", "_", match.group("name")).lower() == normalized:
                if match.group("version") == version:
                    return candidate
    before = set(cache.glob("*.tar.gz"))
    spec = f"{dist}=={version}" if version else dist
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-binary", ":all:", spec, "-d", str(cache)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"pip download {spec} failed: {lines[-1] if lines else done.returncode}")
    found = [
        p
        for p in cache.glob("*.tar.gz")
        if re.sub(r"[-_.]+", "_", _SDIST_NAME.match(p.name).group("name")).lower() == normalized  # type: ignore[union-attr]
        and (version is None or sdist_version(p) == version)
    ]
    new = [p for p in found if p not in before] or found
    if not new:
        raise RuntimeError(f"pip download {spec} produced no sdist")
    return max(new, key=lambda p: p.stat().st_mtime)


def extract(sdist: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            prefix, _, rel = member.name.partition("/")
            if not rel:
                continue
            member.name = rel
            members.append(member)
        tar.extractall(dest, members=members, filter="data")


def copy_source(source: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".git", "__pycache__", ".venv", "*.pyc"))


def has_pytest_config(root: Path) -> bool:
    """Whether pytest would take its configuration (and rootdir) from ``root`` itself."""
    if (root / "pytest.ini").is_file() or (root / ".pytest.ini").is_file():
        return True
    for name, section in (("pyproject.toml", "[tool.pytest"), ("tox.ini", "[pytest]"), ("setup.cfg", "[tool:pytest]")):
        path = root / name
        if path.is_file() and section in path.read_text(errors="replace"):
            return True
    return False


def pin_rootdir(root: Path) -> None:
    """A suite without a pytest configuration of its own gets an empty ``pytest.ini`` (in the
    harness's copy): else pytest looks further up, and run from ``.cache/`` in this repository
    it takes this project's configuration and rootdir (other test ids, ``-W error``)."""
    if not has_pytest_config(root):
        (root / "pytest.ini").write_text("[pytest]\n")


def ensure_requirements(suite: Suite, version: str, install: bool, site: Path) -> str | None:
    """Install what the suite imports and is missing (isolated ones into ``site``); None when
    all is there, else why not."""
    missing = [r for r in suite.requires if not _importable(r.module, site if r.isolated else None)]
    if not missing:
        return None
    if not install:
        specs = " ".join(r.spec.format(version=version) for r in missing)
        return f"missing {', '.join(r.module for r in missing)} (--no-install): pip install {specs}"
    for isolated in (False, True):
        specs = [r.spec.format(version=version) for r in missing if r.isolated == isolated]
        if not specs:
            continue
        where = ["--no-deps", "--target", str(site)] if isolated else []
        say(f"[install] pip install {' '.join([*where, *specs])}")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *where, *specs],
            capture_output=True, text=True, check=False, timeout=600,
            env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"},
        )  # fmt: skip
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return f"pip install {' '.join(specs)} failed: {lines[-1] if lines else done.returncode}"
    importlib.invalidate_caches()
    return None


def _importable(module: str, site: Path | None = None) -> bool:
    """Whether ``module`` imports from the environment, or (``site``) from that folder."""
    top = module.split(".")[0]
    try:
        if importlib.util.find_spec(top) is not None and importlib.util.find_spec(module) is not None:
            return True
    except ModuleNotFoundError:
        pass
    if site is None or not site.is_dir():
        return False
    return (site / top).exists() and (site / Path(*module.split("."))).exists() or (site / f"{top}.py").exists()


def run_pytest(root: Path, junit: Path, args: Sequence[str], env: Mapping[str, str]) -> tuple[float, str]:
    """pytest in ``root``: seconds taken and its output (also left next to the junit file)."""
    cmd = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
        "-o", "console_output_style=classic", "--rootdir", str(root), "--junitxml", str(junit),
        "--timeout", "120", *args,
    ]  # fmt: skip
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=root, env=dict(env), capture_output=True, text=True, check=False,
                              timeout=SUITE_TIMEOUT_S)  # fmt: skip
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        output = f"{exc.stdout or ''}{exc.stderr or ''}\ntimed out after {SUITE_TIMEOUT_S} s"
    junit.with_suffix(".log").write_text(output)
    return time.monotonic() - started, output


def rerun_passes(root: Path, test_id: str, args: Sequence[str], env: Mapping[str, str]) -> bool:
    """One test again, alone, the same way: True when it passes (the first failure was a flake)."""
    node = node_id(root, test_id)
    if node is None:
        return False
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--timeout", "120", *args, node]
    try:
        done = subprocess.run(cmd, cwd=root, env=dict(env), capture_output=True, check=False, timeout=300)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONSAFEPATH", None)  # the suites import their tests/ helpers from the rootdir
    env.pop("FASTRAPI_TIER", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_suite(suite: Suite, args: argparse.Namespace, known_text: str) -> dict[str, object]:
    """One suite, stock and through the engine: its report (``status`` says whether it ran)."""
    version = args.versions.get(suite.name) or installed_version(suite.dist)
    report: dict[str, object] = {"suite": suite.name, "dist": suite.dist}
    source = args.sources.get(suite.name)
    work = args.workdir / suite.name
    try:
        if source is None:
            sdist = download_sdist(suite.dist, version, args.workdir / "sdists")
            version = report["version"] = sdist_version(sdist)
            report["source"] = f"sdist {sdist.name} (PyPI)"
            extract(sdist, work / "unpacked")
            if not has_tests(work / "unpacked", suite.tests):
                report["status"] = "not run"
                report["reason"] = (
                    f"the sdist {sdist.name} ships no tests (only the package); "
                    f"pass --source {suite.name}=DIR with a checkout of the project to run them"
                )
                return report
            origin = work / "unpacked"
        else:
            origin = Path(source).resolve()
            if not has_tests(origin, suite.tests):
                raise RuntimeError(f"{origin} has no {suite.tests}/test_*.py")
            report["source"] = f"checkout {origin}"
            version = version or "unknown"
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        report["status"] = "not run"
        report["reason"] = str(exc)
        return report
    report["version"] = version
    site = work / "site"  # the suite's own test tooling (isolated requirements)
    problem = ensure_requirements(suite, version or "", args.install, site)
    if problem is not None:
        report["status"] = "not run"
        report["reason"] = problem
        return report

    env = base_env()
    if site.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    stock_root, engine_root = work / "stock", work / "engine"
    for dest in (stock_root, engine_root):
        copy_source(origin, dest)
        pin_rootdir(dest)
    stats_dir = work / "engine-stats"
    shutil.rmtree(stats_dir, ignore_errors=True)
    stats_dir.mkdir(parents=True)
    engine_env = dict(env, FASTRAPI_STATS_DIR=str(stats_dir))
    tests = [*args.pytest_args] or [suite.tests]
    say(f"== {suite.name} {version}: stock")
    stock_seconds, _ = run_pytest(stock_root, work / "stock.xml", tests, env)
    say(f"== {suite.name} {version}: --fastrapi-engine")
    engine_seconds, engine_log = run_pytest(engine_root, work / "engine.xml", ["--fastrapi-engine", *tests], engine_env)
    stock, engine = parse_junit(work / "stock.xml"), parse_junit(work / "engine.xml")
    if not stock or not engine:
        report["status"] = "error"
        report["reason"] = f"a run produced no results: see {work}/stock.log and {work}/engine.log"
        return report
    comparison = compare(stock, engine, load_known(known_text, suite.name))
    if len(comparison.regressions) <= 20:
        for entry in list(comparison.regressions):
            if rerun_passes(engine_root, entry["id"], ["--fastrapi-engine"], engine_env):
                comparison.regressions.remove(entry)
                comparison.flaky.append(entry)
    counts, reasons, under = engine_counts(stats_dir)
    report.update(
        status="ran",
        stock={o: sum(r.outcome == o for r in stock.values()) for o in ("passed", "failed", "skipped")},
        engine={o: sum(r.outcome == o for r in engine.values()) for o in ("passed", "failed", "skipped")},
        regressions=comparison.regressions,
        flaky=comparison.flaky,
        known_differences_seen=comparison.listed,
        known_differences_not_seen=comparison.stale,
        fixed=comparison.fixed,
        engine_requests=counts["http"],
        engine_websockets=counts["websocket"],
        native_requests=counts["native"],
        native_share=round(counts["native"] / counts["http"], 4) if counts["http"] else 0.0,
        native_under=dict(under.most_common()),
        fallback_reasons=dict(reasons.most_common()),
        plugin_summary=plugin_summary(engine_log),
        stock_seconds=round(stock_seconds, 1),
        engine_seconds=round(engine_seconds, 1),
    )
    return report


def summary(reports: Sequence[Mapping[str, object]]) -> str:
    """The markdown summary of every suite's report."""
    lines = ["## Instrumentation suites: stock vs `pytest --fastrapi-engine`", ""]
    lines += ["| suite | version | stock passed | engine passed | regressions | HTTP requests | native |",
              "|---|---|--:|--:|--:|--:|--:|"]  # fmt: skip
    for r in reports:
        if r.get("status") != "ran":
            lines.append(f"| {r['dist']} | {r.get('version', '')} | not run | | | | |")
            continue
        stock, engine = r["stock"], r["engine"]
        share = 100 * float(r["native_share"])  # type: ignore[arg-type]
        lines.append(
            f"| {r['dist']} | {r['version']} | {stock['passed']} | {engine['passed']} | "  # type: ignore[index]
            f"{len(r['regressions'])} | {r['engine_requests']} | {r['native_requests']} ({share:.1f} %) |"  # type: ignore[arg-type]
        )
    for r in reports:
        lines += ["", f"### {r['dist']}"]
        if r.get("status") != "ran":
            lines.append(f"- not run: {r.get('reason')}")
            continue
        lines.append(f"- from {r['source']}; stock {r['stock_seconds']} s, engine {r['engine_seconds']} s")
        lines.append(f"- fixed (fail stock, pass on the engine): {len(r['fixed'])}")  # type: ignore[arg-type]
        for entry in r["regressions"]:  # type: ignore[attr-defined]
            lines.append(f"- REGRESSION `{entry['id']}`: {entry['outcome']}: {entry['message']}")
        for entry in r["flaky"]:  # type: ignore[attr-defined]
            lines.append(f"- flaky `{entry['id']}` (passed alone): {entry['outcome']}: {entry['message']}")
        for entry in r["known_differences_seen"]:  # type: ignore[attr-defined]
            lines.append(f"- known difference `{entry['id']}`: {entry['outcome']}")
        for test_id in r["known_differences_not_seen"]:  # type: ignore[attr-defined]
            lines.append(f"- listed but not seen (remove it from known_differences.txt): `{test_id}`")
        if r["plugin_summary"]:
            lines += ["", "```text", *r["plugin_summary"], "```"]  # type: ignore[misc]
    return "\n".join(lines) + "\n"


def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or name not in SUITES or not rest:
            raise SystemExit(f"Error: --{what} takes NAME={what.upper()} with NAME one of {', '.join(SUITES)}")
        pairs[name] = rest
    return pairs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), help="run only these (repeatable)")
    parser.add_argument("--source", action="append", default=[], metavar="NAME=DIR",
                        help="run NAME's tests from a checkout instead of its sdist")  # fmt: skip
    parser.add_argument("--version", action="append", default=[], metavar="NAME=VERSION",
                        help="the release whose sdist is tested (default: the installed one)")  # fmt: skip
    parser.add_argument("--no-install", action="store_true", help="never pip-install what a suite imports")
    parser.add_argument("--report", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the markdown summary here")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("pytest_args", nargs="*", help="test paths / -k filters passed to pytest")
    args = parser.parse_args(argv)
    args.sources = _pairs(args.source, "source")
    args.versions = _pairs(args.version, "version")
    args.install = not args.no_install
    args.workdir = args.workdir.resolve()
    known_text = KNOWN.read_text() if KNOWN.exists() else ""
    reports = [run_suite(SUITES[name], args, known_text) for name in (args.suite or list(SUITES))]
    markdown = summary(reports)
    print(markdown)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(reports, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown)
    failed = [r for r in reports if r.get("status") == "error" or r.get("regressions")]
    if not any(r.get("status") == "ran" for r in reports):
        print("Error: no suite ran")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
