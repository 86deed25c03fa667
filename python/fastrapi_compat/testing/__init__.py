"""The test stack: the engine-backed ``TestClient`` and httpx transports, the loopback side
of the engine they talk to, and the ``--fastrapi-engine`` pytest plugin."""
