"""FastAPI's own test suite, run on stock FastAPI and through the engine, compared test by test.

    python tests/fastapi_suite/run.py --report report.json [--fastapi-version X] [-n 2]

Downloads the fastapi sdist (cached; never committed), extracts it twice, rewrites the second
copy's imports of ``FastAPI`` and ``TestClient`` to fastrapi_compat's, runs pytest on both, and
writes a JSON report plus a markdown summary. Exits 1 when a test passes on stock FastAPI but
not through the engine and is not listed in ``known_differences.txt``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
KNOWN = HERE / "known_differences.txt"
DEFAULT_WORKDIR = ROOT / ".cache" / "fastapi-suite"

_TESTCLIENT_IMPORT = re.compile(r"\bfrom\s+(?:fastapi|starlette)\.testclient\s+import\b")
_ATTRIBUTE_USES = (
    ("fastapi.testclient.TestClient", "fastrapi_compat.testclient.TestClient", "fastrapi_compat.testclient"),
    ("starlette.testclient.TestClient", "fastrapi_compat.testclient.TestClient", "fastrapi_compat.testclient"),
)


@dataclass
class Result:
    outcome: str  # passed | failed | skipped
    message: str = ""


def installed_fastapi_version() -> str:
    from importlib.metadata import version

    return version("fastapi")


def download_sdist(version: str, cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"fastapi-{version}.tar.gz"
    if target.exists():
        return target
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"fastapi=={version}",
            "-d",
            str(cache),
        ],
        check=True,
    )
    if not target.exists():
        raise SystemExit(f"error: pip did not produce {target.name}")
    return target


def extract(sdist: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        prefix = tar.getnames()[0].split("/")[0] + "/"
        members = []
        for member in tar.getmembers():
            if not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix) :]
            if not rel or (rel.startswith("docs/") and not rel.startswith("docs/en/docs/img/")):
                continue  # the docs are large; tests only read a few images
            member.name = rel
            members.append(member)
        tar.extractall(dest, members=members, filter="data")


def rewrite_source(source: str) -> str:
    """Points one module's FastAPI and TestClient at fastrapi_compat; other code is untouched."""
    source = _TESTCLIENT_IMPORT.sub("from fastrapi_compat.testclient import", source)
    needed: list[str] = []
    for old, new, module in _ATTRIBUTE_USES:
        if re.search(rf"(?<![\w.]){re.escape(old)}\b", source):
            source = re.sub(rf"(?<![\w.]){re.escape(old)}\b", new, source)
            needed.append(module)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.splitlines(keepends=True)
    inserts: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "fastapi" and node.level == 0:
            for alias in node.names:
                if alias.name == "FastAPI":
                    indent = " " * node.col_offset
                    name = f"FastAPI as {alias.asname}" if alias.asname else "FastAPI"
                    inserts.append((node.end_lineno or node.lineno, f"{indent}from fastrapi_compat import {name}\n"))
    if needed:
        after_future = 0
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                after_future = node.end_lineno or node.lineno
            elif (
                isinstance(node, ast.Expr)
                and isinstance(getattr(node, "value", None), ast.Constant)
                and after_future == 0
            ):
                after_future = node.end_lineno or node.lineno  # module docstring
            else:
                break
        inserts.append((after_future, "".join(f"import {m}\n" for m in sorted(set(needed)))))
    for line_no, text in sorted(inserts, key=lambda item: item[0], reverse=True):
        if line_no > 0 and not lines[line_no - 1].endswith("\n"):
            lines[line_no - 1] += "\n"
        lines.insert(line_no, text)
    return "".join(lines)


