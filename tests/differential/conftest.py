"""Fixtures for the differential tests.

``tests/`` goes on ``sys.path`` so the modules can import ``support`` and ``apps`` whatever
pytest's import mode. Each test module builds its own module-scoped server pair with
``pair_fixture(create_app)``, so each app's two servers start once per module.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS_DIR = str(Path(__file__).resolve().parent.parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from support.pairs import pair_fixture
from support.servers import ServerPair

__all__ = ["ServerPair", "pair_fixture"]
