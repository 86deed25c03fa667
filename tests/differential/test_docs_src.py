"""FastAPI's own documentation apps (``docs_src`` from the fastapi sdist, fetched at test time),
each served by stock uvicorn and by the engine, and asked the same requests: valid ones built
from the app's OpenAPI schema, and for every operation its validation failures (a wrong type
in each path and query parameter, a missing body, an empty object, malformed JSON). Answers
must match byte for byte; the engine must have answered natively wherever the compiler says the
route is native.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import re
import shutil
import sys
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi
import pytest
from support.compare import PairClients, Req
from support.native_middleware import unreproduced
from support.servers import server_pair

from fastrapi_compat.plan.compiler import compile_app

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "fastapi-suite"
DOCS = CACHE / "docs_src" / fastapi.__version__

#: Apps whose answers depend on the clock, randomness or the outside world, with the reason.
UNSTABLE: dict[str, str] = {
    "docs_src.custom_response.tutorial008": "streams large-video-file.mp4, which is not in the sdist",
    "docs_src.query_params_str_validations.tutorial015": "answers with a random.choice",
}


#: Apps that report how long they took, in a header: the number is masked.
TIMED = {
    "docs_src.custom_request_and_route.tutorial003": r"^[0-9.e-]+$",
    "docs_src.middleware.tutorial001": r"^[0-9.e-]+$",
}


def _run_module() -> Any:
    spec = importlib.util.spec_from_file_location("_suite_run", ROOT / "tests" / "fastapi_suite" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def docs_root() -> Path:
    """``docs_src`` of the installed fastapi's sdist, extracted once into the cache."""
    if not DOCS.exists():
        sdist = _run_module().download_sdist(fastapi.__version__, CACHE / "sdists")
        staging = DOCS.with_name(f"{DOCS.name}.{os.getpid()}")  # xdist workers may race here
        with tarfile.open(sdist) as tar:
            prefix = tar.getnames()[0].split("/")[0] + "/docs_src/"
            members = [m for m in tar.getmembers() if m.name.startswith(prefix) and (m.isfile() or m.isdir())]
            for member in members:
                member.name = member.name[len(prefix) - len("docs_src/") :]
            staging.mkdir(parents=True, exist_ok=True)
            tar.extractall(staging, members=members, filter="data")
        try:
            staging.rename(DOCS)
        except OSError:  # another worker finished first
            shutil.rmtree(staging, ignore_errors=True)
    return DOCS


def app_modules() -> list[str]:
    root = docs_root()
    found = []
    for path in sorted((root / "docs_src").rglob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if re.search(r"^app = FastAPI\(", text, re.MULTILINE):
            found.append(".".join(path.relative_to(root).with_suffix("").parts))
    return found


def fresh_app(module_name: str) -> Any:
    """A new instance of the module's app (the module and its package siblings re-imported)."""
    root = str(docs_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    package = module_name.rsplit(".", 1)[0]
    for name in [n for n in sys.modules if n == module_name or n.startswith(package + ".")]:
        del sys.modules[name]
    with warnings.catch_warnings():  # e.g. on_event's deprecation, with filterwarnings=error
        warnings.simplefilter("ignore")
        return importlib.import_module(module_name).app


# ---------------------------------------------------------------------------------------------
# Requests from the OpenAPI schema
# ---------------------------------------------------------------------------------------------

SAMPLE_UUID = "7d1f3a2e-0c4b-4d8e-9f61-2a3b4c5d6e7f"


def sample(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """A value valid for ``schema`` (as far as a simple generator can tell)."""
    if depth > 6:
        return None
    if "$ref" in schema:
        return sample(components.get(schema["$ref"].rsplit("/", 1)[-1], {}), components, depth + 1)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return sample(options[0], components, depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: sample(sub, components, depth + 1) for name, sub in props.items()}
    if kind == "array":
        return [sample(schema.get("items", {}), components, depth + 1)]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), int(schema.get("exclusiveMinimum", 0)) + 1)
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "string":
        fmt = schema.get("format", "")
        return {
            "uuid": SAMPLE_UUID,
            "date-time": "2024-01-02T03:04:05",
            "date": "2024-01-02",
            "time": "03:04:05",
            "email": "someone@example.com",
            "duration": "P1D",
        }.get(fmt, "x" * max(3, int(schema.get("minLength", 3))))
    return "x"


def _path(template: str, params: dict[str, Any]) -> str:
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: str(params.get(m.group(1), "x")), template)


