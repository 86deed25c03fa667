"""A bounded soak (issue 22): the engine's resident memory grows less than 5 % over a run of
keep-alive requests after a warm-up; uvicorn's figure is measured beside it, for the README.

The CI count is small (30,000 requests after 5,000 of warm-up); ``FASTRAPI_SOAK_REQUESTS``
sets it (the README's figure: ``FASTRAPI_SOAK_REQUESTS=1000000``)."""

from __future__ import annotations

import os

import pytest
from support.process_server import ProcessServer
from support.steady_load import Load

APP = "apps.drain:create_app"
WARM_UP = 5_000
REQUESTS = int(os.environ.get("FASTRAPI_SOAK_REQUESTS", "30000"))
pytestmark = pytest.mark.timeout(max(600, REQUESTS // 100))


@pytest.mark.parametrize("kind", ["uvicorn", "engine"])
def test_rss_growth_after_warm_up(kind: str) -> None:
    with ProcessServer(kind, APP) as server:
        with Load(server.port, clients=4, path="/pid") as load:
            load.wait_for(lambda: load.answered() >= WARM_UP, "the warm-up", timeout=300)
            before = server.rss()
            load.wait_for(lambda: load.answered() >= WARM_UP + REQUESTS, "the soak", timeout=max(600, REQUESTS / 200))
            after = server.rss()
    growth = (after - before) / before * 100
    print(f"\nsoak {kind}: {load.answered()} requests, RSS {before:.1f} -> {after:.1f} MiB ({growth:+.2f} %)")
    assert load.failed() == []
    if kind == "engine":
        assert growth < 5, (before, after)
