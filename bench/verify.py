"""Same answers before any speed: each server's status, body bytes and the headers that
middleware adds (CORS, ``Content-Encoding``, ``Vary``) for each request, compared with
FastAPI+uvicorn's (a benchmark of wrong answers is worthless)."""

from __future__ import annotations

import gzip
import http.client
import json
import zlib
from dataclasses import dataclass

from bench.endpoints import Endpoint, Headers

IDENTICAL = "identical"
GZIP_EQUAL = "gzip-equal"  # compressed bytes differ, same body decompressed: measured
JSON_EQUAL = "json-equal"  # bytes differ, same JSON value (e.g. other whitespace): measured
DIFFERENT = "different"  # another status, header or value: not measured

# Response headers compared (names lower-case), besides every ``access-control-*`` one.
COMPARED_HEADERS = ("content-encoding", "vary")


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes  # as sent: compressed if ``content-encoding`` says so
    headers: Headers = ()  # names lower-case, in the order received

    def compared_headers(self) -> list[tuple[str, str]]:
        """The middleware's headers, by name (the order of different names means nothing)."""
        compared = [
            (name, value)
            for name, value in self.headers
            if name in COMPARED_HEADERS or name.startswith("access-control-")
        ]
        return sorted(compared, key=lambda header: header[0])

    def decoded_body(self) -> bytes:
        """The body with a gzip ``content-encoding`` undone (as is if it does not inflate)."""
        if dict(self.headers).get("content-encoding") != "gzip":
            return self.body
        try:
            return gzip.decompress(self.body)
        except (OSError, EOFError, zlib.error):
            return self.body


@dataclass(frozen=True)
class Verdict:
    endpoint: str
    outcome: str  # IDENTICAL, JSON_EQUAL or DIFFERENT
    detail: str = ""

    @property
    def measurable(self) -> bool:
        return self.outcome != DIFFERENT

    def to_json(self) -> dict[str, str]:
        return {
            "endpoint": self.endpoint,
            "outcome": self.outcome,
            "detail": self.detail,
        }


def fetch(host: str, port: int, endpoint: Endpoint, timeout: float = 10) -> Answer:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(
            endpoint.method,
            endpoint.target,
            body=endpoint.body,
            headers=endpoint.headers,
        )
        response = conn.getresponse()
        headers = tuple((name.lower(), value) for name, value in response.getheaders())
        return Answer(
            response.status,
            response.getheader("content-type") or "",
            response.read(),
            headers,
        )
    finally:
        conn.close()


def _short(body: bytes, limit: int = 160) -> str:
    text = body.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + f"... ({len(body)} bytes)"


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


_NOT_JSON = object()


def compare(endpoint: str, reference: Answer, candidate: Answer) -> Verdict:
    """How ``candidate`` differs from ``reference`` (FastAPI+uvicorn's answer)."""
    if candidate.status != reference.status:
        return Verdict(
            endpoint,
            DIFFERENT,
            f"status {candidate.status}, expected {reference.status}; body {_short(candidate.body)!r}",
        )
    if candidate.compared_headers() != reference.compared_headers():
        return Verdict(
            endpoint,
            DIFFERENT,
            f"headers {candidate.compared_headers()}, expected {reference.compared_headers()}",
        )
    if candidate.body == reference.body:
        return Verdict(endpoint, IDENTICAL)
    ref_body, body = reference.decoded_body(), candidate.decoded_body()
    if body == ref_body:
        return Verdict(
            endpoint,
            GZIP_EQUAL,
            f"same body decompressed, other gzip bytes ({len(candidate.body)} vs {len(reference.body)} bytes)",
        )
    ref_value, value = _json(ref_body), _json(body)
    if ref_value is not _NOT_JSON and value == ref_value:
        return Verdict(
            endpoint,
            JSON_EQUAL,
            f"same JSON, other bytes: {_short(body)!r} vs {_short(ref_body)!r}",
        )
    return Verdict(endpoint, DIFFERENT, f"body {_short(body)!r}, expected {_short(ref_body)!r}")


def collect(host: str, port: int, endpoints: tuple[Endpoint, ...] | list[Endpoint]) -> dict[str, Answer]:
    """Each endpoint's answer; one that fails (reset, timeout) is status 0 with the error."""
    answers = {}
    for e in endpoints:
        try:
            answers[e.name] = fetch(host, port, e)
        except (OSError, http.client.HTTPException) as exc:
            answers[e.name] = Answer(0, "", f"no answer: {exc!r}".encode())
    return answers
