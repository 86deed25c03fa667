"""The native tier's executor: serves one request of a native route without Starlette's
middleware chain, router scan or ASGI response messages.

What runs is still FastAPI's own code: the route's request handler, the very function FastAPI
built for the route (body reading, dependencies, validation, the endpoint, serialization), taken
from ``route.app``. Around it this module does, in this order and with the same semantics, what
the layers between the server and that handler would have done for the request: Starlette's
``ServerErrorMiddleware`` (FastAPI's 500), ``ExceptionMiddleware`` and the exception wrapper of
``request_response`` (every ``app.exception_handlers`` entry, by status code and by class), the
``AsyncExitStack`` scopes FastAPI's handler expects, and the router's scope keys. A response whose
body is known (``Response`` and its plain subclasses: JSON, HTML, text, redirects) is handed to
the engine in one call; any other response (streaming, files) is sent through ``send``.

Which apps and routes qualify is decided by :mod:`fastrapi_compat.compiler`; a request for
anything else never reaches this module.
"""

from __future__ import annotations

import contextvars
import email.message
import json
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AsyncExitStack
from typing import Any

import fastapi.exceptions
import fastapi.params
import fastapi.responses
from fastapi._compat import lenient_issubclass
from fastapi.datastructures import DefaultPlaceholder
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fastrapi_compat import internals
from fastrapi_compat._native import HTTPProtocol, dumps_plain

Undefined = internals.Undefined

Respond = Callable[[int, list[tuple[bytes, bytes]], Any], None]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_plain_call = Response.__call__

RESPONSE_NOT_AWAITED = (
    "Response not awaited. There's a high chance that the "
    "application code is raising an exception and a dependency with yield "
    "has a block with a bare except, or a block with except Exception, "
    "and is not raising the exception again. Read more about it in the "
    "docs: https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/#dependencies-with-yield-and-except"
)


class AppRuntime:
    """What every native request of one app shares: the exception tables exactly as the app's
    middleware stack would have built them (with Starlette's own classes)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.router = app.router
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in app.exception_handlers.items():  # as FastAPI.build_middleware_stack
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        tables = ExceptionMiddleware(app=None, handlers=handlers, debug=app.debug)  # type: ignore[arg-type]
        self.exception_handlers = tables._exception_handlers
        self.status_handlers = tables._status_handlers
        self.server_errors = ServerErrorMiddleware(app=None, handler=error_handler, debug=app.debug)  # type: ignore[arg-type]
        #: Set by the compiler when the engine runs the app's ``SessionMiddleware``.
        self.native_sessions = False
        self.telemetry_enabled = internals.telemetry_probe(app)

    def lookup_handler(self, exc: Exception) -> Any:
        """The handler Starlette's exception wrapper would pick for ``exc``, or None."""
        handler = None
        if isinstance(exc, HTTPException):
            handler = self.status_handlers.get(exc.status_code)
        if handler is None:
            for cls in type(exc).__mro__:
                if cls in self.exception_handlers:
                    return self.exception_handlers[cls]
        return handler


_IMMUTABLE_SCALARS = frozenset({int, float, bool, str, bytes, type(None)})


class _Param:
    """One path/query/header/cookie field, analysed once as ``request_params_to_args`` analyses
    it on every request."""

    __slots__ = (
        "default",
        "field",
        "getlist",
        "keys",
        "location",
        "name",
        "plain_default",
        "regenerate",
        "sequence",
        "validate",
    )

    def __init__(self, field: Any) -> None:
        helpers = internals.FLAT
        assert helpers is not None
        self.field = field
        self.name = field.name
        self.keys = [key for _, key in helpers["get_param_aliases"](field)]
        self.location = field.field_info.in_.value
        self.sequence = bool(helpers["is_sequence"](field.field_info.annotation))
        self.getlist = self.sequence and not helpers["is_json_field"](field)
        # A missing optional value is ``deepcopy(field.default)`` unvalidated: for a plain
        # default (no factory: ``field.default`` would call it) that is an immutable scalar,
        # that is the default itself, so FastAPI's helper need not be called.
        info = field.field_info
        self.default = info.default
        self.plain_default = (
            info.default_factory is None
            and not info.is_required()
            and not info.validate_default
            and type(self.default) in _IMMUTABLE_SCALARS
        )
        # A present value: what ``field.validate`` calls, without the three Python frames
        # around pydantic-core (None: FastAPI's helper validates it).
        core = internals.core_validator(field)
        self.validate: Callable[..., Any] | None = None
        self.regenerate: Callable[..., list[Any]] | None = None
        if core is not None:
            self.validate, self.regenerate = core


