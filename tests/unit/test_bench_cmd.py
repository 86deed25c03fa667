"""``fastrapi-compat bench MODULE:APP``: uvicorn against the engine on the user's own app.

Each run is bounded (a fraction of a second per measurement, one round) and on 127.0.0.1; the
numbers are not asserted (performance is proven in bench/ only), what is: every operation of the
app's schema in the table with its tier, answers that were not 2xx counted and shown, a PNG that
is a real image, and one ``Error:`` line for each mistake a user can make.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fastrapi_compat.tools.bench_load import RawRequest
from fastrapi_compat.tools.bench_report import ProgressBar

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240
pytestmark = pytest.mark.timeout(TIMEOUT + 30)

needs_schemathesis = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="generating requests needs schemathesis 4 (Python >= 3.11)"
)


def bench(
    *args: str, cwd: Path | None = None, python_prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [*(python_prefix or [sys.executable, "-m", "fastrapi_compat"]), "bench", *args]
    return subprocess.run(
        argv,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
        check=False,
    )


def crud_operations() -> list[str]:
    sys.path.insert(0, str(ROOT))
    try:
        from examples.crud import app
    finally:
        sys.path.remove(str(ROOT))
    return [f"{method.upper()} {path}" for path, item in app.openapi()["paths"].items() for method in item]


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by operation: ``[tier, uvicorn req/s, engine req/s, ratio, p99, p99, non-2xx]``."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("OPERATION"))
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        match = re.match(r"(\S+ \S+)\s+(native|asgi|\?)\s+(.*)$", line)
        assert match, f"not a table row: {line!r}"
        rows[match.group(1)] = [match.group(2), *re.split(r"\s{2,}", match.group(3).strip())]
    return rows


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))
    height, width = pixels.shape[:2]
    assert width > 300 and height > 200
    flat = pixels.reshape(-1, pixels.shape[-1])
    assert len({tuple(p) for p in flat[:: max(1, len(flat) // 5000)]}) > 10, "the plot is blank"


@needs_schemathesis
def test_crud_app_table_with_every_operation_and_a_plot(tmp_path: Path) -> None:
    plot = tmp_path / "crud.png"
    done = bench(
        "examples.crud:app", "--app-dir", str(ROOT), "--duration", "1.5", "--rounds", "1",
        "--client", "python", "--connections", "4", "--max-examples", "3", "--plot", str(plot),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "[#" not in done.stderr, "a progress bar on a stderr that is not a terminal"
    out = done.stdout
    assert re.search(r"uvicorn \d+\.\d+\.\d+ \((httptools|h11), (uvloop|asyncio)\) vs fastrapi-compat engine", out)
    assert "load generator: fastrapi-compat's Python client (asyncio + h11), 4 connections" in out
    assert "shares this machine with the servers" in out
    rows = table_rows(out)
    assert sorted(rows) == sorted(crud_operations())
    for label, (tier, stock, engine, ratio, *_) in rows.items():
        assert tier == "native", label  # explain says every route of examples/crud.py is native
        assert float(stock.replace(",", "")) > 0 and float(engine.replace(",", "")) > 0, label
        assert re.fullmatch(r"\d+\.\d\dx", ratio), label
    assert f"{len(rows)} of {len(rows)} operations native" in out
    assert f"plot: {plot}" in out
    assert_png(plot)


def write_requests(path: Path, items: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def test_answers_that_are_not_2xx_are_counted_and_shown(tmp_path: Path) -> None:
    requests = write_requests(
        tmp_path / "requests.jsonl",
        [
            {"method": "GET", "path": "/items?limit=2", "operation": "GET /items"},
            {"method": "GET", "path": "/items/987654", "operation": "GET /items/{item_id}"},
            {"method": "GET", "path": "/items/987655", "operation": "GET /items/{item_id}"},
        ],
    )
    done = bench(
        "examples.crud:app", "--app-dir", str(ROOT), "--requests", str(requests), "--duration", "1",
        "--rounds", "1", "--client", "python", "--connections", "2", "--no-plot",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert set(rows) == {"GET /items", "GET /items/{item_id}"}
    assert rows["GET /items"][-1] == "0/0"
    stock_errors, engine_errors = map(int, rows["GET /items/{item_id}"][-1].split("/"))
    assert stock_errors > 0 and engine_errors > 0
    for server, count in (("uvicorn", stock_errors), ("engine", engine_errors)):
        # every request of that operation asks for an item that does not exist
        assert re.search(rf"GET /items/\{{item_id\}} on {server}: {count} of {count} \({count} x 404\)", done.stdout)
    assert "plot:" not in done.stdout


@pytest.mark.skipif(shutil.which("wrk") is not None, reason="wrk is installed: the next test runs it")
def test_client_wrk_without_wrk_is_one_error_line(tmp_path: Path) -> None:
    requests = write_requests(tmp_path / "r.jsonl", [{"method": "GET", "path": "/items"}])
    done = bench(
        "examples.crud:app", "--app-dir", str(ROOT), "--requests", str(requests), "--client", "wrk", "--no-plot"
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: --client wrk: wrk is not installed (apt-get install wrk, or --client python)."


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed: the previous test checks the error")
def test_wrk_load_generator(tmp_path: Path) -> None:
    requests = write_requests(
        tmp_path / "r.jsonl",
        [
            {"method": "GET", "path": "/items/987654", "operation": "GET /items/{item_id}"},
            {"method": "GET", "path": "/items?limit=2", "headers": {"accept": "application/json"}},
        ],
    )
    done = bench(
        "examples.crud:app", "--app-dir", str(ROOT), "--requests", str(requests), "--client", "wrk",
        "--duration", "1", "--rounds", "1", "--connections", "4", "--no-plot",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(r"load generator: wrk \S+, 1 thread, 4 connections", done.stdout)
    rows = table_rows(done.stdout)
    assert set(rows) == {"GET /items/{item_id}", "GET /items"}
    assert rows["GET /items"][-1] == "0/0"
    assert re.search(r"GET /items/\{item_id\} on uvicorn: (\d+) of \1 \(\1 x 404\)", done.stdout)
    assert re.search(r"GET /items/\{item_id\} on engine: (\d+) of \1 \(\1 x 404\)", done.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "0"], r"Error: argument --duration: .*"),
        (["--duration", "abc"], r"Error: argument --duration: .*"),
        (["--rounds", "-1"], r"Error: argument --rounds: .*"),
        (["--client", "ab"], r"Error: argument --client: invalid choice: 'ab' .*"),
        (["--requests", "/no/such/file.jsonl"], r"Error: --requests '/no/such/file.jsonl' is not a file\."),
        (
            ["--plot", "/no/such/dir/x.png"],
            r"Error: --plot '/no/such/dir/x.png': directory '/no/such/dir' does not exist\.",
        ),
        (["--plot", "out.svg"], r"Error: --plot 'out.svg': the plot is a PNG, name it \*\.png\."),
        (["--app-dir", "/no/such/dir"], r"Error: --app-dir '/no/such/dir' is not a directory\."),
    ],
)
def test_bad_arguments_are_one_error_line(args: list[str], message: str) -> None:
    done = bench("examples.crud:app", "--app-dir", str(ROOT), *args)
    assert done.returncode == 1
    assert re.fullmatch(message, done.stderr.strip()), done.stderr
    assert done.stdout == ""


def test_bad_app_and_bad_requests_file_are_one_error_line(tmp_path: Path) -> None:
    good = write_requests(tmp_path / "good.jsonl", [{"method": "GET", "path": "/items"}])
    done = bench("no_such_module:app", "--requests", str(good), "--no-plot")
    assert (done.returncode, done.stderr.strip()) == (1, "Error: could not import module 'no_such_module'.")

    cases = {
        "not json": r"Error: --requests '.*' line 1: not JSON \(.*\)\.",
        '{"path": "/x"}': r'Error: --requests \'.*\' line 1: needs "method" and "path" strings\.',
        '{"method": "GET", "path": "x y"}': r"Error: --requests '.*' line 1: path 'x y' must start with / .*",
        '{"method": "GET", "path": "/", "headers": {"a": 1}}': r'Error: .* "headers" must be an object of strings\.',
        "\n": r"Error: --requests '.*' holds no request\.",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.jsonl"
        path.write_text(text + "\n")
        done = bench("examples.crud:app", "--app-dir", str(ROOT), "--requests", str(path), "--no-plot")
        assert done.returncode == 1, text
        assert re.fullmatch(message, done.stderr.strip()), (text, done.stderr)


def test_matplotlib_missing_is_one_error_line() -> None:
    prefix = [
        sys.executable, "-c",
        "import sys; sys.modules['matplotlib'] = None; from fastrapi_compat.tools.cli import main; sys.exit(main())",
    ]  # fmt: skip
    done = bench("examples.crud:app", "--app-dir", str(ROOT), python_prefix=prefix)
    assert done.returncode == 1
    assert done.stderr.strip().startswith(
        "Error: the plot needs matplotlib, from the bench extra: pip install '.[bench]'"
    )
    assert done.stderr.strip().endswith("(or --no-plot).")


def test_progress_bar_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet, shown = io.StringIO(), Terminal()
    for out in (quiet, shown):
        bar = ProgressBar(out, width=10)
        bar(0, 4, "round 1/1 GET /items (uvicorn)")
        bar(2, 4, "round 1/1 GET /items (engine)")
        bar(4, 4, "done")
    assert quiet.getvalue() == ""
    text = shown.getvalue()
    assert "\r[----------] 0/4 round 1/1 GET /items (uvicorn)" in text
    assert "\r[#####-----] 2/4 round 1/1 GET /items (engine)" in text
    assert re.search(r"\r\[#{10}\] 4/4 done *\n$", text)  # spaces wipe the longer line before it


def test_raw_request_framing() -> None:
    request = RawRequest(
        "POST",
        "/items?x=1",
        ((b"content-type", b"application/json"), (b"Content-Length", b"99"), (b"host", b"x")),
        b"{}",
    )
    assert request.encode(8123) == (
        b"POST /items?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8123\r\ncontent-type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    assert RawRequest("GET", "/", (), b"").encode(1) == b"GET / HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n"
    assert RawRequest("DELETE", "/a", (), b"").encode(1).endswith(b"Content-Length: 0\r\n\r\n")
