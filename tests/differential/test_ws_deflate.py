"""Every websocket scenario of ``test_websockets`` again, with the client offering
permessage-deflate (issue 26) as the ``websockets`` library does by default and with other
parameters: the handshake's headers (``Sec-WebSocket-Extensions`` included) and every
message and close must be uvicorn's."""

from collections.abc import Sequence
from typing import Any

import pytest
from apps import ws
from support.compare import PairClients, close, compare_ws, recv, send
from support.servers import NEEDS_UVICORN_055, UVICORN_055
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from .conftest import pair_fixture
from .test_websockets import SCENARIOS

# uvicorn 0.54 (the reference on Python 3.10) cannot agree permessage-deflate with the websockets
# library pip installs beside it (its factory options raise "Invalid initialization option"):
# there is nothing to compare with; 0.55 on Python 3.11+ is the reference.
pytestmark = pytest.mark.skipif(not UVICORN_055, reason=NEEDS_UVICORN_055 + ": its permessage-deflate fails")

pair = pair_fixture(ws.create_app)

#: The client's offers: what the ``websockets`` library (and browsers) send, and variants.
OFFERS: dict[str, Sequence[Any]] = {
    "default offer": [ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5})],
    "no parameters": [ClientPerMessageDeflateFactory(client_max_window_bits=None)],
    "small windows, no context takeover": [
        ClientPerMessageDeflateFactory(
            server_max_window_bits=9,
            client_max_window_bits=10,
            server_no_context_takeover=True,
            client_no_context_takeover=True,
        )
    ],
    "a declined offer first": [
        ClientPerMessageDeflateFactory(server_max_window_bits=8),
        ClientPerMessageDeflateFactory(server_max_window_bits=14, client_max_window_bits=15),
    ],
}


@pytest.mark.parametrize("offer", list(OFFERS))
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_websocket_with_deflate_offers(pair: PairClients, name: str, offer: str) -> None:
    scenario = SCENARIOS[name]
    compare_ws(
        pair.pair,
        scenario.path,
        scenario.script,
        subprotocols=scenario.subprotocols,
        headers=scenario.headers,
        extensions=OFFERS[offer],
    )


def test_an_empty_offer_is_refused_as_uvicorn(pair: PairClients) -> None:
    """The client sends ``Sec-WebSocket-Extensions:`` with nothing: websockets' 400, worded."""
    transcript = compare_ws(pair.pair, "/ws/echo", [recv()], extensions=[])
    kind, status, _reason, _headers, body = transcript.events[0]
    assert (kind, status) == ("denied", 400)
    assert body == b"Failed to open a WebSocket connection: invalid Sec-WebSocket-Extensions header: " + (
        b"expected token at 0 in .\n"
    )


def test_agreed_as_uvicorn(pair: PairClients) -> None:
    transcript = compare_ws(pair.pair, "/ws/echo", [recv(), close()], extensions=OFFERS["default offer"])
    kind, _subprotocol, headers = transcript.events[0]
    assert kind == "open"
    assert ("sec-websocket-extensions", "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12") in (
        headers
    )


def test_large_messages_round_trip_compressed(pair: PairClients) -> None:
    text = "".join(f"line {i}: caf\u00e9 \u2603\n" for i in range(40_000))
    compare_ws(
        pair.pair,
        "/ws/echo",
        [recv(), send(text), recv(), send(text.encode()), recv(), send(bytes(range(256)) * 3000), recv(), close()],
        extensions=OFFERS["small windows, no context takeover"],
    )
