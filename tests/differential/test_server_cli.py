"""``fastrapi-compat run`` against ``uvicorn`` on the command line (issue 22), each in a child
process with the same flags: ``--uds`` and ``--fd`` (the scope's ``server`` and ``client``, the
access log, the startup line; with ``--workers``), ``--env-file`` (loaded before the app is
imported), ``--log-config`` (JSON, YAML and ini files applied as uvicorn applies them, so the
same log file comes out), ``--use-colors`` and ``--loop``."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

TESTS_DIR = Path(__file__).resolve().parent.parent
APP = "apps.server_flags:app"
STARTUP_DEADLINE = 30.0
KINDS = ["uvicorn", "engine"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CliServer:
    """``uvicorn APP ARGS`` or ``fastrapi-compat run APP ARGS`` in a child process."""

    def __init__(
        self,
        kind: str,
        *args: str,
        pass_fds: tuple[int, ...] = (),
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
    ) -> None:
        """``argv``: another command line than the server's (``kind`` then only names it)."""
        command = ["-m", "uvicorn"] if kind == "uvicorn" else ["-m", "fastrapi_compat", "run"]
        self.kind = kind
        self.process = subprocess.Popen(
            argv or [sys.executable, *command, APP, "--app-dir", str(TESTS_DIR), *args],
            cwd=TESTS_DIR.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=pass_fds,
            env={**os.environ, **(env or {})},
        )
        self.stdout = self.stderr = ""

    def wait_until(self, client: httpx.Client, path: str = "/scope") -> httpx.Response:
        """Polls until the server accepts a connection (with a plain socket: httpx's unix socket
        transport leaks the socket of a failed connect), then asks ``path``."""
        deadline = time.monotonic() + STARTUP_DEADLINE
        address = _address(client)
        while True:
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                pytest.fail(f"{self.kind} exited with {self.process.returncode}:\n{err}")
            family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
            with socket.socket(family) as probe:
                try:
                    probe.connect(address)
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"{self.kind} did not start"
            time.sleep(0.05)
        return client.get(path)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.stdout, self.stderr = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.stdout, self.stderr = self.process.communicate()
            pytest.fail(f"{self.kind} did not stop:\n{self.stderr}")

    def __enter__(self) -> CliServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _address(client: httpx.Client) -> str | tuple[str, int]:
    """Where ``client`` connects: a unix socket path, or host and port."""
    uds = getattr(client, "uds_path", None)
    if uds is not None:
        return str(uds)
    return (str(client.base_url.host), int(client.base_url.port or 80))


def uds_client(path: str) -> httpx.Client:
    client = httpx.Client(transport=httpx.HTTPTransport(uds=path), base_url="http://test", timeout=10)
    client.uds_path = path  # type: ignore[attr-defined]
    return client


def normalized(text: str, *ports: int) -> list[str]:
    """Lines of log output with what differs by nature between the two servers replaced: the
    server's name in its startup line, process ids, ports."""
    text = text.replace("Uvicorn running on", "fastrapi-compat running on")
    text = re.sub(r"\[(\x1b\[36m)?\d+(\x1b\[0m)?\]", "[PID]", text)
    for port in ports:
        text = text.replace(str(port), "PORT")
    text = re.sub(r"127\.0\.0\.1:\d+ -", "127.0.0.1:CLIENT -", text)
    return text.splitlines()


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[str]:
    # unix socket paths are limited to ~107 bytes: keep it short
    path = f"/tmp/frc-{os.getpid()}-{time.monotonic_ns() % 10**9}.sock"
    yield path
    if os.path.exists(path):
        os.unlink(path)


# -- --uds ---------------------------------------------------------------------------------------


def _over_uds(kind: str, path: str, *args: str, pre_existing: bool = False) -> dict[str, Any]:
    if pre_existing:  # a stale socket file from an earlier run, with its own permissions
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()
        os.chmod(path, 0o660)
    with (
        CliServer(kind, "--uds", path, *args) as server,
        uds_client(path) as client,
    ):
        scope = server.wait_until(client).json()
        mode = stat.S_IMODE(os.stat(path).st_mode)
        answers = [client.get("/scope").status_code for _ in range(10)]
    return {"scope": scope, "mode": mode, "answers": answers, "stdout": server.stdout, "stderr": server.stderr}


