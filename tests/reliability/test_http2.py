"""HTTP/2 (issue 22) through hyper: chosen by ALPN over TLS and by the connection preface in
cleartext (h2c with prior knowledge), with ``--http auto`` (the default) or ``h2``; ``h11`` and
``httptools`` keep to HTTP/1.1. The scope says ``http_version: "2"``; the native tier, the
ASGI tier, request bodies and streaming responses answer over HTTP/2 what uvicorn answers over
HTTP/1.1 (uvicorn has no HTTP/2); websockets stay on HTTP/1.1."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apps.tls import create_app
from support.certs import Pki, make_pki
from support.servers import UvicornThread, engine_server
from websockets.sync.client import connect as ws_connect

#: ``transfer-encoding`` is HTTP/1.1 framing, which HTTP/2 does without (RFC 9113 8.2.2).
IGNORED_HEADERS = {"date", "transfer-encoding"}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def tls_options(pki: Pki) -> dict[str, Any]:
    return {"ssl_certfile": str(pki.cert), "ssl_keyfile": str(pki.key)}


def h2_client(pki: Pki | None) -> httpx.Client:
    """HTTP/2 only: by ALPN over TLS, with prior knowledge in cleartext."""
    verify: ssl.SSLContext | bool = True if pki is None else ssl.create_default_context(cafile=str(pki.ca))
    return httpx.Client(http1=False, http2=True, verify=verify, timeout=10)


def answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.items() if k not in IGNORED_HEADERS]
    return response.status_code, headers, response.content


@pytest.fixture(params=["tls", "h2c"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def servers(mode: str, pki: Pki) -> Iterator[tuple[Any, Any, str]]:
    """uvicorn (HTTP/1.1) and the engine, and the scheme to reach them with."""
    options = tls_options(pki) if mode == "tls" else {}
    with UvicornThread(create_app(), **options) as reference, engine_server(create_app(), **options) as engine:
        yield reference, engine, "https" if mode == "tls" else "http"


REQUESTS = [
    ("GET", "/items/7?q=x", None),
    ("GET", "/items/nope", None),
    ("POST", "/echo", b"y" * 300_000),
    ("GET", "/stream", None),
    ("GET", "/missing", None),
]


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
def test_http2_answers_what_uvicorn_answers_over_http1(
    servers: tuple[Any, Any, str], pki: Pki, method: str, path: str, body: bytes | None
) -> None:
    reference, engine, scheme = servers
    with httpx.Client(verify=ssl.create_default_context(cafile=str(pki.ca)), timeout=10) as http1:
        expected = http1.request(method, f"{scheme}://127.0.0.1:{reference.port}{path}", content=body)
    with h2_client(pki if scheme == "https" else None) as http2:
        got = http2.request(method, f"{scheme}://127.0.0.1:{engine.port}{path}", content=body)
    assert got.http_version == "HTTP/2"
    if path == "/echo":
        assert got.json() == {"length": len(body or b""), "http_version": "2"}
        assert expected.json() == {"length": len(body or b""), "http_version": "1.1"}
        return
    assert answer(got) == answer(expected)


@pytest.mark.parametrize("tier", ["auto", "asgi"])
def test_scope_over_http2(mode: str, pki: Pki, tier: str) -> None:
    """``request.url`` and the scope, from the native tier (``auto``) and the ASGI tier."""
    options = tls_options(pki) if mode == "tls" else {}
    scheme = "https" if mode == "tls" else "http"
    with engine_server(create_app(), tier=tier, **options) as engine:
        base = f"{scheme}://127.0.0.1:{engine.port}"
        before = engine.stats()["native"]
        with h2_client(pki if scheme == "https" else None) as http2:
            response = http2.get(base + "/scope")
        assert engine.stats()["native"] - before == (1 if tier == "auto" else 0)
    assert response.json() == {
        "scheme": scheme,
        "http_version": "2",
        "url": f"{base}/scope",
        "url_for": f"{base}/items/3",
    }


def test_native_tier_over_http2(servers: tuple[Any, Any, str], pki: Pki) -> None:
    _, engine, scheme = servers
    before = engine.stats()["native"]
    with h2_client(pki if scheme == "https" else None) as http2:
        for n in range(20):  # one connection, many streams
            assert http2.get(f"{scheme}://127.0.0.1:{engine.port}/items/{n}").json() == {"item_id": n, "q": ""}
    assert engine.stats()["native"] == before + 20


def test_alpn_falls_back_to_http1_and_websockets_stay_http1(pki: Pki) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca))
    with engine_server(create_app(), **tls_options(pki)) as engine:
        with httpx.Client(verify=context, http2=True, timeout=10) as both:  # offers h2 and http/1.1
            assert both.get(f"https://127.0.0.1:{engine.port}/scope").json()["http_version"] == "2"
        with httpx.Client(verify=context, timeout=10) as http1:  # offers http/1.1 alone
            assert http1.get(f"https://127.0.0.1:{engine.port}/scope").json()["http_version"] == "1.1"
        with ws_connect(f"wss://127.0.0.1:{engine.port}/ws", ssl=context, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["scheme"] == "wss"


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_http1_only_implementations_do_not_serve_http2(pki: Pki, http: str) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca))
    with engine_server(create_app(), http=http, **tls_options(pki)) as engine:
        with httpx.Client(verify=context, http2=True, timeout=10) as client:
            response = client.get(f"https://127.0.0.1:{engine.port}/scope")
        assert response.http_version == "HTTP/1.1"
    with engine_server(create_app(), http=http) as engine:
        # the h2c preface is not taken as HTTP/2: refused as HTTP/1.1 (or the connection closed)
        with socket.create_connection(("127.0.0.1", engine.port), timeout=10) as sock:
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            reply = sock.recv(1024)
            assert reply == b"" or reply.startswith(b"HTTP/1.1 4"), reply


def test_h2_value_serves_both(pki: Pki) -> None:
    with engine_server(create_app(), http="h2") as engine:
        with h2_client(None) as http2:
            assert http2.get(f"http://127.0.0.1:{engine.port}/items/1").http_version == "HTTP/2"
        with httpx.Client(timeout=10) as http1:
            assert http1.get(f"http://127.0.0.1:{engine.port}/items/1").http_version == "HTTP/1.1"


def test_many_concurrent_streams(pki: Pki) -> None:
    """64 streams at once on one connection, each answered on its own."""

    async def fetch_all(url: str) -> list[Any]:
        context = ssl.create_default_context(cafile=str(pki.ca))
        async with httpx.AsyncClient(http1=False, http2=True, verify=context, timeout=10) as http2:
            responses = await asyncio.gather(*(http2.get(f"{url}/items/{n}") for n in range(64)))
        assert {r.http_version for r in responses} == {"HTTP/2"}
        return [r.json()["item_id"] for r in responses]

    with engine_server(create_app(), **tls_options(pki)) as engine:
        assert asyncio.run(fetch_all(f"https://127.0.0.1:{engine.port}")) == list(range(64))


def test_idle_http2_connection_closed_after_the_keep_alive_timeout() -> None:
    """An HTTP/2 connection nothing is asked of gets GOAWAY after ``timeout_keep_alive``, as an
    idle HTTP/1.1 connection is closed (hyper's HTTP/2 has no header read timeout)."""
    import h2.config
    import h2.connection

    with engine_server(create_app(), timeout_keep_alive=0.5) as engine:
        with socket.create_connection(("127.0.0.1", engine.port), timeout=10) as sock:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            stream = conn.get_next_available_stream_id()
            conn.send_headers(
                stream,
                [(":method", "GET"), (":path", "/items/1"), (":scheme", "http"), (":authority", "127.0.0.1")],
                end_stream=True,
            )
            sock.sendall(conn.data_to_send())
            received = b""
            # closed by the server: a recv() that waited 10 s would raise TimeoutError
            while data := sock.recv(65536):
                received += data
    frames = []  # (type, stream) of each frame (RFC 9113 4.1: 9-byte headers)
    while len(received) >= 9:
        length = int.from_bytes(received[:3], "big")
        frames.append((received[3], int.from_bytes(received[5:9], "big") & 0x7FFFFFFF))
        received = received[9 + length :]
    assert (0x1, stream) in frames  # the answer's HEADERS
    assert frames.index((0x1, stream)) < frames.index((0x7, 0))  # then GOAWAY


H2LOAD_REQUESTS = 5000


@pytest.mark.parametrize("mode", ["tls", "h2c"])
def test_h2load_bounded_run_without_failures(pki: Pki, mode: str) -> None:
    """A bounded load run with nghttp2's h2load (installed by scripts/test): 5,000 requests on
    4 connections, 10 streams each at a time, to a native route; every one answered 200."""
    h2load = shutil.which("h2load")
    assert h2load is not None, "h2load (Debian's nghttp2-client) is not installed: scripts/test installs it"
    options = tls_options(pki) if mode == "tls" else {}
    scheme = "https" if mode == "tls" else "http"
    with engine_server(create_app(), **options) as engine:
        result = subprocess.run(
            [h2load, "-n", str(H2LOAD_REQUESTS), "-c", "4", "-m", "10", f"{scheme}://127.0.0.1:{engine.port}/items/1"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{H2LOAD_REQUESTS} succeeded, 0 failed, 0 errored" in result.stdout, result.stdout
    assert f"status codes: {H2LOAD_REQUESTS} 2xx" in result.stdout, result.stdout
    protocol = "h2" if mode == "tls" else "h2c"
    assert f"Application protocol: {protocol}\n" in result.stdout, result.stdout
