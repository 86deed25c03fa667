"""The one place that reads FastAPI and Starlette internals.

Everything version-dependent about how an app's routes are laid out lives here: in current
FastAPI, included routers stay in the table as ``_IncludedRouter`` entries whose effective routes
are walked with ``fastapi.routing.iter_route_contexts``; older releases copied the routes into
the app's own table.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import fastapi.exceptions
import fastapi.routing
from starlette.requests import Request
from starlette.routing import BaseRoute

_iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
_IncludedRouter: type | None = getattr(fastapi.routing, "_IncludedRouter", None)


def top_level_routes(app: Any) -> Sequence[BaseRoute]:
    """The app router's own table, in declaration order (included routers as one entry)."""
    router = getattr(app, "router", None)
    return list(getattr(router, "routes", []) or [])


def is_included_router(route: Any) -> bool:
    return _IncludedRouter is not None and isinstance(route, _IncludedRouter)


def effective_routes(route: Any) -> Iterator[Any]:
    """The routes an included-router entry stands for (route-like objects with ``path``,
    ``methods``, ``endpoint``...), or the route itself."""
    if is_included_router(route) and _iter_route_contexts is not None:
        yield from _iter_route_contexts([route])
    else:
        yield route


def included_router_prefix(route: Any) -> str:
    """The path prefix under which an included router's routes live ("" when unknown)."""
    context = getattr(route, "include_context", None)
    prefix = getattr(context, "prefix", None)
    return prefix if isinstance(prefix, str) else ""


def literal_prefix(path_format: str) -> str:
    """The literal start of a route path, up to its first ``{parameter}``."""
    return path_format.split("{", 1)[0]


# --- the native tier's view of FastAPI's request handling -------------------------------------

import functools
import inspect

from starlette._utils import is_async_callable as is_async_callable

FastAPIError: type[Exception] = getattr(fastapi.exceptions, "FastAPIError", RuntimeError)
_request_response = getattr(fastapi.routing, "request_response", None)


def _inner_code(factory: Any) -> Any:
    async def probe(request: Any) -> Any:  # pragma: no cover - never called
        return None

    try:
        return factory(probe).__code__
    except Exception:  # pragma: no cover
        return None


# FastAPI's own ``request_response`` (0.118+: the handler runs between the request and function
# exit stacks). Older releases import Starlette's.
_REQUEST_RESPONSE_CODE = _inner_code(_request_response) if _request_response is not None else None

try:  # FastAPI's AsyncExitStackMiddleware (in the app's stack since 0.118; absent before)
    import fastapi.middleware.asyncexitstack as _asyncexitstack

    MIDDLEWARE_ASTACK_KEY: str | None = (
        inspect.signature(_asyncexitstack.AsyncExitStackMiddleware.__init__).parameters["context_name"].default
    )
except (ImportError, KeyError, AttributeError):  # pragma: no cover - older fastapi
    MIDDLEWARE_ASTACK_KEY = None


import starlette.routing

_STARLETTE_REQUEST_RESPONSE_CODE = _inner_code(starlette.routing.request_response)


def starlette_handler(route: Any) -> tuple[Any, str]:
    """The ``func(request)`` a Starlette ``Route`` runs (already wrapped for the threadpool when
    it is sync), from Starlette's ``request_response`` app, or ``(None, reason)``."""
    app: Any = getattr(route, "app", None)
    code: Any = getattr(app, "__code__", None)
    if code is None or code is not _STARLETTE_REQUEST_RESPONSE_CODE:
        return None, "Starlette route whose app is not Starlette's request_response"
    cells = dict(zip(code.co_freevars, app.__closure__ or ()))
    cell = cells.get("f")
    if cell is None:
        return None, "Starlette route whose app is not Starlette's request_response"
    return cell.cell_contents, ""


def route_like(entry: Any) -> Any:
    """The object FastAPI handles a route with: the effective context of a route reached through
    an included router (its own dependant, path and handler), else the route itself."""
    return getattr(entry, "_route_context", None) or getattr(entry, "route", entry)