@pytest.mark.parametrize("pre_existing", [False, True], ids=["new socket", "stale socket file"])
def test_unix_socket_as_uvicorn(sock_path: str, pre_existing: bool) -> None:
    results = {}
    for kind in KINDS:
        results[kind] = _over_uds(kind, sock_path, pre_existing=pre_existing)
        if os.path.exists(sock_path):  # uvicorn on Python < 3.13 leaves it; the engine removes it
            assert kind == "uvicorn", "the engine left its socket file behind"
            os.unlink(sock_path)
    expected, got = results["uvicorn"], results["engine"]
    assert got["scope"] == expected["scope"]
    assert got["scope"]["server"] == [sock_path, None] and got["scope"]["client"] is None
    assert got["mode"] == expected["mode"] == (0o660 if pre_existing else 0o666)
    assert got["answers"] == expected["answers"] == [200] * 10
    access = [line for line in got["stdout"].splitlines() if "GET /scope" in line]
    assert access == [line for line in expected["stdout"].splitlines() if "GET /scope" in line]
    assert access[0] == 'INFO:      - "GET /scope HTTP/1.1" 200 OK'
    running = f"running on unix socket {sock_path} (Press CTRL+C to quit)"
    assert f"INFO:     Uvicorn {running}" in expected["stderr"]
    assert f"INFO:     fastrapi-compat {running}" in got["stderr"]


@pytest.mark.parametrize("kind", KINDS)
def test_unix_socket_with_workers(sock_path: str, kind: str) -> None:
    result = _over_uds(kind, sock_path, "--workers", "2")
    assert result["answers"] == [200] * 10
    assert result["scope"]["server"] == [sock_path, None]


# -- --fd ----------------------------------------------------------------------------------------


def _listening(family: str, path: str) -> tuple[socket.socket, httpx.Client]:
    if family == "tcp":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        client = httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=10)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
        sock.listen()
        client = uds_client(path)
    return sock, client


def _over_fd(kind: str, family: str, path: str, *args: str) -> dict[str, Any]:
    sock, client = _listening(family, path)
    fd = sock.fileno()
    with client, CliServer(kind, "--fd", str(fd), *args, pass_fds=(fd,)) as server:
        sock.close()  # the child has its own copy
        scope = server.wait_until(client).json()
        answers = [client.get("/scope").status_code for _ in range(10)]
    if os.path.exists(path):
        os.unlink(path)
    return {"scope": scope, "answers": answers, "stderr": server.stderr, "stdout": server.stdout}


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_inherited_socket_as_uvicorn(sock_path: str, family: str) -> None:
    expected = _over_fd("uvicorn", family, sock_path)
    got = _over_fd("engine", family, sock_path)
    port = got["scope"]["server"][1]
    if family == "tcp":
        assert got["scope"]["server"][0] == "127.0.0.1" and got["scope"]["client"][0] == "127.0.0.1"
        assert {**got["scope"], "server": None, "client": None} == {**expected["scope"], "server": None, "client": None}
        line = f"running on socket ('127.0.0.1', {port}) (Press CTRL+C to quit)"
        assert line.replace(str(port), str(expected["scope"]["server"][1])) in expected["stderr"]
    else:
        assert got["scope"] == expected["scope"]
        assert got["scope"]["server"] == [sock_path, None] and got["scope"]["client"] is None
        line = f"running on socket {sock_path} (Press CTRL+C to quit)"
        assert line in expected["stderr"]
    assert f"fastrapi-compat {line}" in got["stderr"]
    assert got["answers"] == expected["answers"] == [200] * 10


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_inherited_socket_with_workers(sock_path: str, family: str) -> None:
    got = _over_fd("engine", family, sock_path, "--workers", "2")
    assert got["answers"] == [200] * 10
    assert "with 2 workers" in got["stderr"]


# -- --env-file ---------------------------------------------------------------------------------


