"""TLS (issue 22): ``--ssl-certfile``/``--ssl-keyfile`` and friends, served by the engine with
rustls and by uvicorn with Python's ``ssl``, side by side: the same answers and scopes
(``https``/``wss``), client certificates required or optional, an encrypted key, certificate
reload on SIGHUP with connections already open kept, a silent client dropped after the handshake
timeout, and the one-line errors of bad files and options."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apps.tls import create_app
from cryptography import x509
from support.certs import Pki, encrypted_key, make_pki, renew
from support.servers import UvicornThread, engine_server
from websockets.sync.client import connect as ws_connect

TESTS_DIR = Path(__file__).resolve().parent.parent
IGNORED_HEADERS = {"date"}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def other_pki(tmp_path: Path) -> Pki:
    """Another CA and its certificates."""
    folder = tmp_path / "other"
    folder.mkdir()
    return make_pki(folder)


def tls_options(pki: Pki, **more: Any) -> dict[str, Any]:
    return {"ssl_certfile": str(pki.cert), "ssl_keyfile": str(pki.key), **more}


def https(server: Any) -> str:
    return f"https://127.0.0.1:{server.port}"


def client(pki: Pki, *, cert: bool = False, http2: bool = False) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return httpx.Client(verify=context, http2=http2, timeout=10)


def answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.items() if k not in IGNORED_HEADERS]
    return response.status_code, headers, response.content


@pytest.fixture
def pair(pki: Pki) -> Iterator[tuple[Any, Any]]:
    with (
        UvicornThread(create_app(), **tls_options(pki)) as reference,
        engine_server(create_app(), **tls_options(pki)) as engine,
    ):
        yield reference, engine


REQUESTS = [
    ("GET", "/items/7?q=x", None),
    ("GET", "/scope", None),
    ("GET", "/items/nope", None),
    ("POST", "/echo", b"x" * 100_000),
    ("GET", "/stream", None),
    ("GET", "/missing", None),
]


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
def test_round_trip_matches_uvicorn(
    pair: tuple[Any, Any], pki: Pki, method: str, path: str, body: bytes | None
) -> None:
    reference, engine = pair
    with client(pki) as http:
        expected = http.request(method, https(reference) + path, content=body)
        got = http.request(method, https(engine) + path, content=body)
    if path == "/scope":  # the URLs name each server's own port
        assert got.json()["url"] == f"{https(engine)}/scope"
        assert expected.json()["url"] == f"{https(reference)}/scope"
        assert got.json()["scheme"] == expected.json()["scheme"] == "https"
        assert got.json()["url_for"] == f"{https(engine)}/items/3"
        return
    assert answer(got) == answer(expected)


@pytest.mark.parametrize("tier", ["auto", "asgi"])
def test_scope_from_both_tiers_over_tls(pki: Pki, tier: str) -> None:
    """``request.url`` and the scheme from the native tier (``auto``) and the ASGI tier."""
    with engine_server(create_app(), tier=tier, **tls_options(pki)) as engine, client(pki) as http:
        before = engine.stats()["native"]
        assert http.get(https(engine) + "/items/5").json() == {"item_id": 5, "q": ""}
        scope = http.get(https(engine) + "/scope").json()
        assert engine.stats()["native"] - before == (2 if tier == "auto" else 0)
    assert scope == {
        "scheme": "https",
        "http_version": "1.1",
        "url": f"{https(engine)}/scope",
        "url_for": f"{https(engine)}/items/3",
    }


def test_workers_serve_tls_with_an_encrypted_key(pki: Pki, tmp_path: Path) -> None:
    key = encrypted_key(pki, tmp_path / "encrypted.pem", b"s3cret")
    flags = ["--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(key), "--ssl-keyfile-password", "s3cret"]
    with CliServer("--workers", "2", *flags) as server:
        assert server.lines[-1].split("running on ")[1].startswith("https://"), server.lines[-1]
        with client(pki) as http:
            for n in range(10):
                assert http.get(f"https://127.0.0.1:{server.port}/items/{n}").json() == {"item_id": n, "q": ""}
        # SIGHUP to the supervisor: uvicorn's rolling restart; the new workers read the renewed
        # certificate (and the key, decrypted again with the password the supervisor kept)
        renew(pki, "renewed server")
        encrypted_key(pki, key, b"s3cret")
        server.process.send_signal(signal.SIGHUP)
        assert server.read_until("Restarted the workers", timeout=90), "\n".join(server.lines)
        for _ in range(10):  # connections spread over both workers by the kernel
            sock, name = peer_certificate(server.port, pki)
            sock.close()
            assert name == "CN=renewed server"


def test_sighup_restart_under_new_tls_connections(pki: Pki) -> None:
    """New TLS connections made all through a rolling restart that renews the certificate: each
    is served, and each made after "Restarted the workers" is shown the renewed certificate.

    An old worker told to stop takes connections from the shared socket until it sees that; it
    tells the supervisor once it accepts no more (its pipe's EOF), and the restart is over only
    then (before, connections made after the log line could reach an old worker). A handshake
    under way when it stops accepting is completed and its request answered (before, the
    client saw EOF in the handshake)."""
    flags = ["--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key)]
    outcomes: list[tuple[float, str, str]] = []  # (when it connected, certificate, answer)
    done = threading.Event()

    def connect_again_and_again() -> None:
        context = ssl.create_default_context(cafile=str(pki.ca))
        while not done.is_set():
            began = time.monotonic()
            try:
                raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            except OSError:  # not accepted by the kernel: not a lost connection
                continue
            try:
                with context.wrap_socket(raw, server_hostname="localhost") as sock:
                    der = sock.getpeercert(binary_form=True)
                    name = x509.load_der_x509_certificate(der).subject.rfc4514_string() if der else "?"
                    sock.sendall(b"GET /items/4 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := sock.recv(65536):
                        data += chunk
                outcomes.append((began, name, data.split(b"\r\n")[0].decode() if data else "eof"))
            except OSError as exc:
                outcomes.append((began, "", f"{type(exc).__name__}: {exc}"))

    with CliServer("--workers", "2", *flags) as server:
        threads = [threading.Thread(target=connect_again_and_again) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            renew(pki, "renewed server")
            server.process.send_signal(signal.SIGHUP)
            assert server.read_until("Restarted the workers", timeout=90), "\n".join(server.lines)
            restarted = time.monotonic()
            deadline = restarted + 30
            while sum(1 for o in outcomes if o[0] > restarted) < 300 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            done.set()
            for thread in threads:
                thread.join(30)
    after = [o for o in outcomes if o[0] > restarted]
    assert len(after) >= 300 and len(outcomes) > len(after), len(outcomes)
    assert [o for o in outcomes if o[2] != "HTTP/1.1 200 OK"] == []
    assert [o for o in after if o[1] != "CN=renewed server"] == []


def test_handshake_under_way_when_the_server_stops_is_completed(pki: Pki) -> None:
    """A connection accepted before a shutdown whose client sends its TLS handshake after it
    began (a worker told to stop takes connections from the shared socket until it sees that):
    the handshake completes, its request is answered, then the connection closed. Before,
    the engine dropped it (the client saw EOF in the handshake)."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    with engine_server(create_app(), **tls_options(pki)) as engine:
        early = socket.create_connection(("127.0.0.1", engine.port), timeout=10)
        # a later connection answered: the early one was accepted first (one accept queue)
        with client(pki) as http:
            assert http.get(https(engine) + "/items/1").status_code == 200
        engine.server.request_shutdown()
        while True:  # the listener is closed once a new connection is refused
            try:
                socket.create_connection(("127.0.0.1", engine.port), timeout=10).close()
            except ConnectionRefusedError:
                break
            except ConnectionResetError:  # queued as the listener closed: the next is refused
                continue
        with context.wrap_socket(early, server_hostname="localhost") as sock:
            answer = get_on(sock, "/items/7")
            try:  # then the server closes it (with close_notify, or not)
                after = sock.recv(65536)
            except ssl.SSLEOFError:
                after = b""
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b'{"item_id":7,"q":""}'), answer
        assert after == b""


