"""Fixtures for the older-Starlette middleware tests: ``tests/`` on ``sys.path`` (for
``support`` and ``apps``), as in ``tests/differential``."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS_DIR = str(Path(__file__).resolve().parent.parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)
