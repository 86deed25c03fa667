"""``pytest --fastrapi-engine``: a project's existing test suite, run through the engine unedited.

Registered through the ``pytest11`` entry point and inert unless the flag is given. With it,
for the session, ``TestClient`` (``starlette.testclient``'s, which ``fastapi.testclient``
re-exports) and ``httpx.ASGITransport`` (and ``httpx2``'s; on httpx < 0.28 also the one
``httpx.AsyncClient(app=...)`` makes) are replaced, in those modules, by
:class:`fastrapi_compat.testing.testclient.TestClient` and
:class:`fastrapi_compat.testing.testclient.AsyncEngineTransport`: every app they are given is served
by the engine over loopback. Nothing in ``fastapi`` itself is patched. The names are swapped
before the initial ``conftest.py`` files are imported (and restored when the session ends), so
``from fastapi.testclient import TestClient`` in a conftest or a test module gets the engine's.
At the end one summary tells how many tests ran, how many requests the engine served, how many
of them natively, and why the others were not.
"""

from __future__ import annotations

import importlib
from collections import Counter
from typing import Any

import pytest

OPTION = "--fastrapi-engine"
_WORKER_KEY = "fastrapi_engine"

# (module, attribute, replacement): the replacement is an attribute of fastrapi_compat.testing.testclient.
_SWAPS = (
    ("starlette.testclient", "TestClient", "TestClient"),
    ("fastapi.testclient", "TestClient", "TestClient"),
    ("httpx", "ASGITransport", "AsyncEngineTransport"),
    ("httpx._transports", "ASGITransport", "AsyncEngineTransport"),
    ("httpx._transports.asgi", "ASGITransport", "AsyncEngineTransport"),
    # httpx < 0.28: AsyncClient(app=...) makes its ASGITransport from this module's name
    ("httpx._client", "ASGITransport", "AsyncEngineTransport"),
    ("httpx2", "ASGITransport", "AsyncEngineTransport"),
    ("httpx2._transports", "ASGITransport", "AsyncEngineTransport"),
    ("httpx2._transports.asgi", "ASGITransport", "AsyncEngineTransport"),
)


class EngineSession:
    """The plugin object of a ``--fastrapi-engine`` session (registered only with the flag): the
    swapped names, the tests run, and the engine's counters since the session began."""

    def __init__(self, config: pytest.Config) -> None:
        from fastrapi_compat.testing import testclient

        self._config = config
        self._testclient = testclient
        self._restore: list[tuple[Any, str, Any, Any]] = []
        self._baseline = Counter(testclient.engine_stats())
        self._baseline_reasons = testclient.fallback_reasons()
        self._baseline_under = testclient.native_under()
        self.worker_under: Counter[str] = Counter()
        self.tests = 0
        self.workers: Counter[str] = Counter()
        self.worker_reasons: Counter[str] = Counter()

    def swap(self) -> None:
        for module_name, attribute, replacement_name in _SWAPS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            original = getattr(module, attribute, None)
            replacement = getattr(self._testclient, replacement_name)
            if original is None or original is replacement:
                continue
            setattr(module, attribute, replacement)
            self._restore.append((module, attribute, original, replacement))

    def restore(self) -> None:
        while self._restore:
            module, attribute, original, replacement = self._restore.pop()
            if getattr(module, attribute, None) is replacement:
                setattr(module, attribute, original)

    def served(self) -> tuple[Counter[str], Counter[str], Counter[str]]:
        """Requests served since the session began (this process and its xdist workers), the
        native tier's fallback reasons, and what native routes ran under."""
        stats = Counter(self._testclient.engine_stats())
        stats.subtract(self._baseline)
        stats.update(self.workers)
        reasons = self._testclient.fallback_reasons()
        reasons.subtract(self._baseline_reasons)
        reasons.update(self.worker_reasons)
        under = self._testclient.native_under()
        under.subtract(self._baseline_under)
        under.update(self.worker_under)
        return stats, +reasons, +under

    # Hooks (this object is a plugin only in a --fastrapi-engine session).

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":  # exactly one per test that ran
            self.tests += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: its controller prints the summary
            stats, reasons, under = self.served()
            workeroutput[_WORKER_KEY] = {"stats": dict(stats), "reasons": dict(reasons), "under": dict(under)}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        served = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
        if served:
            self.workers.update(served["stats"])
            self.worker_reasons.update(served["reasons"])
            self.worker_under.update(served.get("under", {}))

    def pytest_report_header(self) -> str:
        return "fastrapi-compat: TestClient and httpx.ASGITransport are served by the engine (--fastrapi-engine)"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in summary_lines(self.tests, *self.served()):
            if line.startswith("="):
                terminalreporter.write_sep("=", line.strip("= "))
            else:
                terminalreporter.write_line(line)


