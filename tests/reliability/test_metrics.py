"""The Prometheus endpoint the engine serves on a port of its own (``--metrics-port``, issue 22):
known requests (native, ASGI tier, 404, 405, 500, a websocket) counted exactly by route template,
method, status and tier; a path parameter's label set bounded; the gauges back at zero; each
worker of ``run --workers 2`` with its own endpoint and ``worker`` label. The exposition is
parsed with ``prometheus_client``'s OpenMetrics parser (the format the crate writes)."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from websockets.sync.client import connect as ws_connect

from fastrapi_compat.serve.server import ServerThread

TESTS_DIR = Path(__file__).resolve().parent.parent
DEADLINE = 30.0

Key = tuple[str, str, str, str]


def scrape(port: int) -> dict[str, Any]:
    """The families of one scrape, by name."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def request_counts(families: dict[str, Any]) -> dict[Key, float]:
    """``fastrapi_requests_total`` by ``(route, method, status, tier)``."""
    return {
        (s.labels["route"], s.labels["method"], s.labels["status"], s.labels["tier"]): s.value
        for s in families["fastrapi_requests"].samples
        if s.name == "fastrapi_requests_total"
    }


def duration_counts(families: dict[str, Any]) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["route"], s.labels["method"], s.labels["tier"]): s.value
        for s in families["fastrapi_request_duration_seconds"].samples
        if s.name == "fastrapi_request_duration_seconds_count"
    }


def gauge(families: dict[str, Any], name: str) -> float:
    (sample,) = families[name].samples
    return float(sample.value)


def settled(port: int, answered: int) -> dict[str, Any]:
    """A scrape once every response's body is done (the durations are observed then, a moment
    after the client has read it): ``answered`` durations, nothing in flight, no websocket."""
    deadline = time.monotonic() + DEADLINE
    while True:
        families = scrape(port)
        quiet = all(gauge(families, f"fastrapi_{g}") == 0 for g in ("requests_in_flight", "websockets_open"))
        if quiet and sum(duration_counts(families).values()) == answered:
            return families
        assert time.monotonic() < deadline, f"metrics never settled: {families}"
        time.sleep(0.02)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    from apps.metrics import app

    with ServerThread(app, metrics_port=0, access_log=False) as running:
        yield running


def metrics_port(server: ServerThread) -> int:
    assert server.server.metrics_bound is not None
    return server.server.metrics_bound[1]


def test_counts_by_route_method_status_and_tier(server: ServerThread) -> None:
    port = metrics_port(server)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for item in (1, 1, 1, 2):
            assert client.get(f"/items/{item}").json() == {"item_id": item}
        assert client.get("/asgi/a").text == "asgi a"
        assert client.get("/asgi/b").text == "asgi b"
        assert client.get("/nowhere").status_code == 404
        assert client.post("/items/1").status_code == 405
        assert client.get("/items/x").status_code == 422
        # last on the connection: after an app's exception the server closes it (as uvicorn
        # does) with no `connection: close`, so a request sent next could meet the close
        assert client.get("/boom").status_code == 500
    with ws_connect(f"ws://127.0.0.1:{server.port}/ws/lobby") as ws:
        assert ws.recv() == "lobby"
    families = settled(port, answered=11)
    assert request_counts(families) == {
        ("/items/{item_id}", "GET", "200", "native"): 4,
        ("/items/{item_id}", "GET", "422", "native"): 1,
        ("/items/{item_id}", "POST", "405", "native"): 1,
        ("/asgi/{path}", "GET", "200", "asgi"): 2,
        ("<unmatched>", "GET", "404", "native"): 1,
        ("/boom", "GET", "500", "native"): 1,
        ("/ws/{room}", "GET", "101", "asgi"): 1,
    }
    assert duration_counts(families) == {
        ("/items/{item_id}", "GET", "native"): 5,
        ("/items/{item_id}", "POST", "native"): 1,
        ("/asgi/{path}", "GET", "asgi"): 2,
        ("<unmatched>", "GET", "native"): 1,
        ("/boom", "GET", "native"): 1,
        ("/ws/{room}", "GET", "asgi"): 1,
    }
    # the engine's own counters agree: 10 HTTP requests, 7 of them native, 1 websocket
    assert server.stats() == {"http": 10, "native": 8, "websocket": 1}
    assert gauge(families, "fastrapi_connections_open") == 0  # the clients are closed


