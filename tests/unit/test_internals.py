"""``internals.core_validator``: the pydantic-core call a flat plan makes for a present path,
query, header or cookie value instead of ``ModelField.validate``. It must give what
``ModelField.validate`` gives (values and errors), and only for the field class and method
whose body it knows."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Header, Path, Query
from pydantic import BaseModel, TypeAdapter

from fastrapi_compat.plan import flat as plan_flat
from fastrapi_compat.plan import internals


class Item(BaseModel):
    name: str


def _fields() -> dict[str, Any]:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read(
        item_id: Annotated[int, Path(ge=1)],
        q: str | None = None,
        limit: Annotated[int, Query(le=100)] = 10,
        tags: Annotated[list[str] | None, Query()] = None,
        x_token: Annotated[str | None, Header()] = None,
    ) -> None:
        return None

    route = next(r for r in app.routes if getattr(r, "path", "") == "/items/{item_id}")
    dependant = route.dependant  # type: ignore[attr-defined]
    fields = [*dependant.path_params, *dependant.query_params, *dependant.header_params]
    return {field.name: field for field in fields}


CASES = [
    ("item_id", "5", ("path", "item_id")),
    ("item_id", "0", ("path", "item_id")),
    ("item_id", "abc", ("path", "item_id")),
    ("q", "text", ("query", "q")),
    ("limit", "100", ("query", "limit")),
    ("limit", "101", ("query", "limit")),
    ("limit", "1.5", ("query", "limit")),
    ("tags", ["a", "b"], ("query", "tags")),
    ("x_token", "secret", ("header", "x-token")),
]


@pytest.mark.parametrize(("name", "value", "loc"), CASES)
def test_core_validator_gives_what_model_field_validate_gives(name: str, value: Any, loc: tuple[str, str]) -> None:
    field = _fields()[name]
    core = internals.core_validator(field)
    assert core is not None, "a stock FastAPI field must take the direct call"
    validate, regenerate = core
    expected_value, expected_errors = field.validate(value, {}, loc=loc)
    try:
        found, errors = validate(value, from_attributes=True), []
    except Exception as exc:  # pydantic_core.ValidationError
        found, errors = None, regenerate(errors=exc.errors(include_url=False), loc_prefix=loc)  # type: ignore[attr-defined]
    assert found == expected_value
    assert errors == (expected_errors or [])


def test_flat_params_use_the_direct_call() -> None:
    if internals.FLAT is None:
        pytest.skip(f"no flat plans on this fastapi: {internals.FLAT_UNSUPPORTED}")
    params = [plan_flat.Param(field) for field in _fields().values()]
    assert all(param.validate is not None for param in params)


def test_an_overridden_validate_keeps_fastapi_s_path() -> None:
    field = _fields()["limit"]

    class Custom(type(field)):  # type: ignore[misc]
        def validate(self, value: Any, values: Any = None, *, loc: Any = ()) -> Any:
            return 1, []

    field.__class__ = Custom
    assert internals.core_validator(field) is None


def test_another_adapter_keeps_fastapi_s_path() -> None:
    field = _fields()["limit"]

    class Adapter(TypeAdapter):  # type: ignore[type-arg]
        pass

    field._type_adapter = Adapter(int)
    assert internals.core_validator(field) is None


def test_a_replaced_validator_keeps_fastapi_s_path() -> None:
    field = _fields()["limit"]

    class Plugged:
        def validate_python(self, value: Any, **options: Any) -> Any:
            return value

    field._type_adapter.validator = Plugged()
    assert internals.core_validator(field) is None


def test_a_plugin_watching_validation_keeps_fastapi_s_path() -> None:
    from pydantic.plugin._schema_validator import PluggableSchemaValidator

    field = _fields()["limit"]
    seen: list[Any] = []

    class Handler:
        def on_enter(self, *args: Any, **kwargs: Any) -> None:
            seen.append(args)

    class Plugin:
        def new_schema_validator(self, *args: Any) -> tuple[Any, None, None]:
            return Handler(), None, None

    adapter = field._type_adapter
    adapter.validator = PluggableSchemaValidator(
        adapter.core_schema, int, ("m", "int"), "TypeAdapter", None, [Plugin()], {}
    )
    assert internals.core_validator(field) is None
    field.validate("3", {}, loc=("query", "limit"))
    assert seen == [("3",)]


def test_a_single_body_uses_the_direct_call() -> None:
    from fastrapi_compat.plan.compiler import compile_app

    if internals.FLAT is None:
        pytest.skip(f"no flat plans on this fastapi: {internals.FLAT_UNSUPPORTED}")
    app = FastAPI()

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    flats = [plan.flat for plan in compile_app(app).plans if plan.flat is not None]
    assert [flat.single_body.name for flat in flats] == ["item"]
    core = flats[0].single_body_core
    assert core is not None
    assert core[0]({"name": "x"}, from_attributes=True) == Item(name="x")


def test_a_validator_not_built_yet_keeps_fastapi_s_path() -> None:
    app = FastAPI()

    @app.post("/later")
    async def later(item: Later) -> None:  # noqa: F821 - never defined: FastAPI fails per request
        return None

    route = next(r for r in app.routes if getattr(r, "path", "") == "/later")
    dependant = route.dependant  # type: ignore[attr-defined]
    (field,) = [*dependant.body_params, *dependant.query_params]
    assert internals.core_validator(field) is None


def _response_field() -> Any:
    app = FastAPI()

    @app.post("/items", response_model=Item)
    async def create(item: Item) -> Any:
        return item

    route = next(r for r in app.routes if getattr(r, "path", "") == "/items")
    return route.response_field  # type: ignore[attr-defined]


def test_response_serialization_takes_the_direct_calls() -> None:
    import fastapi

    field = _response_field()
    serializer = internals.response_serializer(field)
    if tuple(int(part) for part in fastapi.__version__.split(".")[:2]) < (0, 130):
        assert serializer is None  # its serialize_response is not the known body
        return
    assert serializer is not None
    (validate, _), dump_json = serializer
    value = validate({"name": "x"}, from_attributes=True)
    assert dump_json(value, include=None, exclude=None, by_alias=True) == field.serialize_json(value)


def test_another_serialize_response_keeps_fastapi_s_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import fastapi.routing

    original = fastapi.routing.serialize_response

    async def serialize_response(**kwargs: Any) -> Any:  # e.g. a later release's
        return await original(**kwargs)

    monkeypatch.setattr(fastapi.routing, "serialize_response", serialize_response)
    assert internals.response_serializer(_response_field()) is None
