"""The production-style app with the three instruments a production team adds: Sentry,
OpenTelemetry and Prometheus, all in-process (nothing leaves the machine).

``build()`` is what ``bench.apps.fastapi_app:app_instrumented`` serves (built on first access,
in the server's own process, since each instrument is set up for the whole process):

- **Sentry**: ``sentry_sdk.init`` with every request traced (``traces_sample_rate=1.0``, the
  upper bound of what tracing costs) and a :class:`CountingTransport`, a ``Transport`` subclass
  that keeps the envelopes' item types in a counter instead of sending them. Sentry patches
  Starlette's and FastAPI's request path (its FastAPI and Starlette integrations turn on by
  themselves).
- **OpenTelemetry**: an SDK ``TracerProvider`` set as the global one (so FastAPI's own
  telemetry is on too, as under ``opentelemetry-instrument``), a ``BatchSpanProcessor`` (what a
  production exporter runs behind) into :class:`CountingSpanExporter`, an
  ``InMemorySpanExporter`` that keeps only the last spans, and
  ``FastAPIInstrumentor.instrument_app``.
- **Prometheus**: ``Instrumentator().instrument(app).expose(app)`` (its default metrics, its
  middleware, ``/metrics``).

The spans and envelopes are bounded so that a long run's memory measures the server, not the
exporter. ``counts()`` says what each instrument recorded (tests read it).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

SPANS_KEPT = 1000
SENTRY_DSN = "http://public@127.0.0.1:9/1"  # never contacted: the transport sends nothing

_counts: Counter[str] = Counter()
_lock = threading.Lock()


def _count(key: str, n: int = 1) -> None:
    with _lock:
        _counts[key] += n


def counts() -> dict[str, int]:
    """What the instruments recorded so far in this process: ``spans``, ``sentry <item type>``."""
    with _lock:
        return dict(_counts)


def _sentry() -> None:
    import sentry_sdk
    from sentry_sdk.transport import Transport

    class CountingTransport(Transport):
        """Counts the envelopes' items by type (``transaction``, ``event``, ...); a ``span``
        item (sentry-sdk 3) counts the spans it carries (the SDK batches them: one item may
        hold several requests' segment spans)."""

        def capture_envelope(self, envelope: Any) -> None:
            for item in envelope.items:
                spans = (item.payload.json or {}).get("items") if item.type == "span" else None
                _count(f"sentry {item.type}", len(spans) if isinstance(spans, list) else 1)

        def flush(self, timeout: float, callback: Any = None) -> None:
            return None

        def kill(self) -> None:
            return None

    sentry_sdk.init(dsn=SENTRY_DSN, traces_sample_rate=1.0, transport=CountingTransport)


def _tracer_provider() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    class CountingSpanExporter(InMemorySpanExporter):
        """Counts the spans exported and keeps the last :data:`SPANS_KEPT` of them."""

        def export(self, spans: Sequence[Any]) -> Any:
            _count("spans", len(spans))
            result = super().export(spans)
            if len(self.get_finished_spans()) > SPANS_KEPT:
                self.clear()
            return result if result is not None else SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(CountingSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def instrument(app: Any) -> Any:
    """OpenTelemetry and Prometheus on ``app`` (Sentry is per process: :func:`build` inits it
    before the app exists, as a production app's entry point does)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from prometheus_fastapi_instrumentator import Instrumentator

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_tracer_provider())
    Instrumentator().instrument(app).expose(app)
    return app


def build() -> Any:
    """Sentry first (``sentry_sdk.init`` at import time, before the app is made), then the
    production-style app, then OpenTelemetry and Prometheus on it."""
    from bench.apps.fastapi_app import create_app

    _sentry()
    return instrument(create_app(production=True))
