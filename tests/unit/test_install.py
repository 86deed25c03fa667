"""The package installed as a user installs it: the built wheel in a fresh venv holding only what
its extras declare (pip from PyPI, cache on, bounded in time; tests/support/venvs.py).

These tests need the network to PyPI and the wheel (``scripts/test`` builds it and sets
``$FASTRAPI_WHEEL``); without either they fail, they never skip. Marked ``install``:
``-m "not install"`` leaves them out of a quick local run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from support.venvs import built_wheel, clean_env, lean_venv  # noqa: E402

pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]


def test_check_extra_alone_makes_check_work(tmp_path: Path) -> None:
    """``pip install 'WHEEL[check]'`` and nothing else: ``fastrapi-compat check`` runs (on 3.10 it
    says it needs 3.11, which is what the extra's marker leaves out)."""
    python = lean_venv(tmp_path / "venv", [f"{built_wheel()}[check]"])
    script = python.parent / "fastrapi-compat"
    command = [str(script), "check", "examples.hello:app", "--app-dir", str(ROOT), "--max-examples", "3", "--seed", "1"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=clean_env())
    if sys.version_info < (3, 11):
        assert result.returncode == 1
        assert result.stderr.startswith("Error: check needs Python >= 3.11"), result.stderr
        return
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert "no differences; the engine answered" in last, result.stdout
    # nothing beyond the extra: no test tooling came along
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "list", "--format=freeze"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "fastrapi-compat" in names and "schemathesis" in names and "httpx" in names
    assert "uvicorn" not in names, names  # what the test extra would have brought


def test_a_users_suite_through_the_engine_in_a_lean_venv(tmp_path: Path) -> None:
    """A venv holding only fastapi (our wheel's dependency), httpx, pytest and the wheel, as a
    user's project has: the shop's own suite, copied out of the repository, passes with
    ``pytest --fastrapi-engine`` (no websockets, no uvicorn, nothing of our test extras), and the
    summary reports the requests the engine served natively."""
    python = lean_venv(tmp_path / "venv", [str(built_wheel()), "httpx", "pytest"])
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples", project / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "--fastrapi-engine", "examples/shop/tests"],
        cwd=project, capture_output=True, text=True, timeout=300, env=clean_env(),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "8 passed" in output
    assert "fastrapi-compat engine" in output
    assert "requests served by the engine: 12 (http 12, websocket 0)" in output, output
    assert "native tier: 11 of 12 HTTP requests (92%)" in output
    assert "route class TimedRoute overrides handle" in output
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "list", "--format=freeze"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert {"fastrapi-compat", "fastapi", "httpx", "pytest"} <= names
    assert not names & {"websockets", "uvicorn", "schemathesis"}, names
