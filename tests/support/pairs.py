"""``pair_fixture``: a module-scoped fixture of a reference/engine server pair and its clients,
shared by ``tests/differential`` and ``tests/releases``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.compare import PairClients
from support.servers import server_pair


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


__all__ = ["pair_fixture"]