def original_route(entry: Any) -> Any:
    return getattr(entry, "original_route", None) or getattr(entry, "route", entry)


def route_app(route_like: Any) -> Any:
    return getattr(route_like, "app", None)


def request_handler(route_like: Any) -> tuple[Any, str, str]:
    """The request handler FastAPI built for a route (``handler(request) -> Response``), taken
    from the ``request_response`` app wrapped around it, with that wrapper's flavour:
    ``fastapi`` (FastAPI's own, 0.118+: the handler runs between a request and a function exit
    stack) or ``starlette`` (older releases use Starlette's). Or ``(None, "", reason)``."""
    app: Any = route_app(route_like)
    code: Any = getattr(app, "__code__", None)
    if code is not None and code is _STARLETTE_REQUEST_RESPONSE_CODE:
        flavour = "starlette"
    elif code is not None and code is _REQUEST_RESPONSE_CODE:
        flavour = "fastapi"
    else:
        name = type(app).__name__ if code is None else getattr(app, "__qualname__", "?")
        return None, "", f"route app is {name}, not FastAPI's request_response (e.g. a per-route body limit)"
    cells = dict(zip(code.co_freevars, app.__closure__ or ()))
    cell = cells.get("f")
    handler = cell.cell_contents if cell is not None else None
    if handler is None or not is_async_callable(handler):
        return None, "", "the route's request handler is not a coroutine function"
    return handler, flavour, ""


def _otel_globals() -> list[tuple[Any, str]]:
    """Where OpenTelemetry keeps its global providers (each is set at most once)."""
    places = []
    for module_name, attribute in (
        ("opentelemetry.trace", "_TRACER_PROVIDER"),
        ("opentelemetry.metrics._internal", "_METER_PROVIDER"),
        ("opentelemetry._logs._internal", "_LOGGER_PROVIDER"),
    ):
        module = sys.modules.get(module_name)
        if module is None or not hasattr(module, attribute):
            return []
        places.append((module, attribute))
    return places


def telemetry_probe(app: Any) -> Any:
    """A callable telling whether FastAPI's native telemetry wraps requests right now, or None
    on releases without it. It turns on when an OpenTelemetry provider is configured, globally
    (at any time) or in the app's telemetry config; FastAPI's own check costs microseconds, so
    its answer is kept until one of OpenTelemetry's global providers (each set at most once)
    or the config object changes. (A config dict changed in place is not noticed.)"""
    telemetry: Any = getattr(app, "_native_telemetry", None)
    enabled = getattr(telemetry, "enabled", None)
    if not callable(enabled):
        return None
    places = _otel_globals()
    if not places or len(places) != 3:
        return enabled
    (m1, a1), (m2, a2), (m3, a3) = places
    state: list[Any] = [object(), None, None, None, False]

    def probe() -> bool:
        config = telemetry.config
        if (
            config is not state[0]
            or getattr(m1, a1) is not state[1]
            or getattr(m2, a2) is not state[2]
            or getattr(m3, a3) is not state[3]
        ):
            state[:] = [config, getattr(m1, a1), getattr(m2, a2), getattr(m3, a3), bool(enabled())]
        return state[4]  # type: ignore[no-any-return]

    return probe


def routes_snapshot(router: Any) -> tuple[Any, Any, int, Any]:
    """``(router, its route list, its length, its version counter)``: what
    ``NativeApp._is_fresh`` compares per request (the same list object, length and version: a
    route replaced in place at the same index is not noticed). The version is FastAPI's own
    per-router counter (read directly: ``_get_routes_version()`` walks every route)."""
    routes = getattr(router, "routes", None)
    return (router, routes, len(routes or ()), getattr(router, "_routes_version", None))


