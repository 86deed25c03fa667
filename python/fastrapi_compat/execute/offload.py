"""A flat plan run on a pool thread (:mod:`fastrapi_compat.serve.pool`): for routes with no
body and no ``async`` function anywhere, the whole request runs on the thread FastAPI would
have used for the endpoint; what needs the loop is handed back as a :class:`Resume`."""

from __future__ import annotations

import contextvars
from typing import Any

from starlette.responses import Response

from fastrapi_compat.execute.call import NativeCall, plain_call
from fastrapi_compat.execute.layers import Resume
from fastrapi_compat.execute.params import solve_sync
from fastrapi_compat.execute.respond import UNSERIALIZED, make_answer, request_error, serialize_context
from fastrapi_compat.plan import internals
from fastrapi_compat.plan.flat import FlatPlan

Undefined = internals.Undefined


def run_sync(call: NativeCall, flat: FlatPlan, context: contextvars.Context) -> Resume | None:
    """Serves ``call``, whose flat plan is synchronous throughout (``flat.offload``), on the
    calling thread: a pool thread, where FastAPI would have run each of its dependencies and
    its endpoint in the thread pool. Every user function is called in a copy of ``context``
    (the request's), as ``run_in_threadpool`` calls it. Returns None when the request was
    answered, else what the loop must do: :func:`run` with the returned :class:`Resume`
    raises the exception (or sends the response) where the plan would have on the loop."""
    if call.plan.runtime.native_sessions and call.protocol is not None:
        error = call.protocol.session_error()
        if error is not None:
            return Resume(session_error=error)
    try:
        response = answer_flat_sync(call, flat, context)
        if response is None:
            call.request = None
            return None
        if call.respond is not None and type(response).__call__ is plain_call and response.background is None:
            call.started = True
            call.respond(response.status_code, response.raw_headers, response.body)
            call.request = None
            return None
    except BaseException as exc:
        return Resume(exc=exc)
    return Resume(response=response)


def answer_flat_sync(call: NativeCall, flat: FlatPlan, context: contextvars.Context) -> Response | None:
    """:func:`answer_flat` without a loop (no body, no ``async`` function anywhere): answers
    through ``respond`` and returns None, or returns the response the plan made."""
    helpers = internals.FLAT
    assert helpers is not None
    values, errors = solve_sync(flat.node, call, {}, context) if flat.solves else ({}, [])
    if errors:
        raise request_error(flat, call, errors, None)
    raw = context.copy().run(flat.call, **values)
    if isinstance(raw, Response):
        return raw
    content: Any = UNSERIALIZED
    if flat.response_field is not None:
        # ``is_coroutine=True`` validates inline: this is the thread FastAPI would have used.
        content = _completed(
            helpers.serialize_response(
                field=flat.response_field,
                response_content=raw,
                is_coroutine=True,
                **serialize_context(flat, call),
                **flat.serialize_options,
            )
        )
    answer = make_answer(flat, raw, content)
    if isinstance(answer, Response):
        return answer
    status, headers, rendered = answer
    assert call.respond is not None
    call.started = True
    call.respond(status, headers, rendered)
    return None


def _completed(coro: Any) -> Any:
    """The result of a coroutine that never suspends, run to its end on this thread."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a coroutine expected to complete at once suspended on a pool thread")
