"""The example project's own suite (``examples/shop/tests``) passes the same with and without
``--fastrapi-engine``; with it, the engine serves its requests; and an engine that answers
differently (a tampered JSON renderer, injected by a plugin) is caught by that suite."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# An engine bug, simulated: every native response body has one byte changed.
TAMPER = """
import fastrapi_compat.execute.call as executor

def pytest_configure(config):
    original = executor.NativeCall.__init__

    def init(self, plan, scope, receive, send, respond, *args, **kwargs):
        if respond is not None:
            real = respond

            def respond(status, headers, body):
                real(status, headers, body.replace(b"e", b"E", 1))

        original(self, plan, scope, receive, send, respond, *args, **kwargs)

    executor.NativeCall.__init__ = init
"""


def _project() -> Path:
    """A copy of ``examples/shop`` in a directory of its own, as a user's project would be."""
    global _PROJECT
    if _PROJECT is None:
        root = Path(tempfile.mkdtemp(prefix="shop-project-"))
        (root / "examples").mkdir()
        (root / "examples" / "__init__.py").write_text("")
        shutil.copytree(
            ROOT / "examples" / "shop", root / "examples" / "shop", ignore=shutil.ignore_patterns("__pycache__")
        )
        (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\nfilterwarnings = ['error']\n")
        _PROJECT = root
    return _PROJECT


_PROJECT: Path | None = None


def run_suite(*args: str, tmp_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONSAFEPATH", None)
    if tmp_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "examples/shop/tests", "-q", "-p", "no:cacheprovider", *args],
        cwd=_project(),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_suite_passes_without_the_engine() -> None:
    result = run_suite()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout
    assert "fastrapi-compat engine" not in result.stdout


def test_the_suite_passes_through_the_engine_and_says_so() -> None:
    result = run_suite("--fastrapi-engine")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout
    served = re.search(r"requests served by the engine: (\d+) \(http (\d+)", result.stdout)
    native = re.search(r"native tier: (\d+) of (\d+) HTTP requests", result.stdout)
    assert served and native, result.stdout
    http = int(served.group(2))
    assert http >= 10 and int(native.group(2)) == http
    assert 0 < int(native.group(1)) < http  # the TimedRoute's requests go to the ASGI tier
    assert "route class TimedRoute overrides handle" in result.stdout
    # The migration guide's first step quotes this summary: it must be the real one.
    guide = (ROOT / "migration_docs" / "docs" / "migrate.md").read_text(encoding="utf-8")
    first_step = guide.split("## Step 1", 1)[1].split("## Step 2", 1)[0]
    assert "run your own test suite through the engine" in first_step
    quoted = first_step.split("```text", 1)[1].split("```", 1)[0].strip().splitlines()[1:]
    after = result.stdout.split("fastrapi-compat engine", 1)[1].splitlines()
    summary = [line for line in after if line.strip() and not line.strip().startswith("=")][: len(quoted)]
    assert [line.strip() for line in summary] == [line.strip() for line in quoted]


def test_a_deliberate_difference_is_caught(tmp_path: Path) -> None:
    (tmp_path / "tamper_plugin.py").write_text(TAMPER)
    result = run_suite("--fastrapi-engine", "-p", "tamper_plugin", tmp_path=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed" in result.stdout
    # Without the engine the same tampering changes nothing: the suite still passes.
    assert run_suite("-p", "tamper_plugin", tmp_path=tmp_path).returncode == 0