def summary_lines(
    tests: int, stats: Counter[str], reasons: Counter[str], under: Counter[str] | None = None
) -> list[str]:
    """The end-of-session summary."""
    http, websocket, native = stats["http"], stats["websocket"], stats["native"]
    total = http + websocket
    lines = [
        "= fastrapi-compat engine =",
        f"tests run: {tests}",
        f"requests served by the engine: {total} (http {http}, websocket {websocket})",
    ]
    if total == 0:
        lines.append("no test sent a request through TestClient or httpx.ASGITransport")
    elif http:
        lines.append(f"native tier: {native} of {http} HTTP requests ({100 * native / http:.0f}%)")
        if under:
            lines.append("native routes run under the app's own middleware:")
            lines.extend(f"  {count:>6}  {what}" for what, count in under.most_common())
        # Every request the ASGI tier served has its reason; a gap would be the plugin's bug,
        # shown rather than hidden.
        unexplained = http - native - sum(reasons.values())
        if reasons or unexplained > 0:
            lines.append("fallback reasons:")
            lines.extend(f"  {count:>6}  {reason}" for reason, count in reasons.most_common())
            if unexplained > 0:
                lines.append(f"  {unexplained:>6}  no reason recorded (a fastrapi-compat bug: please report it)")
        else:
            lines.append("fallback reasons: none recorded")
    return lines


_SESSION = pytest.StashKey[EngineSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fastrapi-compat")
    group.addoption(
        OPTION,
        action="store_true",
        default=False,
        dest="fastrapi_engine",
        help="serve the apps given to TestClient (fastapi's and starlette's) and httpx.ASGITransport "
        "with the fastrapi-compat engine over loopback, and print how many requests it served",
    )
    group.addoption(
        "--fastrapi-timeout",
        action="store",
        default=None,
        dest="fastrapi_timeout",
        metavar="SECONDS",
        help="with --fastrapi-engine: how long a client waits on the engine before the test fails "
        "with an error naming the request (default: $FASTRAPI_TEST_TIMEOUT, else 60)",
    )


def _start(config: pytest.Config) -> None:
    if _SESSION in config.stash:
        return
    known = getattr(config, "known_args_namespace", None)  # before configure, getoption may not have it
    timeout = getattr(known, "fastrapi_timeout", None) or config.getoption("fastrapi_timeout", None)
    if timeout is not None:
        from fastrapi_compat.testing import loopback

        try:
            loopback.set_engine_timeout(timeout)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.add_cleanup(lambda: loopback.set_engine_timeout(None))
    session = EngineSession(config)
    config.stash[_SESSION] = session
    config.add_cleanup(session.restore)  # runs even when the session fails before configure
    session.swap()
    config.pluginmanager.register(session, "fastrapi-engine-session")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Before the initial conftest.py files are imported, so their imports see the engine's names.
    if early_config.known_args_namespace.fastrapi_engine:
        _start(early_config)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("fastrapi_engine"):
        _start(config)  # when the plugin was registered too late for the hook above
