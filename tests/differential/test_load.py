"""Load: 200 concurrent keep-alive connections x 50 requests each against the engine.

The load generator (``support/loadgen.py``) runs in a subprocess so it does not compete with
the in-process server for the GIL. Every answer must be 200 with the body its own request
implies (a response delivered to the wrong connection fails), no request may error, all 200
connections are open at once (a barrier after each client's first request), and each client
keeps its one connection (keep-alive).
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apps import load
from support import loadgen
from support.servers import engine_server

CONNECTIONS = 200
REQUESTS_PER_CONNECTION = 50


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    with engine_server(load.create_app()) as server:
        yield server


def test_concurrent_load(engine: Any) -> None:
    assert engine.url.startswith("http://127.0.0.1:")
    completed = subprocess.run(
        [
            sys.executable,
            str(Path(loadgen.__file__)),
            engine.url,
            str(CONNECTIONS),
            str(REQUESTS_PER_CONNECTION),
        ],
        capture_output=True,
        text=True,
        timeout=loadgen.OVERALL_TIMEOUT + 10,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout)
    total = CONNECTIONS * REQUESTS_PER_CONNECTION
    errors = result["errors"]
    assert not errors, f"{len(errors)} of {total} requests failed; first ones:\n" + "\n".join(errors[:20])
    assert result["ok"] == total
    ports: dict[str, list[int]] = result["ports"]
    assert len(ports) == CONNECTIONS
    # One port per client: the server's request.client.port is the client's own local port.
    mismatched = {client: seen for client, seen in ports.items() if len(seen) != 1}
    assert not mismatched, (
        f"client ports seen by the server differ from the clients' own: {list(mismatched.items())[:5]}"
    )
    assert len({seen[0] for seen in ports.values()}) == CONNECTIONS
    print(f"{total} requests over {CONNECTIONS} connections in {result['seconds']:.1f}s")


def test_server_still_healthy_after_load(engine: Any) -> None:
    with httpx.Client(base_url=engine.url) as http:
        response = http.get("/async/1/2?tag=x")
    assert response.status_code == 200
    assert response.json() == {"client": 1, "seq": 2, "tag": "x", "sum": 1002}