def test_rust_only_answers_and_gauges(server: ServerThread) -> None:
    port = metrics_port(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # a header line ending in a bare LF: the engine answers 400 before any Python runs
        sock.sendall(b"GET /items/1 HTTP/1.1\r\nHost: x\nX: y\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle:
        idle.sendall(b"GET /items/7 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b'{"item_id":7}' in idle.recv(65536)
        families = settled(port, answered=2)
        assert gauge(families, "fastrapi_connections_open") == 1  # this keep-alive one
    assert request_counts(families) == {
        ("<unmatched>", "GET", "400", "rust"): 1,
        ("/items/{item_id}", "GET", "200", "native"): 1,
    }


def test_path_parameters_keep_the_label_set_bounded(server: ServerThread) -> None:
    port = metrics_port(server)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for n in range(100):
            assert client.get(f"/items/{n}").status_code == 200
            assert client.get(f"/missing/{n}").status_code == 404
            assert client.get(f"/asgi/n{n}").status_code == 200
    families = settled(port, answered=300)
    assert request_counts(families) == {
        ("/items/{item_id}", "GET", "200", "native"): 100,
        ("<unmatched>", "GET", "404", "native"): 100,
        ("/asgi/{path}", "GET", "200", "asgi"): 100,
    }
    routes = {s.labels["route"] for f in families.values() for s in f.samples if "route" in s.labels}
    assert routes == {"/items/{item_id}", "<unmatched>", "/asgi/{path}"}


def test_other_paths_and_methods_of_the_endpoint(server: ServerThread) -> None:
    port = metrics_port(server)
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 404
    assert httpx.post(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 405


# -- the command line: the log line, --workers, a bad port -----------------------------------


def start(*flags: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    command = [sys.executable, "-m", "fastrapi_compat", "run", "apps.metrics:app", "--app-dir", str(TESTS_DIR)]
    return subprocess.Popen(
        [*command, "--no-access-log", *flags],
        cwd=TESTS_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        bufsize=0,  # unbuffered: select() on the pipe sees every line not yet read
    )


def read_until(process: subprocess.Popen[bytes], pattern: str, count: int) -> list[re.Match[str]]:
    """The first ``count`` stderr lines matching ``pattern``, read as they come."""
    assert process.stderr is not None
    found: list[re.Match[str]] = []
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE
    while len(found) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"no {count} lines like {pattern!r} in {seen}"
        if select.select([process.stderr], [], [], left)[0]:
            line = process.stderr.readline().decode(errors="replace")
            assert line, f"the server exited: {seen}"
            seen.append(line)
            if match := re.search(pattern, line):
                found.append(match)
    return found


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(DEADLINE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_each_worker_serves_its_own_metrics() -> None:
    process = start("--port", "0", "--workers", "2", "--metrics-port", "0")
    try:
        ports = sorted(int(m[1]) for m in read_until(process, r"Metrics on http://127\.0\.0\.1:(\d+)/metrics", 2))
        (serving,) = read_until(process, r"running on http://127\.0\.0\.1:(\d+) with 2 workers", 1)
        total = 40
        for n in range(total):  # a new connection each: the kernel spreads them over the workers
            response = httpx.get(f"http://127.0.0.1:{serving[1]}/items/{n}", timeout=10)
            assert response.status_code == 200
        workers: dict[str, float] = {}
        for port in ports:
            families = scrape(port)
            counts = request_counts(families)
            (sample,) = [s for s in families["fastrapi_connections_open"].samples]
            assert set(counts) <= {("/items/{item_id}", "GET", "200", "native")}
            workers[sample.labels["worker"]] = sum(counts.values())
        assert sorted(workers) == ["0", "1"]
        assert sum(workers.values()) == total
    finally:
        assert stop(process) == 0


def test_a_metrics_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start("--port", "0", "--metrics-port", str(port))
        _, raw = process.communicate(timeout=DEADLINE)
    assert process.returncode == 1
    stderr = raw.decode(errors="replace")
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: cannot bind the metrics endpoint to 127.0.0.1:{port}: address already in use"], stderr