def included_routers(entries: Sequence[Any]) -> list[Any]:
    """The original routers of included-router entries, nested ones too."""
    found: list[Any] = []
    stack = [e for e in entries if is_included_router(e)]
    while stack:
        entry = stack.pop()
        router = getattr(entry, "original_router", None)
        if router is None:
            continue
        found.append(router)
        stack.extend(r for r in getattr(router, "routes", []) if is_included_router(r))
    return found


def form_limits_configured(app: Any) -> bool:
    if getattr(app.router, "form_limits", None):
        return True
    for entry in top_level_routes(app):
        context = getattr(entry, "include_context", None)
        if getattr(context, "form_limits", None):
            return True
    return False


# --- what flat plans replicate of FastAPI's get_request_handler --------------------------------

from fastrapi_compat.plan.flat_helpers import FlatHelpers as FlatHelpers
from fastrapi_compat.plan.flat_helpers import flat_support

FLAT, FLAT_UNSUPPORTED = flat_support()

from fastapi._compat import Undefined as Undefined


@functools.cache
def _normalized_source(function: Any) -> str:
    """A function's source without whitespace ("" when it has none), read once per function:
    what the gates below compare with the FastAPI bodies they replicate."""
    try:
        return "".join(inspect.getsource(function).split())
    except (OSError, TypeError):
        return ""


_ADAPTER_CALL = "self._type_adapter.validate_python(value,from_attributes=True)"


def _validates_through_adapter(validate: Any) -> bool:
    """Whether this ``ModelField.validate`` is the release's known body: the adapter's
    ``validate_python(value, from_attributes=True)``, its ``ValidationError`` regenerated."""
    source = _normalized_source(validate)
    return _ADAPTER_CALL in source and "_regenerate_error_with_loc(" in source


#: sha256 of ``fastapi.routing.serialize_response``'s source (whitespace removed) in the
#: releases whose body :func:`response_serializer` replicates: validate the content with
#: ``field.validate(content, {}, loc=("response",))``, raise ``ResponseValidationError`` with
#: the errors, else return ``field.serialize_json(value, **options)`` (the same in fastapi
#: 0.130 to 0.165).
_KNOWN_SERIALIZE_RESPONSE = frozenset({"b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13"})
_SERIALIZE_JSON_CALL = (
    "returnself._type_adapter.dump_json(value,include=include,exclude=exclude,by_alias=by_alias,"
    "exclude_unset=exclude_unset,exclude_defaults=exclude_defaults,exclude_none=exclude_none,)"
)


def response_serializer(
    field: Any,
) -> tuple[tuple[Callable[..., Any], Callable[..., list[Any]]], Callable[..., Any]] | None:
    """For a response field of an ``async`` endpoint whose content FastAPI dumps to JSON:
    what ``serialize_response`` calls, when its body and the field's are the known ones (see
    :data:`_KNOWN_SERIALIZE_RESPONSE`): the field's pydantic-core validator, the error
    regenerator (as :func:`core_validator` gives them), and the ``TypeAdapter.dump_json`` that
    ``serialize_json`` calls. Else None."""
    core = core_validator(field)
    serialize = getattr(fastapi.routing, "serialize_response", None)
    serialize_json = getattr(type(field), "serialize_json", None)
    adapter = getattr(field, "_type_adapter", None)
    if core is None or serialize is None or serialize_json is None or adapter is None:
        return None
    if not _is_known_serialize_response(serialize) or _SERIALIZE_JSON_CALL not in _normalized_source(serialize_json):
        return None
    return core, adapter.dump_json


def legacy_response_serializer(
    field: Any,
) -> tuple[tuple[Callable[..., Any], Callable[..., list[Any]]], Callable[..., Any]] | None:
    """:func:`response_serializer` for the older generations (``plan/flat_helpers.py``), whose
    ``serialize_response`` (its digest part of the generation's) validates the content with
    ``field.validate(content, {}, loc=("response",))``, raises ``ResponseValidationError`` with
    the errors, else returns ``field.serialize(value, **options)``: Python data the response
    class renders. The validator as :func:`core_validator` gives it, and the field's own
    ``serialize``; None for another field class."""
    core = core_validator(field)
    if core is None:
        return None
    return core, field.serialize


