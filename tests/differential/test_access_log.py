"""uvicorn's access log (issue 22): the engine logs each request to the ``uvicorn.access``
logger with uvicorn's message and arguments, so uvicorn's ``AccessFormatter`` (and any log
config written for uvicorn) gives the same line; compared request by request with uvicorn."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import httpx
from apps import proxy
from support.servers import UVICORN_055, UvicornThread, engine_server
from uvicorn.logging import AccessFormatter

FORMAT = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)

REQUESTS = [
    ("GET", "/who", {}),
    ("GET", "/who?q=a%20b&x=1", {}),
    *([("GET", "/caf%C3%A9/x%2Fy", {})] if UVICORN_055 else []),  # 0.54 logs the decoded path
    ("GET", "/who", {"x-forwarded-for": "203.0.113.9:7000"}),
    ("POST", "/who", {}),
    ("HEAD", "/who", {}),
    ("DELETE", "/nowhere", {}),
]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def recording() -> Iterator[Records]:
    """Records what reaches ``uvicorn.access`` (attached after uvicorn configured its logging,
    which replaces that logger's handlers)."""
    handler = Records()
    logger = logging.getLogger("uvicorn.access")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _line(record: logging.LogRecord, port: int) -> str:
    line = FORMAT.format(record)
    if line.startswith("127.0.0.1:"):
        line = "127.0.0.1:<peer port>" + line[line.index(" ") :]
    return line.replace(str(port), "<PORT>")


def _logged(access: Records, port: int, method: str, path: str, headers: dict[str, str]) -> list[str]:
    start = len(access.records)
    httpx.request(method, f"http://127.0.0.1:{port}{path}", headers=headers, timeout=10)
    deadline = time.monotonic() + 5
    while len(access.records) == start and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # nothing more comes
    return [_line(r, port) for r in access.records[start:]]


def test_each_request_logged_as_uvicorn_logs_it() -> None:
    with (
        UvicornThread(proxy.create_app(), log_level="info", access_log=True) as reference,
        engine_server(proxy.create_app(), access_log=True) as engine,
        recording() as access,
    ):
        for method, path, headers in REQUESTS:
            expected = _logged(access, reference.port, method, path, headers)
            got = _logged(access, engine.port, method, path, headers)
            assert len(expected) == 1, expected
            assert got == expected


def test_no_access_log() -> None:
    logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    with engine_server(proxy.create_app(), access_log=False) as engine, recording() as access:
        assert httpx.get(f"http://127.0.0.1:{engine.port}/who", timeout=10).status_code == 200
        time.sleep(0.2)
    assert access.records == []


def test_logger_not_at_info_costs_nothing() -> None:
    """The engine asks for the lines only when ``uvicorn.access`` logs at INFO when it starts."""
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    with engine_server(proxy.create_app(), access_log=True) as engine, recording() as access:
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
        assert httpx.get(f"http://127.0.0.1:{engine.port}/who", timeout=10).status_code == 200
        time.sleep(0.2)
    assert access.records == []
