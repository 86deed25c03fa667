"""`fastrapi-compat explain`: per route tier and reason, per middleware native or not."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

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


# -- a reader that goes away (explain ... | head -1) -----------------------------------------

# Enough routes that the output outgrows a pipe's buffer: `head -1` exits while explain writes.
MANY_ROUTES = """
from fastapi import FastAPI

app = FastAPI()
for i in range(1500):
    app.add_api_route(f"/route/{i}/with/a/longer/path", lambda: {}, methods=["GET"], name=f"r{i}")
"""


@pytest.mark.parametrize("json_flag", [["--json"], []], ids=["json", "table"])
@pytest.mark.parametrize("app", ["examples.crud:app", "many_routes:app"])
def test_a_closed_pipe_ends_quietly(tmp_path: Path, app: str, json_flag: list[str]) -> None:
    """stdout's read end is closed before explain writes a byte: it dies of SIGPIPE, as other
    tools do, with nothing on stderr (no BrokenPipeError traceback, no 'Exception ignored')."""
    (tmp_path / "many_routes.py").write_text(MANY_ROUTES)
    app_dir = ROOT if app.startswith("examples.") else tmp_path
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "fastrapi_compat", "explain", app, *json_flag, "--app-dir", str(app_dir)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == -signal.SIGPIPE


@pytest.mark.parametrize("json_flag", ["--json", ""], ids=["json", "table"])
def test_piped_into_head(tmp_path: Path, json_flag: str) -> None:
    """The issue's command line, in a shell: one line out, nothing on stderr, and the shell sees
    explain die of SIGPIPE (141) as it sees `seq 1000000 | head -1`."""
    (tmp_path / "many_routes.py").write_text(MANY_ROUTES)
    command = (
        f"{shlex.quote(sys.executable)} -m fastrapi_compat explain many_routes:app {json_flag} "
        f'--app-dir {shlex.quote(str(tmp_path))} | head -1; echo "status ${{PIPESTATUS[0]}}"'
    )
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.stderr == ""
    first, status = result.stdout.splitlines()
    assert first.startswith("{" if json_flag else "PATH")
    assert status == "status 141"
