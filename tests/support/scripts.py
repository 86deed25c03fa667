"""A test script run in a process of its own (SDKs such as sentry_sdk patch libraries for good):
``run_script(SCRIPT, *args)`` runs ``python -c SCRIPT args...`` with a bare environment and
returns the JSON object its last stdout line holds."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def run_script(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs ``script`` with ``args``; ``env`` is added to ``FASTRAPI_TIER=auto``, an empty
    ``PATH`` and ``HOME=/tmp``. Fails the test with the script's stderr when it exits non-zero."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"FASTRAPI_TIER": "auto", "PATH": "", "HOME": "/tmp", **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