@functools.cache
def _is_known_serialize_response(serialize: Any) -> bool:
    import hashlib

    return hashlib.sha256(_normalized_source(serialize).encode()).hexdigest() in _KNOWN_SERIALIZE_RESPONSE


def core_validator(field: Any) -> tuple[Callable[..., Any], Callable[..., list[Any]]] | None:
    """What ``ModelField.validate(value, loc=loc)`` calls, for a stock FastAPI field: the
    pydantic-core ``validate_python`` its ``TypeAdapter.validate_python`` delegates to (with
    ``from_attributes=True`` and every other option at its default), and the module's
    ``_regenerate_error_with_loc`` it builds the errors with. None for anything else (another
    field class, an overridden method, a pydantic plugin's handlers, a validator not built yet)."""
    import pydantic
    import pydantic_core

    validators: tuple[type, ...] = (pydantic_core.SchemaValidator,)
    with contextlib.suppress(ImportError):  # pydantic's wrapper when a plugin is installed
        from pydantic.plugin._schema_validator import PluggableSchemaValidator

        validators += (PluggableSchemaValidator,)

    validate = getattr(type(field), "validate", None)
    module = sys.modules.get(getattr(validate, "__module__", None) or "")
    if (
        module is None
        or not module.__name__.startswith("fastapi._compat")
        or getattr(validate, "__qualname__", "") != "ModelField.validate"
        or getattr(module, "ModelField", None) is not type(field)
    ):
        return None
    regenerate = getattr(module, "_regenerate_error_with_loc", None)
    if regenerate is None or not _validates_through_adapter(validate):
        return None
    adapter = getattr(field, "_type_adapter", None)
    if type(adapter) is not pydantic.TypeAdapter:
        return None
    if getattr(type(adapter), "validate_python", None) is not pydantic.TypeAdapter.validate_python:
        return None
    # pydantic wraps its validator when a plugin is installed (logfire is, for FastAPI's own
    # tests): without event handlers for this schema its validate_python is the core one's.
    validator = adapter.validator
    if not isinstance(validator, validators):
        return None  # e.g. a mock until a forward reference is defined: FastAPI's call raises
    core = getattr(validator, "_schema_validator", validator)
    validate_python = getattr(validator, "validate_python", None)
    if type(core) is not pydantic_core.SchemaValidator or validate_python != core.validate_python:
        return None
    return core.validate_python, regenerate


# --- included routers, leaf by leaf ---------------------------------------------------------------

SCOPE_KEY = getattr(fastapi.routing, "_FASTAPI_SCOPE_KEY", None)
_CONTEXT_KEY = getattr(fastapi.routing, "_FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY", None)
_INCLUDED_KEY = getattr(fastapi.routing, "_FASTAPI_INCLUDED_ROUTER_KEY", None)
_ROUTER_METHODS = ("matches", "handle", "app", "__call__")


def _custom_router(router: Any) -> str:
    """The name of a router class that customises matching or handling ("" for APIRouter)."""
    for method in _ROUTER_METHODS:
        if getattr(type(router), method, None) is not getattr(fastapi.routing.APIRouter, method, None):
            return f"router class {type(router).__name__} overrides {method}"
    return ""


class Leaf:
    """One route as a request reaches it: ``like`` (the route, or an included route's effective
    context), the route itself, the innermost included-router entry it is reached through, and
    why it must go through the ASGI tier whatever it is ("" if nothing prevents it)."""

    __slots__ = ("included", "like", "reason", "report", "route")

    def __init__(self, like: Any, route: Any, included: Any, reason: str, report: Any) -> None:
        self.like = like
        self.route = route
        self.included = included
        self.reason = reason
        self.report = report  # what explain shows (a RouteContext in current fastapi)


#: FastAPI's telemetry hook the router calls when it selects a route (None before it had one).
ROUTE_SELECTED: Any = getattr(fastapi.routing, "_route_selected", None)


