"""FastAPI's helpers a flat plan calls, per generation of FastAPI's request handling.

Flat plans (:mod:`fastrapi_compat.plan.flat`, run by :mod:`fastrapi_compat.execute.flat`)
replicate ``get_request_handler``, ``solve_dependencies`` and ``request_params_to_args`` step
by step. Three generations are known:

- ``current`` (written against 0.165): a missing value is ``Undefined``, a default is not
  validated; the helpers those functions are made of exist by name (``_get_param_aliases``,
  ``_get_cache_key``...) and ``serialize_response`` takes ``dump_json``. Its gate is the
  sha256 of every function the plan replicates (:data:`_CURRENT_FUNCTIONS`): the tuple must be
  one of :data:`_CURRENT_DIGESTS`, each that of a release whose own FastAPI suite passed
  through the engine with flat plans (0.165.0, 0.164.0, 0.163.2, 0.163.1 = 0.163.0, 0.162.7;
  0.162.5, the same bodies as 0.161.0 to 0.162.6; 0.160.0, 0.159.1, 0.159.0, 0.158.2; 0.158.1 =
  0.158.0; 0.157.0; 0.156.8 = 0.156.7; 0.156.6 = 0.156.4-0.156.5). Between 0.130 and 0.165
  ``get_request_handler`` changes in most releases: ``scripts/flat_digests.py`` digests
  release wheels and groups the releases that share a tuple. From 0.156.4 on, what changed is
  in branches a flat plan never takes (form bodies, body limits, ``yield`` and
  concurrency-limited dependencies, parameter models), so one plan serves every group, with
  four release switches: the form-model test of 0.160.0 to 0.156.4
  (:func:`_form_models_before_0_161`), before 0.160 a parameter model read with the route's
  parameter names (``FlatHelpers.param_names``), the parameter-model test of 0.158.2 to
  0.157.0, which lack ``_get_param_model`` (:func:`_param_model_before_0_159`), and 0.156.x's
  one-model location (:func:`_location_model_before_0_157`). A release of another tuple keeps
  FastAPI's own handler (the reason names the first function that differs from the nearest
  proven release's).
- ``0.128``: the same handler shape (FastAPI's ``request_response`` with the request's exit
  stacks, errors with an endpoint context), but the helpers live on ``Dependant``
  (``cache_key``, ``is_coroutine_callable``), an absent body is ``None``, a missing
  parameter's non-``None`` default *is* validated, a body without a content type is parsed as
  JSON, and the response is serialized to Python and rendered by the response class.
- ``0.115``: as ``0.128``, but the route's handler sits in Starlette's ``request_response``,
  errors carry no endpoint context, parameters are read by their ``alias``, and the endpoint
  is awaited when ``asyncio.iscoroutinefunction`` says so (dependencies by
  ``is_coroutine_callable``), and a single body field's model fields are built (cached)
  before it is validated, as its ``request_body_to_args`` does.

In both older generations ``request_params_to_args`` copies every field's default before
reading the values; a location where that copy could be seen (a default factory, a default
that is not plain data) goes through the release's own function.

Every generation is gated alike: a release gets one only when the source of every function
whose body the plan replicates is that of a release read and proven here (see
:data:`_CURRENT_DIGESTS` and :data:`_LEGACY_DIGESTS`); any other release keeps FastAPI's own
handler for every route (still native), and ``explain`` says why in one line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import fastapi
import fastapi._compat
import fastapi.dependencies.models as _dep_models
import fastapi.dependencies.utils as _dep_utils
import fastapi.routing
from fastapi._compat import lenient_issubclass
from pydantic import BaseModel


@dataclasses.dataclass(frozen=True)
class FlatHelpers:
    """FastAPI's helpers a flat plan calls, by name (``request_params_to_args`` and its pieces,
    so that a plan can analyse each field once), and the generation they belong to. The
    ``Dependant`` predicates take the dependant."""

    legacy: bool
    #: The ``request_response`` flavour around the handlers this generation replicates.
    handler_kind: str
    #: Whether the release's validation errors and ``serialize_response`` take an endpoint
    #: context.
    error_context: bool
    #: The endpoint's own test (``get_request_handler``'s ``is_coroutine``).
    endpoint_is_coroutine: Callable[[Any], bool]
    is_coroutine: Callable[[Any], bool]
    is_gen: Callable[[Any], bool]
    is_async_gen: Callable[[Any], bool]
    endpoint_context: Callable[..., Any]
    serialize_response: Callable[..., Any]
    request_params_to_args: Callable[..., Any]
    request_body_to_args: Callable[..., Any]
    #: Whether a location's fields are read as one parameter model (then FastAPI's
    #: ``request_params_to_args`` handles the location).
    location_model: Callable[[list[Any]], bool]
    get_param_aliases: Callable[..., Any]
    is_json_field: Callable[..., Any]
    #: Whether a field is read as a list (``(field)``).
    is_sequence: Callable[[Any], bool]
    validate_value: Callable[..., Any]
    #: The value ``request_params_to_args`` validates for a parameter absent from the request
    #: (``(field, received)``): ``Undefined``, or (legacy) ``_get_multidict_value``'s default.
    missing_value: Callable[[Any, Any], Any]
    cache_key: Callable[..., Any]
    should_embed: Callable[..., Any]
    form_models: Callable[..., Any]
    #: What ``request_body_to_args`` calls for a single body field not embedded before
    #: validating it (0.115: ``get_cached_model_fields`` of a model type, which may warn the
    #: first time), else None.
    body_model_fields: Callable[[Any], Any] | None
    oauth_scopes: Callable[..., Any]
    #: Whether ``request_params_to_args`` takes the route's parameter names for a parameter
    #: model (``known_param_names``, 0.157.0 to 0.159.1), which a plan does not pass: a location
    #: read as a parameter model then keeps the route off flat plans.
    param_names: bool = False


def _digest(function: Any) -> str:
    """sha256 of a function's source with all whitespace removed ("" without a source)."""
    try:
        source = "".join(inspect.getsource(function).split())
    except (OSError, TypeError):
        return ""
    return hashlib.sha256(source.encode()).hexdigest()