def test_websocket_scheme_is_wss(pair: tuple[Any, Any], pki: Pki) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca))
    seen = []
    for server in pair:
        with ws_connect(f"wss://127.0.0.1:{server.port}/ws", ssl=context, open_timeout=10) as ws:
            message = json.loads(ws.recv(timeout=10))
        assert message["url"] == f"wss://127.0.0.1:{server.port}/ws"
        seen.append(message["scheme"])
    assert seen == ["wss", "wss"]


def handshake_fails(url: str, http: httpx.Client) -> bool:
    """Whether a request fails in the TLS layer (TLS 1.3 reports a refused client certificate
    after the handshake, on the first read)."""
    try:
        http.get(url)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        return True
    return False


@pytest.mark.parametrize("cert_reqs", [1, 2])
def test_client_certificates(pki: Pki, cert_reqs: int) -> None:
    options = tls_options(pki, ssl_ca_certs=str(pki.ca), ssl_cert_reqs=cert_reqs)
    outcomes = []
    with UvicornThread(create_app(), **options) as reference, engine_server(create_app(), **options) as engine:
        for server in (reference, engine):
            with client(pki, cert=True) as http:
                assert http.get(https(server) + "/items/1").status_code == 200
            with client(pki) as http:
                outcomes.append(handshake_fails(https(server) + "/items/1", http))
    # required: refused without a certificate; optional: served
    assert outcomes == [cert_reqs == 2, cert_reqs == 2]