def _params(fields: list[Any]) -> list[_Param] | None:
    """The fields of one location, or None when one is a parameter model (then FastAPI's
    ``request_params_to_args`` handles the location)."""
    helpers = internals.FLAT
    assert helpers is not None
    if any(helpers["get_param_model"](field) is not None for field in fields):
        return None
    return [_Param(field) for field in fields]


def _params_to_args(
    fields: list[Any], params: list[_Param] | None, received: Any, multidict: bool
) -> tuple[dict[str, Any], list[Any]]:
    """``request_params_to_args`` with each field's analysis done beforehand."""
    helpers = internals.FLAT
    assert helpers is not None
    if params is None:
        return helpers["request_params_to_args"](fields, received)  # type: ignore[no-any-return]
    validate = helpers["validate_value"]
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for param in params:
        keys = param.keys
        key = keys[0] if len(keys) == 1 else next((k for k in keys if k in received), keys[0])
        if param.getlist and multidict:
            value = received.getlist(key)
        else:
            value = received.get(key, None)
        if value is None or (param.sequence and len(value) == 0):
            if param.plain_default:
                values[param.name] = param.default
                continue
            value = Undefined
        elif param.validate is not None:
            try:
                values[param.name] = param.validate(value, from_attributes=True)
            except ValidationError as exc:
                regenerate = param.regenerate
                assert regenerate is not None  # set with validate
                errors.extend(regenerate(errors=exc.errors(include_url=False), loc_prefix=(param.location, key)))
            continue
        found, failed = validate(field=param.field, value=value, values=values, loc=(param.location, key))
        if failed:
            errors.extend(failed)
        else:
            values[param.name] = found
    return values, errors


_SPECIAL_PARAMETERS = ("request", "websocket", "http_connection", "response", "background_tasks", "security_scopes")


class _Node:
    """One level of a ``Dependant`` tree: its parameters by location, analysed once, and its
    sub-dependencies, in FastAPI's solving order."""

    __slots__ = (
        "cache_key",
        "call",
        "cookie_fields",
        "cookie_params",
        "deps",
        "header_fields",
        "header_params",
        "is_coroutine",
        "name",
        "path_fields",
        "path_params",
        "query_fields",
        "query_params",
        "use_cache",
    )

    def __init__(self, dependant: Any) -> None:
        helpers = internals.FLAT
        assert helpers is not None
        self.call = dependant.call
        self.name = dependant.name
        self.is_coroutine = helpers["is_coroutine"](dependant.call)
        self.use_cache = dependant.use_cache
        self.cache_key = helpers["cache_key"](dependant=dependant)
        self.path_fields = list(dependant.path_params)
        self.query_fields = list(dependant.query_params)
        self.header_fields = list(dependant.header_params)
        self.cookie_fields = list(dependant.cookie_params)
        self.path_params = _params(self.path_fields)
        self.query_params = _params(self.query_fields)
        self.header_params = _params(self.header_fields)
        self.cookie_params = _params(self.cookie_fields)
        self.deps: list[_Node] = [_Node(sub) for sub in dependant.dependencies]


def _node_reason(dependant: Any, top: bool) -> str:
    helpers = internals.FLAT
    assert helpers is not None
    for name in _SPECIAL_PARAMETERS:
        if getattr(dependant, f"{name}_param_name", None):
            return f"{name} parameter" if top else f"{name} parameter in a dependency"
    if getattr(dependant, "concurrency", None) is not None:
        return "concurrency limit"
    if helpers["oauth_scopes"](dependant=dependant):
        return "security scopes"
    call = dependant.call
    if not top:
        if call is None or helpers["is_gen"](call) or helpers["is_async_gen"](call):
            return "dependency with yield"
        if dependant.body_params:
            return "body parameter in a dependency"
    for sub in dependant.dependencies:
        reason = _node_reason(sub, False)
        if reason:
            return reason
    return ""


