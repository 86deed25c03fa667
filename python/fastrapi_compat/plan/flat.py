"""Flat plans: a route's ``Dependant`` analysed once at compile time (each parameter's
aliases, list-ness and location; the sub-dependency tree; the body and response fields), so
that a request of the route skips ``solve_dependencies``, ``Request`` and ``Response`` objects.

:func:`flat_reason` says why a route cannot have one; :class:`FlatPlan` is what
:mod:`fastrapi_compat.execute.flat` (on the loop) and :mod:`fastrapi_compat.execute.offload`
(on a pool thread) run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastapi.exceptions
import fastapi.params
import fastapi.responses
from fastapi._compat import lenient_issubclass
from fastapi.datastructures import DefaultPlaceholder
from fastapi.utils import is_body_allowed_for_status_code
from starlette.responses import JSONResponse

from fastrapi_compat.plan import internals

Undefined = internals.Undefined


_IMMUTABLE_SCALARS = frozenset({int, float, bool, str, bytes, type(None)})


class Param:
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
        self.keys = [key for _, key in helpers.get_param_aliases(field)]
        self.location = field.field_info.in_.value
        self.sequence = helpers.is_sequence(field)
        self.getlist = self.sequence and not helpers.is_json_field(field)
        # A missing optional value is ``deepcopy(field.default)`` unvalidated: for a plain
        # default (no factory: ``field.default`` would call it) that is an immutable scalar,
        # that is the default itself, so FastAPI's helper need not be called. (Legacy
        # releases validate a default other than ``None``: only ``None`` is plain there.)
        info = field.field_info
        self.default = info.default
        self.plain_default = (
            info.default_factory is None
            and not info.is_required()
            and not info.validate_default
            and type(self.default) in _IMMUTABLE_SCALARS
            and (self.default is None or not helpers.legacy)
        )
        # A present value: what ``field.validate`` calls, without the three Python frames
        # around pydantic-core (None: FastAPI's helper validates it).
        core = internals.core_validator(field)
        self.validate: Callable[..., Any] | None = None
        self.regenerate: Callable[..., list[Any]] | None = None
        if core is not None:
            self.validate, self.regenerate = core


def _params(fields: list[Any]) -> list[Param] | None:
    """The fields of one location, or None when one is a parameter model (then FastAPI's
    ``request_params_to_args`` handles the location). Legacy releases also copy every field's
    default on each request before reading the values: a location where that may be seen (a
    default factory, a default that is not plain data) is left to their function too."""
    helpers = internals.FLAT
    assert helpers is not None
    if helpers.location_model(fields):
        return None
    if helpers.legacy and not all(_plain_default(field.field_info) for field in fields):
        return None
    return [Param(field) for field in fields]


def _plain_default(info: Any) -> bool:
    """No default factory, and a default that is required, or immutable data, or a list,
    tuple, set or dict of it: copying it calls nothing of the app's."""
    if info.default_factory is not None:
        return False
    if info.is_required():
        return True
    return _plain_data(info.default)


def _plain_data(value: Any) -> bool:
    if type(value) in _IMMUTABLE_SCALARS:
        return True
    if type(value) in (list, tuple, set, frozenset):
        return all(type(item) in _IMMUTABLE_SCALARS for item in value)
    if type(value) is dict:
        return all(type(k) in _IMMUTABLE_SCALARS and type(v) in _IMMUTABLE_SCALARS for k, v in value.items())
    return False


_SPECIAL_PARAMETERS = ("request", "websocket", "http_connection", "response", "background_tasks", "security_scopes")


class Node:
    """One level of a ``Dependant`` tree: its parameters by location, analysed once, and its
    sub-dependencies, in FastAPI's solving order."""

    __slots__ = (
        "cache_key",
        "call",
        "cookie_fields",
        "cookie_params",
        "deps",
        "deps_tuple",
        "groups",
        "header_fields",
        "header_params",
        "is_coroutine",
        "leaf",
        "name",
        "params",
        "path_fields",
        "path_params",
        "query_fields",
        "query_params",
        "sync",
        "use_cache",
    )

    def __init__(self, dependant: Any, top: bool = False) -> None:
        helpers = internals.FLAT
        assert helpers is not None
        self.call = dependant.call
        self.name = dependant.name
        # The endpoint's own test at the top (it may differ from the dependencies' one).
        self.is_coroutine = (helpers.endpoint_is_coroutine if top else helpers.is_coroutine)(dependant)
        self.use_cache = dependant.use_cache
        self.cache_key = helpers.cache_key(dependant=dependant)
        self.path_fields = list(dependant.path_params)
        self.query_fields = list(dependant.query_params)
        self.header_fields = list(dependant.header_params)
        self.cookie_fields = list(dependant.cookie_params)
        self.path_params = _params(self.path_fields)
        self.query_params = _params(self.query_fields)
        self.header_params = _params(self.header_fields)
        self.cookie_params = _params(self.cookie_fields)
        self.deps: list[Node] = [Node(sub) for sub in dependant.dependencies]
        self.deps_tuple: tuple[Node, ...] = tuple(self.deps)
        # Path, query, header or cookie parameters of its own to read (execute.params._node_params).
        self.params = bool(self.path_fields or self.query_fields or self.header_fields or self.cookie_fields)
        # Nothing to solve before its call: no parameters, no sub-dependencies.
        self.leaf = not self.params and not self.deps
        # No ``async`` function in this node's tree: it may be solved on a pool thread whole.
        self.sync: bool = not self.is_coroutine and all(sub.sync for sub in self.deps)
        # ``deps`` in order, each run of consecutive synchronous ones as a tuple: solved on
        # the loop in one thread-pool hop (execute.params.solve).
        self.groups: list[Node | tuple[Node, ...]] = _groups(self.deps)


