"""``fastrapi-compat check MODULE:APP``: the app's own OpenAPI schema, fuzzed against stock FastAPI.

schemathesis generates requests for every operation of the schema (valid ones, and with
``--mode all`` invalid ones too, which exercise FastAPI's validation errors). Each request goes,
byte for byte the same, to two copies of the app:

- **stock**: the app called directly in process through ``httpx.ASGITransport``, i.e. FastAPI
  and Starlette with no server of ours in between. What a server adds around an ASGI app is
  done as uvicorn does it: lifespan startup first, lifespan ``state`` copied into each request's
  scope, a plain ``500 Internal Server Error`` when the app fails before it started its
  response, the connection dropped when it fails midway (a response header value uvicorn
  refuses to write, e.g. one with a control character, counts as midway, as in uvicorn), no
  body for ``HEAD``, and an app still running when the client gives up (``--timeout``) is
  left running, not cancelled.
- **engine**: the same app served by the engine (``ServerThread``, lifespan run as ``run`` runs
  it), over loopback HTTP.

Each side gets its own instance of the app (the user's modules imported a second time, see
:func:`load_two_instances`): requests that change state (an in-memory store, a counter) then
change each side's state alike, and the two sides' lifespans never share an object. Both sides
see the same ``Host`` (the engine's address), so URLs the app builds from it are identical.

Compared per request, with the rules the project's own differential tests use too
(:mod:`fastrapi_compat.tools.compare`): status code, headers (``date``, ``server`` and hop-by-hop
headers left out; ``content-length`` only when the app itself set it, since a server adds it
for framing; ``allow`` sorted) and body bytes (content-decoded when ``content-encoding`` is gzip
or deflate, as gzip's header carries the time). The reason phrase is not compared: the stock
side has no status line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import sys
import sysconfig
import tempfile
import zlib
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import IO, Any

import httpx

from fastrapi_compat.tools.compare import (
    HOP_BY_HOP,
    IGNORED_HEADERS,
    body_difference,
    decode_content,
    header_value,
    mask_body,
)

logger = logging.getLogger("fastrapi_compat.check")

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

DEFAULT_MAX_EXAMPLES = 20
DEFAULT_TIMEOUT = 10.0

# Request headers the generated request is not sent with: hop-by-hop, and schemathesis's own
# per-case id (noise in a diff; the two sides get the same request either way).
DROPPED_REQUEST_HEADERS = frozenset({"connection", "x-schemathesis-testcaseid"})
INTERNAL_SERVER_ERROR = b"Internal Server Error"


class CheckError(Exception):
    """Something that stops the check before it compares anything; ``str()`` is one line."""


# ---------------------------------------------------------------------------------------------
# Two instances of the app
# ---------------------------------------------------------------------------------------------


@dataclass
class AppPair:
    """The engine's app and the stock side's app; ``shared`` when they are one object."""

    engine: Any
    stock: Any
    shared_reason: str = ""


def load_two_instances(load: Callable[[], Any], app_dir: str) -> AppPair:
    """Call ``load`` twice, the second time with the modules the first call imported from the
    user's project (under ``app_dir``, outside site-packages) taken out of ``sys.modules``, so
    that the second call executes them again: module-level state (an in-memory store, a
    counter) is then each instance's own. ``sys.modules`` is left as the first call left it.

    Falls back to one object for both sides when the second import fails (e.g. it registers a
    global a second time) or yields the same object; ``shared_reason`` then says why.
    """
    before = set(sys.modules)
    first = load()
    own = {
        name: module
        for name in set(sys.modules) - before
        if (module := sys.modules.get(name)) is not None and _is_project_module(name, module, app_dir)
    }
    for name in own:
        del sys.modules[name]
    try:
        second = load()
    except Exception as exc:  # noqa: BLE001 - any failure of the second import means: share
        second, reason = (
            first,
            f"importing the app a second time failed ({_one_line(exc)})",
        )
    else:
        reason = "" if second is not first else "the app is not defined in a module of the project"
    finally:
        for name in set(sys.modules) - before:
            if name in own or _is_project_module(name, sys.modules[name], app_dir):
                del sys.modules[name]
        sys.modules.update(own)
    return AppPair(engine=first, stock=second, shared_reason=reason)


def _is_project_module(name: str, module: ModuleType, app_dir: str) -> bool:
    if name == "fastrapi_compat" or name.startswith("fastrapi_compat."):
        return False
    files = [
        getattr(module, "__file__", None),
        *list(getattr(module, "__path__", None) or []),
    ]
    paths = [os.path.realpath(f) for f in files if isinstance(f, str)]
    if not paths:
        return False
    root = os.path.realpath(app_dir)
    excluded = _library_dirs()
    return all(_inside(path, root) and not any(_inside(path, lib) for lib in excluded) for path in paths)


def _library_dirs() -> list[str]:
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    dirs = {os.path.realpath(p) for n in names if (p := sysconfig.get_paths().get(n))}
    dirs.update(os.path.realpath(p) for p in sys.path if p.rstrip("/").endswith("-packages"))
    return sorted(dirs)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


# ---------------------------------------------------------------------------------------------
# Generating requests
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """One generated request, as both sides get it."""

    method: str
    url: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def target(self, limit: int = 160) -> str:
        text = httpx.URL(self.url).raw_path.decode("ascii", "replace")
        return text if len(text) <= limit else text[:limit] + "..."

    def describe_body(self) -> str:
        kind = next(
            (v for k, v in self.headers if k.lower() == b"content-type"),
            b"no content-type",
        )
        return f"{len(self.body)}-byte body ({kind.decode('latin-1')})"

    def sendable(self) -> bool:
        """Whether an HTTP/1.1 client can send it (the in-process side would take anything)."""
        return all(_TOKEN.fullmatch(k) and _FIELD_VALUE.fullmatch(v) for k, v in self.headers)


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff](?:[ \t\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?")


@dataclass
class Operation:
    label: str
    requests: list[Wire]
    unsendable: int = 0
    error: str = ""


def schema_of(app: Any) -> dict[str, Any]:
    """The app's OpenAPI schema (a copy: schemathesis edits what it is given)."""
    openapi = getattr(app, "openapi", None)
    if not callable(openapi):
        raise CheckError(f"the app ({type(app).__name__}) has no OpenAPI schema: check needs a FastAPI app.")
    try:
        schema = openapi()
        copied: dict[str, Any] = json.loads(json.dumps(schema))
    except Exception as exc:
        raise CheckError(f"generating the app's OpenAPI schema failed: {_one_line(exc)}") from exc
    return copied


