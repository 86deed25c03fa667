"""Where the benchmark runs: the machine, the repository's commit, and which
``fastrapi_compat`` (with its compiled engine) the server processes import."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PROBE = "import fastrapi_compat, fastrapi_compat._native as n; print(fastrapi_compat.__file__); print(n.__file__)"


def _probe(cwd: Path, safe_path: bool) -> tuple[Path, Path] | None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    if safe_path:
        env["PYTHONSAFEPATH"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    package, native = done.stdout.split()
    return Path(package).parent, Path(native)


class EngineNotFound(RuntimeError):
    pass


def locate_engine() -> tuple[Path, Path]:
    """``(package dir, compiled module)`` of the ``fastrapi_compat`` to benchmark: the source
    tree when its engine is built in place (``make build-dev``), else the installed one."""
    found = _probe(ROOT / "python", safe_path=False) or _probe(Path("/"), safe_path=True)
    if found is None:
        raise EngineNotFound(
            "fastrapi_compat._native cannot be imported, neither from the source tree nor "
            "installed: build it first (make build-dev, or pip install .)"
        )
    return found


def server_env(engine_package: Path) -> dict[str, str]:
    """Environment of every server process: the engine's package and the repository root
    (for ``bench.apps``) first on ``sys.path``, the current directory kept off it."""
    entries = [str(engine_package.parent), str(ROOT)]
    env = dict(os.environ)
    env.pop("FASTRAPI_TIER", None)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(entries))
    env["PYTHONSAFEPATH"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if dirty else "")


def describe_engine(package: Path, native: Path) -> str:
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(native.stat().st_mtime))
    where = "source tree" if package.parent == ROOT / "python" else "installed"
    return f"{package} ({where}; {native.name} built {built})"


def machine() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
    }
