"""uvicorn's proxy headers (issue 22): from a trusted peer (127.0.0.1 by default, or
``forwarded_allow_ips``), ``X-Forwarded-Proto`` sets the scope's scheme and ``X-Forwarded-For``
its client, over http and websockets; from anyone else, or with ``proxy_headers=False``,
nothing changes. Each case is sent to uvicorn and the engine and the scopes compared."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from apps import proxy
from support.servers import UvicornThread, engine_server
from websockets.sync.client import connect

HEADERS: dict[str, list[tuple[str, str]]] = {
    "none": [],
    "https": [("x-forwarded-proto", "https")],
    "proto upper case": [("x-forwarded-proto", "HTTPS")],
    "proto unknown": [("x-forwarded-proto", "ftp")],
    "proto wss": [("x-forwarded-proto", "wss")],
    "two protos": [("x-forwarded-proto", "http"), ("x-forwarded-proto", "https")],
    "for one": [("x-forwarded-for", "203.0.113.7")],
    "for with port": [("x-forwarded-for", "203.0.113.7:4711")],
    "for v6": [("x-forwarded-for", "[2001:db8::1]:443")],
    "for chain": [("x-forwarded-for", "198.51.100.1, 203.0.113.7, 127.0.0.1")],
    "for two headers": [("x-forwarded-for", "198.51.100.1"), ("x-forwarded-for", "203.0.113.7")],
    "for empty": [("x-forwarded-for", "")],
    "for not an address": [("x-forwarded-for", "unknown")],
    "for all trusted": [("x-forwarded-for", "127.0.0.1, 127.0.0.1")],
    "both": [("x-forwarded-proto", "https"), ("x-forwarded-for", "203.0.113.7")],
}

OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "off": {"proxy_headers": False},
    "star": {"forwarded_allow_ips": "*"},
    "network": {"forwarded_allow_ips": "127.0.0.0/8, 203.0.113.0/24"},
    "list": {"forwarded_allow_ips": ["10.0.0.1", "127.0.0.1"]},
    "other proxy": {"forwarded_allow_ips": "10.0.0.1"},
}


@pytest.fixture(scope="module", params=list(OPTIONS))
def ports(request: pytest.FixtureRequest) -> Iterator[dict[str, int]]:
    options = OPTIONS[request.param]
    with (
        UvicornThread(proxy.create_app(), **options) as reference,
        engine_server(proxy.create_app(), **options) as engine,
    ):
        yield {"uvicorn": reference.port, "engine": engine.port}


def _normal(seen: dict[str, Any], port: int) -> dict[str, Any]:
    """The peer's own port differs per connection and the server's per side."""
    client = seen["client"]
    if client[0] == "127.0.0.1":
        client[1] = "<peer port>"
    seen["url"] = seen["url"].replace(str(port), "<PORT>")
    return seen


@pytest.mark.parametrize("case", list(HEADERS))
def test_http_scope(ports: dict[str, int], case: str) -> None:
    got = {}
    for name, port in ports.items():
        response = httpx.get(f"http://127.0.0.1:{port}/who", headers=HEADERS[case], timeout=10)
        assert response.status_code == 200
        got[name] = _normal(response.json(), port)
    assert got["engine"] == got["uvicorn"]


@pytest.mark.parametrize("case", ["none", "https", "proto wss", "both", "for chain"])
def test_websocket_scope(ports: dict[str, int], case: str) -> None:
    got = {}
    for name, port in ports.items():
        with connect(f"ws://127.0.0.1:{port}/who", additional_headers=HEADERS[case], open_timeout=10) as ws:
            got[name] = _normal(json.loads(ws.recv(timeout=10)), port)
        with contextlib.suppress(Exception):
            ws.close()
    assert got["engine"] == got["uvicorn"]
