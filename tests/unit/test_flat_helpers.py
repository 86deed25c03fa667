"""plan/flat_helpers.py: which generation of FastAPI's request handling flat plans replicate on
the installed release, and the digest gate that keeps any other release on FastAPI's handler."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import re
import zipfile
from pathlib import Path
from typing import Annotated, Any

import fastapi.dependencies.utils as _dep_utils
import fastapi.routing
import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel, Json

from fastrapi_compat.plan import flat, flat_helpers, internals

ROOT = Path(__file__).resolve().parents[2]


def test_digest_tables_name_every_function() -> None:
    for release, (generation, digests) in flat_helpers._LEGACY_DIGESTS.items():
        assert generation in ("0.115", "0.128"), release
        assert len(digests) == len(flat_helpers._LEGACY_FUNCTIONS), release
        assert all(d == "" or re.fullmatch(r"[0-9a-f]{64}", d) for d in digests), release
        assert digests[0], f"{release}: get_request_handler must be read"


def test_the_installed_release_has_its_generation() -> None:
    helpers, reason = flat_helpers.flat_support()
    assert (helpers is None) == bool(reason)
    assert (internals.FLAT is None) == (helpers is None)
    if helpers is not None:
        assert helpers.handler_kind in ("fastapi", "starlette")
        assert helpers.error_context == (helpers.handler_kind == "fastapi")


def test_a_changed_body_keeps_fastapi_s_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any replicated function whose source is not the one read (here ``get_request_handler``
    wrapped, as an SDK might) leaves the release without an older generation."""
    original = fastapi.routing.get_request_handler

    def get_request_handler(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "get_request_handler", get_request_handler)
    assert flat_helpers._legacy("not read") == (None, "not read")


def test_the_current_generation_is_not_taken_for_an_older_one() -> None:
    helpers, _ = flat_helpers._current()
    if helpers is None:
        pytest.skip(f"fastapi {fastapi.__version__} is an older generation")
    assert flat_helpers._legacy("newer") == (None, "newer")  # 0.165's bodies match no table


#: The releases each admitted tuple of the current generation stands for (``scripts/flat_digests.py``
#: on their wheels): the release named passed its own FastAPI suite through the engine with flat
#: plans, the others share every digest with it.
_ADMITTED: dict[str, tuple[str, ...]] = {
    "0.165.0": ("0.165.0",),
    "0.164.0": ("0.164.0",),
    "0.163.2": ("0.163.2",),
    "0.163.1": ("0.163.0", "0.163.1"),
    "0.162.7": ("0.162.7",),
    "0.162.5": ("0.161.0", "0.161.1", *(f"0.162.{patch}" for patch in range(7))),
    "0.160.0": ("0.160.0",),
    "0.159.1": ("0.159.1",),
    "0.159.0": ("0.159.0",),
    "0.158.2": ("0.158.2",),
    "0.158.1": ("0.158.0", "0.158.1"),
    "0.157.0": ("0.157.0",),
    "0.156.8": ("0.156.7", "0.156.8"),
    "0.156.6": ("0.156.4", "0.156.5", "0.156.6"),
}


def test_current_digest_table_names_every_function() -> None:
    assert set(flat_helpers._CURRENT_DIGESTS) == set(_ADMITTED)
    for group, releases in _ADMITTED.items():
        assert flat_helpers._CURRENT_RELEASES[group] == (releases[0], releases[-1])
    assert "0.165.0" in flat_helpers._CURRENT_DIGESTS  # CI's main run
    assert "0.162.5" in flat_helpers._CURRENT_DIGESTS  # the newest release on Python 3.10
    for release, digests in flat_helpers._CURRENT_DIGESTS.items():
        assert len(digests) == len(flat_helpers._CURRENT_FUNCTIONS), release
        assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in digests), release
    assert len(set(flat_helpers._CURRENT_DIGESTS.values())) == len(flat_helpers._CURRENT_DIGESTS)


def test_a_proven_release_gets_current_flat_plans() -> None:
    """An admitted release (CI runs 0.165.0, and 0.162.5 with ``scripts/test-python 3.10``; the
    others in a venv of that release) has its group's digests, and flat plans run there."""
    group = next((name for name, releases in _ADMITTED.items() if fastapi.__version__ in releases), None)
    if group is None:
        pytest.skip(f"fastapi {fastapi.__version__} is not an admitted release")
    assert flat_helpers._current_digests() == flat_helpers._CURRENT_DIGESTS[group]
    assert flat_helpers._current_gate() == ""
    helpers, reason = flat_helpers.flat_support()
    assert reason == ""
    assert helpers is not None and not helpers.legacy
    assert internals.FLAT is not None and not internals.FLAT.legacy