def _groups(deps: list[Node]) -> list[Node | tuple[Node, ...]]:
    groups: list[Node | tuple[Node, ...]] = []
    run: list[Node] = []
    for sub in deps:
        if sub.sync:
            run.append(sub)
            continue
        if run:
            groups.append(tuple(run))
            run = []
        groups.append(sub)
    if run:
        groups.append(tuple(run))
    return groups


def _node_reason(dependant: Any, top: bool) -> str:
    helpers = internals.FLAT
    assert helpers is not None
    for name in _SPECIAL_PARAMETERS:
        if getattr(dependant, f"{name}_param_name", None):
            return f"{name} parameter" if top else f"{name} parameter in a dependency"
    if getattr(dependant, "concurrency", None) is not None:
        return "concurrency limit"
    if helpers.param_names and any(
        helpers.location_model(fields)
        for fields in (dependant.path_params, dependant.query_params, dependant.header_params, dependant.cookie_params)
        if fields
    ):
        return "parameter model (this release reads it with the route's parameter names)"
    if helpers.oauth_scopes(dependant=dependant):
        return "security scopes"
    call = dependant.call
    if not top:
        if call is None or helpers.is_gen(dependant) or helpers.is_async_gen(dependant):
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
        "error_context",
        "endpoint_ctx",
        "has_body",
        "is_coroutine",
        "json_class",
        "lead",
        "lead_only",
        "legacy",
        "node",
        "offload",
        "overrides_provider",
        "response_class",
        "response_field",
        "serialize_kwargs",
        "serialize_options",
        "single_body",
        "single_body_core",
        "body_model_fields",
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
        self.node = Node(dependant, top=True)
        self.call = dependant.call
        self.is_coroutine = self.node.is_coroutine
        self.body_fields = list(dependant.body_params)
        self.has_body = like.body_field is not None
        self.embed_body_fields = internals.embed_body_fields(like)
        # Legacy releases parse a body without a content type as JSON (no such setting).
        strict = getattr(like, "strict_content_type", True) if not helpers.legacy else False
        self.strict_content_type = strict.value if isinstance(strict, DefaultPlaceholder) else strict
        self.legacy = helpers.legacy
        self.error_context = helpers.error_context
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
        self.use_dump_json = (
            self.response_field is not None and isinstance(response_class, DefaultPlaceholder) and not helpers.legacy
        )
        #: What ``serialize_response`` is called with besides the field, content and context.
        self.serialize_options = dict(self.serialize_kwargs)
        if not helpers.legacy:
            self.serialize_options["dump_json"] = self.use_dump_json
        actual = response_class.value if isinstance(response_class, DefaultPlaceholder) else response_class
        self.response_class = actual
        # Starlette's JSONResponse itself (not a subclass): its bytes are rendered here.
        self.json_class = actual is JSONResponse
        self.endpoint_ctx = helpers.endpoint_context(dependant.call) if dependant.call else {}
        self.dependant_path = dependant.path
        self.overrides_provider = like.dependency_overrides_provider if self.node.deps else None
        fields = self.body_fields
        self.single_body = (
            fields[0]
            if len(fields) == 1
            and not self.embed_body_fields
            and not helpers.should_embed(fields)
            and not helpers.form_models(fields[0])
            else None
        )
        self.single_body_core = internals.core_validator(self.single_body) if self.single_body is not None else None
        self.body_model_fields = helpers.body_model_fields if self.single_body is not None else None
        self.response_serializer = None
        if self.response_field is not None and self.is_coroutine:
            if self.use_dump_json:
                self.response_serializer = internals.response_serializer(self.response_field)
            elif helpers.legacy:  # the content as Python data, rendered by the response class
                self.response_serializer = internals.legacy_response_serializer(self.response_field)
        # Whether the dependant has anything to solve (dependencies or parameters).
        node = self.node
        self.solves = bool(
            node.deps or node.path_fields or node.query_fields or node.header_fields or node.cookie_fields
        )
        self.contexts: dict[tuple[str, str], Any] = {}  # endpoint context per (method, root path)
        # No body and no ``async`` function anywhere: the whole plan may run on a pool thread.
        # (Not with an anyio whose worker threads need a cancel scope: anyio.from_thread.)
        self.offload = not self.has_body and _synchronous(self.node) and internals.POOL_WORKERS
        # No body, and the first dependencies a run of ``def`` functions: they may be solved on
        # a pool thread before the request's task starts (``Dispatcher.solve_lead``).
        first = node.groups[0] if node.groups else None
        self.lead: tuple[Node, ...] | None = (
            first if isinstance(first, tuple) and not self.has_body and internals.POOL_WORKERS else None
        )
        # The lead is all there is to solve (no later dependency, no parameter of the
        # endpoint's own): what it gave is the endpoint's arguments as they are.
        self.lead_only = self.lead is not None and len(node.groups) == 1 and not node.params

    def overridden(self) -> bool:
        """``dependency_overrides`` are set: FastAPI's own solver must run the route."""
        provider = self.overrides_provider
        return provider is not None and bool(getattr(provider, "dependency_overrides", None))


def _synchronous(node: Node) -> bool:
    return node.sync


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
    if call is None or helpers.is_gen(dependant) or helpers.is_async_gen(dependant):
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
