"""Parameters of a flat plan, per request: path, query, header and cookie values validated
with each field's analysis done at compile time (``request_params_to_args``' steps), and the
dependency tree solved in ``solve_dependencies``' order (:func:`solve` on the loop,
:func:`solve_sync` on a pool thread)."""

from __future__ import annotations

import contextvars
import functools
from typing import Any

from pydantic import ValidationError

from fastrapi_compat.execute.call import NativeCall
from fastrapi_compat.execute.hop import to_thread
from fastrapi_compat.plan import internals
from fastrapi_compat.plan.flat import Node, Param

Undefined = internals.Undefined


def _params_to_args(
    fields: list[Any], params: list[Param] | None, received: Any, multidict: bool
) -> tuple[dict[str, Any], list[Any]]:
    """``request_params_to_args`` with each field's analysis done beforehand."""
    helpers = internals.FLAT
    assert helpers is not None
    if params is None:
        return helpers.request_params_to_args(fields, received)  # type: ignore[no-any-return]
    validate = helpers.validate_value
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
            value = helpers.missing_value(param.field, received)
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
    if not raw.isascii():
        return call.conn().query_params
    # Searched as text: ``b"%" in raw`` first tries the needle as an integer (a TypeError
    # formatted and cleared, ~2,500 instructions each on 3.11).
    text = raw.decode("ascii")
    if "%" in text or "+" in text:
        return call.conn().query_params
    lists: dict[str, list[str]] = {}
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            lists.setdefault(name, []).append(value)
    return _Query(lists)


async def solve(
    node: Node, call: NativeCall, cache: dict[Any, Any], lead: Solved | None = None
) -> tuple[dict[str, Any], list[Any]]:
    """``solve_dependencies`` for one node: its sub-dependencies (solved, then called unless
    they failed or are cached), then its own parameters. A run of consecutive sub-dependencies
    that are synchronous throughout (plain ``def`` functions, their own sub-dependencies too)
    is solved in one thread-pool hop (:func:`_solve_on_thread`), in the same order: FastAPI
    hops once per ``def`` function, and each hop is a round trip through the loop. The hop is
    the engine's pool (:func:`~fastrapi_compat.execute.hop.to_thread`), not anyio's. ``lead``:
    the node's first group, a run of ``def`` functions, already solved on a pool thread
    (:func:`solve_lead`) into ``cache`` and these values and errors."""
    if lead is None:
        values: dict[str, Any] = {}
        errors: list[Any] = []
        groups = node.groups
    else:
        values, errors = lead
        groups = node.groups[1:]
    for group in groups:
        if isinstance(group, tuple):
            # The context now is the one each run_in_threadpool would have copied: nothing runs
            # on the loop between the functions of the group.
            context = contextvars.copy_context()
            if _all_cached(group, cache):  # no function to call: no hop (nor has FastAPI)
                _solve_on_thread(group, call, cache, context, values, errors)
            else:
                await to_thread(_solve_on_thread, group, call, cache, context, values, errors)
            continue
        sub = group
        if sub.leaf:  # nothing to solve: no coroutine to make and await
            sub_values: dict[str, Any] = {}
        else:
            sub_values, sub_errors = await solve(sub, call, cache)
            if sub_errors:
                errors.extend(sub_errors)
                continue
        key = sub.cache_key
        if sub.use_cache and key in cache:
            solved = cache[key]
        elif sub.is_coroutine:
            solved = await sub.call(**sub_values)
        else:
            solved = await to_thread(contextvars.copy_context().run, functools.partial(sub.call, **sub_values))
        if sub.name is not None:
            values[sub.name] = solved
        if key not in cache:
            cache[key] = solved
    if node.params:
        _node_params(node, call, values, errors)
    return values, errors


Solved = tuple[dict[str, Any], list[Any]]
"""What a node's parameters and sub-dependencies gave: values by name, and errors."""


def solve_lead(
    group: tuple[Node, ...], call: NativeCall, cache: dict[Any, Any], context: contextvars.Context
) -> Solved:
    """A node's first group when it is a run of ``def`` functions (``FlatPlan.lead``), on a pool thread before the request's task
    starts, for :func:`solve` to go on from (``context``: the one the task starts in, which
    :func:`solve` would have copied for the group); raises what a function raised."""
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for sub in group:
        _solve_sub_sync(sub, call, cache, context, values, errors)
    return values, errors


def _all_cached(subs: tuple[Node, ...], cache: dict[Any, Any]) -> bool:
    """Every function of these trees already solved for this request (each would be read from
    the cache, none called)."""
    return all(sub.use_cache and sub.cache_key in cache and _all_cached(sub.deps_tuple, cache) for sub in subs)


def _solve_on_thread(
    subs: tuple[Node, ...],
    call: NativeCall,
    cache: dict[Any, Any],
    context: contextvars.Context,
    values: dict[str, Any],
    errors: list[Any],
) -> None:
    """Consecutive synchronous sub-dependencies of one node, on a pool thread (the loop awaits
    this, so nothing else touches ``cache``, ``values`` or ``errors`` meanwhile)."""
    for sub in subs:
        _solve_sub_sync(sub, call, cache, context, values, errors)


def solve_sync(
    node: Node, call: NativeCall, cache: dict[Any, Any], context: contextvars.Context
) -> tuple[dict[str, Any], list[Any]]:
    """:func:`solve` for a tree of synchronous dependencies, on a pool thread: each one is
    called in a copy of the request's context, as ``run_in_threadpool`` calls it."""
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for sub in node.deps:
        _solve_sub_sync(sub, call, cache, context, values, errors)
    if node.params:
        _node_params(node, call, values, errors)
    return values, errors


def _solve_sub_sync(
    sub: Node,
    call: NativeCall,
    cache: dict[Any, Any],
    context: contextvars.Context,
    values: dict[str, Any],
    errors: list[Any],
) -> None:
    """One synchronous sub-dependency: its own tree, then its call (unless it failed or is
    cached), into its parent's ``values``/``errors``."""
    key = sub.cache_key
    if sub.use_cache and key in cache:  # solve_dependencies solves its tree all the same
        if not sub.leaf:
            _, sub_errors = solve_sync(sub, call, cache, context)
            if sub_errors:
                errors.extend(sub_errors)
                return
        solved = cache[key]
    elif sub.leaf:
        solved = context.copy().run(sub.call)
        cache.setdefault(key, solved)
    else:
        sub_values, sub_errors = solve_sync(sub, call, cache, context)
        if sub_errors:
            errors.extend(sub_errors)
            return
        solved = context.copy().run(sub.call, **sub_values)
        cache.setdefault(key, solved)
    if sub.name is not None:
        values[sub.name] = solved


def _node_params(node: Node, call: NativeCall, values: dict[str, Any], errors: list[Any]) -> None:
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
