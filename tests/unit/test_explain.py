"""`fastrapi-compat explain`: per route tier and reason, per middleware native or not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def explain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastrapi_compat", "explain", *args, "--app-dir", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_json_shape_for_the_crud_example() -> None:
    result = explain("examples.crud:app", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"routes", "middleware", "misses"}
    assert data["misses"] == {"tier": "native", "reason": ""}
    paths = {(r["path"], tuple(r["methods"] or ())) for r in data["routes"]}
    assert ("/items/{item_id}", ("DELETE",)) in paths
    assert ("/openapi.json", ("GET", "HEAD")) in paths
    for route in data["routes"]:
        assert set(route) == {"path", "methods", "tier", "reason", "under"}
        assert route["tier"] in ("native", "asgi")
        assert route["under"] == ""  # CORS runs in Rust: nothing in Python around the routes
        assert route["tier"] == "native" or route["reason"]
    # Starlette's CORSMiddleware runs natively (in Rust) on the verified Starlette release.
    assert [(m["name"], m["native"]) for m in data["middleware"]] == [("CORSMiddleware", True)]


def test_table_and_bad_target() -> None:
    table = explain("examples.hello:app")
    assert table.returncode == 0, table.stderr
    assert "PATH" in table.stdout
    assert "6 of 6 routes native" in table.stdout, table.stdout
    bad = explain("examples.nope:app")
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1
