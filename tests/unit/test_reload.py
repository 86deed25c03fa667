"""``run --reload`` (issue 22): the server restarts when a watched file changes, with uvicorn's
``--reload-dir/-include/-exclude/-delay`` (watchfiles); polled, bounded."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fastrapi_compat.serve.reload import ReloadOptions

DEADLINE = 60.0
APP = """from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def version() -> dict[str, int]:
    return {{"version": {version}}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def version(port: int) -> int | None:
    try:
        return int(httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()["version"])
    except httpx.TransportError:
        return None


def wait_for_version(port: int, wanted: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while version(port) != wanted:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_an_edit_is_served_and_an_excluded_file_is_not_watched(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "main.py").write_text(APP.format(version=1))
    log, port = tmp_path / "server.log", free_port()
    argv = [sys.executable, "-m", "fastrapi_compat", "run", "main:app", "--app-dir", str(app_dir),
            "--port", str(port), "--reload", "--reload-dir", str(app_dir), "--reload-exclude", "skip_*.py",
            "--reload-include", "*.cfg", "--reload-delay", "0.1"]  # fmt: skip
    with log.open("w") as err:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=tmp_path)
    try:
        wait_for_version(port, 1, process, log)
        (app_dir / "skip_me.py").write_text("x = 1\n")
        (app_dir / "main.py").write_text(APP.format(version=2))
        wait_for_version(port, 2, process, log)
        (app_dir / "settings.cfg").write_text("a = 1\n")  # an included pattern restarts too
        deadline = time.monotonic() + DEADLINE
        while "settings.cfg" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        wait_for_version(port, 2, process, log)
    finally:
        process.terminate()
        process.wait(30)
    logged = log.read_text()
    assert process.returncode == 0, logged
    assert "Started reloader process" in logged
    assert "WatchFiles detected changes in 'app/main.py'. Reloading..." in logged, logged
    assert "skip_me.py" not in logged


def wait_for_log(log: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE
    while text not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_an_app_that_does_not_start_is_started_at_the_next_change(tmp_path: Path) -> None:
    """As uvicorn's reloader: a broken app at startup prints its error and the reloader keeps
    watching (no exit, no restart loop); a broken edit later leaves the running server serving."""
    (tmp_path / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI(\n")
    log, port = tmp_path / "server.log", free_port()
    argv = [sys.executable, "-m", "fastrapi_compat", "run", "main:app", "--port", str(port),
            "--reload", "--reload-delay", "0.1"]  # fmt: skip
    with log.open("w") as err:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=tmp_path)
    try:
        wait_for_log(log, "waiting for a change to start it again", process)
        assert "SyntaxError" in log.read_text()
        assert version(port) is None
        (tmp_path / "main.py").write_text(APP.format(version=1))
        wait_for_version(port, 1, process, log)
        (tmp_path / "main.py").write_text("raise RuntimeError('broken edit')\n")
        wait_for_log(log, "RuntimeError: broken edit", process)
        wait_for_log(log, "keeps serving", process)
        assert version(port) == 1
        (tmp_path / "main.py").write_text(APP.format(version=2))
        wait_for_version(port, 2, process, log)
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode == 0, log.read_text()
    assert log.read_text().count("SyntaxError") == 1, log.read_text()  # started once, not in a loop


def test_uvicorns_filters(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    options = ReloadOptions.from_flags([str(tmp_path)], ["*.txt"], [".*", str(tmp_path / "build")], 0.25)
    assert options.watched(tmp_path / "a.py")
    assert options.watched(tmp_path / "notes.txt")
    assert not options.watched(tmp_path / "a.pyc")
    assert not options.watched(tmp_path / "build" / "gen.py")
    assert not options.watched(tmp_path / "data.json")
    assert sorted(options.excludes) == [".*", ".py[cod]", ".sw.*", "~*"]  # ".*" given again: kept once
    without_py = ReloadOptions.from_flags([str(tmp_path)], [], ["*.py"], 0.25)
    assert not without_py.watched(tmp_path / "a.py")
    with pytest.raises(Exception, match="is not a directory"):
        ReloadOptions.from_flags([str(tmp_path / "missing")], [], [], 0.25)
