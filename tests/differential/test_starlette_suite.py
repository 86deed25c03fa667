"""Starlette's own tests of ``BaseHTTPMiddleware`` (and of what uses it), run on stock Starlette
and with fastrapi-compat's direct ``call_next`` serving every such middleware
(``tests/support/direct_call_next_plugin.py``): each test that passes on stock must pass with it.

Starlette's sdist, for the installed release, is downloaded from PyPI at test time into
``.cache/starlette-suite`` (never committed) and its ``tests/`` extracted into a temporary folder.
Only the asyncio variants run (the engine's loop is asyncio)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "starlette-suite"
PLUGIN = ROOT / "tests" / "support" / "direct_call_next_plugin.py"
#: The test files of Starlette 1.x whose apps have a ``BaseHTTPMiddleware`` or ``@app.middleware``.
FILES = [
    "tests/middleware/test_base.py",
    "tests/middleware/test_middleware.py",
    "tests/middleware/test_body_limit.py",
    "tests/test_staticfiles.py",
    "tests/test_templates.py",
]


def _sdist() -> Path:
    release = version("starlette")
    target = CACHE / f"starlette-{release}.tar.gz"
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*command, f"starlette=={release}", "-d", str(CACHE)], check=True, timeout=300)
    return target


def _extract(sdist: Path, into: Path) -> None:
    with tarfile.open(sdist) as tar:
        prefix = tar.getnames()[0].split("/")[0] + "/"
        members = []
        for member in tar.getmembers():
            rel = member.name[len(prefix) :] if member.name.startswith(prefix) else ""
            if rel == "pyproject.toml" or rel.startswith("tests/"):
                member.name = rel
                members.append(member)
        tar.extractall(into, members=members, filter="data")


def _run(root: Path, name: str, *plugin: str) -> dict[str, str]:
    """Outcome per test id of one pytest run over ``FILES`` in ``root``."""
    junit = root / f"{name}.xml"
    env = {**os.environ, "FASTRAPI_DIRECT_CALL_NEXT_COUNT": str(root / "served.txt"), "PYTHONPATH": str(root)}
    env.pop("PYTHONSAFEPATH", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:fastrapi_compat", *plugin,
         "-k", "not trio", "--timeout", "30", f"--junitxml={junit}", "-o", "addopts=", *FILES],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if not junit.exists():
        pytest.fail(f"Starlette's suite did not run ({name}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcomes[test_id] = "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
    return outcomes


def test_starlettes_base_http_middleware_tests_pass_with_the_direct_call_next(tmp_path: Path) -> None:
    from starlette.middleware.base import BaseHTTPMiddleware

    from fastrapi_compat.plan import internals

    layer = BaseHTTPMiddleware(app=None, dispatch=None)  # type: ignore[arg-type]
    if not internals.direct_call_next(layer):
        # Another Starlette than the one verified: the engine keeps its own call_next, and its
        # suite tests Starlette's code only (asserted just above).
        pytest.skip(f"starlette {version('starlette')}: the engine keeps Starlette's own call_next")
    _extract(_sdist(), tmp_path)
    shutil.copy(PLUGIN, tmp_path / "fastrapi_direct_call_next.py")
    stock = _run(tmp_path, "stock")
    direct = _run(tmp_path, "direct", "-p", "fastrapi_direct_call_next")
    passed = sorted(test for test, outcome in stock.items() if outcome == "passed")
    assert len(passed) > 100, stock  # the suite really ran
    regressions = [test for test in passed if direct.get(test) != "passed"]
    assert regressions == [], f"pass on stock Starlette, not with the direct call_next: {regressions}"
    served = int((tmp_path / "served.txt").read_text())
    assert served >= 40, f"only {served} requests went through the direct call_next"
