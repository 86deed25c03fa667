"""The ``fastrapi-compat`` command line, run as a user runs it: a subprocess of the real script.

Every error a user can cause must print exactly one ``Error: ...`` line on stderr and exit 1;
a good target must serve until SIGINT and then exit 0.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE = 30.0
SHUTDOWN_DEADLINE = 10.0

MODULES = {
    "good.py": """
        from fastrapi_compat import FastAPI

        app = FastAPI()

        @app.get("/")
        async def root():
            return {"ok": True}
    """,
    "broken.py": """
        import missing_dependency_xyz  # the module exists but its own import fails

        app = None
    """,
    "raises.py": """
        raise RuntimeError("config file not found")
    """,
    "notasgi.py": """
        app = 42
    """,
    "factory.py": """
        from fastrapi_compat import FastAPI

        def create_app():
            app = FastAPI()

            @app.get("/")
            async def root():
                return {"made_by": "factory"}

            return app
    """,
    "failing_lifespan.py": """
        from contextlib import asynccontextmanager

        from fastrapi_compat import FastAPI

        @asynccontextmanager
        async def lifespan(app):
            raise RuntimeError("database unreachable")
            yield

        app = FastAPI(lifespan=lifespan)
    """,
    "wsecho.py": """
        from fastrapi_compat import FastAPI, WebSocket

        app = FastAPI()

        @app.websocket("/echo")
        async def echo(websocket: WebSocket):
            await websocket.accept()
            while True:
                await websocket.send_text(await websocket.receive_text())
    """,
    "pid.py": """
        import os

        from fastrapi_compat import FastAPI

        app = FastAPI()

        @app.get("/pid")
        async def pid():
            return os.getpid()
    """,
}


def console_script() -> str | None:
    """The installed ``fastrapi-compat`` script of this interpreter's environment, if any."""
    name = "fastrapi-compat"
    return shutil.which(name, path=sysconfig.get_path("scripts")) or shutil.which(name)


def cli() -> list[str]:
    """How to run the CLI: the console script, else ``python -P -m fastrapi_compat``.

    ``-P`` keeps the current directory off ``sys.path``, so the installed package is used,
    exactly as with the console script.
    """
    script = console_script()
    if script:
        return [script]
    safe_path = ["-P"] if sys.version_info >= (3, 11) else []
    return [sys.executable, *safe_path, "-m", "fastrapi_compat"]


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("apps")
    for name, source in MODULES.items():
        (directory / name).write_text(textwrap.dedent(source))
    return directory