def test_client_certificate_from_another_ca_is_refused(pki: Pki, tmp_path: Path) -> None:
    other = other_pki(tmp_path)
    options = tls_options(pki, ssl_ca_certs=str(pki.ca), ssl_cert_reqs=2)
    with engine_server(create_app(), **options) as engine:
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.load_cert_chain(str(other.client_cert), str(other.client_key))
        with httpx.Client(verify=context, timeout=10) as http:
            assert handshake_fails(https(engine) + "/items/1", http)


def test_encrypted_key(pki: Pki, tmp_path: Path) -> None:
    key = encrypted_key(pki, tmp_path / "encrypted.pem", b"s3cret")
    options = {"ssl_certfile": str(pki.cert), "ssl_keyfile": str(key), "ssl_keyfile_password": "s3cret"}
    with UvicornThread(create_app(), **options) as reference, engine_server(create_app(), **options) as engine:
        with client(pki) as http:
            assert answer(http.get(https(engine) + "/items/2")) == answer(http.get(https(reference) + "/items/2"))


def test_key_in_the_certificate_file(pki: Pki, tmp_path: Path) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(pki.cert.read_bytes() + pki.key.read_bytes())
    with engine_server(create_app(), ssl_certfile=str(both)) as engine, client(pki) as http:
        assert http.get(https(engine) + "/items/2").status_code == 200


