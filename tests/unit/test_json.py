"""``_native.dumps_plain`` against what FastAPI renders for an endpoint's return value
(``json.dumps(jsonable_encoder(value), ensure_ascii=False, allow_nan=False,
separators=(",", ":")).encode()``), on generated and edge-case values."""

import enum
import json
import math
import random
import struct
from collections import OrderedDict
from typing import Any

import pytest
from fastapi.encoders import jsonable_encoder

from fastrapi_compat._native import dumps_plain


def fastapi_bytes(value: Any) -> bytes:
    return json.dumps(
        jsonable_encoder(value), ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def random_float(rng: random.Random) -> float:
    kind = rng.randrange(4)
    if kind == 0:
        return struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
    if kind == 1:
        return rng.uniform(-1e6, 1e6)
    if kind == 2:
        return rng.choice([0.1, 0.5, 1e-5, 1e-4, 1e15, 1e16, 123456789.125, -0.0, 5e-324, 1.7976931348623157e308])
    return round(rng.uniform(-100, 100), rng.randrange(6))


def random_str(rng: random.Random) -> str:
    alphabet = [
        "a",
        "Z",
        " ",
        '"',
        "\\",
        "\n",
        "\r",
        "\t",
        "\b",
        "\f",
        "\x00",
        "\x1f",
        "\x7f",
        "é",
        "€",
        "😀",
        "\u2028",
        "/",
    ]
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(8)))


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**31, -(2**63), 2**63 - 1, rng.randrange(-(10**9), 10**9)])
    if kind == 3:
        return random_float(rng)
    if kind in (4, 5):
        return random_str(rng)
    if kind == 6:
        return {random_str(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    if kind == 7:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return tuple(random_value(rng, depth + 1) for _ in range(rng.randrange(3)))


def test_generated_values_render_like_fastapi() -> None:
    rng = random.Random(1234)
    checked = 0
    for _ in range(5000):
        value = random_value(rng)
        try:
            expected = fastapi_bytes(value)
        except ValueError:  # a non-finite float: must be left to Python
            assert dumps_plain(value) is None
            continue
        got = dumps_plain(value)
        assert got == expected, value
        checked += 1
    assert checked > 4000


class Color(str, enum.Enum):
    RED = "red"


class MyStr(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        [1.0, -math.inf],
        2**64,
        -(2**64) - 1,
        Color.RED,
        {"c": Color.RED},
        MyStr("x"),
        OrderedDict(a=1),
        {1: "int key"},
        {"_sa_instance_state": 1, "a": 2},
        {"a": {1, 2}},
        "\ud800",
        b"bytes",
    ],
    ids=repr,
)
def test_anything_not_plain_is_left_to_fastapi(value: Any) -> None:
    assert dumps_plain(value) is None


def test_deep_nesting_is_left_to_fastapi() -> None:
    value: Any = 1
    for _ in range(200):
        value = [value]
    assert dumps_plain(value) is None
    assert dumps_plain([[[1]]]) == b"[[[1]]]"