def _replace(monkeypatch: pytest.MonkeyPatch, module: str, qualname: str) -> None:
    """Puts a function of another source in the place of ``module.qualname`` (a wrapper that is
    not ``functools.wraps``'d, as an SDK might patch it, or a release that changed it)."""
    owner: Any = importlib.import_module(module)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    def changed(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, changed)


@pytest.mark.parametrize(("module", "qualname"), flat_helpers._CURRENT_FUNCTIONS)
def test_a_changed_function_keeps_fastapi_s_handler(
    monkeypatch: pytest.MonkeyPatch, module: str, qualname: str
) -> None:
    """The current generation's gate: any replicated function whose source is not a proven
    release's leaves the release without flat plans, and the reason names the function."""
    if flat_helpers._current_gate():
        pytest.skip(f"fastapi {fastapi.__version__} is not a proven current release")
    admitted = flat_helpers._current_digests()
    group = next(name for name, digests in flat_helpers._CURRENT_DIGESTS.items() if digests == admitted)
    _replace(monkeypatch, module, qualname)
    helpers, reason = flat_helpers.flat_support()
    assert helpers is None
    # Named: the installed release's own group, even where another proven release differs from
    # it in this function alone (0.164.0's get_request_handler is all that differs from 0.165.0's).
    assert reason == (
        f"fastapi {fastapi.__version__}: {module}.{qualname} differs from {group}'s,"
        " the nearest release flat plans were proven on"
    )
    assert flat_helpers._current() == (None, reason)


@pytest.mark.parametrize("group", sorted(_ADMITTED))
def test_every_admitted_release_refuses_a_changed_function_by_name(monkeypatch: pytest.MonkeyPatch, group: str) -> None:
    """On every release of an admitted group (whatever is installed: the version and the live
    digests are stood in for), any one replicated function of another source is refused, named,
    against the release's own group, even where another proven release differs from it in that
    function alone (0.164.0 and 0.165.0 in get_request_handler, 0.162.6 and 0.162.7 in
    solve_dependencies)."""
    admitted = flat_helpers._CURRENT_DIGESTS[group]
    for release in _ADMITTED[group]:
        monkeypatch.setattr(fastapi, "__version__", release)
        monkeypatch.setattr(flat_helpers, "_current_digests", lambda: admitted)
        assert flat_helpers._current_gate() == "", release
        for index, (module, qualname) in enumerate(flat_helpers._CURRENT_FUNCTIONS):
            changed = (*admitted[:index], "0" * 64, *admitted[index + 1 :])
            monkeypatch.setattr(flat_helpers, "_current_digests", lambda changed=changed: changed)
            assert flat_helpers._current_gate() == (
                f"fastapi {release}: {module}.{qualname} differs from {group}'s,"
                " the nearest release flat plans were proven on"
            ), (release, qualname)