def telemetry_path(leaf: Leaf) -> str | None:
    """The path the router gives :data:`ROUTE_SELECTED` last for ``leaf`` (its own template,
    or an included route's effective one)."""
    if leaf.included is None:
        path = getattr(leaf.route, "path_format", None)
    else:
        context = leaf.report
        path = getattr(getattr(context, "starlette_route", None), "path_format", None) or getattr(
            context, "path_format", None
        )
    return path if isinstance(path, str) else None


def leaves(entry: Any) -> Iterator[Leaf]:
    """The routes a top-level entry stands for, in Starlette's matching order."""
    if not is_included_router(entry):
        yield Leaf(entry, entry, None, "", entry)
        return
    walker = getattr(entry, "effective_candidates", None)
    if not callable(walker):  # pragma: no cover - another FastAPI generation
        for context in effective_routes(entry):
            yield Leaf(route_like(context), original_route(context), entry, "included router", context)
        return
    yield from _walk(entry, _custom_router(getattr(entry, "original_router", None)))


def _walk(included: Any, reason: str) -> Iterator[Leaf]:
    for candidate in included.effective_candidates():
        if is_included_router(candidate):
            inner = _custom_router(getattr(candidate, "original_router", None))
            yield from _walk(candidate, reason or inner)
        else:
            report = (
                fastapi.routing.RouteContext(candidate.original_route, candidate)
                if hasattr(fastapi.routing, "RouteContext")
                else candidate
            )
            like = candidate.starlette_route or candidate
            yield Leaf(
                like if candidate.starlette_route is not None else candidate,
                candidate.original_route,
                included,
                reason,
                report,
            )


def included_scope(leaf: Leaf) -> dict[str, Any] | None:
    """What FastAPI's included-router handling puts under ``scope["fastapi"]`` for ``leaf``."""
    if leaf.included is None or SCOPE_KEY is None or _CONTEXT_KEY is None or _INCLUDED_KEY is None:
        return None
    return {_INCLUDED_KEY: leaf.included, _CONTEXT_KEY: leaf.like}


# --- anyio's worker threads ------------------------------------------------------------------------


def _scopeless_workers() -> bool:
    """Whether a thread claimed by :func:`claim_anyio_worker` (no cancel scope) may call back
    into the loop: anyio's ``run_async_from_thread`` reads the thread's cancel scope when it
    has one (``getattr(..., None)``); older releases (4.6) require one, and ``anyio.from_thread``
    would fail there."""
    try:
        from anyio._backends._asyncio import AsyncIOBackend
        from anyio._core._eventloop import claim_worker_thread, threadlocals  # noqa: F401
    except ImportError:
        return False
    source = _normalized_source(AsyncIOBackend.run_async_from_thread)
    return 'getattr(threadlocals,"current_cancel_scope",None)' in source


#: Whether flat plans may run whole on the engine's pool (see :func:`_scopeless_workers`).
POOL_WORKERS = _scopeless_workers()


def claim_anyio_worker(loop: Any) -> Any:
    """A context manager making the calling thread what anyio calls a worker thread of
    ``loop`` (as ``anyio.to_thread.run_sync`` does for its own), so that code run on the engine's
    pool can use ``anyio.from_thread.run``/``run_sync``/``check_cancelled`` as under FastAPI.
    A no-op when this anyio release lays its thread-locals out differently."""
    try:
        from anyio._backends._asyncio import AsyncIOBackend
        from anyio._core._eventloop import claim_worker_thread, threadlocals
    except ImportError:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def claimed() -> Iterator[None]:
        with claim_worker_thread(AsyncIOBackend, loop):
            threadlocals.current_cancel_scope = None  # no task waits on these calls to cancel them
            try:
                yield
            finally:
                del threadlocals.current_cancel_scope

    return claimed()


# --- Starlette's Request and middleware: private attributes the native tier sets or reads -------


