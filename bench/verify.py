"""Same answers before any speed: each server's status and body bytes for each request,
compared with FastAPI+uvicorn's (a benchmark of wrong answers is worthless)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass

from bench.endpoints import Endpoint

IDENTICAL = "identical"
JSON_EQUAL = (
    "json-equal"  # bytes differ, same JSON value (e.g. other whitespace): measured
)
DIFFERENT = "different"  # another status or another value: not measured


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


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
        return Answer(
            response.status, response.getheader("content-type") or "", response.read()
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
            f"status {candidate.status}, expected {reference.status}; "
            f"body {_short(candidate.body)!r}",
        )
    if candidate.body == reference.body:
        return Verdict(endpoint, IDENTICAL)
    ref_value, value = _json(reference.body), _json(candidate.body)
    if ref_value is not _NOT_JSON and value == ref_value:
        return Verdict(
            endpoint,
            JSON_EQUAL,
            f"same JSON, other bytes: {_short(candidate.body)!r} vs {_short(reference.body)!r}",
        )
    return Verdict(
        endpoint,
        DIFFERENT,
        f"body {_short(candidate.body)!r}, expected {_short(reference.body)!r}",
    )


def collect(
    host: str, port: int, endpoints: tuple[Endpoint, ...] | list[Endpoint]
) -> dict[str, Answer]:
    """Each endpoint's answer; one that fails (reset, timeout) is status 0 with the error."""
    answers = {}
    for e in endpoints:
        try:
            answers[e.name] = fetch(host, port, e)
        except (OSError, http.client.HTTPException) as exc:
            answers[e.name] = Answer(0, "", f"no answer: {exc!r}".encode())
    return answers
