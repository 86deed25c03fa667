"""The request body as FastAPI's handler reads it for a JSON body parameter: taken whole
from the engine when it has been read, decoded by content type, with FastAPI's 422 for bad
JSON and 400 for a body that cannot be read."""

from __future__ import annotations

import email.message
import json
from typing import Any

from starlette.exceptions import HTTPException

from fastrapi_compat.execute.call import NativeCall
from fastrapi_compat.execute.respond import request_error
from fastrapi_compat.plan import internals
from fastrapi_compat.plan.flat import FlatPlan

Undefined = internals.Undefined


_JSON_CONTENT_TYPES: dict[str, bool] = {}


def _is_json_content_type(value: str) -> bool:
    """FastAPI's test (``application/json`` or ``application/*+json``, parsed with
    ``email.message``), remembered per header value."""
    known = _JSON_CONTENT_TYPES.get(value)
    if known is None:
        message = email.message.Message()
        message["content-type"] = value
        subtype = message.get_content_subtype()
        known = message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))
        if len(_JSON_CONTENT_TYPES) < 256:
            _JSON_CONTENT_TYPES[value] = known
    return known


async def read_json_body(call: NativeCall, flat: FlatPlan) -> Any:
    """The body as FastAPI's handler reads it for a JSON body parameter."""
    try:
        body_bytes = call.take_body()
        if body_bytes is None:
            request = call.conn()
            body_bytes = await internals.request_body(request)
            content_type_value = request.headers.get("content-type")
        else:
            content_type_value = call.header("content-type")
        if not body_bytes:
            return Undefined
        json_body: Any = Undefined
        if not content_type_value:
            if not flat.strict_content_type:
                json_body = json.loads(body_bytes)  # what ``await request.json()`` does
        elif _is_json_content_type(content_type_value):
            json_body = json.loads(body_bytes)
        return json_body if json_body is not Undefined else body_bytes
    except json.JSONDecodeError as e:
        raise request_error(
            flat,
            call,
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", e.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": e.msg},
                }
            ],
            e.doc,
        ) from e
    except HTTPException:
        raise
    except Exception as e:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from e