def set_request_body(request: Request, body: bytes) -> None:
    """Gives a ``Request`` the body already read, as ``await request.body()`` caches it."""
    request._body = body


async def request_body(request: Request) -> bytes:
    """``await request.body()``; a body that arrives in one message is taken directly, and
    cached on the request as Starlette caches it."""
    if not hasattr(request, "_body") and not request._stream_consumed:
        message = await request._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            request._stream_consumed = True
            body: bytes = message.get("body", b"")
            request._body = body
            return body
        request._receive = _Replay(message, request._receive)
    return await request.body()


class _Replay:
    """``receive`` that first gives back a message already taken."""

    __slots__ = ("message", "receive")

    def __init__(self, message: Any, receive: Any) -> None:
        self.message: Any = message
        self.receive = receive

    async def __call__(self) -> Any:
        message, self.message = self.message, None
        return message if message is not None else await self.receive()


def exception_tables(handlers: dict[Any, Any], debug: bool) -> tuple[dict[Any, Any], dict[int, Any]]:
    """``(by class, by status code)``: the tables Starlette's ``ExceptionMiddleware`` builds
    from ``handlers`` (made with Starlette's own class)."""
    from starlette.middleware.exceptions import ExceptionMiddleware

    tables = ExceptionMiddleware(app=None, handlers=handlers, debug=debug)  # type: ignore[arg-type]
    return tables._exception_handlers, tables._status_handlers


def embed_body_fields(route_like: Any) -> bool:
    """Whether FastAPI embeds the route's body fields (``APIRoute._embed_body_fields``)."""
    return bool(route_like._embed_body_fields)


# --- patches: what the native path bypasses must still be the libraries' own -------------------

import os as _os

import fastapi.applications
import starlette.applications
import starlette.middleware.errors
import starlette.middleware.exceptions

#: What the native tier does not call, by name: an SDK that patches or wraps one of them
#: (Sentry patches ``Starlette.__call__``, ``request_response`` and ``get_request_handler``)
#: must see every request. The last item says where the function sits: ``outer`` (outside the
#: router: native routes then run under the app's own stack, which calls it), ``routing`` (the
#: router's and routes' matching and dispatch: the app's stack serves the request), or
#: ``handler`` (what builds a route's handler when the route is made: the route's own handler,
#: taken from its ``app``, then runs natively, and no flat plan stands in for it; see
#: :func:`own_handler`).
_BYPASSED: tuple[tuple[str, Any, str, str], ...] = (
    ("Starlette.__call__", starlette.applications.Starlette, "__call__", "outer"),
    ("Starlette.build_middleware_stack", starlette.applications.Starlette, "build_middleware_stack", "outer"),
    ("FastAPI.__call__", fastapi.applications.FastAPI, "__call__", "outer"),
    ("FastAPI.build_middleware_stack", fastapi.applications.FastAPI, "build_middleware_stack", "outer"),
    ("ServerErrorMiddleware.__call__", starlette.middleware.errors.ServerErrorMiddleware, "__call__", "outer"),
    ("ExceptionMiddleware.__call__", starlette.middleware.exceptions.ExceptionMiddleware, "__call__", "outer"),
    ("ExceptionMiddleware.__init__", starlette.middleware.exceptions.ExceptionMiddleware, "__init__", "outer"),
    ("Router.__call__", starlette.routing.Router, "__call__", "routing"),
    ("Router.app", starlette.routing.Router, "app", "routing"),
    ("APIRouter.app", fastapi.routing.APIRouter, "app", "routing"),
    ("Route.handle", starlette.routing.Route, "handle", "routing"),
    ("Route.matches", starlette.routing.Route, "matches", "routing"),
    ("APIRoute.handle", fastapi.routing.APIRoute, "handle", "routing"),
    ("APIRoute.matches", fastapi.routing.APIRoute, "matches", "routing"),
    ("starlette.routing.request_response", starlette.routing, "request_response", "handler"),
    ("fastapi.routing.request_response", fastapi.routing, "request_response", "handler"),
    ("fastapi.routing.get_request_handler", fastapi.routing, "get_request_handler", "handler"),
    ("fastapi.routing.serialize_response", fastapi.routing, "serialize_response", "handler"),
)
_LIBRARY_DIRS = tuple(
    _os.path.dirname(_os.path.abspath(module.__file__ or "")) + _os.sep for module in (starlette, fastapi)
)


