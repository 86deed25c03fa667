"""Send the same request to the reference server and to the engine; assert identical answers.

HTTP: status, reason phrase, headers (names case-insensitive; ``date`` and ``server`` left out;
compared as a multiset, but values of one name keep their order, e.g. ``set-cookie``) and body
bytes. WebSocket: a scripted conversation on each side, compared message by message together
with the handshake (subprotocol, headers) or the HTTP denial, and the close code and reason.

Things that legitimately differ between two servers are normalised before comparing: each
server's own port (in ``Host``-derived URLs, ``Location``...) becomes ``<PORT>``, and the
``Allow`` header's method order (Starlette joins a ``set``, so its order depends on the hash
seed) is sorted.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from fastrapi_compat.tools.compare import (
    IGNORED_HEADERS,
    body_difference,
    decode_content,
    header_value,
    mask_body,
)

PORT_PLACEHOLDER = "<PORT>"
HTTP_TIMEOUT = 20.0
WS_TIMEOUT = 10.0
FIXED_BOUNDARY = "diff-test-boundary-7d1f3a"

# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    """One request, sent identically to both servers.

    ``content`` may be a zero-argument callable returning an iterator of bytes: each side gets
    its own fresh generator and httpx sends it with ``Transfer-Encoding: chunked``.
    ``drop_headers`` removes default httpx headers (e.g. ``accept-encoding``).
    ``decode_body`` compares the content-decoded body instead of the wire bytes (see
    ``capture``); ``headers`` may be a list of pairs to repeat a header name. ``mask`` lists
    regular expressions whose matches in header values and body become ``<MASKED>`` (for
    values the app derives from the clock, e.g. ``delete_cookie``'s ``expires``).
    """

    method: str
    path: str
    params: Any = None
    headers: Any = None
    json: Any = None
    data: Any = None
    files: Any = None
    content: Any = None
    drop_headers: Sequence[str] = ()
    decode_body: bool = False
    mask: Sequence[str] = ()
    id: str = ""

    def label(self) -> str:
        return self.id or f"{self.method} {self.path}"


@dataclass
class Captured:
    """What one server answered, normalised for comparison."""

    status: int | None
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    error: str | None = None
    raw_length: int | None = None

    def header_groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name, value in self.headers:
            groups.setdefault(name, []).append(value)
        return dict(sorted(groups.items()))

    def header(self, name: str) -> str | None:
        values = self.header_groups().get(name.lower())
        return values[-1] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    def render(self) -> list[str]:
        lines = [f"status: {self.status} {self.reason}"]
        if self.error:
            lines.append(f"transport error: {self.error}")
        for name, values in self.header_groups().items():
            lines.extend(f"header {name}: {value}" for value in values)
        lines.append(f"body ({len(self.body)} bytes):")
        lines.extend(_render_body(self.body))
        return lines


def make_client(server: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT, follow_redirects=False)


def _replace_port(data: bytes, port: int) -> bytes:
    for host in (b"127.0.0.1", b"localhost"):
        data = data.replace(host + b":" + str(port).encode(), host + b":" + PORT_PLACEHOLDER.encode())
    return data


def build_request(client: httpx.Client, req: Req) -> httpx.Request:
    content = req.content() if callable(req.content) else req.content
    headers = req.headers
    if req.files is not None and not _has_header(headers, "content-type"):
        # httpx picks a random multipart boundary; fix it so both sides get identical bytes.
        extra = [("content-type", f"multipart/form-data; boundary={FIXED_BOUNDARY}")]
        headers = list(_header_items(headers)) + extra
    request = client.build_request(
        req.method,
        req.path,
        params=req.params,
        headers=headers,
        json=req.json,
        data=req.data,
        files=req.files,
        content=content,
    )
    for name in req.drop_headers:
        del request.headers[name]
    return request


def _header_items(headers: Any) -> Iterable[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def _has_header(headers: Any, name: str) -> bool:
    return any(k.lower() == name for k, _ in _header_items(headers))


def capture(client: httpx.Client, port: int, req: Req) -> Captured:
    """Send ``req`` and read the whole answer, wire bytes as sent (no content decoding).

    With ``req.decode_body`` the body is content-decoded (gzip) and ``content-length`` is
    checked against the wire bytes, then left out of the comparison: the compressed bytes
    depend on the deflate implementation and on gzip's mtime field, the decoded bytes do not.
    """
    request = build_request(client, req)
    response = client.send(request, stream=True)
    error = None
    chunks: list[bytes] = []
    try:
        chunks.extend(response.iter_raw())
    except httpx.TransportError as exc:
        error = type(exc).__name__
    finally:
        response.close()
    raw = b"".join(chunks)
    headers = []
    for name_b, value_b in response.headers.raw:
        name = name_b.decode("latin-1").lower()
        if name in IGNORED_HEADERS:
            continue
        headers.append((name, header_value(name, _replace_port(value_b, port).decode("latin-1"), req.mask)))
    body = raw
    raw_length = None
    if req.decode_body and error is None:
        encoding = response.headers.get("content-encoding")
        body = decode_content(raw, encoding)
        raw_length = len(raw)
        declared = response.headers.get("content-length")
        if declared is not None and req.method != "HEAD" and int(declared) != len(raw):
            raise AssertionError(f"{req.label()}: content-length {declared} but {len(raw)} bytes on the wire")
        headers = [(n, v) for n, v in headers if n != "content-length"]
    normalized = mask_body(_replace_port(body, port), req.mask)
    if normalized != body:
        # Keep the declared length consistent with the normalised body (the two servers'
        # ports, or masked values, need not have the same number of characters).
        headers = [(n, str(len(normalized)) if n == "content-length" else v) for n, v in headers]
    return Captured(
        status=response.status_code,
        reason=response.reason_phrase,
        headers=headers,
        body=normalized,
        error=error,
        raw_length=raw_length,
    )


def assert_same(label: str, reference: Captured, engine: Captured) -> None:
    problems = []
    if (reference.status, reference.reason) != (engine.status, engine.reason):
        problems.append(
            f"status: uvicorn {reference.status} {reference.reason!r} != engine {engine.status} {engine.reason!r}"
        )
    if reference.error != engine.error:
        problems.append(f"transport error: uvicorn {reference.error} != engine {engine.error}")
    ref_groups, eng_groups = reference.header_groups(), engine.header_groups()
    if ref_groups != eng_groups:
        for name in sorted(set(ref_groups) | set(eng_groups)):
            if ref_groups.get(name) != eng_groups.get(name):
                problems.append(f"header {name!r}: uvicorn {ref_groups.get(name)} != engine {eng_groups.get(name)}")
    if reference.body != engine.body:
        problems.append(body_difference(reference.body, engine.body, "uvicorn", context=40))
    if problems:
        diff = difflib.unified_diff(reference.render(), engine.render(), "uvicorn", "engine", lineterm="", n=3)
        raise AssertionError(
            f"{label}: engine differs from uvicorn\n  - "
            + "\n  - ".join(problems)
            + "\n"
            + "\n".join(_truncate_lines(list(diff), 120))
        )


def compare(pair: Any, req: Req, clients: tuple[httpx.Client, httpx.Client] | None = None) -> Captured:
    """Send ``req`` to both servers of ``pair``; assert the answers match; return uvicorn's."""
    own_clients = clients is None
    if clients is None:
        clients = (make_client(pair.reference), make_client(pair.engine))
    try:
        reference = capture(clients[0], pair.reference.port, req)
        engine = capture(clients[1], pair.engine.port, req)
    finally:
        if own_clients:
            for client in clients:
                client.close()
    assert_same(req.label(), reference, engine)
    return reference


class PairClients:
    """One keep-alive httpx client per server, for a module's worth of requests."""

    def __init__(self, pair: Any) -> None:
        self.pair = pair
        self.reference = make_client(pair.reference)
        self.engine = make_client(pair.engine)

    def compare(self, req: Req) -> Captured:
        reference = engine = None
        try:
            reference = capture(self.reference, self.pair.reference.port, req)
            engine = capture(self.engine, self.pair.engine.port, req)
        finally:
            if not _reusable(reference) or not _reusable(engine):
                # After an unhandled error uvicorn closes the connection without a
                # ``connection: close`` header; reusing it would race that close.
                self.reset()
        assert reference is not None and engine is not None
        assert_same(req.label(), reference, engine)
        return reference

    def reset(self) -> None:
        self.close()
        self.reference = make_client(self.pair.reference)
        self.engine = make_client(self.pair.engine)

    def poll_until(self, req: Req, done: Callable[[Captured], bool], what: str) -> None:
        """On each server separately, repeat ``req`` until ``done(answer)`` (with a deadline).

        For effects that land after the response (background tasks, yield-dependency exits,
        websocket disconnects); compare afterwards, once both sides have settled.
        """
        for side, server, client in self.each():

            def fetch(client: httpx.Client = client, server: Any = server) -> Captured | None:
                try:
                    return capture(client, server.port, req)
                except httpx.TransportError:  # uvicorn closes a connection whose app raised late
                    return None

            poll(fetch, lambda answer: answer is not None and done(answer), f"{what} ({side})")

    def each(self) -> Iterator[tuple[str, Any, httpx.Client]]:
        yield "uvicorn", self.pair.reference, self.reference
        yield "engine", self.pair.engine, self.engine

    def close(self) -> None:
        self.reference.close()
        self.engine.close()


def _reusable(answer: Captured | None) -> bool:
    return answer is not None and answer.error is None and (answer.status or 500) < 500


def poll(
    fetch: Callable[[], Any],
    done: Callable[[Any], bool],
    what: str,
    timeout: float = 10.0,
    interval: float = 0.02,
) -> Any:
    """Call ``fetch`` until ``done(result)``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {result!r}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _render_body(body: bytes) -> list[str]:
    if len(body) > 64 * 1024:
        return [f"<{len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()[:16]}>"]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return [repr(body[i : i + 64]) for i in range(0, len(body), 64)][:40]
    if text.startswith(("{", "[")) and "\n" not in text:
        # One long JSON line is unreadable in a diff; cut it into fixed-width pieces
        # without reformatting, so byte differences (spacing, escapes) still show.
        return _split_json_line(text)
    return text.splitlines() or [""]


def _split_json_line(text: str, width: int = 100) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)]


def _truncate_lines(lines: list[str], limit: int) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"... ({len(lines) - limit} more diff lines)"]


# ---------------------------------------------------------------------------------------------
# WebSocket
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WsStep:
    """One step of a scripted conversation.

    kinds: ``send`` (``data`` is str or bytes), ``recv`` (one message), ``recv_close`` (expect
    the server to close: record its close frame), ``close`` (client closes with ``code`` and
    ``reason``).
    """

    kind: str
    data: str | bytes | None = None
    code: int = 1000
    reason: str = ""


def send(data: str | bytes) -> WsStep:
    return WsStep("send", data)


def recv() -> WsStep:
    return WsStep("recv")


def recv_close() -> WsStep:
    return WsStep("recv_close")


def close(code: int = 1000, reason: str = "") -> WsStep:
    return WsStep("close", code=code, reason=reason)


@dataclass
class WsTranscript:
    events: list[tuple[Any, ...]] = field(default_factory=list)

    def render(self) -> list[str]:
        return [repr(event) for event in self.events]


WS_IGNORED_HEADERS = IGNORED_HEADERS | {"sec-websocket-accept"}


def _ws_headers(headers: Any, port: int) -> list[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for name, value in headers.raw_items():
        name = name.lower()
        if name in WS_IGNORED_HEADERS:
            continue
        groups.setdefault(name, []).append(_replace_port(value.encode("latin-1"), port).decode("latin-1"))
    return [(name, value) for name, values in sorted(groups.items()) for value in values]


def run_ws(
    server: Any,
    path: str,
    script: Sequence[WsStep],
    subprotocols: Sequence[str] | None = None,
    headers: Any = None,
    extensions: Sequence[Any] | None = None,
) -> WsTranscript:
    """Run ``script`` against ``server`` and record everything observable; ``extensions``: the
    client's permessage-deflate offers (websockets' factories), none by default."""
    transcript = WsTranscript()
    events = transcript.events
    url = f"ws://127.0.0.1:{server.port}{path}"
    with contextlib.ExitStack() as stack:
        try:
            # enter_context covers both websockets modes: handshake in connect() (legacy)
            # or in __enter__.
            ws = stack.enter_context(
                ws_connect(
                    url,
                    subprotocols=[Subprotocol(p) for p in subprotocols] if subprotocols else None,
                    additional_headers=headers,
                    compression=None,
                    extensions=extensions,
                    open_timeout=WS_TIMEOUT,
                    close_timeout=WS_TIMEOUT,
                    user_agent_header="diff-test",
                )
            )
        except InvalidStatus as exc:
            response = exc.response
            body = _replace_port(bytes(response.body or b""), server.port)
            events.append(
                (
                    "denied",
                    response.status_code,
                    response.reason_phrase,
                    _ws_headers(response.headers, server.port),
                    body,
                )
            )
            return transcript
        assert ws.response is not None
        events.append(("open", ws.subprotocol, _ws_headers(ws.response.headers, server.port)))
        for step in script:
            try:
                if step.kind == "send":
                    assert step.data is not None
                    ws.send(step.data)
                    events.append(("sent", step.data))
                elif step.kind == "recv":
                    message = ws.recv(timeout=WS_TIMEOUT)
                    events.append(("recv", type(message).__name__, message))
                elif step.kind == "recv_close":
                    message = ws.recv(timeout=WS_TIMEOUT)
                    events.append(("unexpected message", message))
                    break
                elif step.kind == "close":
                    ws.close(step.code, step.reason)
                    rcvd = ws.protocol.close_rcvd
                    events.append(("client closed", step.code, step.reason))
                    events.append(
                        (
                            "close echoed",
                            rcvd.code if rcvd else None,
                            rcvd.reason if rcvd else None,
                        )
                    )
                    break
                else:
                    raise ValueError(step.kind)
            except ConnectionClosed as exc:
                rcvd = exc.rcvd
                events.append(
                    (
                        "closed by server",
                        rcvd.code if rcvd else None,
                        rcvd.reason if rcvd else None,
                        type(exc).__name__,
                    )
                )
                break
            except TimeoutError:
                events.append(("timeout waiting", step.kind))
                break
    return transcript


def compare_ws(
    pair: Any,
    path: str,
    script: Sequence[WsStep],
    subprotocols: Sequence[str] | None = None,
    headers: Any = None,
    extensions: Sequence[Any] | None = None,
) -> WsTranscript:
    """Run the same conversation on both servers; assert identical transcripts."""
    reference = run_ws(pair.reference, path, script, subprotocols, headers, extensions)
    engine = run_ws(pair.engine, path, script, subprotocols, headers, extensions)
    if reference.events != engine.events:
        diff = difflib.unified_diff(reference.render(), engine.render(), "uvicorn", "engine", lineterm="", n=2)
        raise AssertionError(
            f"websocket {path}: engine differs from uvicorn\n" + "\n".join(_truncate_lines(list(diff), 80))
        )
    return reference
