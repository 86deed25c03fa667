"""``python -m bench.inner_layers``: Starlette's classes and the engine's Rust layers measured on
the same requests; both sides must answer alike for the comparison to mean anything."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.append(str(Path(__file__).resolve().parents[2]))  # the installed fastrapi_compat stays first
from bench import inner_layers  # noqa: E402


def _answer(app: Any, headers: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(inner_layers._scope(headers), receive, send))
    return sent


@pytest.mark.parametrize("case", inner_layers.CASES, ids=[case[0] for case in inner_layers.CASES])
def test_both_sides_send_the_same_messages(case: Any) -> None:
    _, kinds, body, headers = case
    rust = inner_layers.layers_under_python(kinds, body)
    assert _answer(rust, headers) == _answer(rust.python, headers)


def test_prints_one_line_per_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert inner_layers.main(["--calls", "5", "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(inner_layers.CASES)
    assert all("Starlette" in line and "Rust" in line for line in lines[1:])