def _origin(function: Any) -> str | None:
    """Where ``function``'s code comes from when it is not Starlette's or FastAPI's own (its
    file, from its package on), else None. A wrapper made with ``functools.wraps`` keeps the
    original's names but not its code."""
    code = getattr(function, "__code__", None)
    if code is None:  # not a plain function (a callable object put in its place)
        return f"{type(function).__module__}.{type(function).__qualname__}"
    filename: str = _os.path.abspath(code.co_filename)
    if filename.startswith(_LIBRARY_DIRS):
        return None
    marker = _os.sep + "site-packages" + _os.sep
    return filename.split(marker, 1)[1] if marker in filename else filename


code_origin = _origin


def bypassed_patches(where: str) -> list[str]:
    """``name (origin)`` for each function the native tier bypasses that was patched or
    wrapped, of those ``where`` (``outer``, ``routing`` or ``handler``: see ``_BYPASSED``),
    read at each compile, so an SDK initialised before or after this module's import is seen
    alike."""
    found = []
    for name, owner, attribute, place in _BYPASSED:
        if place != where:
            continue
        function = getattr(owner, attribute, None)
        if function is None:
            continue
        origin = _origin(function)
        if origin is not None:
            found.append(f"{name} ({origin})")
    return found


def own_handler(handler: Any) -> str:
    """ "" when ``handler`` (a route's request handler, from its ``app``) is FastAPI's or
    Starlette's own code and ``serialize_response`` is the one flat plans were made against, so
    a flat plan may stand in for it; else whose it is (the route's own handler then runs)."""
    origin = _origin(handler)
    if origin is not None:
        return f"the route's handler comes from {origin}"
    helpers = FLAT
    if helpers is not None and getattr(fastapi.routing, "serialize_response", None) is not helpers.serialize_response:
        origin = _origin(getattr(fastapi.routing, "serialize_response", None))
        return f"fastapi.routing.serialize_response is replaced ({origin})"
    return ""


# --- BaseHTTPMiddleware: the layer whose call_next native routes take directly -----------------

import hashlib as _hashlib

import starlette.middleware.base as _base

from fastrapi_compat.plan import wrapped_calls

#: Starlette's own pieces the direct call_next hands to the user's ``dispatch``, as its does.
CachedRequest = _base._CachedRequest
BaseStreamingResponse = _base._StreamingResponse
BaseHTTPMiddleware = _base.BaseHTTPMiddleware

#: sha256 of ``starlette.middleware.base``'s source, per release whose ``BaseHTTPMiddleware``
#: semantics :mod:`fastrapi_compat.execute.call_next` reproduces.
_KNOWN_BASE_HTTP = frozenset({"d054b70ac0cff44bb83b08a39c48542f25be8305c2e547a91635498c4ffc44d0"})  # 1.10.0
try:
    _BASE_HTTP_KNOWN = _hashlib.sha256(inspect.getsource(_base).encode()).hexdigest() in _KNOWN_BASE_HTTP
except (OSError, TypeError):  # pragma: no cover - sources not shipped
    _BASE_HTTP_KNOWN = False
_BASE_HTTP_CALL = _base.BaseHTTPMiddleware.__call__