def test_env_file_is_loaded_before_the_app_is_imported(tmp_path: Path) -> None:
    env_file = tmp_path / "settings.env"
    env_file.write_text("# comment\nFLAGS_TEST_SETTING='from the env file'\n")
    seen = {}
    for kind in KINDS:
        port = free_port()
        with (
            CliServer(kind, "--port", str(port), "--env-file", str(env_file)) as server,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            seen[kind] = server.wait_until(client).json()["setting"]
        assert f"INFO:     Loading environment from '{env_file}'" in server.stderr
    assert seen == {"uvicorn": "from the env file", "engine": "from the env file"}


# -- --log-config, --use-colors -----------------------------------------------------------------

LOG_FORMAT = "%(name)s|%(levelname)s|%(message)s"


def _log_config(kind: str, tmp_path: Path, log_file: Path) -> Path:
    handlers = {"file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "plain"}}
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": handlers,
        "loggers": {
            "uvicorn.error": {"handlers": ["file"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": ["file"], "level": "INFO", "propagate": False},
        },
    }
    if kind == "json":
        path = tmp_path / "log.json"
        path.write_text(json.dumps(config))
    elif kind == "yaml":
        import yaml

        path = tmp_path / "log.yaml"
        path.write_text(yaml.safe_dump(config))
    else:
        path = tmp_path / "log.ini"
        path.write_text(
            "[loggers]\nkeys=root,error,access\n\n[handlers]\nkeys=file\n\n[formatters]\nkeys=plain\n\n"
            "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
            "[logger_error]\nlevel=INFO\nhandlers=file\npropagate=0\nqualname=uvicorn.error\n\n"
            "[logger_access]\nlevel=INFO\nhandlers=file\npropagate=0\nqualname=uvicorn.access\n\n"
            f"[handler_file]\nclass=FileHandler\nformatter=plain\nargs=({str(log_file)!r},)\n\n"
            f"[formatter_plain]\nformat={LOG_FORMAT}\n"
        )
    return path


@pytest.mark.parametrize("kind", ["json", "yaml", "ini"])
def test_log_config_file_as_uvicorn_applies_it(tmp_path: Path, kind: str) -> None:
    logs = {}
    for server_kind in KINDS:
        log_file = tmp_path / f"{server_kind}.log"
        config = _log_config(kind, tmp_path, log_file)
        port = free_port()
        with (
            CliServer(server_kind, "--port", str(port), "--log-config", str(config)) as server,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            server.wait_until(client)
            client.get("/plain")
        logs[server_kind] = normalized(log_file.read_text(), port)
        assert server.stdout == "" and "INFO" not in server.stderr  # everything went to the file
    assert logs["engine"] == logs["uvicorn"]
    assert 'uvicorn.access|INFO|127.0.0.1:CLIENT - "GET /plain HTTP/1.1" 200' in logs["engine"]
    assert "uvicorn.error|INFO|Application startup complete." in logs["engine"]


@pytest.mark.parametrize("flag", ["--use-colors", "--no-use-colors"])
def test_colours_as_uvicorn_colours(flag: str) -> None:
    outputs = {}
    for kind in KINDS:
        port = free_port()
        with (
            CliServer(kind, "--port", str(port), flag) as server,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            server.wait_until(client, "/plain")
            client.post("/nowhere")
        outputs[kind] = (normalized(server.stderr, port), normalized(server.stdout, port))
    assert outputs["engine"] == outputs["uvicorn"]
    assert ("\033[" in "".join(outputs["engine"][1])) == (flag == "--use-colors")


def test_log_level_from_the_log_config_stands(tmp_path: Path) -> None:
    """Without --log-level, the file's levels apply (uvicorn sets levels only when asked)."""
    log_file = tmp_path / "engine.log"
    config = _log_config("json", tmp_path, log_file)
    loaded = json.loads(config.read_text())
    loaded["loggers"]["uvicorn.error"]["level"] = "WARNING"
    config.write_text(json.dumps(loaded))
    port = free_port()
    with (
        CliServer("engine", "--port", str(port), "--log-config", str(config)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        server.wait_until(client)
    text = log_file.read_text()
    assert "Application startup complete." not in text
    assert "uvicorn.access|INFO|" in text


# -- --loop -------------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "auto"])
def test_loop_as_uvicorn_picks_it(loop: str) -> None:
    if loop != "asyncio":
        pytest.importorskip("uvloop")
    seen = {}
    for kind in KINDS:
        port = free_port()
        with (
            CliServer(kind, "--port", str(port), "--loop", loop) as server,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            seen[kind] = server.wait_until(client).json()["loop"]
    assert seen["engine"] == seen["uvicorn"] == ("asyncio" if loop == "asyncio" else "uvloop")


def test_headers_reach_the_workers() -> None:
    port = free_port()
    args = ("--port", str(port), "--workers", "2", "--header", "X-Edge: a", "--no-server-header")
    with (
        CliServer("engine", *args) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        response = server.wait_until(client, "/plain")
    assert response.headers.get_list("x-edge") == [" a".strip()]
    assert "server" not in response.headers


def test_run_function_takes_the_same_options(tmp_path: Path, sock_path: str) -> None:
    """``fastrapi_compat.run(app, ...)`` with uvicorn's keyword names (and the engine's own)."""
    env_file = tmp_path / "run.env"
    env_file.write_text("FLAGS_TEST_RUN=1\n")
    script = tmp_path / "serve.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(TESTS_DIR)!r})\n"
        "import fastrapi_compat\n"
        "from apps.server_flags import create_app\n"
        f"fastrapi_compat.run(create_app(), uds={sock_path!r}, env_file={str(env_file)!r}, server_header=False,\n"
        "    headers=[('X-Edge', 'a')], limit_request_body=10, timeout_graceful_shutdown=1, loop='asyncio',\n"
        "    use_colors=False)\n"
    )
    server = CliServer("run()", argv=[sys.executable, str(script)])
    with server, uds_client(sock_path) as client:
        scope = server.wait_until(client)
        refused = client.post("/count", content=b"x" * 11)
    assert scope.json()["loop"] == "asyncio" and scope.json()["server"] == [sock_path, None]
    assert scope.headers["x-edge"] == "a" and "server" not in scope.headers
    assert (refused.status_code, refused.text) == (413, "Content Too Large")
    assert f"INFO:     Loading environment from '{env_file}'" in server.stderr
    assert f"INFO:     fastrapi-compat running on unix socket {sock_path}" in server.stderr