#: What a ``current`` flat plan replicates, as ``(module, qualified name)``: the route's handler
#: (``request_response`` with its exit stacks, ``get_request_handler``: the body read, the
#: endpoint run by ``run_endpoint_function``/``_run_sync_endpoint``, the response made by
#: ``_build_response_args`` and ``serialize_response``), ``solve_dependencies`` (sub-dependencies
#: in order, cached by key), ``request_params_to_args`` with ``_get_multidict_value`` and
#: ``_validate_value_with_model_field`` (inlined per parameter), ``request_body_to_args`` (one
#: field not embedded: the whole body validated), and ``ModelField.validate`` and
#: ``ModelField.serialize_json`` (their pydantic-core calls made directly). The helpers these
#: call and the plan calls too (``_get_param_aliases``, ``_get_cache_key``...) are not listed.
#: ``scripts/flat_digests.py`` reads this table to digest release wheels.
_CURRENT_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("fastapi.routing", "request_response"),
    ("fastapi.routing", "get_request_handler"),
    ("fastapi.routing", "run_endpoint_function"),
    ("fastapi.routing", "_run_sync_endpoint"),
    ("fastapi.routing", "_build_response_args"),
    ("fastapi.routing", "serialize_response"),
    ("fastapi.dependencies.utils", "solve_dependencies"),
    ("fastapi.dependencies.utils", "request_params_to_args"),
    ("fastapi.dependencies.utils", "request_body_to_args"),
    ("fastapi.dependencies.utils", "_get_multidict_value"),
    ("fastapi.dependencies.utils", "_validate_value_with_model_field"),
    ("fastapi._compat.v2", "ModelField.validate"),
    ("fastapi._compat.v2", "ModelField.serialize_json"),
)
#: Digests of :data:`_CURRENT_FUNCTIONS` (in order) that a ``current`` flat plan runs on, each
#: the tuple of releases whose own FastAPI suite passed through the engine with flat plans (the
#: releases sharing it, from ``scripts/flat_digests.py``, in the comment). Any other tuple keeps
#: FastAPI's own handler.
_CURRENT_DIGESTS: dict[str, tuple[str, ...]] = {
    # 0.165.0 alone
    "0.165.0": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "0449581e8d634ee6b664b0c781ff012eee0db2ed30702718a173ad66b497864a",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "bf7600fe2da2b82138fe796de92edfe90b2d322c4b1432877c90833957d8dea2",
        "c2b43cb5238f57a8ff6e2b1ba0ecf044cf63cce5c3f3be73534d28f445a2d586",
        "0bf32a7d3714e83116c90a203adb517e15289fa0a30aa2da8e944beb11c39824",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.164.0 alone: as 0.165.0 but get_request_handler reads a form without form limits (a form
    # body is never flat)
    "0.164.0": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "7240dbbcafa887b9142048e2639de66cb3690a3961f6b1c65011b3a308c69427",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "bf7600fe2da2b82138fe796de92edfe90b2d322c4b1432877c90833957d8dea2",
        "c2b43cb5238f57a8ff6e2b1ba0ecf044cf63cce5c3f3be73534d28f445a2d586",
        "0bf32a7d3714e83116c90a203adb517e15289fa0a30aa2da8e944beb11c39824",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.163.2 alone: as 0.164.0 but get_request_handler does not re-raise a body-limit error
    # (MAX_BODY_SIZE_SCOPE_KEY): a body error is a 400, as the flat plan answers it
    "0.163.2": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "bf7600fe2da2b82138fe796de92edfe90b2d322c4b1432877c90833957d8dea2",
        "c2b43cb5238f57a8ff6e2b1ba0ecf044cf63cce5c3f3be73534d28f445a2d586",
        "0bf32a7d3714e83116c90a203adb517e15289fa0a30aa2da8e944beb11c39824",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.163.0 and 0.163.1: as 0.163.2 but request_body_to_args extracts an empty form (form only)
    "0.163.1": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "bf7600fe2da2b82138fe796de92edfe90b2d322c4b1432877c90833957d8dea2",
        "c2b43cb5238f57a8ff6e2b1ba0ecf044cf63cce5c3f3be73534d28f445a2d586",
        "e990dba234f29810047e79c3a9b733923a5d67d8061cf1d9513932ffb446ddd4",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.162.7 alone: as 0.163.1 but solve_dependencies has no concurrency limits (a dependency
    # with one is never flat); 0.162.5's passes no request to _solve_generator (yield: never flat)
    "0.162.7": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "d2da86a91b3efb391cb3135b540cce9520220c5f634e2b99fe280683c5695bee",
        "c2b43cb5238f57a8ff6e2b1ba0ecf044cf63cce5c3f3be73534d28f445a2d586",
        "e990dba234f29810047e79c3a9b733923a5d67d8061cf1d9513932ffb446ddd4",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.161.0 to 0.162.6
    "0.162.5": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "c81a564ad3ba34e4b960ee6323a9b8ca416a753a36311b85de2ec34d38c042be",
        "c2b43cb5238f57a8ff6e2b1ba0ecf044cf63cce5c3f3be73534d28f445a2d586",
        "e990dba234f29810047e79c3a9b733923a5d67d8061cf1d9513932ffb446ddd4",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.160.0 alone: as 0.161.0 but request_body_to_args reads no union of form models (form only)
    # and asks _get_form_model, not _get_form_models (the release switch _form_models_before_0_161)
    "0.160.0": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "c81a564ad3ba34e4b960ee6323a9b8ca416a753a36311b85de2ec34d38c042be",
        "c2b43cb5238f57a8ff6e2b1ba0ecf044cf63cce5c3f3be73534d28f445a2d586",
        "84268c7a141ddbdc8ff8f47af8b1c39e238d5bc2c3ab406e6009a307286bc723",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.159.1 alone: as 0.160.0 but a parameter model is read with the route's parameter names
    # (known_param_names, from solve_dependencies): such a route is not flat (param_names)
    "0.159.1": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "611ac5d10e8995809a1e0a3ff76324b12d3cdbd90a54d8ae2ee1157fc40b9e39",
        "bbd7dc5973a6e749e175b9917d473ba156998273c805b5192c53fad6a0228777",
        "f6eca6eea3006fb5e0d9f61ee4e58e8c8d2d1c665448cfa8467f0250d166046d",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.159.0 alone: as 0.159.1 but request_body_to_args validates an absent optional union of
    # form models as the form's values, not as missing (form only)
    "0.159.0": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "611ac5d10e8995809a1e0a3ff76324b12d3cdbd90a54d8ae2ee1157fc40b9e39",
        "bbd7dc5973a6e749e175b9917d473ba156998273c805b5192c53fad6a0228777",
        "989952a85de933f3f5d298974dc50f3675da47b07b62ccbb850b5d66a6976c8a",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.158.2 alone: as 0.159.0 but request_params_to_args tests a parameter model by its
    # annotation (a BaseModel subclass, not JSON) where 0.159.0 asks _get_param_model (the
    # release switch _param_model_before_0_159); such a route is never flat (known_param_names)
    "0.158.2": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "611ac5d10e8995809a1e0a3ff76324b12d3cdbd90a54d8ae2ee1157fc40b9e39",
        "cb2b48ca2701b7a349e96d7e9da15c55c0fadc79b594045bedea2ad3ef22373e",
        "989952a85de933f3f5d298974dc50f3675da47b07b62ccbb850b5d66a6976c8a",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.158.0 and 0.158.1: as 0.158.2 but request_body_to_args has no optional form model
    # (_is_form_model, the release switch _form_models_before_0_161) and takes a single form model
    # as the whole body (form only)
    "0.158.1": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "611ac5d10e8995809a1e0a3ff76324b12d3cdbd90a54d8ae2ee1157fc40b9e39",
        "cb2b48ca2701b7a349e96d7e9da15c55c0fadc79b594045bedea2ad3ef22373e",
        "5e5ffa7d0b966f8fde288ea4325266b5ad6999daedef1c4325d2bbf00c90be46",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.157.0 alone: as 0.158.1 but no form model at all (solve_dependencies passes no form
    # parameter names to request_body_to_args, which takes one field not embedded as the whole
    # body without asking _should_embed_body_fields: the route's embed flag is that already)
    "0.157.0": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "0a2fe9dafef4d92ab455e7f230e3b8d52046cf9ae434c5bb4d148c4696552536",
        "cb2b48ca2701b7a349e96d7e9da15c55c0fadc79b594045bedea2ad3ef22373e",
        "dc0b3847a1a4e04947a3be57b5793b4db753293a43a3b6a6966350faa38cbfdd",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.156.7 and 0.156.8: as 0.157.0 but no known_param_names (solve_dependencies gathers none)
    # and request_params_to_args reads a location as a model only when it is the location's one
    # field (the release switch _location_model_before_0_157: such a location runs the release's
    # own function, each other field is read by its aliases as 0.157.0 reads it)
    "0.156.8": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "73f6de86ab4b4d16e4e7dd197c72e3a4248e1ec48604b2414320c7d443f7f003",
        "aa168fd216189cb14aeb5752bb30e771f650ce500ffb1023456075771d19c0e7",
        "dc0b3847a1a4e04947a3be57b5793b4db753293a43a3b6a6966350faa38cbfdd",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
    # 0.156.4 to 0.156.6: as 0.156.8 but request_body_to_args extracts a form body into a dict
    # (form only)
    "0.156.6": (
        "fe6d9c5f45e32107bace5c77c9f90a0e1db9bd1676844a7ca68a9869f4f9383e",
        "3b8983cc5ef035de93ab4421384ac65d31d733f303b8f8f42a050ce6bc217a92",
        "3ab48cdb07e8c0ef283545f7b419cfa63609a12f1e1967a7387e1d1bbb824353",
        "e6f95af1c7f0d4ef38a90b6b1bc247d6eaa4fb37602473934c9c6b86cb3f948e",
        "aa7c5c48a465341463cd4c938c7cec754b78e6f569c1328102e605246b1bb4aa",
        "b2fdad4434babf7561412e191ebdd8c6477ef5d30d07c4782829b531b218ca13",
        "73f6de86ab4b4d16e4e7dd197c72e3a4248e1ec48604b2414320c7d443f7f003",
        "aa168fd216189cb14aeb5752bb30e771f650ce500ffb1023456075771d19c0e7",
        "3a4b1366c8e5f5d7a36e710627c8902c21f76a274af9b2f4ee569f86ab984eac",
        "129d737b9fcaaa1f1c5d43939f3dd584aa9bb8fe8e6017db10d7807a5a88087f",
        "9bada32cc5500edb9f946f8ffe393b7b4bb2fcc7a81aba315a5e6afdb3d89d64",
        "70eeb5d3e437998a3992194e2a21f827550de0378ed3cef1b9f242e01dba7b73",
        "28425c6266260bec6e6994c9fbd666267a94f20b92855e46abc9396d50bad4d4",
    ),
}


#: The oldest and newest release that share each admitted tuple (``scripts/flat_digests.py`` on
#: the wheels from 0.130.0 to 0.165.0), to name a release's own group when a function differs.
_CURRENT_RELEASES: dict[str, tuple[str, str]] = {
    "0.165.0": ("0.165.0", "0.165.0"),
    "0.164.0": ("0.164.0", "0.164.0"),
    "0.163.2": ("0.163.2", "0.163.2"),
    "0.163.1": ("0.163.0", "0.163.1"),
    "0.162.7": ("0.162.7", "0.162.7"),
    "0.162.5": ("0.161.0", "0.162.6"),
    "0.160.0": ("0.160.0", "0.160.0"),
    "0.159.1": ("0.159.1", "0.159.1"),
    "0.159.0": ("0.159.0", "0.159.0"),
    "0.158.2": ("0.158.2", "0.158.2"),
    "0.158.1": ("0.158.0", "0.158.1"),
    "0.157.0": ("0.157.0", "0.157.0"),
    "0.156.8": ("0.156.7", "0.156.8"),
    "0.156.6": ("0.156.4", "0.156.6"),
}


def _live(module: str, qualname: str) -> Any:
    """``module.qualname`` as this process has it (None when absent)."""
    try:
        found: Any = importlib.import_module(module)
    except ImportError:
        return None
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            return None
    return found


def _current_digests() -> tuple[str, ...]:
    found = []
    for module, qualname in _CURRENT_FUNCTIONS:
        function = _live(module, qualname)
        found.append(_digest(function) if function is not None else "")
    return tuple(found)


def _release_number(version: str) -> int:
    """``0.163.1`` as 163001, to tell which proven release is nearest (0 for what is not X.Y.Z)."""
    parts = [int(part) for part in version.split(".")[:3] if part.isdigit()]
    if len(parts) != 3:
        return 0
    return parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]


def _current_gate() -> str:
    """ "" when the functions a ``current`` plan replicates are those of a proven release, else
    why not: the functions whose source differs from the nearest proven release's."""
    found = _current_digests()
    if found in _CURRENT_DIGESTS.values():
        return ""
    installed = _release_number(fastapi.__version__)

    def nearness(item: tuple[str, tuple[str, ...]]) -> tuple[int, bool, int, int]:
        """Most functions alike; among those, the installed release's own group (0.161.0 is
        0.162.5's, not 0.160.0's, though each differs from it in one function), else the proven
        release nearest it, the older at equal distance."""
        number = _release_number(item[0])
        oldest, newest = _CURRENT_RELEASES.get(item[0], (item[0], item[0]))
        own = _release_number(oldest) <= installed <= _release_number(newest)
        alike = sum(a == b for a, b in zip(item[1], found, strict=True))
        return alike, own, -abs(number - installed), -number

    nearest, digests = max(_CURRENT_DIGESTS.items(), key=nearness)
    differ = [f"{m}.{q}" for (m, q), a, b in zip(_CURRENT_FUNCTIONS, digests, found, strict=True) if a != b]
    more = f" and {len(differ) - 1} more differ" if len(differ) > 1 else " differs"
    return f"fastapi {fastapi.__version__}: {differ[0]}{more} from {nearest}'s, the nearest release flat plans were proven on"


def _form_models_before_0_161() -> Callable[[Any], bool]:
    """The release switch of 0.160.0 to 0.158.2, whose ``request_body_to_args`` asks
    ``_get_form_model(field) is None`` where 0.161.0's asks ``not _get_form_models(field)`` (a
    form model's union came in 0.161), of 0.158.0 and 0.158.1, which have ``_is_form_model``
    (no optional form model), and of 0.157.0 and 0.156.x, which read no form model: whether a
    single body field is a form model. 0.158.1's and older single-field tests do not ask it at
    all, but a form body is never flat, so no field a plan reads as the whole body is one."""
    get_form_model = getattr(_dep_utils, "_get_form_model", None)
    if get_form_model is not None:
        return lambda field: get_form_model(field) is not None
    is_form_model = getattr(_dep_utils, "_is_form_model", None)
    if is_form_model is not None:
        return lambda field: bool(is_form_model(field))
    # 0.157.0 and 0.156.x: no form model at all (their request_body_to_args, pinned by the digest
    # gate, takes every single field not embedded as the whole body)
    return lambda field: False


def _param_model_before_0_159() -> Callable[[Any], Any] | None:
    """The release switch of 0.157.0 to 0.158.2, whose ``request_params_to_args`` reads a field as a
    parameter model when its annotation is a ``BaseModel`` subclass and the field is not JSON,
    where 0.159.0 asks ``_get_param_model`` (which also takes an optional model, ``Model | None``,
    of a query, header or cookie): the model or None (None: no ``_is_json_field`` either)."""
    is_json_field = getattr(_dep_utils, "_is_json_field", None)
    if is_json_field is None:
        return None

    def param_model(field: Any) -> Any:
        annotation = field.field_info.annotation
        return annotation if lenient_issubclass(annotation, BaseModel) and not is_json_field(field) else None

    return param_model


def _location_model_before_0_157() -> Callable[[list[Any]], bool] | None:
    """The release switch of 0.156.7 and 0.156.8, whose ``request_params_to_args`` takes no
    ``known_param_names`` and reads a location as one parameter model only when the model is
    the location's one field (its annotation a ``BaseModel`` subclass, a JSON one too), each
    field otherwise by its aliases: that test (None on a release with ``_get_param_model`` or
    ``known_param_names``, which asks a model of each field)."""
    if hasattr(_dep_utils, "_get_param_model"):
        return None
    read_params = getattr(_dep_utils, "request_params_to_args", None)
    if read_params is None or "known_param_names" in inspect.signature(read_params).parameters:
        return None
    return lambda fields: len(fields) == 1 and lenient_issubclass(fields[0].field_info.annotation, BaseModel)


def _current() -> tuple[FlatHelpers | None, str]:
    from fastapi._compat import Undefined

    names = {
        "is_coroutine": getattr(fastapi.routing, "_is_coroutine_callable", None),
        "is_gen": getattr(fastapi.routing, "_is_gen_callable", None),
        "is_async_gen": getattr(fastapi.routing, "_is_async_gen_callable", None),
        "endpoint_context": getattr(fastapi.routing, "_extract_endpoint_context", None),
        "serialize_response": getattr(fastapi.routing, "serialize_response", None),
        "request_params_to_args": getattr(_dep_utils, "request_params_to_args", None),
        "request_body_to_args": getattr(_dep_utils, "request_body_to_args", None),
        "get_param_model": getattr(_dep_utils, "_get_param_model", None) or _param_model_before_0_159(),
        "get_param_aliases": getattr(_dep_utils, "_get_param_aliases", None),
        "is_json_field": getattr(_dep_utils, "_is_json_field", None),
        "is_sequence": getattr(_dep_utils, "field_annotation_is_sequence", None),
        "validate_value": getattr(_dep_utils, "_validate_value_with_model_field", None),
        "cache_key": getattr(_dep_models, "_get_cache_key", None),
        "should_embed": getattr(_dep_utils, "_should_embed_body_fields", None),
        "form_models": getattr(_dep_utils, "_get_form_models", None) or _form_models_before_0_161(),
        "oauth_scopes": getattr(_dep_models, "_get_oauth_scopes", None),
    }
    missing = [name for name, value in names.items() if value is None]
    if missing:
        return None, f"fastapi {fastapi.__version__} lacks {', '.join(missing)}"
    unproven = _current_gate()
    if unproven:
        return None, unproven
    serialize: Any = names["serialize_response"]
    parameters = inspect.signature(serialize).parameters
    if "dump_json" not in parameters or "endpoint_ctx" not in parameters:
        return None, f"fastapi {fastapi.__version__}: serialize_response without dump_json/endpoint_ctx"
    read_params: Any = names["request_params_to_args"]
    param_names = "known_param_names" in inspect.signature(read_params).parameters
    is_coroutine: Any = names.pop("is_coroutine")
    is_gen: Any = names.pop("is_gen")
    is_async_gen: Any = names.pop("is_async_gen")
    get_param_model: Any = names.pop("get_param_model")
    sequence: Any = names.pop("is_sequence")
    return FlatHelpers(
        legacy=False,
        handler_kind="fastapi",
        error_context=True,
        body_model_fields=None,
        endpoint_is_coroutine=lambda dependant: bool(is_coroutine(dependant.call)),
        is_coroutine=lambda dependant: bool(is_coroutine(dependant.call)),
        is_gen=lambda dependant: bool(is_gen(dependant.call)),
        is_async_gen=lambda dependant: bool(is_async_gen(dependant.call)),
        location_model=_location_model_before_0_157()
        or (lambda fields: any(get_param_model(field) is not None for field in fields)),
        missing_value=lambda field, received: Undefined,
        is_sequence=lambda field: bool(sequence(field.field_info.annotation)),
        param_names=param_names,
        **names,  # type: ignore[arg-type]
    ), ""


#: What an older release's flat plan replicates, and the sha256 of each function's source
#: (whitespace removed) per release read ("" where the release has no such function):
#: ``get_request_handler`` (the body read with no content type parsed as JSON, ``None`` for an
#: empty body, the response made by ``serialize_response`` to Python and rendered by the
#: response class), ``solve_dependencies`` (sub-dependencies in order, ``Dependant.cache_key``
#: and the coroutine test), ``request_params_to_args`` (a lone ``BaseModel`` field as a model,
#: else each field by its validation alias or alias), ``request_body_to_args`` (one field not
#: embedded: the whole body validated), ``_get_multidict_value`` and
#: ``_validate_value_with_model_field`` (a missing optional parameter's default is validated
#: unless it is ``None``), ``run_endpoint_function``, the alias, list-ness and coroutine tests,
#: and ``ModelField.validate`` (one ``validate_python`` call, checked by
#: :func:`fastrapi_compat.plan.internals.core_validator`).
_LEGACY_FUNCTIONS: tuple[tuple[str, Any, str], ...] = (
    ("get_request_handler", fastapi.routing, "get_request_handler"),
    ("run_endpoint_function", fastapi.routing, "run_endpoint_function"),
    ("serialize_response", fastapi.routing, "serialize_response"),
    ("solve_dependencies", _dep_utils, "solve_dependencies"),
    ("request_params_to_args", _dep_utils, "request_params_to_args"),
    ("request_body_to_args", _dep_utils, "request_body_to_args"),
    ("_get_multidict_value", _dep_utils, "_get_multidict_value"),
    ("_validate_value_with_model_field", _dep_utils, "_validate_value_with_model_field"),
    ("get_validation_alias", _dep_utils, "get_validation_alias"),
    ("is_sequence_field", _dep_utils, "is_sequence_field"),
    ("is_coroutine_callable", _dep_utils, "is_coroutine_callable"),
    ("is_gen_callable", _dep_utils, "is_gen_callable"),
    ("is_async_gen_callable", _dep_utils, "is_async_gen_callable"),
)
#: Per release read: its generation and the digests of :data:`_LEGACY_FUNCTIONS`, in order.
#: 0.118 and 0.122 differ from 0.128 in ``get_request_handler`` (no endpoint context) and
#: keep FastAPI's handler; 0.130 is the ``current`` generation.
_LEGACY_DIGESTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "0.115.0": (
        "0.115",
        (
            "1d3e6ccba0803a4c3923d2815edd10062ba598ab4f5570ac6d804333a38630e2",
            "d654af58a37242a2a0a4874892c939378bb1263d84749535cac1471d1c47d8c4",
            "2cef4e0450f14604eaffd4d8e4a6b3c3eb87bdab50bfe9f864764d8f4afda4ab",
            "40924d035e79a16bbb437b20b33df6a995f8c4ac12c829fa524423af1ca9d273",
            "23db64b4146244bd922cbe77ff2f9abe55db1c800264733f9b8fda04f76ffbde",
            "cb922a6c27b84c015ef08c437262bfebc0ca387287dd5278f735bc4f65b17240",
            "303b5a0e81ee59680c42f35881882a4d6a93b7df660135ef03cb76da2018e8d1",
            "2c55e2d27c7a3e8c16c61f5d0f8ee809879357ee930b40667860353027c689c3",
            "",
            "d6b524fc1d7f2dfd3725333ec5f368c0661cbe34893803e757d4953decf3ddc8",
            "f79a27785765700433e5533d71ad6ff79f037938a3a3e60ac1d397ab99c97938",
            "5c9dfd0824f8b792403c0a775146e6e1867bfbf7b4b24c95883bb3dac0349645",
            "729468edb86035829779abb348f33d735301a3bf68d9e2f13c7f4fb105cadff0",
        ),
    ),
    "0.128.0": (
        "0.128",
        (
            "0dff7fc1e954cddb0dff0bf5137d9728cad3995955198ba00dc2f50fcc018479",
            "ef8948cdcb5ef2ff1c5f0c135130eafd754886f647b15cb46247df7752644506",
            "8539c2b6d309db6365beb658faa121d1d70fa94a4fe403d629e36e0bbf702832",
            "a591be44fe0f341cdd4aabd10ab5157e6c7bfcf72962afd84c04607d53b137b4",
            "42d1c3e2bcf6a9f2c6082c075276fc066ecf2478374dc3f6f874d107fc24448c",
            "d1511ca219895ac55d77dc654e805eb47fef510ab45f88679f38a56398cf94ec",
            "f7ae9dfa4d6b41fd1d4c2b103dff497071e9eed1be65c0731f11dd1f1e3de717",
            "5d4b6d14c7ef109bd20333369b733928a2b1a46a8271751df0113af3d203bce7",
            "0fca9d1a57f3738334fd582964284ca942aa5e9637d91ca28b2bee86d7e308d2",
            "35f36e8d90f00ad76354e2c5d26f4b01b2478484ac1979b13899e0186fd2b8ca",
            "",
            "",
            "",
        ),
    ),
}


def _legacy(reason: str) -> tuple[FlatHelpers | None, str]:
    found = []
    for _, owner, attribute in _LEGACY_FUNCTIONS:
        function = getattr(owner, attribute, None)
        found.append(_digest(function) if function is not None else "")
    generation = next((name for name, digests in _LEGACY_DIGESTS.values() if digests == tuple(found)), None)
    if generation is None or not getattr(fastapi._compat, "PYDANTIC_V2", True):
        return None, reason
    utils: Any = _dep_utils
    routing: Any = fastapi.routing
    is_sequence_field = utils.is_sequence_field

    def location_model(fields: list[Any]) -> bool:
        return len(fields) == 1 and lenient_issubclass(fields[0].type_, BaseModel)

    def body_model_fields(field: Any) -> Any:
        if lenient_issubclass(field.type_, BaseModel):
            return utils.get_cached_model_fields(field.type_)
        return None

    common: dict[str, Any] = {
        "legacy": True,
        "serialize_response": routing.serialize_response,
        "request_params_to_args": utils.request_params_to_args,
        "request_body_to_args": utils.request_body_to_args,
        "location_model": location_model,
        "is_json_field": lambda field: False,  # the list-ness test is is_sequence_field alone
        "is_sequence": lambda field: bool(is_sequence_field(field)),
        "validate_value": utils._validate_value_with_model_field,
        "missing_value": utils._get_multidict_value,
        "cache_key": lambda dependant: dependant.cache_key,
        "should_embed": lambda fields: False,  # request_body_to_args: embed_body_fields alone
        "form_models": lambda field: None,
    }
    if generation == "0.128":
        validation_alias = utils.get_validation_alias
        return FlatHelpers(
            handler_kind="fastapi",
            error_context=True,
            body_model_fields=None,
            endpoint_is_coroutine=lambda dependant: bool(dependant.is_coroutine_callable),
            is_coroutine=lambda dependant: bool(dependant.is_coroutine_callable),
            is_gen=lambda dependant: bool(dependant.is_gen_callable),
            is_async_gen=lambda dependant: bool(dependant.is_async_gen_callable),
            endpoint_context=routing._extract_endpoint_context,
            get_param_aliases=lambda field: [(None, validation_alias(field))],
            oauth_scopes=lambda dependant: dependant.oauth_scopes,
            **common,
        ), ""
    return FlatHelpers(
        handler_kind="starlette",
        error_context=False,
        body_model_fields=body_model_fields,
        endpoint_is_coroutine=lambda dependant: asyncio.iscoroutinefunction(dependant.call),
        is_coroutine=lambda dependant: bool(utils.is_coroutine_callable(dependant.call)),
        is_gen=lambda dependant: bool(utils.is_gen_callable(dependant.call)),
        is_async_gen=lambda dependant: bool(utils.is_async_gen_callable(dependant.call)),
        endpoint_context=lambda call: {},
        get_param_aliases=lambda field: [(None, field.alias)],
        oauth_scopes=lambda dependant: dependant.security_scopes or [],
        **common,
    ), ""


def flat_support() -> tuple[FlatHelpers | None, str]:
    """This release's helpers (None, and why not, when its request handler is not one the flat
    executor replicates)."""
    helpers, reason = _current()
    if helpers is not None:
        return helpers, ""
    return _legacy(reason)
