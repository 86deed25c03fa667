"""The comparison rules shared by ``fastrapi-compat check`` and the project's differential tests
(``tests/support``): what two servers may legitimately answer differently, and how a body
difference is reported. Each side of a comparison normalises its answer with these before
comparing status, headers and body."""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterable

#: Headers a server decides, not the app: left out of every comparison.
IGNORED_HEADERS = frozenset({"date", "server"})
#: Hop-by-hop headers (RFC 9110 7.6.1): the connection's, not the response's.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
#: What a value matched by a ``--mask``/``mask`` pattern is replaced with.
MASK = "<MASKED>"


def sort_allow(value: str) -> str:
    """``Allow``'s methods sorted: Starlette joins a ``set``, whose order depends on the hash seed."""
    return ", ".join(sorted(m.strip() for m in value.split(",") if m.strip()))


#: Per header name, how its value is normalised before comparing.
HEADER_NORMALIZERS: dict[str, Callable[[str], str]] = {"allow": sort_allow}


def header_value(name: str, value: str, masks: Iterable[str] = ()) -> str:
    """``value`` of header ``name`` (lower case) as compared: normalised, then masked."""
    normalize = HEADER_NORMALIZERS.get(name)
    if normalize is not None:
        value = normalize(value)
    for pattern in masks:
        value = re.sub(pattern, MASK, value)
    return value


def mask_body(body: bytes, masks: Iterable[str]) -> bytes:
    for pattern in masks:
        body = re.sub(pattern.encode(), MASK.encode(), body)
    return body


def decode_content(raw: bytes, encoding: str | None) -> bytes:
    """The body under its ``content-encoding`` (gzip, deflate or none): compressed bytes depend
    on the deflate implementation and gzip's mtime field, the decoded bytes do not. Raises
    ``ValueError`` for another encoding, and zlib's or gzip's error for a corrupt body."""
    if not encoding or encoding == "identity":
        return raw
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    raise ValueError(f"unexpected content-encoding {encoding!r}")


def body_difference(reference: bytes, engine: bytes, reference_name: str, context: int = 30) -> str:
    """One line locating the first byte where two bodies differ."""
    offset = next(
        (i for i, (a, b) in enumerate(zip(reference, engine, strict=False)) if a != b),
        min(len(reference), len(engine)),
    )
    lo = max(0, offset - context)
    return (
        f"body: {reference_name} {len(reference)} bytes, engine {len(engine)} bytes, first difference at byte "
        f"{offset}: {reference_name} {reference[lo : offset + context]!r}, engine {engine[lo : offset + context]!r}"
    )
