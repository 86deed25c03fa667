"""The native middleware on older Starlette releases, against each release's own.

``tests/releases/`` (native vs uvicorn + stock Starlette, CORS + GZip, TrustedHost,
HTTPSRedirect, Sessions) runs once per release below, in a subprocess that finds that
release's FastAPI, Starlette (and anyio) first on ``sys.path``: ``pip install --target`` into
``.cache/starlette-releases/`` (kept between runs), everything else from this environment. The
releases are the supported range's low end (FastAPI 0.115.0, Starlette 0.38.6), FastAPI 0.128.0
with its Starlette (0.50.0) and releases between whose middleware differ in other ways; the high
end (1.10) is what every other test here runs. (Every other distinct source, 0.38.0 to 1.7.0,
passed the same tests when the switches were written; see ``plan/middleware.py``.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "starlette-releases"
PIP_TIMEOUT = 420.0
RUN_TIMEOUT = 300.0

#: (FastAPI, Starlette, other pins): the releases the subprocess runs on.
RELEASES = [
    ("0.115.0", "0.38.6", ["anyio==4.6.2"]),  # GzipFile, no IdentityResponder, plain-dict sessions
    ("0.116.0", "0.45.3", []),
    ("0.128.0", "0.50.0", []),  # IdentityResponder, event streams excluded by prefix
    ("0.150.0", "1.4.1", []),  # zlib framing without Z_SYNC_FLUSH, Session objects
    # Host validated but not lower-cased, URL text as it is: 1.8 needs Python 3.11 (3.10 takes
    # 1.7, its newest, which differs from 1.8 in its gzip exclusions and sessions).
    ("0.165.0", "1.8.0", []) if sys.version_info >= (3, 11) else ("0.162.5", "1.7.0", []),
]


def installed(fastapi: str, starlette: str, pins: list[str]) -> Path:
    """A folder holding exactly these releases (installed once, then reused)."""
    target = CACHE / f"fastapi-{fastapi}-starlette-{starlette}"
    marker = target / ".complete"
    if marker.exists():
        return target
    requirements = [f"fastapi=={fastapi}", f"starlette=={starlette}", *pins]
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade"]
    command += ["--target", str(target), *requirements]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT, env=env)
    assert result.returncode == 0, f"pip install {' '.join(requirements)} failed:\n{result.stdout}{result.stderr}"
    marker.write_text(" ".join(requirements) + "\n")
    return target


@pytest.mark.parametrize(("fastapi", "starlette", "pins"), RELEASES, ids=[f"starlette-{s}" for _, s, _ in RELEASES])
def test_release(fastapi: str, starlette: str, pins: list[str]) -> None:
    target = installed(fastapi, starlette, pins)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(PYTHONPATH=f"{target}{os.pathsep}{ROOT}", FASTRAPI_EXPECT_STARLETTE=starlette)
    command = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "releases"), "-q", "-p", "no:randomly"]
    # fastrapi_compat's import brings anyio in before pytest's own anyio plugin loads.
    command += ["-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env, cwd=ROOT)
    output = result.stdout + result.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert result.returncode == 0, f"Starlette {starlette}:\n{output[-6000:]}"
    assert re.fullmatch(r"=* ?\d+ passed in [\d.]+s ?=*", summary), f"Starlette {starlette}: {summary}"