def rewrite_tree(root: Path) -> int:
    changed = 0
    for folder in ("tests", "docs_src"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            new = rewrite_source(text)
            if new != text:
                path.write_text(new, encoding="utf-8")
                changed += 1
    return changed


def run_pytest(root: Path, junit: Path, workers: int, extra: list[str], env: dict[str, str]) -> float:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:sugar",
        "-q",
        "-o",
        "console_output_style=classic",
        "--junitxml",
        str(junit),
    ]
    if workers > 0:
        cmd += ["-n", str(workers)]
    cmd += extra or ["tests"]
    started = time.monotonic()
    log = junit.with_suffix(".log")
    with log.open("w") as out:
        subprocess.run(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    return time.monotonic() - started


def parse_junit(path: Path) -> dict[str, Result]:
    results: dict[str, Result] = {}
    if not path.exists():
        return results
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                message = (child.get("message") or child.text or "").strip().splitlines()[:1]
                message = message[0] if message else child.tag
                break
            if child.tag == "skipped":
                outcome = "skipped"
        # A test can appear twice (a failing teardown adds an error case): failure wins.
        if test_id in results and results[test_id].outcome == "failed":
            continue
        results[test_id] = Result(outcome, message[:300])
    return results


def node_id(root: Path, test_id: str) -> str | None:
    """``tests.test_x.TestCase::test_y[p]`` (a junit id) -> ``tests/test_x.py::TestCase::test_y[p]``."""
    classname, _, name = test_id.partition("::")
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        path = Path(*parts[:cut]).with_suffix(".py")
        if (root / path).is_file():
            return "::".join([path.as_posix(), *parts[cut:], name])
    return None


def rerun_passes(root: Path, test_id: str, env: dict[str, str]) -> bool:
    """Runs one test again, alone: True when it passes (the first failure was a flake)."""
    node = node_id(root, test_id)
    if node is None:
        return False
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:sugar", "-q", node],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return result.returncode == 0


def load_known() -> dict[str, str]:
    known: dict[str, str] = {}
    if KNOWN.exists():
        for line in KNOWN.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                test_id, _, reason = line.partition(" ")
                known[test_id] = reason.strip(" -—")
    return known


def engine_counts(stats_dir: Path) -> tuple[dict[str, int], Counter[str]]:
    """The engines' request counters and the native tier's fallback reasons, over all
    processes of the engine run."""
    totals = {"http": 0, "websocket": 0, "native": 0}
    reasons: Counter[str] = Counter()
    for path in stats_dir.glob("*.json"):
        data = json.loads(path.read_text())
        for key in totals:
            totals[key] += int(data.get(key, 0))
        reasons.update(data.get("reasons", {}))
    return totals, reasons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fastapi-version", default=None, help="fastapi release to test (default: installed)")
    parser.add_argument("--report", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the markdown summary here")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("-n", "--workers", type=int, default=2, help="pytest-xdist workers (0: none)")
    parser.add_argument("--engine-only", action="store_true", help="skip the stock run (reuse its last result)")
    parser.add_argument("pytest_args", nargs="*", help="test paths / -k filters passed to pytest")
    args = parser.parse_args(argv)

    version = args.fastapi_version or installed_fastapi_version()
    work = args.workdir / version
    sdist = download_sdist(version, args.workdir / "sdists")
    env = dict(os.environ)
    env.pop("PYTHONSAFEPATH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    stock_root, engine_root = work / "stock", work / "engine"
    stock_junit, engine_junit = work / "stock.xml", work / "engine.xml"
    if not (args.engine_only and stock_junit.exists()):
        extract(sdist, stock_root)
        stock_seconds = run_pytest(stock_root, stock_junit, args.workers, args.pytest_args, env)
    else:
        stock_seconds = 0.0
    extract(sdist, engine_root)
    rewritten = rewrite_tree(engine_root)
    stats_dir = work / "engine-stats"
    shutil.rmtree(stats_dir, ignore_errors=True)
    stats_dir.mkdir(parents=True)
    engine_env = dict(env, FASTRAPI_STATS_DIR=str(stats_dir))
    # Imports rewritten to fastrapi_compat's FastAPI and TestClient, and the opt-in plugin on,
    # so that tests using httpx.ASGITransport go through the engine too.
    engine_args = ["--fastrapi-engine", *(args.pytest_args or ["tests"])]
    engine_seconds = run_pytest(engine_root, engine_junit, args.workers, engine_args, engine_env)

    stock, engine = parse_junit(stock_junit), parse_junit(engine_junit)
    if not stock or not engine:
        print(
            f"error: a run produced no results; see {stock_junit.with_suffix('.log')} and {engine_junit.with_suffix('.log')}"
        )
        return 1
    known = load_known()
    regressions, listed, fixed = [], [], []
    for test_id, result in sorted(stock.items()):
        other = engine.get(test_id, Result("missing", "not run through the engine"))
        if result.outcome == "passed" and other.outcome != "passed":
            entry = {"id": test_id, "outcome": other.outcome, "message": other.message}
            (listed if test_id in known else regressions).append(entry)
        elif result.outcome == "failed" and other.outcome == "passed":
            fixed.append(test_id)
    # A regression that passes when run again alone is reported as flaky, not as a regression;
    # a crash or timeout that comes back every time stays a regression.
    flaky = []
    if len(regressions) <= 20:
        for entry in list(regressions):
            if rerun_passes(engine_root, entry["id"], engine_env):
                regressions.remove(entry)
                flaky.append(entry)
    stale = sorted(set(known) - {e["id"] for e in listed})
    counts, reasons = engine_counts(stats_dir)
    report = {
        "fastapi_version": version,
        "stock_passed": sum(r.outcome == "passed" for r in stock.values()),
        "stock_failed": sum(r.outcome == "failed" for r in stock.values()),
        "stock_skipped": sum(r.outcome == "skipped" for r in stock.values()),
        "engine_passed": sum(r.outcome == "passed" for r in engine.values()),
        "engine_failed": sum(r.outcome == "failed" for r in engine.values()),
        "engine_skipped": sum(r.outcome == "skipped" for r in engine.values()),
        "regressions": regressions,
        "flaky": flaky,
        "known_differences_seen": listed,
        "known_differences_not_seen": stale,
        "fixed": fixed,
        "engine_requests": counts["http"],
        "engine_websockets": counts["websocket"],
        "native_requests": counts["native"],
        "native_share": round(counts["native"] / counts["http"], 4) if counts["http"] else 0.0,
        "fallback_reasons": dict(reasons.most_common()),
        "files_rewritten": rewritten,
        "stock_seconds": round(stock_seconds, 1),
        "engine_seconds": round(engine_seconds, 1),
    }
    markdown = summary(report)
    print(markdown)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown)
    return 1 if regressions else 0


def summary(report: dict[str, object]) -> str:
    lines = [
        f"## FastAPI {report['fastapi_version']} test suite: stock vs fastrapi-compat engine",
        "",
        "| | passed | failed | skipped | seconds |",
        "|---|---:|---:|---:|---:|",
        f"| stock FastAPI | {report['stock_passed']} | {report['stock_failed']} | {report['stock_skipped']} | {report['stock_seconds']} |",
        f"| through the engine | {report['engine_passed']} | {report['engine_failed']} | {report['engine_skipped']} | {report['engine_seconds']} |",
        "",
        f"- requests served by the engine: {report['engine_requests']} HTTP + {report['engine_websockets']} websockets"
        f" (native tier: {report['native_requests']}, {100 * float(report['native_share']):.1f}% of HTTP)",  # type: ignore[arg-type]
        f"- regressions (pass on stock, not on the engine, not listed): {len(report['regressions'])}",  # type: ignore[arg-type]
        f"- known differences seen: {len(report['known_differences_seen'])}",  # type: ignore[arg-type]
        f"- flaky (failed through the engine, passed when run again alone): {len(report['flaky'])}",  # type: ignore[arg-type]
        f"- fixed (fail on stock, pass on the engine): {len(report['fixed'])}",  # type: ignore[arg-type]
    ]
    reasons = list(report["fallback_reasons"].items())  # type: ignore[attr-defined]
    if reasons:
        lines.append("- top reasons for the ASGI tier (HTTP requests):")
        lines.extend(f"  - {count} × {reason}" for reason, count in reasons[:10])
    for entry in report["regressions"]:  # type: ignore[attr-defined]
        lines.append(f"  - REGRESSION `{entry['id']}`: {entry['outcome']}: {entry['message']}")
    for entry in report["flaky"]:  # type: ignore[attr-defined]
        lines.append(f"  - flaky `{entry['id']}`: {entry['outcome']}: {entry['message']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
