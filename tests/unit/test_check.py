"""``fastrapi-compat check MODULE:APP``: requests generated from the app's schema, stock FastAPI
in process vs the engine over HTTP.

It passes on apps the engine serves like stock FastAPI (native and ASGI tier, stateful ones),
and it fails, naming the operation, when the engine is made to answer differently: code run
before the command changes one byte of each response body on the engine side only (native
tier and ASGI tier), as the plugin of test_example_shop does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("schemathesis", reason="check needs schemathesis (Python >= 3.11)")

import fastrapi_compat
from fastrapi_compat.tools.check import (
    Answer,
    differences,
    generate,
    load_two_instances,
)

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(
    r"^(\d+) operations?, (\d+) requests?: (.+); the engine answered (\d+) of (\d+) natively "
    r"\(seed (\d+)\)$",
    re.MULTILINE,
)

# An engine bug on the native tier, simulated: every native response body has one byte changed.
TAMPER_NATIVE = """
import fastrapi_compat.execute.call as executor

native_call_init = executor.NativeCall.__init__

def tampered_native_call_init(self, plan, scope, receive, send, respond, *args, **kwargs):
    if respond is not None:
        real = respond

        def respond(status, headers, body):
            real(status, headers, body.replace(b"e", b"E", 1))

    native_call_init(self, plan, scope, receive, send, respond, *args, **kwargs)

executor.NativeCall.__init__ = tampered_native_call_init
"""

# The same on the ASGI tier: the engine's dispatcher hands the app a send() that changes the
# first body message (the stock side calls the app directly, so it is untouched).
TAMPER_ASGI = """
import fastrapi_compat.serve.dispatch as bridge

dispatcher_init = bridge.Dispatcher.__init__

def tampered_dispatcher_init(self, app, *args, **kwargs):
    async def tampered(scope, receive, send):
        async def tampered_send(message):
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": message["body"].replace(b"e", b"E", 1)}
            await send(message)

        await app(scope, receive, tampered_send)

    dispatcher_init(self, tampered, *args, **kwargs)

