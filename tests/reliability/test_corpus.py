"""A corpus of malformed and hostile HTTP/1.1 requests (issues 22 and 25), generated here from
tables: request lines, header lines, body framing, chunked bodies, request smuggling shapes,
pipelines, websocket handshakes, huge and odd values, control bytes. Each is sent on 127.0.0.1
to the engine and to uvicorn (httptools), each in a child process, and the status lines the
server answers and how the connection ends must be uvicorn's, except for ``DIFFERENCES`` (each
with its reason, and each must still differ). After each request both servers must answer a
good one; neither may log a server error or die.

The whole corpus runs once per module, many requests at a time, before the per-request tests
look at what was recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from support.hostile import Outcome, exchange
from support.process_server import ProcessServer

APP = "apps.hostile:create_app"
HOST = b"Host: x\r\n"
TE = b"Transfer-Encoding: chunked\r\n"
GOOD = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    head: bool = False  # a HEAD request: its response has no body


def line(method: bytes = b"GET", target: bytes = b"/hello", version: bytes = b"HTTP/1.1") -> bytes:
    return method + b" " + target + b" " + version + b"\r\n"


def get(*fields: bytes, target: bytes = b"/hello") -> bytes:
    return line(target=target) + HOST + b"".join(fields) + b"\r\n"


def post(*fields: bytes, body: bytes = b"", target: bytes = b"/echo/x") -> bytes:
    return line(b"POST", target) + HOST + b"".join(fields) + b"\r\n" + body


def chunked(body: bytes, *fields: bytes) -> bytes:
    return post(TE, *fields, body=body)


def request_lines() -> Iterator[Case]:
    for method in [b"get", b"Get", b"FOO", b"PURGE", b"G@T", b"G\x00T", b"A" * 100, b"DELETE", b"PATCH", b"TRACE"]:
        yield Case(f"method {method[:12]!r}", line(method) + HOST + b"\r\n")
    yield Case("method HEAD", line(b"HEAD") + HOST + b"\r\n", head=True)
    yield Case("no method", b" /hello HTTP/1.1\r\n" + HOST + b"\r\n")
    yield Case("CONNECT authority-form", line(b"CONNECT", b"x:443") + HOST + b"\r\n")
    yield Case("OPTIONS asterisk", line(b"OPTIONS", b"*") + HOST + b"\r\n")
    yield Case("GET asterisk", line(b"GET", b"*") + HOST + b"\r\n")
    targets = {
        "space in target": b"/hel lo",
        "tab in target": b"/hel\tlo",
        "raw utf-8 in target": b"/caf\xc3\xa9",
        "latin-1 byte in target": b"/caf\xe9",
        "NUL in target": b"/he\x00llo",
        "control byte in target": b"/he\x01llo",
        "DEL in target": b"/he\x7fllo",
        "escaped NUL in target": b"/echo/%00",
        "braces in target": b"/echo/{x}",
        "quote in target": b'/echo/"q"',
        "backslash in target": b"/echo/a\\b",
        "absolute-form target": b"http://x/hello",
        "absolute-form https target": b"https://x:443/echo/y?z=1",
        "double slash target": b"//hello",
        "fragment in target": b"/hello#frag",
        "empty query": b"/hello?",
        "dot segments": b"/echo/../hello",
        "target without slash": b"hello",
        "long query 8 KB": b"/hello?" + b"a" * 8000,
        "long path 70 KB": b"/echo/" + b"a" * 70_000,
    }
    for name, target in targets.items():
        yield Case(name, line(target=target) + HOST + b"\r\n")
    yield Case("empty target", b"GET  HTTP/1.1\r\n" + HOST + b"\r\n")
    versions = [
        b"HTTP/1.2",
        b"HTTP/2.0",
        b"HTTP/3.0",
        b"HTTP/0.9",
        b"HTTP/1",
        b"HTTP/11",
        b"http/1.1",
        b"HTTP/1.10",
        b"HTTP/1.1x",
        b"ICE/1.0",
        b"HTTP/1.1 ",
    ]
    for version in versions:
        yield Case(f"version {version!r}", line(version=version) + HOST + b"\r\n")
    yield Case("no version", b"GET /hello\r\n" + HOST + b"\r\n")
    yield Case("HTTP/0.9 request", b"GET /hello\r\n\r\n")
    yield Case("two spaces after method", b"GET  /hello HTTP/1.1\r\n" + HOST + b"\r\n")
    yield Case("tab separators", b"GET\t/hello\tHTTP/1.1\r\n" + HOST + b"\r\n")
    yield Case("leading space", b" GET /hello HTTP/1.1\r\n" + HOST + b"\r\n")
    yield Case("request line ending in a bare LF", b"GET /hello HTTP/1.1\n" + HOST + b"\r\n")
    yield Case("request line ending in CR only", b"GET /hello HTTP/1.1\r" + HOST + b"\r\n")
    yield Case("CR CR LF line ends", b"GET /hello HTTP/1.1\r\r\nHost: x\r\r\n\r\r\n")
    yield Case("CRLF before the request line", b"\r\n" + GOOD)
    yield Case("LF before the request line", b"\n" + GOOD)
    yield Case("ten CRLFs before the request line", b"\r\n" * 10 + GOOD)
    yield Case("only CRLFs", b"\r\n\r\n\r\n")
    yield Case("garbage line", b"GARBAGE\r\n\r\n")
    yield Case("binary garbage", bytes(range(256)) * 4)
    yield Case(
        "TLS client hello",
        bytes.fromhex("16030100a5010000a10303")
        + bytes(32)
        + bytes.fromhex("000004130113020100007400000010000e00000b6578616d706c652e636f6d"),
    )
    yield Case("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    yield Case("SSH banner", b"SSH-2.0-OpenSSH_9.6\r\n")
    yield Case("request line of 1 MB", b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\n" + HOST + b"\r\n")


def header_lines() -> Iterator[Case]:
    fields = {
        "header without colon": b"Bad Header\r\n",
        "space before colon": b"X-A : b\r\n",
        "tab before colon": b"X-A\t: b\r\n",
        "empty header name": b": b\r\n",
        "colon only": b":\r\n",
        "brace in header name": b"X{A}: b\r\n",
        "quote in header name": b'X"A: b\r\n',
        "slash in header name": b"X/A: b\r\n",
        "at sign in header name": b"X@A: b\r\n",
        "non-ASCII header name": b"X-\xc3\xa9: b\r\n",
        "NUL in header value": b"X-A: a\x00b\r\n",
        "control byte in header value": b"X-A: a\x01b\r\n",
        "DEL in header value": b"X-A: a\x7fb\r\n",
        "escape sequence in header value": b"X-A: \x1b[31mred\r\n",
        "latin-1 header value": b"X-A: caf\xe9\r\n",
        "utf-8 header value": b"X-A: caf\xc3\xa9\r\n",
        "tab in header value": b"X-A: a\tb\r\n",
        "trailing blanks in header value": b"X-A: b  \t \r\n",
        "empty header value": b"X-A:\r\n",
        "CR inside header value": b"X-A: a\rb\r\n",
        "CR CR LF after header value": b"X-A: b\r\r\n",
        "header line ending in a bare LF": b"X-A: b\n",
        "obs-fold with a space": b"X-A: a\r\n b\r\n",
        "obs-fold with a tab": b"X-A: a\r\n\tb\r\n",
        "obs-fold of an empty line": b"X-A: a\r\n \r\n",
        "header value of 8 KB": b"X-A: " + b"v" * 8192 + b"\r\n",
        "header value of 64 KB": b"X-A: " + b"v" * 65536 + b"\r\n",
        "header name of 1000 bytes": b"X" * 1000 + b": b\r\n",
        "100 headers": b"X-A: b\r\n" * 99,
        "101 headers": b"X-A: b\r\n" * 100,
        "500 headers": b"X-A: b\r\n" * 499,
        "header of 500 KB": b"X-A: " + b"v" * 500_000 + b"\r\n",
        "two Host headers": b"Host: y\r\n",
        "Connection close": b"Connection: close\r\n",
        "Connection keep-alive": b"Connection: keep-alive\r\n",
        "Connection upgrade without Upgrade": b"Connection: upgrade\r\n",
        "Connection with odd tokens": b"Connection: foo, , close\r\n",
        "Expect 100-continue without a body": b"Expect: 100-continue\r\n",
        "Expect of an unknown kind": b"Expect: 42-surprise\r\n",
        "header line of spaces only": b"   \r\n",
        "Upgrade h2c": b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
    }
    for name, field in fields.items():
        yield Case(name, get(field))
    yield Case("leading blank before the first header", b"GET /hello HTTP/1.1\r\n Host: x\r\n\r\n")
    yield Case("no Host", b"GET /hello HTTP/1.1\r\n\r\n")
    yield Case("empty Host", b"GET /hello HTTP/1.1\r\nHost:\r\n\r\n")
    yield Case("Host with a space", b"GET /hello HTTP/1.1\r\nHost: a b\r\n\r\n")
    yield Case("head ending in a bare LF", b"GET /hello HTTP/1.1\r\nHost: x\r\n\n")
    yield Case("head of bare LFs only", b"GET /hello HTTP/1.1\nHost: x\n\n")
    yield Case("head never ended", b"GET /hello HTTP/1.1\r\nHost: x\r\n")


def framing() -> Iterator[Case]:
    lengths = {
        "list of two equal": b"3, 3",
        "list of two values": b"3,4",
        "plus sign": b"+3",
        "minus sign": b"-3",
        "blanks around": b"  3  ",
        "hex": b"0x3",
        "decimal point": b"3.0",
        "empty": b"",
        "two numbers": b"3 3",
        "2^64": b"18446744073709551616",
        "leading zeros": b"003",
        "letters": b"abc",
    }
    for name, value in lengths.items():
        yield Case(f"content-length {name}", post(b"Content-Length: " + value + b"\r\n", body=b"abc"))
    yield Case("two equal content-lengths", post(b"Content-Length: 3\r\n" * 2, body=b"abc"))
    yield Case("two content-lengths", post(b"Content-Length: 3\r\nContent-Length: 4\r\n", body=b"abcd"))
    yield Case("two content-lengths, two casings", post(b"Content-Length: 3\r\ncontent-LENGTH: 3\r\n", body=b"abc"))
    yield Case("content-length 0 with a body", post(b"Content-Length: 0\r\n", body=b"abc"))
    yield Case("content-length 2^63 on a short body", post(b"Content-Length: 9223372036854775807\r\n", body=b"abc"))
    yield Case("body shorter than content-length", post(b"Content-Length: 10\r\n", body=b"abc"))
    yield Case("body longer than content-length", post(b"Content-Length: 1\r\n", body=b"abc"))
    yield Case("GET with a body", get(b"Content-Length: 3\r\n") + b"abc")
    yield Case("POST without a length", post())
    body = b"3\r\nabc\r\n0\r\n\r\n"
    codings = {
        "chunked and content-length": (TE, b"Content-Length: 3\r\n"),
        "content-length and chunked": (b"Content-Length: 3\r\n", TE),
        "content-length and chunked, other casing": (b"content-length: 3\r\n", b"TRANSFER-ENCODING: CHUNKED\r\n"),
        "chunked twice in one line": (b"Transfer-Encoding: chunked, chunked\r\n",),
        "chunked in two lines": (TE, TE),
        "gzip": (b"Transfer-Encoding: gzip\r\n",),
        "gzip then chunked": (b"Transfer-Encoding: gzip, chunked\r\n",),
        "chunked then gzip": (b"Transfer-Encoding: chunked, gzip\r\n",),
        "identity": (b"Transfer-Encoding: identity\r\n",),
        "Chunked": (b"Transfer-Encoding: Chunked\r\n",),
        "blanks around chunked": (b"Transfer-Encoding:   chunked  \r\n",),
        "empty transfer-encoding": (b"Transfer-Encoding:\r\n",),
        "chunked with a parameter": (b"Transfer-Encoding: chunked;q=1\r\n",),
        "xchunked": (b"Transfer-Encoding: xchunked\r\n",),
        "chunked with a NUL": (b"Transfer-Encoding: chunked\x00\r\n",),
        "chunked folded onto the next line": (b"Transfer-Encoding: gzip\r\n chunked\r\n",),
        "space before the colon of transfer-encoding": (b"Transfer-Encoding : chunked\r\n",),
        "tab after the colon of transfer-encoding": (b"Transfer-Encoding:\tchunked\r\n",),
        "underscore in transfer_encoding": (b"Transfer_Encoding: chunked\r\n",),
        "transfer-encoding after a bare LF": (b"X-A: b\nTransfer-Encoding: chunked\r\n",),
    }
    for name, fields in codings.items():
        yield Case(f"transfer-encoding {name}", post(*fields, body=body))
    yield Case("chunked on HTTP/1.0", line(b"POST", b"/echo/x", b"HTTP/1.0") + TE + b"\r\n" + body)
    yield Case("gzip on HTTP/1.0", line(b"POST", b"/echo/x", b"HTTP/1.0") + b"Transfer-Encoding: gzip\r\n\r\nabc")


def chunking() -> Iterator[Case]:
    bodies = {
        "a valid body": b"3\r\nabc\r\n0\r\n\r\n",
        "upper-case hex size": b"A\r\n0123456789\r\n0\r\n\r\n",
        "size zz": b"zz\r\nabc\r\n0\r\n\r\n",
        "size -1": b"-1\r\nabc\r\n0\r\n\r\n",
        "size 0x16": b"0x16\r\nabc\r\n0\r\n\r\n",
        "size 2^64": b"10000000000000000\r\nabc\r\n0\r\n\r\n",
        "size of 18 digits": b"000000000000000003\r\nabc\r\n0\r\n\r\n",
        "empty size line": b"\r\nabc\r\n0\r\n\r\n",
        "blank before the size": b" 3\r\nabc\r\n0\r\n\r\n",
        "blank after the size": b"3 \r\nabc\r\n0\r\n\r\n",
        "tab after the size": b"3\t\r\nabc\r\n0\r\n\r\n",
        "data longer than its size": b"3\r\nabcdef\r\n0\r\n\r\n",
        "data without its CRLF": b"3\r\nabc0\r\n\r\n",
        "data ending in a bare LF": b"3\r\nabc\n0\r\n\r\n",
        "size line ending in a bare LF": b"3\nabc\r\n0\r\n\r\n",
        "all bare LFs": b"3\nabc\n0\n\n",
        "size line ending in CR only": b"3\rabc\r\n0\r\n\r\n",
        "extension": b"3;name=value\r\nabc\r\n0\r\n\r\n",
        "empty extension": b"3;\r\nabc\r\n0\r\n\r\n",
        "quoted extension": b'3;name="a;b"\r\nabc\r\n0\r\n\r\n',
        "extension of 1 KB": b"3;" + b"e" * 1000 + b"\r\nabc\r\n0\r\n\r\n",
        "extension of 100 KB": b"3;" + b"e" * 100_000 + b"\r\nabc\r\n0\r\n\r\n",
        "bare LF in an extension": b"3;a\nb\r\nabc\r\n0\r\n\r\n",
        "500 chunks of one byte": b"1\r\nx\r\n" * 500 + b"0\r\n\r\n",
        "a trailer": b"3\r\nabc\r\n0\r\nX-T: t\r\n\r\n",
        "a trailer ending in a bare LF": b"3\r\nabc\r\n0\r\nX-T: t\n\r\n",
        "a request line in the trailers": b"0\r\nGET /hello HTTP/1.1\r\n\r\n",
        "content-length in the trailers": b"3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n",
        "no last chunk": b"3\r\nabc\r\n",
        "last chunk without its CRLF": b"3\r\nabc\r\n0\r\n",
        "data shorter than its size": b"5\r\nabc",
        "chunk of 1 MB": b"100000\r\n" + b"x" * 0x100000 + b"\r\n0\r\n\r\n",
    }
    for name, body in bodies.items():
        yield Case(f"chunked {name}", chunked(body))


def smuggling() -> Iterator[Case]:
    smuggled = b"GET /echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    yield Case(
        "CL.TE: a request hidden after a zero chunk",
        post(b"Content-Length: 6\r\n", TE, body=b"0\r\n\r\n" + smuggled),
    )
    yield Case(
        "TE.CL: a request hidden in a chunk",
        post(TE, b"Content-Length: 4\r\n", body=b"%x\r\n" % len(smuggled) + smuggled + b"\r\n0\r\n\r\n"),
    )
    yield Case("TE.TE: a second, unknown coding", post(TE, b"Transfer-Encoding: cow\r\n", body=b"0\r\n\r\n" + smuggled))
    yield Case(
        "TE hidden by a bare LF",
        post(b"X-A: b\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n", body=b"0\r\n\r\n"),
    )
    yield Case("TE folded under another header", post(b"X-A: b\r\n Transfer-Encoding: chunked\r\n", body=b"0\r\n\r\n"))
    yield Case("content-length folded", post(b"Content-Length: 0\r\n 44\r\n", body=smuggled))
    yield Case("content-length with a NUL", post(b"Content-Length: 0\x0044\r\n", body=smuggled))
    yield Case(
        "two content-lengths hiding a request", post(b"Content-Length: 0\r\nContent-Length: 44\r\n", body=smuggled)
    )
    yield Case("a request in a GET body", get(b"Content-Length: %d\r\n" % len(smuggled)) + smuggled)
    yield Case("a request after content-length 0", post(b"Content-Length: 0\r\n") + smuggled)
    yield Case("pipelined after a chunked body", chunked(b"0\r\n\r\n") + smuggled)
    yield Case("a response smuggled as a request", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    yield Case("a request line inside a header value", get(b"X-A: GET /admin HTTP/1.1\r\n"))


def pipelines() -> Iterator[Case]:
    post_good = post(b"Content-Length: 4\r\n", body=b"body")
    yield Case("two good requests", GOOD + GOOD)
    yield Case("twenty good requests", GOOD * 20)
    yield Case("a good GET and POST and GET", GOOD + post_good + GOOD)
    bad = {
        "a bad chunk size": chunked(b"zz\r\nabc\r\n0\r\n\r\n"),
        "chunked and content-length": post(TE, b"Content-Length: 3\r\n", body=b"3\r\nabc\r\n0\r\n\r\n"),
        "two content-lengths": post(b"Content-Length: 4\r\n" * 2, body=b"body"),
        "a bare LF": b"GET /hello HTTP/1.1\nHost: x\r\n\r\n",
        "obs-fold": get(b"X-A: a\r\n b\r\n"),
        "a garbage line": b"GARBAGE\r\n\r\n",
    }
    for name, request in bad.items():
        yield Case(f"pipeline with {name} third", GOOD + post_good + request + GOOD)
        yield Case(f"pipeline with {name} first", request + GOOD)


def websockets() -> Iterator[Case]:
    key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    version = b"Sec-WebSocket-Version: 13\r\n"
    base = b"Upgrade: websocket\r\nConnection: Upgrade\r\n"

    def handshake(*fields: bytes, target: bytes = b"/ws", method: bytes = b"GET", http: bytes = b"HTTP/1.1") -> bytes:
        return line(method, target, http) + HOST + b"".join(fields) + b"\r\n"

    yield Case("websocket handshake", handshake(base, key, version))
    yield Case("websocket version 99", handshake(base, key, b"Sec-WebSocket-Version: 99\r\n"))
    yield Case("websocket version 8", handshake(base, key, b"Sec-WebSocket-Version: 8\r\n"))
    yield Case("websocket version missing", handshake(base, key))
    yield Case("websocket version not a number", handshake(base, key, b"Sec-WebSocket-Version: x\r\n"))
    yield Case("websocket key missing", handshake(base, version))
    yield Case("websocket key short", handshake(base, b"Sec-WebSocket-Key: c2hvcnQ=\r\n", version))
    yield Case("websocket key not base64", handshake(base, b"Sec-WebSocket-Key: not base64!\r\n", version))
    yield Case("websocket key too long", handshake(base, b"Sec-WebSocket-Key: " + b"QUFB" * 20 + b"\r\n", version))
    yield Case("websocket key twice", handshake(base, key, key, version))
    yield Case(
        "websocket Upgrade in capitals", handshake(b"Upgrade: WEBSOCKET\r\nConnection: upgrade\r\n", key, version)
    )
    yield Case(
        "websocket Connection among tokens",
        handshake(b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n", key, version),
    )
    yield Case("websocket without Connection", handshake(b"Upgrade: websocket\r\n", key, version))
    yield Case("websocket without Upgrade", handshake(b"Connection: Upgrade\r\n", key, version))
    yield Case(
        "websocket Upgrade to something else", handshake(b"Upgrade: foo\r\nConnection: Upgrade\r\n", key, version)
    )
    yield Case("websocket handshake by POST", handshake(base, key, version, method=b"POST"))
    yield Case("websocket handshake on HTTP/1.0", handshake(base, key, version, http=b"HTTP/1.0"))
    yield Case("websocket handshake on an HTTP route", handshake(base, key, version, target=b"/hello"))
    yield Case("websocket handshake on no route", handshake(base, key, version, target=b"/nope"))
    yield Case("websocket handshake with a body", handshake(base, key, version, b"Content-Length: 3\r\n") + b"abc")
    yield Case(
        "websocket handshake with odd protocols", handshake(base, key, version, b"Sec-WebSocket-Protocol: ,,a b,\r\n")
    )
    yield Case(
        "websocket handshake with odd extensions", handshake(base, key, version, b"Sec-WebSocket-Extensions: ;;=\r\n")
    )
    yield Case("websocket handshake ending in a bare LF", handshake(base, key, version)[:-2] + b"\n")
    yield Case("websocket frame before the answer", handshake(base, key, version) + b"\x81\x82abcd\x01\x02")


def odd_bytes() -> Iterator[Case]:
    yield Case("a NUL first", b"\x00" + GOOD)
    yield Case("a byte order mark first", b"\xef\xbb\xbf" + GOOD)
    yield Case("bytes 0x80 to 0xff", bytes(range(0x80, 0x100)) + b"\r\n\r\n")
    yield Case("an escape sequence in the method", b"\x1b[2JGET /hello HTTP/1.1\r\n" + HOST + b"\r\n")
    yield Case("CR alone as the head's end", b"GET /hello HTTP/1.1\r\nHost: x\r\r")
    yield Case("a form feed in a header value", get(b"X-A: a\x0cb\r\n"))
    yield Case("a vertical tab in a header name", get(b"X\x0bA: b\r\n"))


CASES = [
    *request_lines(),
    *header_lines(),
    *framing(),
    *chunking(),
    *smuggling(),
    *pipelines(),
    *websockets(),
    *odd_bytes(),
]


@dataclass(frozen=True)
class Difference:
    reason: str
    engine: str  # how the engine's answer starts


def _differ(reason: str, engine: str, *names: str) -> dict[str, Difference]:
    return dict.fromkeys(names, Difference(reason, engine))


#: Where the engine answers otherwise, on purpose: name -> why, and what the engine answers.
DIFFERENCES: dict[str, Difference] = {
    **_differ(
        "any token is a method (RFC 9110 9.1): the app's router answers 405; httptools knows a "
        "fixed list of methods and answers 400 to others",
        "HTTP/1.1 405 Method Not Allowed | open",
        "method b'get'",
        "method b'Get'",
        "method b'FOO'",
        "method b'AAAAAAAAAAAA'",
    ),
    **_differ(
        "a request line that is not HTTP/1.0 or 1.1 is refused; httptools serves HTTP/0.9 and "
        "HTTP/2.0 request lines as HTTP/1.1",
        "HTTP/1.1 400 Bad Request | closed",
        "version b'HTTP/2.0'",
        "version b'HTTP/0.9'",
        "no version",
        "HTTP/0.9 request",
    ),
    **_differ(
        "with --http auto the HTTP/2 preface starts an HTTP/2 connection (h2c with prior knowledge: "
        "the server's SETTINGS, then it waits for the client's); uvicorn has no HTTP/2 and answers 400",
        "open",
        "HTTP/2 preface",
    ),
    **_differ(
        "single spaces between the parts of the request line (RFC 9112 3); httptools takes more",
        "HTTP/1.1 400 Bad Request | closed",
        "two spaces after method",
    ),
    **_differ(
        "a target of more than 65,534 bytes: 414 URI Too Long (RFC 9110 15.5.15); httptools: 400",
        "HTTP/1.1 414 URI Too Long | closed",
        "long path 70 KB",
    ),
    **_differ(
        "a head over the limit (--limit-request-headers, ~400 KB by default, at most 100 header "
        "lines): 431 (RFC 6585); httptools has no limit",
        "HTTP/1.1 431 Request Header Fields Too Large | closed",
        "request line of 1 MB",
        "101 headers",
        "500 headers",
        "header of 500 KB",
    ),
    **_differ(
        "a chunk extension over hyper's limit is refused (RFC 9112 7.1.1 lets a server limit them); httptools reads on",
        "HTTP/1.1 400 Bad Request | closed",
        "chunked extension of 100 KB",
    ),
    **_differ(
        "only chunked alone is read: the app would get gzip-coded bytes as the body; httptools passes them on",
        "HTTP/1.1 400 Bad Request | closed",
        "transfer-encoding gzip then chunked",
    ),
    **_differ(
        "Transfer-Encoding on HTTP/1.0 is faulty framing (RFC 9112 6.1); httptools reads it",
        "HTTP/1.1 400 Bad Request | closed",
        "chunked on HTTP/1.0",
    ),
    **_differ(
        "pipelined: the requests before the malformed bytes are answered, in order, then 400 (or, "
        "for bytes that do not yet make a whole head, nothing until they do); httptools reads the "
        "whole pipeline first and answers only its 400",
        "HTTP/1.1 200 OK",
        "content-length 0 with a body",
        "body longer than content-length",
        "transfer-encoding underscore in transfer_encoding",
        "pipeline with a bad chunk size third",
        "pipeline with chunked and content-length third",
        "pipeline with two content-lengths third",
        "pipeline with a bare LF third",
        "pipeline with obs-fold third",
        "pipeline with a garbage line third",
    ),
    **_differ(
        "a websocket version other than 13: 426 naming 13 (RFC 6455 4.4); uvicorn: 400",
        "HTTP/1.1 426 Upgrade Required | closed",
        "websocket version 99",
        "websocket version 8",
        "websocket version missing",
        "websocket version not a number",
    ),
    **_differ(
        "a websocket handshake is HTTP/1.1 (RFC 6455 4.1; hyper switches protocols only there, "
        "and answers HTTP/1.0 in kind); uvicorn switches",
        "HTTP/1.0 400 Bad Request | closed",
        "websocket handshake on HTTP/1.0",
    ),
}


@dataclass(frozen=True)
class Record:
    engine: Outcome
    uvicorn: Outcome
    engine_after: Outcome
    uvicorn_after: Outcome


def _run(case: Case, engine: ProcessServer, uvicorn: ProcessServer) -> Record:
    return Record(
        engine=exchange(engine.port, case.data, case.head),
        uvicorn=exchange(uvicorn.port, case.data, case.head),
        engine_after=exchange(engine.port, GOOD),
        uvicorn_after=exchange(uvicorn.port, GOOD),
    )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProcessServer, ProcessServer]]:
    logs = tmp_path_factory.mktemp("corpus")
    with (
        ProcessServer("engine", APP, log=logs / "engine.log") as engine,
        ProcessServer("uvicorn", APP, log=logs / "uvicorn.log") as uvicorn,
    ):
        yield engine, uvicorn


@pytest.fixture(scope="module")
def records(servers: tuple[ProcessServer, ProcessServer]) -> dict[str, Record]:
    engine, uvicorn = servers
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = {case.name: pool.submit(_run, case, engine, uvicorn) for case in CASES}
        return {name: future.result() for name, future in futures.items()}


def test_the_corpus_is_large_and_its_names_unique() -> None:
    assert len(CASES) >= 200, len(CASES)
    assert len({case.name for case in CASES}) == len(CASES)
    assert set(DIFFERENCES) <= {case.name for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_answered_as_uvicorn_answers(case: Case, records: dict[str, Record]) -> None:
    record = records[case.name]
    assert str(record.engine_after) == str(record.uvicorn_after) == "HTTP/1.1 200 OK | open"
    difference = DIFFERENCES.get(case.name)
    if difference is None:
        assert str(record.engine) == str(record.uvicorn)
    else:
        assert str(record.engine) != str(record.uvicorn), "no longer differs: drop it from DIFFERENCES"
        assert str(record.engine).startswith(difference.engine), (str(record.engine), difference.reason)


SERVER_ERROR = re.compile(r"^(ERROR|CRITICAL)|Traceback|Exception in ASGI", re.MULTILINE)


def test_neither_server_logged_a_server_error(
    servers: tuple[ProcessServer, ProcessServer], records: dict[str, Record]
) -> None:
    assert len(records) == len(CASES)
    for server in servers:
        assert server.alive(), server.kind
        logged = server.logged()
        assert not SERVER_ERROR.search(logged), f"{server.kind}:\n{logged[-5000:]}"
