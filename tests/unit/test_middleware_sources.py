"""``plan/middleware.py``'s release table: the installed Starlette is in it, every entry of a
module carries the same switches, and a source outside it keeps the app on the ASGI tier.

The behaviour of each entry is proven against stock Starlette by
``tests/differential/test_middleware_releases.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

from fastrapi_compat.plan import middleware as plan


def test_installed_release_is_verified() -> None:
    import starlette.middleware.cors
    import starlette.middleware.gzip
    import starlette.middleware.httpsredirect
    import starlette.middleware.sessions
    import starlette.middleware.trustedhost  # noqa: F401

    for module, digests in plan.VERIFIED_SOURCES.items():
        assert plan._source_hash(module) in digests, module


def test_entries_share_their_switches() -> None:
    for module, digests in plan.VERIFIED_SOURCES.items():
        keys = {frozenset(switches) for switches in digests.values()}
        assert len(keys) == 1, f"{module}: {keys}"
        assert all(len(digest) == 64 for digest in digests), module


def test_helpers_of_the_installed_release() -> None:
    """Starlette 1.9+ keeps every ``Vary`` value and escapes ``?`` in a path's ``URL``; 0.49+
    reads every ``Cookie`` header (1.10 on 3.11+, 1.7 on Python 3.10)."""
    import starlette

    version = tuple(int(part) for part in starlette.__version__.split(".")[:2])
    expected = {"vary_join_all": version >= (1, 9), "all_cookie_headers": version >= (0, 49)}
    assert plan._helpers() == {**expected, "plain_url": version < (1, 9)}


def test_switches_reach_the_spec() -> None:
    app = FastAPI()
    app.add_middleware(GZipMiddleware)
    app.add_middleware(CORSMiddleware, allow_origins=["*"])
    cors, gzip = plan.layers(app)
    assert cors.spec is not None and gzip.spec is not None
    assert cors.spec[1]["vary_always"] is True and cors.spec[1]["origin_only"] is False
    assert gzip.spec[1]["framing"] == "zlib" and gzip.spec[1]["sync_flush"] is True


def test_unknown_source_stays_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    def other(module: str) -> str:
        return "0" * 64

    monkeypatch.setattr(plan, "_source_hash", other)
    app = FastAPI()
    app.add_middleware(GZipMiddleware)
    (layer,) = plan.layers(app)
    assert layer.spec is None
    assert "GZipMiddleware is not the one the engine reproduces" in layer.reason


@pytest.mark.parametrize(
    ("module", "switch", "value"),
    [
        ("starlette.middleware.gzip", "framing", "deflate"),
        ("starlette.middleware.gzip", "exclude_mode", "suffix"),
    ],
)
def test_engine_refuses_unknown_values(module: str, switch: str, value: Any) -> None:
    """A switch value the Rust side does not know is an error there, not a silent default."""
    from fastrapi_compat._native import MiddlewareStack

    app = FastAPI()
    app.add_middleware(GZipMiddleware)
    (layer,) = plan.layers(app)
    assert layer.spec is not None
    kind, options = layer.spec
    with pytest.raises(ValueError):
        MiddlewareStack([(kind, {**options, switch: value})])