bridge.Dispatcher.__init__ = tampered_dispatcher_init
"""


def check(
    *args: str,
    tmp_path: Path,
    tamper: str | None = None,
    app_dir: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """``fastrapi-compat check ARGS --app-dir APP_DIR`` in a subprocess started in a directory
    of its own; with ``tamper``, that code runs first."""
    code = "import sys\nfrom fastrapi_compat.tools.cli import main\nsys.exit(main(sys.argv[1:]))"
    # The subprocess imports the fastrapi_compat this process imported (the installed wheel
    # under scripts/test, the sources in a development checkout).
    paths = [str(Path(fastrapi_compat.__file__).resolve().parents[1])]
    if tamper is not None:
        (tmp_path / "tamper.py").write_text(tamper)
        paths.insert(0, str(tmp_path))
        code = "import tamper\n" + code
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-P", "-c", code, "check", *args, "--app-dir", str(app_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def summary(result: subprocess.CompletedProcess[str]) -> re.Match[str]:
    found = SUMMARY.search(result.stdout)
    assert found, result.stdout + result.stderr
    return found


def operation_lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    lines = {}
    for line in result.stdout.splitlines():
        found = re.match(r"^((?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) \S+)\s+(.*)$", line)
        if found:
            lines[found.group(1)] = found.group(2)
    return lines


# -- it passes where the engine answers as stock FastAPI does ---------------------------------


def test_hello_example_has_no_differences(tmp_path: Path) -> None:
    result = check("examples.hello:app", "--max-examples", "6", "--seed", "1", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    ops = operation_lines(result)
    assert ops["GET /"] == "ok (1 request)"
    assert re.fullmatch(r"ok \(\d+ requests\)", ops["GET /items/{item_id}"]), ops
    found = summary(result)
    assert found.group(1) == "2" and found.group(3) == "no differences"
    requests, native, http = (int(found.group(i)) for i in (2, 4, 5))
    assert requests == http > 1 and native == http  # every hello route is native
    assert found.group(6) == "1"
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran (no .hypothesis/)


def test_shop_example_with_module_level_state(tmp_path: Path) -> None:
    """The shop keeps its items in a module-level store: with one app object for both sides,
    the engine's POST /items would get the next id after stock's. Each side has its own.
    Its TimedRoute adds the time a request took: ``--ignore-header`` leaves it out."""
    result = check(
        "examples.shop.main:app",
        "--ignore-header",
        "x-elapsed-ms",  # the app's own timing: 0 or 1 ms, on either side
        "--max-examples",
        "4",
        "--seed",
        "3",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: both sides share" not in result.stderr
    ops = operation_lines(result)
    assert ops["POST /items"].startswith("ok ("), ops
    found = summary(result)
    native, http = int(found.group(4)), int(found.group(5))
    assert 0 < native < http  # /reports/* uses a custom route class: ASGI tier
    # The migration guide's second step quotes this run: it must be the real output (numbers
    # aside: they follow schemathesis's and hypothesis's generation for the seed).
    guide = (ROOT / "migration_docs" / "docs" / "migrate.md").read_text(encoding="utf-8")
    step = guide.split("## Step 2", 1)[1].split("## Step 3", 1)[0]
    command = " ".join(step.split("For the example project (`", 1)[1].split("`", 1)[0].split())
    assert command == (
        "fastrapi-compat check examples.shop.main:app --ignore-header x-elapsed-ms --max-examples 4 --seed 3"
    )
    quoted = step.split("```text", 1)[1].split("```", 1)[0].strip()

    def shape(text: str) -> list[str]:
        return [re.sub(r"\d+ requests?", "N requests", line) for line in text.splitlines()]

    assert shape(quoted)[:-1] == shape(result.stdout.strip())[:-1]
    assert re.sub(r"\d+", "N", quoted.splitlines()[-1]) == re.sub(r"\d+", "N", found.group(0))


def test_factory_app_with_lifespan_state(tmp_path: Path) -> None:
    """Each side runs the lifespan of its own instance; its state reaches the requests (the
    stock side gets it as uvicorn passes it: a shallow copy per request)."""
    result = check(
        "tests.apps.lifespan:create_app",
        "--factory",
        "--max-examples",
        "3",
        "--seed",
        "5",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary(result).group(3) == "no differences"
    ops = operation_lines(result)
    assert set(ops) == {"GET /state", "GET /count", "GET /missing-state", "GET /events"}
    assert all(line == "ok (1 request)" for line in ops.values()), ops


# -- it fails where the engine answers differently --------------------------------------------


def test_differences_on_either_tier_are_caught(tmp_path: Path) -> None:
    """The shop has native routes and one on the ASGI tier (``/reports/*``, custom route
    class): both tampers run, each must show on its own operations."""
    result = check(
        "examples.shop.main:app",
        "--ignore-header",
        "x-elapsed-ms",
        "--max-examples",
        "2",
        "--seed",
        "2",
        tamper=TAMPER_NATIVE + TAMPER_ASGI,
        tmp_path=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    ops = operation_lines(result)
    # native: GET /items answers [{"name": ...}] or a 422 {"detail": ...}: each has an "e"
    assert re.fullmatch(r"(\d+) differences? in \1 requests?", ops["GET /items"]), ops
    assert "first: GET /items" in result.stdout
    # ASGI tier: {"items":0,"started_by":"lifespan"} -> {"itEms":...
    assert ops["GET /reports/summary"] == "1 difference in 1 request", ops
    block = result.stdout.split("GET /reports/summary", 1)[1]
    assert "first: GET /reports/summary" in block
    assert 'engine b\'{"itEms"' in block
    found = summary(result)
    assert re.fullmatch(r"\d+ differences in 5 of 5 operations", found.group(3)), found.group(0)
    assert 0 < int(found.group(4)) < int(found.group(5))  # both tiers served requests


# -- errors a user can cause: one line, exit 1 -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["examples.nope:app"], "could not import module 'examples.nope'"),
        (
            ["tests.apps.lifespan:create_failing_app", "--factory"],
            "Application startup failed",
        ),
        (["examples.hello:app", "--mask", "("], "invalid --mask"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = check(*args, tmp_path=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], lines


def test_an_app_without_a_schema_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "plain_asgi.py").write_text(
        textwrap.dedent(
            """
            async def app(scope, receive, send):
                if scope["type"] == "http":
                    await send({"type": "http.response.start", "status": 204, "headers": []})
                    await send({"type": "http.response.body"})
            """
        )
    )
    result = check("plain_asgi:app", tmp_path=tmp_path, app_dir=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == "Error: the app (function) has no OpenAPI schema: check needs a FastAPI app."


# -- the parts, in process ----------------------------------------------------------------------


def test_one_seed_gives_the_same_requests() -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
        return {"item_id": item_id, "q": q}

    def draw(seed: int) -> list[object]:
        ops = generate(app.openapi(), "http://127.0.0.1:1", max_examples=6, seed=seed, mode="all")
        return [(op.label, op.requests) for op in ops]

    first = draw(11)
    assert first == draw(11)
    assert first != draw(12)
    # with "all", half of the budget goes to invalid requests (422 from FastAPI)
    item_requests = dict(first)["GET /items/{item_id}"]
    assert 3 < len(item_requests) <= 6


def test_comparison_rules() -> None:
    def answer(headers: dict[str, list[str]], body: bytes = b"{}", status: int = 200) -> Answer:
        return Answer(status, headers, body)

    same = {"content-type": ["application/json"]}
    # framing a server adds is not the app's: content-length only counts when the app set it
    assert differences(answer(same), answer({**same, "content-length": ["2"]})) == []
    assert differences(answer({**same, "content-length": ["2"]}), answer(same)) == [
        "header 'content-length': stock ['2'], engine None"
    ]
    assert differences(answer(same, status=200), answer(same, status=201)) == ["status: stock 200, engine 201"]
    assert differences(answer(same, b'{"a":1}'), answer(same, b'{"a":2}'))[0].startswith(
        "body: stock 7 bytes, engine 7 bytes, first difference at byte 5"
    )
    aborted = Answer.failed("response aborted", "RemoteProtocolError: ...")
    assert differences(Answer.failed("response aborted"), aborted) == []
    assert differences(answer(same), aborted) == [
        "outcome: stock answered 200, engine response aborted (RemoteProtocolError: ...)"
    ]


def test_two_instances_each_with_its_own_module_state(tmp_path: Path) -> None:
    package = tmp_path / "proj_check_state"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "store.py").write_text("ITEMS = []\n")
    (package / "main.py").write_text(
        "from fastapi import FastAPI\nfrom proj_check_state.store import ITEMS\n"
        "app = FastAPI()\napp.state.items = ITEMS\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        pair = load_two_instances(lambda: importlib.import_module("proj_check_state.main").app, str(tmp_path))
        assert pair.engine is not pair.stock and not pair.shared_reason
        assert pair.engine.state.items is not pair.stock.state.items
        # sys.modules is left as a plain import leaves it: the engine's copy
        assert sys.modules["proj_check_state.main"].app is pair.engine
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.startswith("proj_check_state")]:
            del sys.modules[name]


def test_stock_side_does_what_uvicorn_does_around_the_app() -> None:
    import asyncio

    import httpx

    from fastrapi_compat.tools.check import Options, StockServer, Wire, ask_stock

    finished: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"]
        if path == "/state":
            body = repr(sorted(scope["state"])).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        elif path == "/bad-header":  # uvicorn refuses it and drops the connection
            headers = [(b"x-bad", b"a\x01b")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        elif path == "/fails-early":  # uvicorn answers its own 500
            raise RuntimeError("boom")
        elif path == "/slow":  # left running after the client gave up, as by a server
            await asyncio.sleep(0.3)
            finished.append(path)

    async def main() -> dict[str, Answer]:
        running: set[asyncio.Task[Answer]] = set()
        options = Options(timeout=0.1)
        transport = httpx.ASGITransport(app=StockServer(app, {"db": object()}))
        answers = {}
        async with httpx.AsyncClient(transport=transport) as client:
            for path in ("/state", "/bad-header", "/fails-early", "/slow"):
                wire = Wire("GET", f"http://127.0.0.1:1{path}", (), b"")
                answers[path] = await ask_stock(client, wire, options, running)
            assert len(running) == 1 and not finished
            await asyncio.sleep(0.5)
        assert finished == ["/slow"]
        return answers

    answers = asyncio.run(main())
    assert answers["/state"].body == b"['db']"
    assert answers["/bad-header"].outcome() == ("response aborted (RuntimeError: Invalid HTTP header value.)")
    early = answers["/fails-early"]
    assert (early.status, early.body) == (500, b"Internal Server Error")
    assert early.headers["content-type"] == ["text/plain; charset=utf-8"]
    assert answers["/slow"].outcome() == "timed out"