def generate(schema: dict[str, Any], base_url: str, *, max_examples: int, seed: int, mode: str) -> list[Operation]:
    """Up to ``max_examples`` distinct requests per operation, drawn by schemathesis with
    ``seed`` (with ``mode="all"``: half of them valid, half invalid)."""
    import schemathesis

    try:
        loaded = schemathesis.openapi.from_dict(schema, config=schemathesis.Config())
    except Exception as exc:
        raise CheckError(f"schemathesis cannot load the app's schema: {_one_line(exc)}") from exc
    # Hypothesis keeps caches (its character tables take seconds to build) under
    # ./.hypothesis: in the user's cache directory instead, not in their project.
    from hypothesis.configuration import set_hypothesis_home_dir

    with contextlib.ExitStack() as stack:
        home = _cache_dir()
        if home is None:
            home = stack.enter_context(tempfile.TemporaryDirectory(prefix="fastrapi-check-"))
        set_hypothesis_home_dir(home)
        stack.callback(set_hypothesis_home_dir, None)
        return _generate(loaded, base_url, max_examples=max_examples, seed=seed, mode=mode)
    raise AssertionError("unreachable")  # for type checkers: ExitStack may swallow


def _cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/fastrapi-compat/hypothesis`` (``~/.cache/...``), if it can be made."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "fastrapi-compat", "hypothesis")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def _generate(loaded: Any, base_url: str, *, max_examples: int, seed: int, mode: str) -> list[Operation]:
    from schemathesis import GenerationMode
    from schemathesis.core.result import Err

    if mode == "all":
        budgets = [
            (GenerationMode.POSITIVE, max_examples - max_examples // 2),
            (GenerationMode.NEGATIVE, max_examples // 2),
        ]
    else:
        budgets = [(GenerationMode(mode), max_examples)]
    operations = []
    for result in loaded.get_all_operations():
        if isinstance(result, Err):
            error = result.err()
            operations.append(Operation(error.label, [], error=_one_line(error)))
            continue
        operation = result.ok()
        requests: dict[Wire, None] = {}
        errors = []
        unencodable = 0
        for generation_mode, budget in budgets:
            if budget <= 0:
                continue
            try:
                cases = _draw(operation.as_strategy(generation_mode=generation_mode), budget, seed)
            except Exception as exc:  # noqa: BLE001 - reported per operation, never a crash
                errors.append(f"{generation_mode.value}: {_one_line(exc)}")
                continue
            for case in cases:
                try:
                    wire = _to_wire(case.as_transport_kwargs(base_url=base_url))
                except Exception:  # noqa: BLE001 - a request no HTTP client would send
                    unencodable += 1
                else:
                    requests.setdefault(wire, None)
        sendable = [wire for wire in requests if wire.sendable()]
        operations.append(
            Operation(
                operation.label,
                sendable,
                unsendable=len(requests) - len(sendable) + unencodable,
                error="; ".join(errors),
            )
        )
    return operations


def _draw(strategy: Any, count: int, seed: int) -> list[Any]:
    """``count`` examples of ``strategy`` drawn by hypothesis from ``seed`` (fewer when the
    strategy has fewer; none when it has none at all)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed
    from hypothesis.errors import Unsatisfiable

    drawn: list[Any] = []

    @with_seed(seed)
    @settings(
        max_examples=count,
        database=None,  # nothing written to the user's directory
        deadline=None,
        derandomize=False,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(strategy)
    def collect(case: Any) -> None:
        drawn.append(case)

    try:
        collect()
    except Unsatisfiable:
        pass  # e.g. no invalid request exists for an operation without parameters
    return drawn


def _to_wire(kwargs: dict[str, Any]) -> Wire:
    """schemathesis's ``requests`` arguments, encoded once into the exact bytes to send."""
    import requests

    prepared = requests.Request(**kwargs).prepare()
    body = prepared.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif body is None:
        body = b""
    elif not isinstance(body, bytes):  # a stream: never generated
        raise TypeError(f"unexpected request body {type(body).__name__}")
    headers = tuple(
        # Over HTTP a field value never carries leading or trailing whitespace (RFC 9110);
        # the value goes on the wire as latin-1, as requests would send it.
        (_latin1(name), _latin1(value).strip(b" \t"))
        for name, value in prepared.headers.items()
        if str(name).lower() not in DROPPED_REQUEST_HEADERS
    )
    return Wire(str(prepared.method), str(prepared.url), headers, body)


def _latin1(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode("latin-1", "replace")


# ---------------------------------------------------------------------------------------------
# Sending and comparing
# ---------------------------------------------------------------------------------------------


@dataclass
class Answer:
    """One side's answer, normalised for comparison."""

    status: int | None
    headers: dict[str, list[str]]
    body: bytes
    error: str | None = None
    """``"response aborted"`` or ``"timed out"``: what is compared."""
    detail: str = ""
    """How the error showed (the HTTP client's exception): shown, not compared."""

    @classmethod
    def failed(cls, error: str, detail: str = "") -> Answer:
        return cls(None, {}, b"", error=error, detail=detail)

    def outcome(self) -> str:
        if self.error is None:
            return f"answered {self.status}"
        return f"{self.error} ({self.detail})" if self.detail else self.error


class _Aborted(Exception):
    """The app failed after starting its response: a server drops the connection."""


class StockServer:
    """The stock side: ``app`` called directly, with what uvicorn does around an ASGI app."""

    def __init__(self, app: Any, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        scope["state"] = self.state.copy()
        started = completed = False

        async def server_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started, completed
            if message["type"] == "http.response.start":
                started = True  # before the checks below, as in uvicorn
                for name, value in message.get("headers", ()):
                    if _UVICORN_HEADER_NAME.search(name):
                        raise RuntimeError("Invalid HTTP header name.")
                    if _UVICORN_HEADER_VALUE.search(value):
                        raise RuntimeError("Invalid HTTP header value.")
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
            await send(message)

        failure = "the app returned without completing its response"
        try:
            await self.app(scope, receive, server_send)
        except Exception as exc:  # uvicorn logs it and answers as below
            logger.debug("Exception in ASGI application (stock side)", exc_info=exc)
            failure = _one_line(exc)
        if not started:
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"21"),
            ]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": INTERNAL_SERVER_ERROR})
        elif not completed:
            raise _Aborted(failure)


# What uvicorn (httptools) refuses to write in a response head; it then drops the connection,
# as the response counts as started.
_UVICORN_HEADER_NAME = re.compile(rb'[\x00-\x1f\x7f()<>@,;:\[\]={} \t\\"]')
_UVICORN_HEADER_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


async def ask_stock(
    client: httpx.AsyncClient,
    wire: Wire,
    options: Options,
    running: set[asyncio.Task[Answer]],
) -> Answer:
    """Ask the stock side. A request that times out is left running (added to ``running``),
    as a server leaves the app running when its client goes away."""
    task = asyncio.ensure_future(_ask(client, wire, options))
    try:
        return await asyncio.wait_for(asyncio.shield(task), options.timeout)
    except _Aborted as exc:
        return Answer.failed("response aborted", str(exc))
    except asyncio.TimeoutError:
        running.add(task)
        task.add_done_callback(_forget)
        return Answer.failed("timed out")


def _forget(task: asyncio.Task[Answer]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: nobody waits for it any more


async def ask_engine(client: httpx.AsyncClient, wire: Wire, options: Options) -> Answer:
    try:
        return await _ask(client, wire, options)
    except httpx.TimeoutException:
        return Answer.failed("timed out")
    except httpx.TransportError as exc:
        return Answer.failed("response aborted", _one_line(exc))


async def _ask(client: httpx.AsyncClient, wire: Wire, options: Options) -> Answer:
    request = httpx.Request(wire.method, wire.url, headers=list(wire.headers), content=wire.body)
    response = await client.send(request, stream=True)
    try:
        # The body as sent (no content decoding by httpx), like compare.py's capture().
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    if wire.method == "HEAD":
        body = b""  # a server never sends it (Starlette hands one to the in-process side)
    return _normalise(response.status_code, response.headers.raw, body, options)


def _normalise(status: int, raw: Iterable[tuple[bytes, bytes]], body: bytes, options: Options) -> Answer:
    masks = options.masks
    headers: dict[str, list[str]] = {}
    for name_b, value_b in raw:
        name = name_b.decode("latin-1").lower()
        if name in IGNORED_HEADERS or name in HOP_BY_HOP or name in options.ignored_headers:
            continue
        headers.setdefault(name, []).append(header_value(name, value_b.decode("latin-1"), masks))
    encoding = (headers.get("content-encoding") or [""])[-1].strip().lower()
    if encoding in ("gzip", "deflate") and body:
        try:
            body = decode_content(body, encoding)
        except (OSError, EOFError, zlib.error):
            pass  # compared as sent
        else:
            headers.pop("content-length", None)  # the compressed length depends on the time
    return Answer(status, dict(sorted(headers.items())), mask_body(body, masks))


def differences(stock: Answer, engine: Answer) -> list[str]:
    """What differs between the two answers, one line each (empty when they match)."""
    problems = []
    if stock.error != engine.error:
        return [f"outcome: stock {stock.outcome()}, engine {engine.outcome()}"]
    if stock.status != engine.status:
        problems.append(f"status: stock {stock.status}, engine {engine.status}")
    engine_headers = dict(engine.headers)
    if "content-length" not in stock.headers:
        engine_headers.pop("content-length", None)  # framing the server added
    for name in sorted(set(stock.headers) | set(engine_headers)):
        if stock.headers.get(name) != engine_headers.get(name):
            problems.append(f"header {name!r}: stock {stock.headers.get(name)}, engine {engine_headers.get(name)}")
    if stock.body != engine.body:
        problems.append(body_difference(stock.body, engine.body, "stock"))
    return problems


# ---------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------


@dataclass
class Mismatch:
    request: Wire
    problems: list[str]


@dataclass
class OperationReport:
    label: str
    requests: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    unsendable: int = 0
    error: str = ""


@dataclass
class Report:
    seed: int
    operations: list[OperationReport]
    engine_http: int = 0
    engine_native: int = 0
    shared_reason: str = ""

    @property
    def differences(self) -> int:
        return sum(len(op.mismatches) for op in self.operations)

    @property
    def requests(self) -> int:
        return sum(op.requests for op in self.operations)


@dataclass(frozen=True)
class Options:
    max_examples: int = DEFAULT_MAX_EXAMPLES
    seed: int | None = None
    mode: str = "all"
    timeout: float = DEFAULT_TIMEOUT
    tier: str = "auto"
    masks: tuple[str, ...] = ()
    """Regular expressions whose matches become ``<MASKED>`` in header values and bodies."""
    ignored_headers: frozenset[str] = frozenset()
    """Lower-case names of response headers left out of the comparison."""


def run_check(pair: AppPair, options: Options, out: IO[str] | None = None) -> Report:
    """Serve ``pair.engine`` with the engine, fuzz both sides, print per operation as it goes.

    Raises :class:`CheckError` (one line) when the check cannot start (no schema, a lifespan
    startup that fails, ...).
    """
    from fastrapi_compat.errors import StartupError
    from fastrapi_compat.serve.server import ServerThread, new_event_loop

    out = out or sys.stdout
    seed = options.seed if options.seed is not None else random.randrange(2**32)
    engine = ServerThread(pair.engine, host="127.0.0.1", port=0, lifespan="auto", tier=options.tier)
    try:
        engine.start()
    except StartupError as exc:
        engine.stop()
        raise CheckError(str(exc)) from exc
    try:
        loop = new_event_loop()
        try:
            report = loop.run_until_complete(_check(pair.stock, engine.url, seed, options, out))
        finally:
            loop.close()
        stats = engine.stats()
        report.engine_http, report.engine_native = (
            stats.get("http", 0),
            stats.get("native", 0),
        )
    finally:
        engine.stop()
    report.shared_reason = pair.shared_reason
    return report


async def _check(stock_app: Any, base_url: str, seed: int, options: Options, out: IO[str]) -> Report:
    from fastrapi_compat.errors import StartupError
    from fastrapi_compat.serve.lifespan import Lifespan

    lifespan = Lifespan(stock_app, "auto", logger)
    try:
        await lifespan.startup()
    except StartupError as exc:
        raise CheckError(f"{exc} (stock side, after it started on the engine)") from exc
    try:
        # After the lifespan started, as the engine compiles its routes: apps add routes there too.
        schema = schema_of(stock_app)
        operations = generate(
            schema,
            base_url,
            max_examples=options.max_examples,
            seed=seed,
            mode=options.mode,
        )
        width = max((len(op.label) for op in operations), default=0)
        transport = httpx.ASGITransport(app=StockServer(stock_app, lifespan.state))
        reports = []
        running: set[asyncio.Task[Answer]] = set()
        async with httpx.AsyncClient(transport=transport) as stock:
            engine = _engine_client(options.timeout)
            try:
                for operation in operations:
                    report = OperationReport(
                        operation.label,
                        unsendable=operation.unsendable,
                        error=operation.error,
                    )
                    for wire in operation.requests:
                        stock_answer = await ask_stock(stock, wire, options, running)
                        engine_answer = await ask_engine(engine, wire, options)
                        report.requests += 1
                        problems = differences(stock_answer, engine_answer)
                        if problems:
                            report.mismatches.append(Mismatch(wire, problems))
                        if engine_answer.error or (engine_answer.status or 500) >= 500:
                            # After a failure the server may close the connection without
                            # saying so; a fresh connection cannot race that close.
                            await engine.aclose()
                            engine = _engine_client(options.timeout)
                    reports.append(report)
                    print_operation(report, width, out)
            finally:
                await engine.aclose()
                for task in running:
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)
    finally:
        await lifespan.shutdown()
    return Report(seed=seed, operations=reports)


def _engine_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)


def print_operation(report: OperationReport, width: int, out: IO[str]) -> None:
    """One line for the operation; for a difference, what differed in its first request."""
    label = report.label.ljust(width)
    sent = _count(report.requests, "request")
    if report.mismatches:
        print(
            f"{label}  {_count(len(report.mismatches), 'difference')} in {sent}",
            file=out,
        )
        first = report.mismatches[0]
        print(f"    first: {first.request.method} {first.request.target()}", file=out)
        if first.request.body:
            print(f"      with a {first.request.describe_body()}", file=out)
        for problem in first.problems:
            print(f"      {problem}", file=out)
    elif report.requests:
        print(f"{label}  ok ({sent})", file=out)
    else:
        print(f"{label}  no requests generated", file=out)
    if report.unsendable:
        skipped = _count(report.unsendable, "generated request")
        print(f"    {skipped} not sent: no HTTP/1.1 client sends them", file=out)
    if report.error:
        print(f"    generation: {report.error}", file=out)
    out.flush()


def summary(report: Report) -> str:
    """The last line: operations, requests, differences, native share, seed."""
    ops = len(report.operations)
    differing = sum(bool(op.mismatches) for op in report.operations)
    if report.differences:
        outcome = f"{_count(report.differences, 'difference')} in {differing} of {ops} operations"
    else:
        outcome = "no differences"
    return (
        f"{_count(ops, 'operation')}, {_count(report.requests, 'request')}: {outcome}; "
        f"the engine answered {report.engine_native} of {report.engine_http} natively "
        f"(seed {report.seed})"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())
