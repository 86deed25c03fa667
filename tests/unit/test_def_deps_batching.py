"""A run of consecutive ``def`` dependencies of an ``async def`` endpoint is solved in one
thread-pool hop (``Node.groups``, ``execute.params.solve``): the groups the compiler makes, and
the hops a request takes through the engine, against stock FastAPI's answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import starlette.testclient

from fastrapi_compat.execute import params
from fastrapi_compat.plan.compiler import compile_app
from fastrapi_compat.serve import dispatch
from fastrapi_compat.testclient import TestClient

sys.path.append(str(Path(__file__).resolve().parents[1]))

from apps import def_deps  # noqa: E402


def _names(group: Any) -> Any:
    if isinstance(group, tuple):
        return tuple(sub.call.__name__ for sub in group)
    return group.call.__name__


def test_consecutive_def_dependencies_are_grouped() -> None:
    app = def_deps.create_app()
    route = next(r for r in app.routes if getattr(r, "path", "") == "/order")
    plan = next(p for p in compile_app(app).plans if p.route is route)
    assert plan.flat is not None
    assert [_names(g) for g in plan.flat.node.groups] == [
        ("log", "get_user", "get_flags"),
        "set_tenant",
        ("get_user", "get_flags", "counted", "counted"),
    ]
    user = next(sub for sub in plan.flat.node.deps if sub.call is def_deps.get_user)
    assert user.sync and [_names(g) for g in user.groups] == [("log", "get_db")]


@pytest.mark.parametrize(
    ("url", "hops"),
    [("/user?user=ann", 1), ("/order?user=bo&limit=3", 2), ("/thread", 1), ("/order?limit=0", 2)],
)
def test_one_hop_per_run_of_def_dependencies(monkeypatch: pytest.MonkeyPatch, url: str, hops: int) -> None:
    app = def_deps.create_app()
    expected = starlette.testclient.TestClient(app).get(url, headers={"x-tenant": "acme"})
    calls: list[str] = []
    real = params.to_thread

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    real_lead = dispatch.solve_lead

    def leading(*args: Any) -> Any:
        calls.append("solve_lead")
        return real_lead(*args)

    monkeypatch.setattr(params, "to_thread", counting)
    monkeypatch.setattr(dispatch, "solve_lead", leading)
    got = TestClient(app).get(url, headers={"x-tenant": "acme"})
    assert (got.status_code, got.json()) == (expected.status_code, expected.json())
    # FastAPI hops once per def function called: 3 for /user (log, get_db, get_user), 6 for
    # /order (set_tenant's ``log`` is cached: no hop for it, on either). Each route here starts
    # with a run of def functions: solved on the pool before the request's task starts.
    assert calls == ["solve_lead"] + ["_solve_on_thread"] * (hops - 1)