def peer_certificate(port: int, pki: Pki) -> tuple[ssl.SSLSocket, str]:
    """A TLS connection to ``port`` and the common name of the certificate it was shown."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return sock, name


def get_on(sock: ssl.SSLSocket, path: str = "/items/9") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    data = b""
    while b'"q":""}' not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class CliServer:
    """``python -m fastrapi_compat run apps.tls:app`` with ``flags``, its port read from its
    log line."""

    def __init__(self, *flags: str) -> None:
        self.flags = flags
        self.port = 0
        self.lines: list[str] = []
        self.pending = b""

    def __enter__(self) -> CliServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fastrapi_compat", "run", "apps.tls:app", "--port", "0", *self.flags],
            cwd=TESTS_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        if self.read_until("running on ", timeout=30):
            found = re.search(r"running on https?://127\.0\.0\.1:(\d+)", self.lines[-1])
            if found:
                self.port = int(found.group(1))
                return self
        self.__exit__()
        raise RuntimeError(f"the server did not start: {''.join(self.lines)}")

    def read_until(self, text: str, timeout: float = 10) -> bool:
        """Reads the server's log lines until one holds ``text`` (``False``: none within
        ``timeout``, or the server exited)."""
        assert self.process.stderr is not None
        fd = self.process.stderr.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                self.lines.append(line.decode(errors="replace"))
                if text in self.lines[-1]:
                    return True
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return False
            chunk = os.read(fd, 65536)
            if not chunk:
                return False
            self.pending += chunk

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


def test_sighup_reloads_the_certificate_and_keeps_open_connections(pki: Pki) -> None:
    with CliServer("--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key)) as server:
        old, name = peer_certificate(server.port, pki)
        with old:
            assert name == "CN=test server"
            assert b" 200 " in get_on(old)
            renew(pki, "renewed server")
            server.process.send_signal(signal.SIGHUP)
            assert server.read_until("Reloaded the TLS certificate"), "\n".join(server.lines)
            new, name = peer_certificate(server.port, pki)
            with new:
                assert name == "CN=renewed server"
                assert b" 200 " in get_on(new)
            # the connection opened before the reload goes on, with its session
            assert b" 200 " in get_on(old)
        # a reload that fails keeps the certificate in use
        pki.cert.write_text("not a certificate")
        server.process.send_signal(signal.SIGHUP)
        assert server.read_until("Could not reload the TLS certificate"), server.lines
        sock, name = peer_certificate(server.port, pki)
        with sock:
            assert name == "CN=renewed server"


def test_silent_client_is_dropped_after_the_handshake_timeout(pki: Pki) -> None:
    with engine_server(create_app(), **tls_options(pki)) as engine:
        with socket.create_connection(("127.0.0.1", engine.port), timeout=30) as sock:
            start = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the server, not by the 30 s timeout
            assert time.monotonic() - start < 25
        with client(pki) as http:  # and the server still answers
            assert http.get(https(engine) + "/items/1").status_code == 200


def run_cli(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastrapi_compat", "run", "apps.tls:app", "--port", "0", *flags],
        cwd=TESTS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def uvicorn_cli(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uvicorn", "apps.tls:app", "--port", "0", *flags],
        cwd=TESTS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing key", "cannot read the key file"),
        ("missing certificate", "cannot read the certificate file"),
        ("wrong password", "cannot decrypt the key file"),
        ("no password", "is encrypted"),
        ("not a certificate", "no certificate found"),
        ("key of another certificate", "does not go with the certificate"),
    ],
)
def test_bad_files_exit_1_with_one_error_line(pki: Pki, tmp_path: Path, case: str, expected: str) -> None:
    cert, key = str(pki.cert), str(pki.key)
    more: list[str] = []
    if case == "missing key":
        key = str(tmp_path / "nowhere.pem")
    elif case == "missing certificate":
        cert = str(tmp_path / "nowhere.pem")
    elif case in ("wrong password", "no password"):
        key = str(encrypted_key(pki, tmp_path / "enc.pem", b"right"))
        more = ["--ssl-keyfile-password", "wrong"] if case == "wrong password" else []
    elif case == "not a certificate":
        cert = key
    else:
        other = other_pki(tmp_path)
        key = str(other.key)
    flags = ["--ssl-certfile", cert, "--ssl-keyfile", key, *more]
    result = run_cli(*flags)
    assert result.returncode == 1
    assert expected in one_error_line(result)
    if case != "no password":  # uvicorn's OpenSSL would prompt on the terminal
        assert uvicorn_cli(*flags).returncode == 1  # uvicorn exits 1 too (with a traceback)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--ssl-version", "2"], None),
        (["--ssl-version", "5"], "ssl_version 5 is not supported"),
        (["--ssl-ciphers", "ECDHE+AESGCM"], "ssl_ciphers 'ECDHE+AESGCM' is not supported"),
        (["--ssl-cert-reqs", "2"], "give ssl_ca_certs"),
        (["--ssl-cert-reqs", "3"], "ssl_cert_reqs must be 0"),
    ],
)
def test_options_rustls_cannot_honour(pki: Pki, flags: list[str], expected: str | None) -> None:
    if expected is None:  # accepted: PROTOCOL_TLS negotiates as PROTOCOL_TLS_SERVER does
        with CliServer("--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key), *flags) as server:
            with client(pki) as http:
                assert http.get(f"https://127.0.0.1:{server.port}/items/1").status_code == 200
        return
    result = run_cli("--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key), *flags)
    assert result.returncode == 1
    assert expected in one_error_line(result)


def test_run_function_takes_uvicorns_ssl_arguments(pki: Pki) -> None:
    script = (
        "import fastrapi_compat, apps.tls as a\n"
        f"fastrapi_compat.run(a.app, port=0, ssl_certfile={str(pki.cert)!r}, ssl_keyfile={str(pki.key)!r},"
        " ssl_ciphers='NULL')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=TESTS_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "ssl_ciphers 'NULL' is not supported" in result.stderr