def direct_call_next(layer: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]] | None:
    """How native requests may take a direct ``call_next`` through ``layer`` (a layer of the
    app's built stack), or None: ``layer`` is a ``BaseHTTPMiddleware`` of a release whose
    semantics are reproduced, whose ``__call__`` is Starlette's own (the class and subclasses
    that only add a ``dispatch``) or a known SDK wrapper of it (Sentry's middleware spans,
    :mod:`fastrapi_compat.plan.wrapped_calls`). Given the direct ``call_next``'s
    ``serve(layer, scope, receive, send)``, what returns is what to call in ``__call__``'s place:
    ``serve`` itself, or the wrapper's own code around it."""
    if not _BASE_HTTP_KNOWN or not isinstance(layer, _base.BaseHTTPMiddleware):
        return None
    call = type(layer).__call__
    if _is_base_http_call(call):
        return _as_is
    inner = wrapped_calls.sentry_inner(call)
    if inner is not None and _is_base_http_call(inner):
        return functools.partial(wrapped_calls.rewrap, call)
    return None


def _is_base_http_call(call: Any) -> bool:
    """Starlette's own ``BaseHTTPMiddleware.__call__`` (bound when we were imported, or read
    from a wrapper made before: its name and its code's file)."""
    if call is _BASE_HTTP_CALL:
        return _origin(call) is None
    return (
        getattr(call, "__module__", None) == _base.__name__
        and getattr(call, "__qualname__", None) == "BaseHTTPMiddleware.__call__"
        and getattr(call, "__code__", None) is not None
        and _origin(call) is None
    )


def _as_is(serve: Callable[..., Any]) -> Callable[..., Any]:
    return serve


# --- misses: when the route mirror may answer a request no route takes ---------------------------

import starlette.routing as _routing
from starlette._utils import get_route_path as get_route_path

#: The ``matches`` the mirror reproduces (a route's ``path_regex`` over the route path, and its
#: methods): Starlette's and FastAPI's own route classes.
_KNOWN_MATCHES = tuple(
    function
    for function in (
        _routing.Route.matches,
        _routing.WebSocketRoute.matches,
        _routing.Mount.matches,
        getattr(fastapi.routing.APIRoute, "matches", None),
        getattr(fastapi.routing.APIWebSocketRoute, "matches", None),
    )
    if function is not None
)
#: The router methods whose miss handling the mirror reproduces.
_ROUTER_MISS_METHODS = ("app", "__call__", "matches", "handle", "not_found")


def misses_reason(app: Any) -> str:
    """ "" when a request no route of ``app`` takes is answered as its router answers it, by
    what the mirror can tell (the first route matching the path answers 405, a route matching
    the path with its trailing slash toggled means a redirect, else ``not_found``'s 404): the
    routers are FastAPI's own with their own ``not_found``, every route matches by its path and
    methods, and nothing else can take a request (low-priority routes); else why not."""
    router = getattr(app, "router", None)
    if not isinstance(router, fastapi.routing.APIRouter):
        return "the app's router is not FastAPI's"
    for name in _ROUTER_MISS_METHODS:
        own = getattr(fastapi.routing.APIRouter, name, None)
        if getattr(type(router), name, None) is not own:
            return f"{type(router).__name__} overrides {name}"
    default = getattr(router, "default", None)
    if (
        getattr(default, "__func__", None) is not _routing.Router.not_found
        or getattr(default, "__self__", None) is not router
    ):
        return "the router has a default app of its own"
    low_priority = getattr(router, "_iter_low_priority_routes", None)
    if low_priority is not None and any(True for _ in low_priority()):
        return "the router has low-priority routes"
    for top in top_level_routes(app):
        if is_included_router(top):
            included = getattr(top, "original_router", None)
            for name in _ROUTER_MISS_METHODS:
                own = getattr(fastapi.routing.APIRouter, name, None)
                if included is not None and getattr(type(included), name, None) is not own:
                    return f"included {type(included).__name__} overrides {name}"
        for leaf in leaves(top):
            route = leaf.route
            if getattr(type(route), "matches", None) not in _KNOWN_MATCHES:
                return f"{type(route).__name__} matches requests its own way"
            if not isinstance(getattr(route, "path_regex", None), __import__("re").Pattern):
                return f"{type(route).__name__} without a path pattern"
    return ""
