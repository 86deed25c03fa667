"""fastrapi-compat: serve an existing FastAPI application with a Rust engine.

Change one import — ``from fastrapi_compat import FastAPI`` — and the same app is served by
the engine in :mod:`fastrapi_compat._native`. Every other public name of :mod:`fastapi` is
re-exported unchanged, so ``from fastrapi_compat import Depends`` works too, and so does every
public submodule of fastapi (``from fastrapi_compat import responses``,
``from fastrapi_compat.middleware.cors import CORSMiddleware``: fastapi's own modules, see
:mod:`fastrapi_compat._aliases`), except ``fastrapi_compat.testclient``: the engine's test client.
"""

import types as _types

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Body,
    Cookie,
    Depends,
    File,
    Form,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    Security,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
    status,
)
from fastapi import __version__ as fastapi_version

from fastrapi_compat import _aliases
from fastrapi_compat._native import __version__
from fastrapi_compat.app import FastAPI
from fastrapi_compat.serve.server import run

__all__ = [
    "APIRouter",
    "BackgroundTasks",
    "Body",
    "Cookie",
    "Depends",
    "FastAPI",
    "File",
    "Form",
    "HTTPException",
    "Header",
    "Path",
    "Query",
    "Request",
    "Response",
    "Security",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketException",
    "__version__",
    "fastapi_version",
    "run",
    "status",
]

_aliases.install()


def __getattr__(name: str) -> _types.ModuleType:
    """fastapi's public submodules, as ``fastrapi_compat.<name>`` (imported on first use)."""
    return _aliases.submodule(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_aliases.public_submodules()})
