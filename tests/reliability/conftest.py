"""The reliability tests: hostile or broken peers, limits and memory, each run against stock
uvicorn and the engine side by side. ``tests/`` goes on ``sys.path`` for ``support`` and ``apps``."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS_DIR = str(Path(__file__).resolve().parent.parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)