class FlatPlan:
    """A route whose whole ``Dependant`` the compiler understood: path, query, header and cookie
    parameters, a JSON body, and sub-dependencies made of the same (no ``yield``, no special
    parameters, no security scopes). Run as FastAPI's handler and ``solve_dependencies`` run it,
    in the same order and with FastAPI's own field helpers, but without ``Request``, exit stacks
    or a ``Response`` for the common JSON answer. While ``dependency_overrides`` are set, the
    route's own FastAPI handler runs instead."""

    __slots__ = (
        "body_allowed",
        "body_fields",
        "call",
        "contexts",
        "dependant_path",
        "embed_body_fields",
        "endpoint_ctx",
        "has_body",
        "is_coroutine",
        "json_class",
        "node",
        "offload",
        "overrides_provider",
        "response_class",
        "response_field",
        "serialize_kwargs",
        "single_body",
        "single_body_core",
        "response_serializer",
        "solves",
        "status_code",
        "strict_content_type",
        "use_dump_json",
    )

    def __init__(self, like: Any) -> None:
        helpers = internals.FLAT
        assert helpers is not None
        dependant = like.dependant
        self.node = _Node(dependant)
        self.call = dependant.call
        self.is_coroutine = self.node.is_coroutine
        self.body_fields = list(dependant.body_params)
        self.has_body = like.body_field is not None
        self.embed_body_fields = like._embed_body_fields
        strict = getattr(like, "strict_content_type", True)
        self.strict_content_type = strict.value if isinstance(strict, DefaultPlaceholder) else strict
        self.status_code = like.status_code
        self.body_allowed = is_body_allowed_for_status_code(like.status_code or 200)
        self.response_field = like.response_field
        self.serialize_kwargs = {
            "include": like.response_model_include,
            "exclude": like.response_model_exclude,
            "by_alias": like.response_model_by_alias,
            "exclude_unset": like.response_model_exclude_unset,
            "exclude_defaults": like.response_model_exclude_defaults,
            "exclude_none": like.response_model_exclude_none,
        }
        response_class = like.response_class
        self.use_dump_json = self.response_field is not None and isinstance(response_class, DefaultPlaceholder)
        actual = response_class.value if isinstance(response_class, DefaultPlaceholder) else response_class
        self.response_class = actual
        # Starlette's JSONResponse itself (not a subclass): its bytes are rendered here.
        self.json_class = actual is JSONResponse
        self.endpoint_ctx = helpers["endpoint_context"](dependant.call) if dependant.call else {}
        self.dependant_path = dependant.path
        self.overrides_provider = like.dependency_overrides_provider if self.node.deps else None
        fields = self.body_fields
        self.single_body = (
            fields[0]
            if len(fields) == 1
            and not self.embed_body_fields
            and not helpers["should_embed"](fields)
            and not helpers["form_models"](fields[0])
            else None
        )
        self.single_body_core = internals.core_validator(self.single_body) if self.single_body is not None else None
        self.response_serializer = (
            internals.response_serializer(self.response_field)
            if self.response_field is not None and self.is_coroutine and self.use_dump_json
            else None
        )
        # Whether the dependant has anything to solve (dependencies or parameters).
        node = self.node
        self.solves = bool(
            node.deps or node.path_fields or node.query_fields or node.header_fields or node.cookie_fields
        )
        self.contexts: dict[tuple[str, str], Any] = {}  # endpoint context per (method, root path)
        # No body and no ``async`` function anywhere: the whole plan may run on a pool thread.
        self.offload = not self.has_body and _synchronous(self.node)

    def overridden(self) -> bool:
        """``dependency_overrides`` are set: FastAPI's own solver must run the route."""
        provider = self.overrides_provider
        return provider is not None and bool(getattr(provider, "dependency_overrides", None))


def _synchronous(node: _Node) -> bool:
    return not node.is_coroutine and all(_synchronous(sub) for sub in node.deps)


def flat_reason(like: Any) -> str:
    """Why ``like`` (a route or an included route's context) cannot have a flat plan ("")."""
    helpers = internals.FLAT
    if helpers is None:
        return internals.FLAT_UNSUPPORTED
    dependant = like.dependant
    reason = _node_reason(dependant, True)
    if reason:
        return reason
    call = dependant.call
    if call is None or helpers["is_gen"](call) or helpers["is_async_gen"](call):
        return "streaming endpoint"
    if getattr(like, "is_json_stream", False) or getattr(like, "stream_item_field", None) is not None:
        return "streaming endpoint"
    body_field = getattr(like, "body_field", None)
    if body_field is not None and isinstance(body_field.field_info, fastapi.params.Form):
        return "form body"
    response_class = like.response_class
    actual = response_class.value if isinstance(response_class, DefaultPlaceholder) else response_class
    if getattr(fastapi.responses, "EventSourceResponse", None) is not None and lenient_issubclass(
        actual, fastapi.responses.EventSourceResponse
    ):
        return "server-sent events"
    return ""


