"""A flat plan run on the loop: FastAPI's ``get_request_handler`` for the route, the same
steps in the same order with FastAPI's helpers (body, parameters and dependencies,
validation, the endpoint, serialization), without ``Request``, exit stacks or a
``Response`` for the common JSON answer."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from fastrapi_compat.execute.body import read_json_body
from fastrapi_compat.execute.call import NativeCall
from fastrapi_compat.execute.params import Solved, solve
from fastrapi_compat.execute.respond import (
    UNSERIALIZED,
    make_answer,
    request_error,
    response_error,
    serialize_context,
    validate_directly,
)
from fastrapi_compat.plan import internals
from fastrapi_compat.plan.flat import FlatPlan
from fastrapi_compat.plan.plans import Plan

Undefined = internals.Undefined


def direct_flat(plan: Plan) -> FlatPlan | None:
    """The flat plan a caller may run itself with :func:`answer_flat` (no overrides, no session
    to open first), handing any exception to :func:`run` as a :class:`Resume`; else None."""
    flat = plan.flat
    if flat is None or plan.runtime.native_sessions or flat.overridden():
        return None
    return flat


Lead = tuple[dict[Any, Any], Solved]
"""The dependency cache and what the plan's first group of ``def`` dependencies gave, solved
on a pool thread before the request reached the loop (see :func:`~fastrapi_compat.execute.params.solve_lead`)."""


async def answer_flat(call: NativeCall, flat: FlatPlan, lead: Lead | None = None) -> None:
    """FastAPI's ``get_request_handler`` for a route with a flat plan (the same steps, in the
    same order, with FastAPI's helpers); ``lead``: a plan without body whose first dependencies
    were solved already."""
    helpers = internals.FLAT
    assert helpers is not None
    body: Any = Undefined
    if flat.has_body:
        body = await read_json_body(call, flat)
        if body is Undefined and flat.legacy:
            body = None  # what a legacy release's handler validates for an empty body
    values: dict[str, Any]
    errors: list[Any]
    if lead is not None:
        values, errors = lead[1] if flat.lead_only else await solve(flat.node, call, lead[0], lead[1])
    elif flat.solves:
        values, errors = await solve(flat.node, call, {})
    else:
        values, errors = {}, []
    if flat.has_body:
        if flat.single_body is not None:  # request_body_to_args' single, not embedded field
            if flat.body_model_fields is not None:
                flat.body_model_fields(flat.single_body)
            core = flat.single_body_core
            if core is not None and body is not Undefined and body is not None:
                found_value, failed = validate_directly(core, body, ("body",))
            else:
                found_value, failed = helpers.validate_value(
                    field=flat.single_body, value=body, values={}, loc=("body",)
                )
            values[flat.single_body.name] = found_value
            errors.extend(failed)
        elif flat.body_fields:
            found, failed = await helpers.request_body_to_args(
                body_fields=flat.body_fields, received_body=body, embed_body_fields=flat.embed_body_fields
            )
            values.update(found)
            errors.extend(failed)
    if errors:
        raise request_error(flat, call, errors, None if body is Undefined else body)
    if flat.is_coroutine:
        raw = await flat.call(**values)
    else:
        raw = await run_in_threadpool(flat.call, **values)
    if isinstance(raw, Response):
        await call.send_response(raw)
        return
    content: Any = UNSERIALIZED
    serializer = flat.response_serializer
    if serializer is not None:  # serialize_response's steps (see internals.response_serializer)
        value, invalid = validate_directly(serializer[0], raw, ("response",))
        if invalid:  # raised outside any except block, as FastAPI raises it
            raise response_error(flat, call, invalid, raw)
        content = serializer[1](value, **flat.serialize_kwargs)
    elif flat.response_field is not None:
        content = await helpers.serialize_response(
            field=flat.response_field,
            response_content=raw,
            is_coroutine=flat.is_coroutine,
            **serialize_context(flat, call),
            **flat.serialize_options,
        )
    answer = make_answer(flat, raw, content)
    if isinstance(answer, Response):
        await call.send_response(answer)
        return
    status, headers, rendered = answer
    if call.respond is not None:
        call.started = True
        call.respond(status, headers, rendered)
    else:
        await call.tracking_send({"type": "http.response.start", "status": status, "headers": headers})
        await call.send({"type": "http.response.body", "body": rendered})
