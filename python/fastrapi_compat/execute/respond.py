"""Serialization for flat plans: an endpoint's return value into the bytes, status and
headers FastAPI's handler would send (JSON rendered in Rust for plain data, ``json.dumps``
as ``JSONResponse`` otherwise, the response class for the rest), direct pydantic-core
validation, and the endpoint context errors carry."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import fastapi.exceptions
import fastapi.params
import fastapi.responses
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import ValidationError
from starlette.responses import Response

from fastrapi_compat._native import dumps_plain
from fastrapi_compat.execute.call import NativeCall
from fastrapi_compat.plan import internals
from fastrapi_compat.plan.flat import FlatPlan

Undefined = internals.Undefined


def validate_directly(
    core: tuple[Callable[..., Any], Callable[..., list[Any]]], value: Any, loc: tuple[str, ...]
) -> tuple[Any, list[Any]]:
    """``field.validate(value, loc=loc)`` through the calls it makes (``core``: what
    :func:`internals.core_validator` gave). ``_params_to_args`` inlines the same steps: it
    runs them for every parameter of every request."""
    try:
        return core[0](value, from_attributes=True), []
    except ValidationError as exc:
        return None, core[1](errors=exc.errors(include_url=False), loc_prefix=loc)


UNSERIALIZED: Any = object()


EndpointContext: Any = getattr(fastapi.exceptions, "EndpointContext", dict)


def make_answer(flat: FlatPlan, raw: Any, content: Any) -> Response | tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The response FastAPI's handler makes of the endpoint's return value ``raw`` (``content``:
    what ``serialize_response`` made of it, when the route has a response field): JSON bytes
    with their status and headers, or the response class's instance."""
    rendered: Any = None
    if content is UNSERIALIZED:
        if flat.json_class:
            rendered = dumps_plain(raw)  # plain data: the same bytes, rendered in Rust
            content = jsonable_encoder(raw) if rendered is None else None
        else:
            content = jsonable_encoder(raw)
    elif flat.legacy and flat.json_class:
        # Older releases give a response model's content as Python data for the response class
        # to render: plain data takes the same shortcut as a return value without a model above
        # (the same bytes json.dumps gives it). 0.165 renders an explicit JSONResponse's content
        # with json.dumps, as its suite checks.
        rendered = dumps_plain(content)
    status = flat.status_code
    if flat.use_dump_json:
        rendered = content
    elif flat.json_class:
        if rendered is None:
            rendered = json.dumps(
                content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
            ).encode("utf-8")
    else:
        response = flat.response_class(content, status_code=status) if status else flat.response_class(content)
        if not is_body_allowed_for_status_code(response.status_code):
            response.body = b""
        return response  # type: ignore[no-any-return]
    # What Response(rendered, media_type="application/json", status_code=...) gives.
    status = status or 200
    headers = [(b"content-type", b"application/json")]
    if not (status < 200 or status in (204, 304)):
        headers.insert(0, (b"content-length", str(len(rendered)).encode("latin-1")))
    if not flat.body_allowed:
        rendered = b""
    return status, headers, rendered


def request_error(flat: FlatPlan, call: NativeCall, errors: list[Any], body: Any) -> RequestValidationError:
    """The ``RequestValidationError`` FastAPI's handler raises, with the endpoint context on
    releases whose errors carry one."""
    if flat.error_context:
        return RequestValidationError(errors, body=body, endpoint_ctx=endpoint_ctx(flat, call))
    return RequestValidationError(errors, body=body)


def response_error(flat: FlatPlan, call: NativeCall, errors: list[Any], raw: Any) -> ResponseValidationError:
    """The ``ResponseValidationError`` ``serialize_response`` raises (the endpoint context, or
    an empty one, on releases whose errors carry one)."""
    if flat.error_context:
        return ResponseValidationError(
            errors=errors, body=raw, endpoint_ctx=endpoint_ctx(flat, call) or EndpointContext()
        )
    return ResponseValidationError(errors=errors, body=raw)


def serialize_context(flat: FlatPlan, call: NativeCall) -> dict[str, Any]:
    """``serialize_response``'s ``endpoint_ctx`` argument, on releases that take one."""
    return {"endpoint_ctx": endpoint_ctx(flat, call)} if flat.error_context else {}


def endpoint_ctx(flat: FlatPlan, call: NativeCall) -> Any:
    """The endpoint context FastAPI's handler gives errors (a new dict each time, as there)."""
    key = call.method_and_root()
    ctx = flat.contexts.get(key)
    if ctx is None:
        ctx = dict(flat.endpoint_ctx)
        if flat.dependant_path:
            ctx["path"] = f"{key[0]} {key[1].rstrip('/')}{flat.dependant_path}"
        if len(flat.contexts) < 16:
            flat.contexts[key] = ctx
    return dict(ctx)