class Plan:
    """One native route: how its request is handled, and the scope keys the router (and, for
    a route reached through included routers, FastAPI's include handling) would have set.

    ``kind`` is ``fastapi`` (FastAPI's ``request_response``, 0.118+: the route's handler between
    its exit stacks, or a :class:`FlatPlan`) or ``starlette`` (Starlette's ``request_response``:
    a Starlette ``Route``'s function, or an ``APIRoute``'s handler on older FastAPI)."""

    __slots__ = (
        "convertors",
        "endpoint",
        "fastapi_scope",
        "flat",
        "handler",
        "index",
        "kind",
        "route",
        "route_app",
        "route_like",
        "runtime",
    )

    def __init__(self, runtime: AppRuntime, leaf: Any, kind: str, handler: Any, index: int, *, api_route: bool) -> None:
        self.runtime = runtime
        self.kind = kind
        # ``scope["route"]``: FastAPI's APIRoute sets it, Starlette's Route does not.
        self.route = leaf.route if api_route else None
        self.route_like = leaf.like
        self.route_app = internals.route_app(leaf.like)  # checked per request: still the same?
        self.handler = handler
        self.endpoint = leaf.like.endpoint
        self.convertors = dict(leaf.like.param_convertors)
        self.index = index
        self.fastapi_scope = internals.included_scope(leaf)
        self.flat = FlatPlan(leaf.like) if kind == "fastapi" and not flat_reason(leaf.like) else None

    def path_params(self, raw: dict[str, str]) -> dict[str, Any]:
        if not raw:
            return {}
        convertors = self.convertors
        return {name: convertors[name].convert(value) for name, value in raw.items()}


class NativeCall:
    """One request on a native route. ``scope`` is the request's full ASGI scope (built by the
    engine, adjusted by the listener's handler), or made by ``make_scope(call)`` the first time
    it is needed: a flat plan that reads only path and plain query parameters never needs it.
    ``respond`` answers with a whole response in one call (None: every response goes through
    ``send``); ``send`` is ASGI ``send``; ``protocol`` is the engine's request when the engine
    may run the app's middleware around it (None otherwise): ``ServerErrorMiddleware``'s 500
    skips them, and an error the session middleware met opening the session is raised where
    Starlette raises it."""

    __slots__ = (
        "_scope",
        "body",
        "make_scope",
        "path_params",
        "plan",
        "protocol",
        "receive",
        "request",
        "respond",
        "send",
        "started",
    )

    def __init__(
        self,
        plan: Plan,
        scope: dict[str, Any] | None,
        receive: Any,
        send: Send,
        respond: Respond | None,
        protocol: HTTPProtocol | None,
        *,
        path_params: dict[str, Any] | None = None,
        make_scope: Callable[[NativeCall], dict[str, Any]] | None = None,
    ) -> None:
        self.plan = plan
        self.protocol = protocol
        self._scope = scope
        self.make_scope = make_scope
        self.path_params: dict[str, Any] = scope["path_params"] if scope is not None else path_params  # type: ignore[assignment]
        self.receive = receive
        self.send = send
        self.respond = respond
        self.started = False
        self.request: Request | None = None  # the Request a flat plan made, if any
        self.body: bytes | None = None  # the body, when taken whole from the engine

    @property
    def scope(self) -> dict[str, Any]:
        scope = self._scope
        if scope is None:
            assert self.make_scope is not None
            scope = self._scope = self.make_scope(self)
            self.make_scope = None
        return scope

    def query_string(self) -> bytes:
        if self._scope is None and self.protocol is not None:
            return self.protocol.query_string
        return self.scope["query_string"]  # type: ignore[no-any-return]

    def method_and_root(self) -> tuple[str, str]:
        if self._scope is None and self.protocol is not None:
            return self.protocol.method, self.protocol.root_path
        scope = self.scope
        return scope["method"], scope.get("root_path", "")

    def header(self, name: str) -> str | None:
        """``request.headers.get(name)`` (``name`` in lower case)."""
        if self._scope is None and self.protocol is not None:
            return self.protocol.header(name)
        return self.conn().headers.get(name)

    def take_body(self) -> bytes | None:
        """The whole body when the engine has already read it (then ``conn()`` gives a
        ``Request`` with that body, as the one FastAPI's handler read would be), else None."""
        if self.protocol is None or self.request is not None:
            return None
        body = self.body = self.protocol.take_body()
        return body

    def conn(self) -> Request:
        """The ``Request`` exception handlers get: the one the route used, as in
        ``request_response`` (its body already read), else a new one."""
        if self.request is None:
            request = self.request = Request(self.scope, self.receive, self.tracking_send)
            if self.body is not None:
                request._body = self.body
        return self.request

    async def tracking_send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)

    async def send_response(self, response: Response) -> None:
        if self.respond is not None and type(response).__call__ is _plain_call:
            self.started = True
            self.respond(response.status_code, response.raw_headers, response.body)
            if response.background is not None:
                await response.background()
        else:
            await response(self.scope, self.receive, self.tracking_send)