def run_cli(*args: str, cwd: Path = REPO, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli(), *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    # uvicorn's progress lines may come first ("Started server process", "Waiting for
    # application startup."); the failure itself is one line, no traceback.
    lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO:     ")]
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    line = lines[0]
    assert line.startswith("Error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the entry point --------------------------------------------------------------------------


def test_console_script_is_declared() -> None:
    scripts = importlib.metadata.entry_points(group="console_scripts")
    entry = next((ep for ep in scripts if ep.name == "fastrapi-compat"), None)
    assert entry is not None
    assert entry.value == "fastrapi_compat.tools.cli:main"


def test_console_script_is_installed() -> None:
    script = console_script()
    assert script is not None, "the fastrapi-compat script is not installed"
    result = subprocess.run([script, "--version"], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("fastrapi-compat ")


def test_version() -> None:
    from fastrapi_compat import __version__

    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"fastrapi-compat {__version__} (fastapi ")


def test_help_lists_the_run_flags() -> None:
    result = run_cli("run", "--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--host", "--port", "--log-level", "--root-path", "--lifespan", "--app-dir"):
        assert flag in result.stdout


# -- bad targets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "fragments"),
    [
        ("nomodule_xyz:app", ["could not import module 'nomodule_xyz'"]),
        ("nopackage_xyz.sub:app", ["could not import module 'nopackage_xyz.sub'"]),
        ("broken:app", ["importing module 'broken' failed", "missing_dependency_xyz"]),
        ("raises:app", ["importing module 'raises' failed", "config file not found"]),
        ("good:missing", ["attribute 'missing' not found in module 'good'"]),
        ("good:app.missing", ["attribute 'app.missing' not found in module 'good'"]),
        ("good", ["'module:attribute'"]),
        ("good:", ["'module:attribute'"]),
        ("notasgi:app", ["not an ASGI application", "int"]),
        ("good:FastAPI", ["not an ASGI application"]),
    ],
)
def test_bad_target(app_dir: Path, target: str, fragments: list[str]) -> None:
    result = run_cli("run", target, "--app-dir", str(app_dir), "--port", str(free_port()))
    assert_one_error_line(result, *fragments)


def test_bad_app_dir(tmp_path: Path) -> None:
    result = run_cli("run", "good:app", "--app-dir", str(tmp_path / "nowhere"))
    assert_one_error_line(result, "--app-dir")


# -- bad flags --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "good:app", "--port", "abc"], "--port"),
        (["run", "good:app", "--port", "70000"], "--port"),
        (["run", "good:app", "--log-level", "loud"], "--log-level"),
        (["run", "good:app", "--lifespan", "maybe"], "--lifespan"),
        (["run", "good:app", "--bogus"], "--bogus"),
        (["run", "good:app", "--workers", "0"], "--workers"),
        (["run", "good:app", "--timeout-keep-alive", "0"], "--timeout-keep-alive"),
        (["run", "good:app", "--timeout-graceful-shutdown", "-1"], "--timeout-graceful-shutdown"),
        (["run", "good:app", "--ws-max-size", "0"], "--ws-max-size"),
        (["run", "good:app", "--limit-concurrency", "0"], "--limit-concurrency"),
        (["run", "good:app", "--limit-max-requests-jitter", "-1"], "--limit-max-requests-jitter"),
        (["run", "good:app", "--backlog", "x"], "--backlog"),
        (["run", "good:app", "--limit-request-headers", "4096"], "--limit-request-headers"),
        (["run", "good:app", "--ws-max-queue", "-1"], "--ws-max-queue"),
        (["run", "good:app", "--ws-ping-interval", "-1"], "--ws-ping-interval"),
        (["run", "good:app", "--ws-ping-timeout", "nan"], "--ws-ping-timeout"),
        (["run", "good:app", "--ws-per-message-deflate", "maybe"], "--ws-per-message-deflate"),
        (["run"], "MODULE:APP"),
        (["serve", "good:app"], "serve"),
        ([], "command"),
    ],
)
def test_bad_flag(app_dir: Path, args: list[str], fragment: str) -> None:
    result = run_cli(*args, cwd=app_dir)
    assert_one_error_line(result, fragment)
    assert "usage:" not in result.stderr


# -- startup failures -------------------------------------------------------------------------