def requests_for(app: Any) -> Iterator[Req]:
    if app.openapi_url:
        yield Req("GET", app.openapi_url, id="GET openapi")
    schema = app.openapi()
    components = schema.get("components", {}).get("schemas", {})
    for template, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete", "head", "options"):
                continue
            params = operation.get("parameters", [])
            path_values = {p["name"]: sample(p.get("schema", {}), components) for p in params if p["in"] == "path"}
            query = {
                p["name"]: sample(p.get("schema", {}), components)
                for p in params
                if p["in"] == "query" and p.get("required")
            }
            query = {k: v for k, v in query.items() if not isinstance(v, (dict, list))}
            body_schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            body = sample(body_schema, components) if body_schema is not None else None
            verb = method.upper()
            path = _path(template, path_values)
            label = f"{verb} {template}"
            yield Req(verb, path, params=query or None, json=body, id=f"{label} valid")
            for param in params:
                kind = param.get("schema", {}).get("type")
                if param["in"] == "path" and kind in ("integer", "number"):
                    bad = dict(path_values, **{param["name"]: "not-a-number"})
                    yield Req(
                        verb,
                        _path(template, bad),
                        params=query or None,
                        json=body,
                        id=f"{label} bad path {param['name']}",
                    )
                if param["in"] == "query" and kind in ("integer", "number", "boolean"):
                    bad_query = dict(query, **{param["name"]: "not-a-number"})
                    yield Req(verb, path, params=bad_query, json=body, id=f"{label} bad query {param['name']}")
            if body_schema is not None:
                yield Req(verb, path, params=query or None, id=f"{label} no body")
                yield Req(verb, path, params=query or None, json={}, id=f"{label} empty object")
                yield Req(
                    verb,
                    path,
                    params=query or None,
                    content=b'{"broken": ',
                    headers={"content-type": "application/json"},
                    id=f"{label} malformed json",
                )


# ---------------------------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "docs_module" in metafunc.fixturenames:
        metafunc.parametrize("docs_module", app_modules())


def test_enough_docs_apps_are_compared() -> None:
    assert len(app_modules()) >= 300


def test_docs_app(docs_module: str) -> None:
    if docs_module in UNSTABLE:
        pytest.skip(UNSTABLE[docs_module])
    if docs_module.startswith("docs_src.sql_databases."):
        pytest.skip("both servers would share one SQLite file in the working directory")
    try:
        probe = fresh_app(docs_module)
    except Exception as exc:  # optional dependency of the docs (e.g. a database driver) missing
        pytest.skip(f"cannot import {docs_module}: {type(exc).__name__}: {exc}")
    native_routes = sum(route.tier == "native" for route in compile_app(probe).routes)
    with server_pair(lambda: fresh_app(docs_module)) as pair:
        clients = PairClients(pair)
        try:
            sent = 0
            mask = (TIMED[docs_module],) if docs_module in TIMED else ()
            for req in requests_for(pair.reference_app):
                clients.compare(dataclasses.replace(req, mask=mask) if mask else req)
                sent += 1
            stats = pair.engine.stats()
        finally:
            clients.close()
    # (Standard middleware of a Starlette the engine does not reproduce run in Python, and may
    # answer every request themselves: an HTTPSRedirect, a TrustedHost for another host.)
    python_only = unreproduced(probe)
    if native_routes and sent and not python_only:  # with telemetry on: native under the app's stack
        assert stats["native"] > 0, f"{docs_module}: {native_routes} native routes, none answered natively"