def prepare_scope(
    plan: Plan, scope: dict[str, Any], raw_params: dict[str, str] | None, path_params: dict[str, Any] | None = None
) -> None:
    """The keys Starlette's app, router and matched route add to the scope (``path_params``:
    the converted ``raw_params``, when already made)."""
    runtime = plan.runtime
    scope["app"] = runtime.app
    scope["starlette.exception_handlers"] = (runtime.exception_handlers, runtime.status_handlers)
    if "router" not in scope:
        scope["router"] = runtime.router
    if plan.fastapi_scope is not None and internals.SCOPE_KEY is not None:
        scope.setdefault(internals.SCOPE_KEY, {}).update(plan.fastapi_scope)
    scope["endpoint"] = plan.endpoint
    scope["path_params"] = path_params if path_params is not None else plan.path_params(raw_params or {})
    if plan.route is not None:
        scope["route"] = plan.route


async def run(call: NativeCall, resume: Resume | None = None) -> None:
    """Serves ``call`` as the app's middleware stack and router would have; ``resume``: what
    :func:`run_sync` left of it (the request's flat plan already ran on a pool thread)."""
    try:
        await _run(call, resume)
    finally:
        # The Request holds ``call.tracking_send``, a method of ``call``: without this, every
        # request would leave a reference cycle for the garbage collector.
        call.request = None