def test_port_in_use(app_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", "good:app", "--app-dir", str(app_dir), "--port", str(port))
    assert_one_error_line(result, str(port))


def test_lifespan_startup_failure(app_dir: Path) -> None:
    result = run_cli("run", "failing_lifespan:app", "--app-dir", str(app_dir), "--port", str(free_port()))
    assert_one_error_line(result, "database unreachable")


def test_lifespan_startup_failure_with_workers(app_dir: Path) -> None:
    result = run_cli(
        "run", "failing_lifespan:app", "--app-dir", str(app_dir), "--port", str(free_port()),
        "--workers", "2",
    )  # fmt: skip
    assert_one_error_line(result, "database unreachable")


def test_port_in_use_with_workers(app_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", "good:app", "--app-dir", str(app_dir), "--port", str(port), "--workers", "2")
    assert_one_error_line(result, str(port))


# -- serving ----------------------------------------------------------------------------------


@pytest.fixture
def serve() -> Iterator[list[subprocess.Popen[str]]]:
    """Collects started servers; any still running at teardown is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def start_server(started: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [*cli(), "run", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    return process


def wait_until_serving(process: subprocess.Popen[str], url: str) -> httpx.Response:
    """Polls ``url`` until it answers; fails early if the server exits."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        if process.poll() is not None:
            _, stderr = process.communicate()
            pytest.fail(f"server exited with {process.returncode}:\n{stderr}")
        try:
            return httpx.get(url, timeout=2.0)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer {url} within {STARTUP_DEADLINE} s")
            time.sleep(0.05)


def stop_with_sigint(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=SHUTDOWN_DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"server still running {SHUTDOWN_DEADLINE} s after SIGINT:\n{stderr}")
    assert process.returncode == 0, stderr
    return stderr


def test_run_hello_example_until_sigint(serve: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    process = start_server(serve, "examples.hello:app", "--port", str(port))
    base = f"http://127.0.0.1:{port}"

    response = wait_until_serving(process, base + "/")
    assert response.status_code == 200
    assert response.json() == {"message": "Hello, world"}
    item = httpx.get(base + "/items/42", params={"q": "x"}, timeout=5.0)
    assert item.json() == {"item_id": 42, "q": "x"}
    assert httpx.get(base + "/items/nope", timeout=5.0).status_code == 422

    stderr = stop_with_sigint(process)
    assert f"INFO:     fastrapi-compat running on {base} (Press CTRL+C to quit)" in stderr


@pytest.mark.parametrize("flag", [None, "--no-access-log"])
def test_access_log_on_stdout(serve: list[subprocess.Popen[str]], flag: str | None) -> None:
    port = free_port()
    process = start_server(serve, "examples.hello:app", "--port", str(port), *([flag] if flag else []))
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(process, base + "/")
    httpx.get(base + "/items/42", params={"q": "x"}, timeout=5.0)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=SHUTDOWN_DEADLINE)
    line = '"GET /items/42?q=x HTTP/1.1" 200 OK'
    if flag is None:
        assert "INFO:     127.0.0.1:" in stdout and line in stdout, stdout
    else:
        assert line not in stdout, stdout
    for expected in ("Started server process", "Waiting for application startup.", "Application startup complete.",
                     "Shutting down", "Finished server process"):  # fmt: skip
        assert expected in stderr, stderr


def test_run_factory(app_dir: Path, serve: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    process = start_server(
        serve,
        "factory:create_app",
        "--factory",
        "--app-dir",
        str(app_dir),
        "--port",
        str(port),
        "--log-level",
        "warning",
    )
    response = wait_until_serving(process, f"http://127.0.0.1:{port}/")
    assert response.json() == {"made_by": "factory"}
    stderr = stop_with_sigint(process)
    assert "running on" not in stderr  # an info line, hidden at --log-level warning


def test_app_dir_defaults_to_the_current_directory(app_dir: Path, serve: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*cli(), "run", "good:app", "--port", str(port)],
        cwd=app_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    serve.append(process)
    response = wait_until_serving(process, f"http://127.0.0.1:{port}/")
    assert response.json() == {"ok": True}
    stop_with_sigint(process)


# -- workers ----------------------------------------------------------------------------------


def test_workers_share_the_port_and_a_dead_one_is_replaced(app_dir: Path, serve: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    process = start_server(serve, "pid:app", "--app-dir", str(app_dir), "--port", str(port), "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    first = wait_until_serving(process, base + "/pid").json()
    assert first != process.pid  # answered by a worker, not the supervisor
    seen: set[int] = set()
    for _ in range(400):  # new connections wait in one accept queue, taken by either worker
        with httpx.Client(timeout=5.0) as client:
            seen.add(client.get(base + "/pid").json())
        if len(seen) == 2:
            break
    assert len(seen) == 2, seen
    victim = seen.pop()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + STARTUP_DEADLINE
    replaced: set[int] = set()
    while not (replaced - seen - {victim}):  # a third pid answers: the replacement
        assert time.monotonic() < deadline, f"no replacement for worker {victim}: {replaced}"
        try:
            with httpx.Client(timeout=5.0) as client:
                replaced.add(client.get(base + "/pid").json())
        except httpx.TransportError:
            pass  # a connection the dying worker had accepted
    process.send_signal(signal.SIGINT)  # twice, quickly: the second must not hang the supervisor
    stderr = stop_with_sigint(process)
    assert f"worker {victim} exited" in stderr
    assert "with 2 workers" in stderr
    for pid in seen | replaced:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # every worker stopped (and was reaped) with the supervisor


# -- from the clone ---------------------------------------------------------------------------


def clone_env() -> dict[str, str]:
    """The environment of a user's shell in the clone: the current directory first on sys.path."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    return env


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "fastrapi_compat", "run", "examples.crud:app", "--workers", "2"],
        ["-m", "uvicorn", "examples.crud:app"],
    ],
    ids=["workers", "uvicorn"],
)
def test_runs_from_the_clone(serve: list[subprocess.Popen[str]], argv: list[str]) -> None:
    """From the repository root the sources do not shadow the installed package (python/
    layout): the workers' ``python -m fastrapi_compat`` and uvicorn import the built one."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, *argv, "--port", str(port)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clone_env(),
    )
    serve.append(process)
    response = wait_until_serving(process, f"http://127.0.0.1:{port}/items")
    assert response.status_code == 200, response.text
    stop_with_sigint(process)


def test_version_from_the_clone() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fastrapi_compat", "--version"],
        cwd=REPO, capture_output=True, text=True, timeout=60, env=clone_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("fastrapi-compat ")


# -- websocket options ------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ws_max_size_reaches_the_server(app_dir: Path, serve: list[subprocess.Popen[str]], workers: str) -> None:
    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect

    port = free_port()
    process = start_server(
        serve, "wsecho:app", "--app-dir", str(app_dir), "--port", str(port), "--workers", workers, "--ws-max-size", "10"
    )
    wait_until_serving(process, f"http://127.0.0.1:{port}/docs")
    # uncompressed: compressed, "0123456789" takes 12 bytes on the wire, over the limit (uvicorn too)
    with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=10, compression=None) as ws:
        ws.send("0123456789")
        assert ws.recv(timeout=10) == "0123456789"
        ws.send("0123456789!")
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    stop_with_sigint(process)


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("deflate", [None, "false"])
def test_ws_per_message_deflate_reaches_the_server(
    app_dir: Path, serve: list[subprocess.Popen[str]], workers: str, deflate: str | None
) -> None:
    """On by default, as uvicorn: the websockets client's offer is agreed (or not, with
    ``--ws-per-message-deflate false``), and messages round-trip either way."""
    from websockets.sync.client import connect

    port = free_port()
    flag = [] if deflate is None else ["--ws-per-message-deflate", deflate]
    process = start_server(
        serve, "wsecho:app", "--app-dir", str(app_dir), "--port", str(port), "--workers", workers, *flag
    )
    wait_until_serving(process, f"http://127.0.0.1:{port}/docs")
    with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=10) as ws:
        agreed = ws.response.headers.get("sec-websocket-extensions") if ws.response else None
        ws.send("hello " * 100)
        assert ws.recv(timeout=10) == "hello " * 100
    on = deflate is None
    assert agreed == ("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12" if on else None)
    stop_with_sigint(process)


def test_ws_per_message_deflate_takes_uvicorn_booleans() -> None:
    """uvicorn's flag is a click BOOLEAN: 1/0, true/false, t/f, yes/no, y/n, on/off, any case."""
    from fastrapi_compat.tools.cli import build_parser

    for words, value in ((["1", "true", "T", "yes", "y", "On"], True), (["0", "False", "f", "NO", "n", "off"], False)):
        for word in words:
            args = build_parser().parse_args(["run", "m:app", "--ws-per-message-deflate", word])
            assert args.ws_per_message_deflate is value, word
    from fastrapi_compat.errors import StartupError
    from fastrapi_compat.serve.server import Config

    with pytest.raises(StartupError, match="ws_per_message_deflate must be True or False"):
        Config(ws_per_message_deflate="false")  # type: ignore[arg-type]


def test_workers_get_the_server_options() -> None:
    from fastrapi_compat.tools.cli import build_parser
    from fastrapi_compat.tools.run_flags import worker_argv

    flags: dict[str, str | None] = {
        "--ws-max-size": "99",
        "--ws-max-queue": "3",
        "--ws-ping-interval": "0",
        "--ws-ping-timeout": "2.5",
        "--timeout-keep-alive": "7",
        "--timeout-graceful-shutdown": "0",
        "--no-proxy-headers": None,
        "--forwarded-allow-ips": "10.0.0.0/8,*",
        "--backlog": "16",
        "--limit-concurrency": "9",
        "--limit-max-requests": "1000",
        "--limit-max-requests-jitter": "50",
        "--limit-request-headers": "65536",
        "--limit-request-body": "1000",
        "--timeout-request-header": "3.5",
        "--no-server-header": None,
        "--no-date-header": None,
        "--header": "X-A: b",
        "--loop": "asyncio",
        "--http": "h11",
        "--log-level": "debug",
        "--no-use-colors": None,
        "--ws-per-message-deflate": "off",
    }
    args = build_parser().parse_args(["run", "m:app", *(p for item in flags.items() for p in item if p is not None)])
    reparsed = build_parser().parse_args(worker_argv(args)[3:])
    names = ("ws_max_size", "ws_max_queue", "ws_ping_interval", "ws_ping_timeout", "timeout_keep_alive",
             "timeout_graceful_shutdown", "proxy_headers", "forwarded_allow_ips", "backlog", "limit_concurrency",
             "limit_max_requests", "limit_max_requests_jitter", "limit_request_headers", "limit_request_body",
             "timeout_request_header", "server_header", "date_header", "headers", "loop", "http", "log_level",
             "use_colors", "ws_per_message_deflate")  # fmt: skip
    got = tuple(getattr(reparsed, name) for name in names)
    assert got == (
        99, 3, 0.0, 2.5, 7.0, 0.0, False, "10.0.0.0/8,*", 16, 9, 1000, 50, 65536, 1000, 3.5, False, False,
        [("X-A", " b")], "asyncio", "h11", "debug", False, False,
    )  # fmt: skip
    assert got != tuple(getattr(build_parser().parse_args(["run", "m:app"]), name) for name in names)
    assert build_parser().parse_args(["run", "m:app"]).ws_per_message_deflate is True