def test_the_form_model_switch_of_0_160(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.160.0 has ``_get_form_model`` (one model or None) where 0.161.0 on have
    ``_get_form_models`` (a list): the current generation takes the one the release has; with
    none of the form-model helpers (0.157.0) no field is a form model."""
    form_model = object()
    monkeypatch.delattr(_dep_utils, "_get_form_models", raising=False)
    monkeypatch.setattr(
        _dep_utils, "_get_form_model", lambda field: form_model if field == "form" else None, raising=False
    )
    monkeypatch.setattr(flat_helpers, "_current_gate", lambda: "")
    helpers, reason = flat_helpers._current()
    assert reason == ""
    assert helpers is not None
    assert helpers.form_models("form") is True
    assert helpers.form_models("json") is False
    monkeypatch.delattr(_dep_utils, "_get_form_model")
    monkeypatch.delattr(_dep_utils, "_is_form_model", raising=False)
    helpers, reason = flat_helpers._current()
    assert reason == ""
    assert helpers is not None  # 0.157.0: no form model at all
    assert helpers.form_models("form") is False


def test_the_form_model_switch_of_0_158_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.158.0 and 0.158.1 have neither ``_get_form_models`` nor ``_get_form_model`` but
    ``_is_form_model`` (a bool): the current generation takes it, and ``_get_form_model`` first
    where a release has both."""
    monkeypatch.delattr(_dep_utils, "_get_form_models", raising=False)
    monkeypatch.delattr(_dep_utils, "_get_form_model", raising=False)
    monkeypatch.setattr(_dep_utils, "_is_form_model", lambda field: field == "form", raising=False)
    monkeypatch.setattr(flat_helpers, "_current_gate", lambda: "")
    helpers, reason = flat_helpers._current()
    assert reason == ""
    assert helpers is not None
    assert helpers.form_models("form") is True
    assert helpers.form_models("json") is False
    monkeypatch.setattr(_dep_utils, "_get_form_model", lambda field: None, raising=False)
    helpers, _ = flat_helpers._current()
    assert helpers is not None
    assert helpers.form_models("form") is False


class _Paging(BaseModel):
    limit: int = 10


def _paging(p: Annotated[_Paging, Query()]) -> int:
    return p.limit


def test_the_parameter_names_switch_before_0_160(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.157.0 to 0.159.1 read a parameter model with the route's parameter names
    (``known_param_names``), which a plan does not pass: ``param_names`` is whether the installed
    ``request_params_to_args`` takes them, and with it a route with a parameter model (here a
    query model, and one in a dependency) is not flat; a route without one still is."""
    helpers = internals.FLAT
    if helpers is None:
        pytest.skip(f"no flat plans on this fastapi: {internals.FLAT_UNSUPPORTED}")
    takes = "known_param_names" in inspect.signature(_dep_utils.request_params_to_args).parameters
    assert helpers.param_names == (takes and not helpers.legacy)

    app = FastAPI()

    @app.get("/model")
    async def model(p: Annotated[_Paging, Query()]) -> int:
        return p.limit

    @app.get("/in-dependency")
    async def in_dependency(limit: Annotated[int, Depends(_paging)]) -> int:
        return limit

    @app.get("/plain")
    async def plain(limit: int = 10) -> int:
        return limit

    for switched in (False, True):
        monkeypatch.setattr(internals, "FLAT", dataclasses.replace(helpers, param_names=switched))
        reasons = {route.path: flat.flat_reason(route) for route in app.routes if isinstance(route, APIRoute)}
        expected = "parameter model (this release reads it with the route's parameter names)" if switched else ""
        assert reasons == {"/model": expected, "/in-dependency": expected, "/plain": ""}


def _query_fields(app: FastAPI) -> dict[str, Any]:
    """Each route's one query field, by path."""
    return {route.path: route.dependant.query_params[0] for route in app.routes if isinstance(route, APIRoute)}


def test_the_parameter_model_switch_of_0_158_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.158.2 has no ``_get_param_model``: its ``request_params_to_args`` reads a field as a
    parameter model when the annotation is a ``BaseModel`` subclass and the field is not JSON
    (not an optional model, which 0.159.0's ``_get_param_model`` also takes). The current
    generation then tests a location by that, and a route with such a model is not flat
    (``param_names``); without ``_is_json_field`` too, no flat plans, by name."""
    app = FastAPI()

    @app.get("/model")
    async def model(p: Annotated[_Paging, Query()]) -> int:
        return p.limit

    if hasattr(_dep_utils, "_get_param_model"):  # 0.158.2 refuses to declare an optional model

        @app.get("/optional")
        async def optional(p: Annotated[_Paging | None, Query()] = None) -> int:
            return 0

    @app.get("/json")
    async def json_model(p: Annotated[Json[_Paging], Query()]) -> int:
        return p.limit

    @app.get("/plain")
    async def plain(limit: int = 10) -> int:
        return limit

    fields = _query_fields(app)
    switch = flat_helpers._param_model_before_0_159()
    assert switch is not None
    optional = {"/optional": None} if "/optional" in fields else {}
    assert {path: switch(field) for path, field in fields.items()} == {
        "/model": _Paging,
        **optional,
        "/json": None,
        "/plain": None,
    }
    monkeypatch.delattr(_dep_utils, "_get_param_model", raising=False)
    monkeypatch.setattr(flat_helpers, "_current_gate", lambda: "")
    read_params = _dep_utils.request_params_to_args
    if "known_param_names" not in inspect.signature(read_params).parameters:  # 0.156.x: as 0.158.2

        def with_names(fields: Any, received: Any, *, known_param_names: Any = None) -> Any:
            return read_params(fields, received)

        monkeypatch.setattr(_dep_utils, "request_params_to_args", with_names)
    helpers, reason = flat_helpers._current()
    assert reason == ""
    assert helpers is not None
    assert {path: helpers.location_model([field]) for path, field in fields.items()} == {
        "/model": True,
        **{path: False for path in optional},
        "/json": False,
        "/plain": False,
    }
    monkeypatch.setattr(internals, "FLAT", dataclasses.replace(helpers, param_names=True))
    reasons = {route.path: flat.flat_reason(route) for route in app.routes if isinstance(route, APIRoute)}
    assert reasons["/model"] == "parameter model (this release reads it with the route's parameter names)"
    assert reasons["/plain"] == ""
    monkeypatch.delattr(_dep_utils, "_is_json_field")
    helpers, reason = flat_helpers._current()
    assert helpers is None
    assert reason == f"fastapi {fastapi.__version__} lacks get_param_model, is_json_field"


def test_the_location_model_switch_of_0_156_8(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.156.7 and 0.156.8 have no ``_get_param_model`` and their ``request_params_to_args``
    takes no ``known_param_names``: a location is one parameter model (read by the release's own
    function) only when its one field is a model, a JSON one too; beside another field a model
    is read by its alias like any field. A release with ``_get_param_model`` or
    ``known_param_names`` asks each field instead."""
    app = FastAPI()

    @app.get("/model")
    async def model(p: Annotated[_Paging, Query()]) -> int:
        return p.limit

    @app.get("/json")
    async def json_model(p: Annotated[Json[_Paging], Query()]) -> int:
        return p.limit

    @app.get("/two")
    async def two(p: Annotated[Json[_Paging], Query()], q: int = 0) -> int:
        return q

    @app.get("/plain")
    async def plain(limit: int = 10) -> int:
        return limit

    locations = {route.path: route.dependant.query_params for route in app.routes if isinstance(route, APIRoute)}
    monkeypatch.setattr(flat_helpers, "_current_gate", lambda: "")
    monkeypatch.delattr(_dep_utils, "_get_param_model", raising=False)

    def without_names(fields: Any, received: Any) -> Any:
        return {}, []

    def with_names(fields: Any, received: Any, *, known_param_names: Any = None) -> Any:
        return {}, []

    monkeypatch.setattr(_dep_utils, "request_params_to_args", without_names)
    switch = flat_helpers._location_model_before_0_157()
    assert switch is not None
    helpers, reason = flat_helpers._current()
    assert reason == "" and helpers is not None
    assert not helpers.param_names
    expected = {"/model": True, "/json": True, "/two": False, "/plain": False}
    assert {path: switch(fields) for path, fields in locations.items()} == expected
    assert {path: helpers.location_model(fields) for path, fields in locations.items()} == expected
    monkeypatch.setattr(_dep_utils, "request_params_to_args", with_names)
    assert flat_helpers._location_model_before_0_157() is None
    helpers, _ = flat_helpers._current()
    assert helpers is not None and helpers.param_names
    assert helpers.location_model(locations["/json"]) is False  # 0.157.0: not JSON
    monkeypatch.setattr(_dep_utils, "request_params_to_args", without_names)
    monkeypatch.setattr(_dep_utils, "_get_param_model", lambda field: None, raising=False)
    assert flat_helpers._location_model_before_0_157() is None


def test_a_mix_of_proven_releases_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each function as some proven release has it, but not all as one release has them (as on
    0.163.1 before its own suite was run: 0.165.0's solve_dependencies, 0.162.5's
    get_request_handler): no flat plans, the gate compares whole tuples."""
    table = {"A": ("a1", "a2", "a3"), "B": ("b1", "a2", "b3")}
    functions = (("m", "one"), ("m", "two"), ("m", "three"))
    monkeypatch.setattr(flat_helpers, "_CURRENT_DIGESTS", table)
    monkeypatch.setattr(flat_helpers, "_CURRENT_FUNCTIONS", functions)
    monkeypatch.setattr(flat_helpers, "_current_digests", lambda: ("a1", "a2", "b3"))
    assert flat_helpers._current_gate() == (
        f"fastapi {fastapi.__version__}: m.three differs from A's, the nearest release flat plans were proven on"
    )
    monkeypatch.setattr(flat_helpers, "_current_digests", lambda: ("c1", "a2", "c3"))
    assert flat_helpers._current_gate() == (
        f"fastapi {fastapi.__version__}: m.one and 1 more differ from A's, the nearest release flat plans were proven on"
    )
    monkeypatch.setattr(flat_helpers, "_current_digests", lambda: ("b1", "a2", "b3"))
    assert flat_helpers._current_gate() == ""


def test_the_digest_script_reads_what_the_gate_reads(tmp_path: Path) -> None:
    """scripts/flat_digests.py, on a wheel of the installed release's sources, gives the digests
    the gate computes from the live functions (the table's digests come from that script)."""
    spec = importlib.util.spec_from_file_location("flat_digests", ROOT / "scripts" / "flat_digests.py")
    assert spec is not None and spec.loader is not None
    script: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.current_functions() == list(flat_helpers._CURRENT_FUNCTIONS)
    package = Path(fastapi.__file__).parent
    wheel = tmp_path / f"fastapi-{fastapi.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as out:
        for path in package.rglob("*.py"):
            out.write(path, str(path.relative_to(package.parent)))
    with zipfile.ZipFile(wheel) as read:
        found = tuple(script.digest(script.function_source(read, m, q)) for m, q in script.current_functions())
    assert found == flat_helpers._current_digests()
    assert all(found)
