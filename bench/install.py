"""What the harness needs, installed when missing: Python packages with pip, wrk with apt.

Each ``ensure_*`` returns None when the thing is there (or was installed), else one line
saying why not; the caller skips what depends on it and says so.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys

FASTRAPI_VERSION = "0.2.11"


def _log(message: str) -> None:
    print(f"[install] {message}", flush=True)


def _pip_install(*specs: str) -> str | None:
    _log("pip install " + " ".join(specs))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *specs,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"},
    )
    if done.returncode == 0:
        importlib.invalidate_caches()
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return f"pip install {' '.join(specs)} failed: {lines[-1] if lines else done.returncode}"


def _has_modules(*names: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in names)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def ensure_uvicorn() -> str | None:
    if _has_modules("uvicorn", "uvloop", "httptools"):
        return None
    return _pip_install("uvicorn[standard]")


def ensure_granian() -> str | None:
    if _has_modules("granian"):
        return None
    return _pip_install("granian")


def ensure_fastrapi() -> str | None:
    if _version("fastrapi") == FASTRAPI_VERSION:
        return None
    return _pip_install(f"fastrapi=={FASTRAPI_VERSION}")


def ensure_matplotlib() -> str | None:
    if _has_modules("matplotlib"):
        return None
    return _pip_install("matplotlib")


def py_spy_path() -> str:
    """py-spy on ``PATH``, else the one pip put next to this interpreter (a venv not activated)."""
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return shutil.which("py-spy") or (beside if os.path.exists(beside) else "py-spy")


def ensure_py_spy() -> str | None:
    if shutil.which(py_spy_path()):
        return None
    problem = _pip_install("py-spy")
    if problem is None and not shutil.which(py_spy_path()):
        return "pip installed py-spy but its executable was not found"
    return problem


def ensure_packages(distributions: tuple[str, ...], install: bool = True) -> str | None:
    """Python distributions (by pip name) installed when missing: None when all are there."""
    missing = [name for name in distributions if _version(name) is None]
    if not missing:
        return None
    if not install:
        return f"not installed (--no-install): {', '.join(missing)}"
    return _pip_install(*missing)


INSTRUMENT_DISTRIBUTIONS = (
    "sentry-sdk",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-fastapi",
    "prometheus-fastapi-instrumentator",
)


def instrument_versions() -> dict[str, str | None]:
    """The versions of the instrumented app's libraries."""
    return {name: _version(name) for name in INSTRUMENT_DISTRIBUTIONS}


def ensure_wrk() -> str | None:
    if shutil.which("wrk"):
        return None
    return _apt_install("wrk", "wrk")


def _apt_install(package: str, command: str) -> str | None:
    """Installs Debian's ``package`` with apt-get; why not (``None`` once ``command`` is there)."""
    if not shutil.which("apt-get"):
        return f"{package} is not installed and there is no apt-get to install it"
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
        _log(" ".join(argv))
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return f"{' '.join(argv)} failed: {lines[-1] if lines else done.returncode}"
    return None if shutil.which(command) else f"apt-get install {package} did not provide {command}"


def ensure_taskset() -> str | None:
    return None if shutil.which("taskset") else "taskset not found (util-linux): not pinning"


def versions() -> dict[str, str | None]:
    """Versions of everything that shapes the numbers."""
    names = (
        "fastapi", "starlette", "pydantic", "pydantic-core", "uvicorn", "uvloop", "httptools",
        "granian", "fastrapi", "fastrapi-compat",
    )  # fmt: skip
    found: dict[str, str | None] = {name: _version(name) for name in names}
    found["python"] = sys.version.split()[0]
    try:
        found["wrk"] = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout.split()[
            1
        ]
    except (OSError, IndexError):
        found["wrk"] = None
    return found


def ensure_valgrind() -> str | None:
    """valgrind (with callgrind_control) for ``python -m bench.callgrind``, with apt-get when
    missing (as wrk)."""
    if shutil.which("valgrind") and shutil.which("callgrind_control"):
        return None
    return _apt_install("valgrind", "callgrind_control")
