"""Fixtures for the differential tests.

``tests/`` goes on ``sys.path`` so the modules can import ``support`` and ``apps`` whatever
pytest's import mode. Each test module builds its own module-scoped server pair with
``pair_fixture(create_app)``, so each app's two servers start once per module.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent.parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from support.compare import PairClients
from support.servers import ServerPair, server_pair


def pair_fixture(create_app: Callable[[], Any], root_path: str = "") -> Any:
    """A module-scoped fixture yielding ``PairClients`` for two fresh instances of an app."""

    @pytest.fixture(scope="module")
    def fixture() -> Iterator[PairClients]:
        with server_pair(create_app, root_path=root_path) as pair:
            clients = PairClients(pair)
            try:
                yield clients
            finally:
                clients.close()

    return fixture


__all__ = ["ServerPair", "pair_fixture"]
