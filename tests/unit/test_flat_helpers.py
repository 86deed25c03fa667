"""plan/flat_helpers.py: which generation of FastAPI's request handling flat plans replicate on
the installed release, and the digest gate that keeps any other release on FastAPI's handler."""

from __future__ import annotations

import re
from typing import Any

import fastapi.routing
import pytest

from fastrapi_compat.plan import flat_helpers, internals


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
