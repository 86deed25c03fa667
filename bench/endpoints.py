"""The requests the benchmark sends: one :class:`Endpoint` per measured route, plus a few
probes that are only checked for identical answers (never measured)."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    """One request: ``name`` is what tables show, ``target`` the request line's path+query."""

    name: str
    method: str
    target: str
    body: bytes | None = None
    description: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"} if self.body is not None else {}


ITEM_BODY = json.dumps(
    {"name": "widget", "price": 9.5, "tags": ["blue", "small"]}, separators=(",", ":")
).encode()

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/plain", "GET", "/plain", description="async def, small dict"),
    Endpoint("/sync", "GET", "/sync", description="def (thread pool), small dict"),
    Endpoint(
        "/items/{id}",
        "GET",
        "/items/42?q=hello&limit=5",
        description="typed path + query params",
    ),
    Endpoint(
        "POST /items",
        "POST",
        "/items",
        body=ITEM_BODY,
        description="pydantic body + response_model",
    ),
    Endpoint("/deps", "GET", "/deps?page=3", description="two levels of Depends"),
    Endpoint("/big", "GET", "/big", description="list of 100 dicts"),
)

# Checked for identical answers only: error paths must match too.
PROBES: tuple[Endpoint, ...] = (
    Endpoint("422 path", "GET", "/items/abc", description="int path param not an int"),
    Endpoint(
        "422 body", "POST", "/items", body=b'{"name":"x"}', description="missing field"
    ),
    Endpoint("404", "GET", "/no-such-route", description="unknown path"),
    Endpoint("405", "DELETE", "/plain", description="method not allowed"),
)

SCALING_ENDPOINT = ENDPOINTS[0]


def endpoint_by_name(name: str) -> Endpoint:
    for endpoint in ENDPOINTS:
        if endpoint.name == name or endpoint.target == name:
            return endpoint
    names = ", ".join(e.name for e in ENDPOINTS)
    raise ValueError(f"unknown endpoint {name!r} (known: {names})")
