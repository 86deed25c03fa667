"""Throwaway virtual environments for the tests that install the package as a user would.

``lean_venv(folder, requirements)`` makes a venv without the system's packages and installs
``requirements`` (from PyPI, pip's cache on, bounded in time) with the running interpreter's
pip; ``built_wheel()`` is the wheel under test: ``$FASTRAPI_WHEEL`` (``scripts/test`` sets it to
the wheel it built and installed), else the newest wheel in ``dist/`` for this interpreter.
Neither is a skip: a test that needs them fails with what is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 420.0
"""Seconds one pip install may take (a cold cache downloads every wheel from PyPI)."""


class InstallError(Exception):
    """pip could not install the requirements (str: pip's last lines)."""


def built_wheel() -> Path:
    """The wheel of this build for the running interpreter."""
    given = os.environ.get("FASTRAPI_WHEEL")
    if given:
        path = Path(given)
        if not path.is_file():
            raise FileNotFoundError(f"$FASTRAPI_WHEEL={given} does not exist")
        return path.resolve()
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = sorted((ROOT / "dist").glob(f"fastrapi_compat-*-{tag}-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise FileNotFoundError(
            f"no wheel for {tag} in dist/ and $FASTRAPI_WHEEL unset: build one with ./scripts/test "
            "(or maturin build --release -o dist/)"
        )
    return wheels[-1]


def venv_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def lean_venv(folder: Path, requirements: list[str], *, timeout: float = PIP_TIMEOUT) -> Path:
    """A venv at ``folder`` holding only ``requirements`` (and their dependencies); its python.
    Raises :class:`InstallError` when pip fails or runs out of time."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = venv_python(folder)
    env = clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PIP_ROOT_USER_ACTION="ignore")
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", *requirements]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"pip install {' '.join(requirements)} took over {timeout:.0f} s") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise InstallError(f"pip install {' '.join(requirements)} failed:\n{tail}")
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a command run in a lean venv: nothing that points Python elsewhere."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


__all__ = ["InstallError", "built_wheel", "clean_env", "lean_venv", "venv_python"]