async def _run(call: NativeCall, resume: Resume | None) -> None:
    runtime = call.plan.runtime
    flat = call.plan.flat
    if flat is not None and flat.overridden():
        flat = None  # FastAPI's own solver applies the overrides
    try:
        if resume is not None:
            if resume.session_error is not None:
                raise resume.session_error
        elif runtime.native_sessions and call.protocol is not None:
            error = call.protocol.session_error()  # SessionMiddleware, opening the session
            if error is not None:
                raise error
        if flat is not None or resume is not None:
            try:  # ExceptionMiddleware, and request_response's wrapper: the same handlers
                if resume is None:
                    await _run_flat(call, flat)  # type: ignore[arg-type]
                elif resume.exc is not None:
                    raise resume.exc
                else:
                    await call.send_response(resume.response)  # type: ignore[arg-type]
            except Exception as exc:
                try:
                    await _handled(call, call.conn(), exc)
                except Exception as again:
                    await _handled(call, Request(call.scope, call.receive, call.tracking_send), again)
            return
        try:  # ExceptionMiddleware
            async with AsyncExitStack() as middleware_stack:  # AsyncExitStackMiddleware
                if internals.MIDDLEWARE_ASTACK_KEY is not None:
                    call.scope[internals.MIDDLEWARE_ASTACK_KEY] = middleware_stack
                request = Request(call.scope, call.receive, call.tracking_send)
                try:  # request_response's exception wrapper
                    await _handle(call, request)
                except Exception as exc:
                    await _handled(call, request, exc)
        except Exception as exc:
            await _handled(call, Request(call.scope, call.receive, call.tracking_send), exc)
    except Exception as exc:  # ServerErrorMiddleware
        request = Request(call.scope)
        errors = runtime.server_errors
        response: Any
        handler: Any = errors.handler
        if errors.debug:
            response = await run_in_threadpool(errors.debug_response, request, exc)
        elif handler is None:
            response = errors.error_response(request, exc)
        elif internals.is_async_callable(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        if not call.started:
            if call.protocol is not None:
                call.protocol.skip_middleware()
            await response(call.scope, call.receive, call.send)
        raise exc


class Resume:
    """What :func:`run_sync` leaves to the loop: the error ``SessionMiddleware`` met opening
    the session, an exception the flat plan raised, or a response that must be sent with
    ``await`` (a streaming or file response, or one with background tasks)."""

    __slots__ = ("exc", "response", "session_error")

    def __init__(
        self,
        *,
        exc: BaseException | None = None,
        response: Response | None = None,
        session_error: BaseException | None = None,
    ) -> None:
        self.exc = exc
        self.response = response
        self.session_error = session_error


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
        response = _run_flat_sync(call, flat, context)
        if response is None:
            call.request = None
            return None
        if call.respond is not None and type(response).__call__ is _plain_call and response.background is None:
            call.started = True
            call.respond(response.status_code, response.raw_headers, response.body)
            call.request = None
            return None
    except BaseException as exc:
        return Resume(exc=exc)
    return Resume(response=response)


def _run_flat_sync(call: NativeCall, flat: FlatPlan, context: contextvars.Context) -> Response | None:
    """:func:`_run_flat` without a loop (no body, no ``async`` function anywhere): answers
    through ``respond`` and returns None, or returns the response the plan made."""
    helpers = internals.FLAT
    assert helpers is not None
    values, errors = _solve_sync(flat.node, call, {}, context) if flat.solves else ({}, [])
    if errors:
        raise RequestValidationError(errors, body=None, endpoint_ctx=_endpoint_ctx(flat, call))
    raw = context.copy().run(flat.call, **values)
    if isinstance(raw, Response):
        return raw
    content: Any = _UNSERIALIZED
    if flat.response_field is not None:
        # ``is_coroutine=True`` validates inline: this is the thread FastAPI would have used.
        content = _completed(
            helpers["serialize_response"](
                field=flat.response_field,
                response_content=raw,
                is_coroutine=True,
                endpoint_ctx=_endpoint_ctx(flat, call),
                dump_json=flat.use_dump_json,
                **flat.serialize_kwargs,
            )
        )
    answer = _answer(flat, raw, content)
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


async def _handle(call: NativeCall, request: Request) -> None:
    """FastAPI's ``request_response``: the handler between its two exit stacks (Starlette's
    has none)."""
    scope = call.scope
    if call.plan.kind == "starlette":
        await call.send_response(await call.plan.handler(request))
        return
    response_awaited = False
    async with AsyncExitStack() as request_stack:
        scope["fastapi_inner_astack"] = request_stack
        async with AsyncExitStack() as function_stack:
            scope["fastapi_function_astack"] = function_stack
            response = await call.plan.handler(request)
        await call.send_response(response)
        response_awaited = True
    if not response_awaited:
        raise internals.FastAPIError(RESPONSE_NOT_AWAITED)


async def _handled(call: NativeCall, request: Request, exc: Exception) -> None:
    """Starlette's exception wrapper: answers with the app's handler for ``exc``, or re-raises."""
    handler = call.plan.runtime.lookup_handler(exc)
    if handler is None:
        raise exc
    if call.started:
        raise RuntimeError("Caught handled exception, but response already started.") from exc
    if internals.is_async_callable(handler):
        response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    if response is not None:
        await call.send_response(response)
    exc.__traceback__ = None


def direct_flat(plan: Plan) -> FlatPlan | None:
    """The flat plan a caller may run itself with :func:`run_flat` (no overrides, no session to
    open first), handing any exception to :func:`run` as a :class:`Resume`; else None."""
    flat = plan.flat
    if flat is None or plan.runtime.native_sessions or flat.overridden():
        return None
    return flat


async def run_flat(call: NativeCall, flat: FlatPlan) -> None:
    """The flat plan alone (see :func:`direct_flat`): what :func:`run` does when nothing is
    raised, one coroutine instead of three."""
    await _run_flat(call, flat)
    call.request = None


async def _run_flat(call: NativeCall, flat: FlatPlan) -> None:
    """FastAPI's ``get_request_handler`` for a route with a flat plan (the same steps, in the
    same order, with FastAPI's helpers)."""
    helpers = internals.FLAT
    assert helpers is not None
    body: Any = Undefined
    if flat.has_body:
        body = await _read_json_body(call, flat)
    values: dict[str, Any]
    errors: list[Any]
    if flat.solves:
        values, errors = await _solve(flat.node, call, {})
    else:
        values, errors = {}, []
    if flat.has_body:
        if flat.single_body is not None:  # request_body_to_args' single, not embedded field
            core = flat.single_body_core
            if core is not None and body is not Undefined:
                found_value, failed = _validate_directly(core, body, ("body",))
            else:
                found_value, failed = helpers["validate_value"](
                    field=flat.single_body, value=body, values={}, loc=("body",)
                )
            values[flat.single_body.name] = found_value
            errors.extend(failed)
        elif flat.body_fields:
            found, failed = await helpers["request_body_to_args"](
                body_fields=flat.body_fields, received_body=body, embed_body_fields=flat.embed_body_fields
            )
            values.update(found)
            errors.extend(failed)
    if errors:
        raise RequestValidationError(
            errors, body=None if body is Undefined else body, endpoint_ctx=_endpoint_ctx(flat, call)
        )
    if flat.is_coroutine:
        raw = await flat.call(**values)
    else:
        raw = await run_in_threadpool(flat.call, **values)
    if isinstance(raw, Response):
        await call.send_response(raw)
        return
    content: Any = _UNSERIALIZED
    serializer = flat.response_serializer
    if serializer is not None:  # serialize_response's steps (see internals.response_serializer)
        value, invalid = _validate_directly(serializer[0], raw, ("response",))
        if invalid:  # raised outside any except block, as FastAPI raises it
            raise ResponseValidationError(
                errors=invalid, body=raw, endpoint_ctx=_endpoint_ctx(flat, call) or _EndpointContext()
            )
        content = serializer[1](value, **flat.serialize_kwargs)
    elif flat.response_field is not None:
        content = await helpers["serialize_response"](
            field=flat.response_field,
            response_content=raw,
            is_coroutine=flat.is_coroutine,
            endpoint_ctx=_endpoint_ctx(flat, call),
            dump_json=flat.use_dump_json,
            **flat.serialize_kwargs,
        )
    answer = _answer(flat, raw, content)
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


def _validate_directly(
    core: tuple[Callable[..., Any], Callable[..., list[Any]]], value: Any, loc: tuple[str, ...]
) -> tuple[Any, list[Any]]:
    """``field.validate(value, loc=loc)`` through the calls it makes (``core``: what
    :func:`internals.core_validator` gave). ``_params_to_args`` inlines the same steps: it
    runs them for every parameter of every request."""
    try:
        return core[0](value, from_attributes=True), []
    except ValidationError as exc:
        return None, core[1](errors=exc.errors(include_url=False), loc_prefix=loc)


_UNSERIALIZED: Any = object()
_EndpointContext: Any = getattr(fastapi.exceptions, "EndpointContext", dict)


def _answer(flat: FlatPlan, raw: Any, content: Any) -> Response | tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The response FastAPI's handler makes of the endpoint's return value ``raw`` (``content``:
    what ``serialize_response`` made of it, when the route has a response field): JSON bytes
    with their status and headers, or the response class's instance."""
    rendered: Any = None
    if content is _UNSERIALIZED:
        if flat.json_class:
            rendered = dumps_plain(raw)  # plain data: the same bytes, rendered in Rust
            content = jsonable_encoder(raw) if rendered is None else None
        else:
            content = jsonable_encoder(raw)
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


class _Query:
    """The query string as ``request_params_to_args`` reads Starlette's ``QueryParams``
    (``get``: the last value, ``getlist``: all values, in order), for query strings whose
    ``parse_qsl`` is a plain split: ASCII, no ``%`` escapes, no ``+``."""

    __slots__ = ("_lists",)

    def __init__(self, lists: dict[str, list[str]]) -> None:
        self._lists = lists

    def __contains__(self, key: str) -> bool:
        return key in self._lists

    def get(self, key: str, default: Any = None) -> Any:
        values = self._lists.get(key)
        return values[-1] if values else default

    def getlist(self, key: str) -> list[str]:
        return list(self._lists.get(key, ()))


def _query(call: NativeCall) -> Any:
    """The request's query parameters: Starlette's ``QueryParams`` unless the string is plain."""
    raw = call.query_string()
    if b"%" in raw or b"+" in raw or not raw.isascii():
        return call.conn().query_params
    lists: dict[str, list[str]] = {}
    for part in raw.decode("ascii").split("&"):
        if part:
            name, _, value = part.partition("=")
            lists.setdefault(name, []).append(value)
    return _Query(lists)


async def _solve(node: _Node, call: NativeCall, cache: dict[Any, Any]) -> tuple[dict[str, Any], list[Any]]:
    """``solve_dependencies`` for one node: its sub-dependencies (solved, then called unless
    they failed or are cached), then its own parameters."""
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for sub in node.deps:
        sub_values, sub_errors = await _solve(sub, call, cache)
        if sub_errors:
            errors.extend(sub_errors)
            continue
        key = sub.cache_key
        if sub.use_cache and key in cache:
            solved = cache[key]
        elif sub.is_coroutine:
            solved = await sub.call(**sub_values)
        else:
            solved = await run_in_threadpool(sub.call, **sub_values)
        if sub.name is not None:
            values[sub.name] = solved
        if key not in cache:
            cache[key] = solved
    _node_params(node, call, values, errors)
    return values, errors


def _solve_sync(
    node: _Node, call: NativeCall, cache: dict[Any, Any], context: contextvars.Context
) -> tuple[dict[str, Any], list[Any]]:
    """:func:`_solve` for a tree of synchronous dependencies, on a pool thread: each one is
    called in a copy of the request's context, as ``run_in_threadpool`` calls it."""
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for sub in node.deps:
        sub_values, sub_errors = _solve_sync(sub, call, cache, context)
        if sub_errors:
            errors.extend(sub_errors)
            continue
        key = sub.cache_key
        if sub.use_cache and key in cache:
            solved = cache[key]
        else:
            solved = context.copy().run(sub.call, **sub_values)
        if sub.name is not None:
            values[sub.name] = solved
        if key not in cache:
            cache[key] = solved
    _node_params(node, call, values, errors)
    return values, errors


def _node_params(node: _Node, call: NativeCall, values: dict[str, Any], errors: list[Any]) -> None:
    """One node's own path, query, header and cookie parameters, into ``values``/``errors``."""
    if node.path_fields:
        found, failed = _params_to_args(node.path_fields, node.path_params, call.path_params, False)
        values.update(found)
        errors += failed
    if node.query_fields:
        received = _query(call) if node.query_params is not None else call.conn().query_params
        found, failed = _params_to_args(node.query_fields, node.query_params, received, True)
        values.update(found)
        errors += failed
    if node.header_fields:
        found, failed = _params_to_args(node.header_fields, node.header_params, call.conn().headers, True)
        values.update(found)
        errors += failed
    if node.cookie_fields:
        found, failed = _params_to_args(node.cookie_fields, node.cookie_params, call.conn().cookies, False)
        values.update(found)
        errors += failed


def _endpoint_ctx(flat: FlatPlan, call: NativeCall) -> Any:
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


async def _body(request: Request) -> bytes:
    """``await request.body()``; a body that arrives in one message is taken directly, and
    cached on the request as Starlette caches it."""
    if not hasattr(request, "_body") and not request._stream_consumed:
        message = await request._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            request._stream_consumed = True
            request._body = message.get("body", b"")
            return request._body
        request._receive = _Replay(message, request._receive)
    return await request.body()


class _Replay:
    """``receive`` that first gives back a message already taken."""

    __slots__ = ("message", "receive")

    def __init__(self, message: MutableMapping[str, Any], receive: Any) -> None:
        self.message: MutableMapping[str, Any] | None = message
        self.receive = receive

    async def __call__(self) -> Any:
        message, self.message = self.message, None
        return message if message is not None else await self.receive()


async def _read_json_body(call: NativeCall, flat: FlatPlan) -> Any:
    """The body as FastAPI's handler reads it for a JSON body parameter."""
    try:
        body_bytes = call.take_body()
        if body_bytes is None:
            request = call.conn()
            body_bytes = await _body(request)
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
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", e.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": e.msg},
                }
            ],
            body=e.doc,
            endpoint_ctx=_endpoint_ctx(flat, call),
        ) from e
    except HTTPException:
        raise
    except Exception as e:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from e
