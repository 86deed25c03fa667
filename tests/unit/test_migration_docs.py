"""The migration guide (migration_docs/): it builds with ``mkdocs build --strict`` (pinned, in a
venv of its own: scripts/docs), has its pages and figures, lists every reason ``explain`` can
give and every strict xfail of the suite, and two of its pages render in headless Chromium
(Debian's package, installed by scripts/test) as something other than a blank page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "migration_docs" / "docs"
sys.path.insert(0, str(ROOT / "tests"))

from support import guide  # noqa: E402

# The first build installs the pinned requirements into a venv (scripts/docs), in whichever test
# comes first; collecting the strict xfails imports the differential tests.
pytestmark = pytest.mark.timeout(900)

PAGES = (
    "index",
    "migrate",
    "native",
    "middleware",
    "production",
    "differences",
    "versions",
    "faq",
    "architecture",
    "benchmarks",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [str(ROOT / "scripts" / "docs"), "--site-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    yield out


def test_builds_strictly_with_every_page(site: Path) -> None:
    for page in PAGES:
        assert (DOCS / f"{page}.md").exists(), page
        html = (site / f"{page}.html").read_text(encoding="utf-8")
        assert "<h1" in html, page
    nav = (ROOT / "migration_docs" / "mkdocs.yml").read_text()
    assert [m for m in re.findall(r":\s+(\w+)\.md", nav)] == list(PAGES)


def test_benchmark_figures_are_on_the_first_page(site: Path) -> None:
    text = (DOCS / "index.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\((img/[^)]+\.png)\)", text)
    assert len(figures) >= 2
    for figure in figures:
        data = (site / figure).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", figure


def test_every_explain_reason_is_listed() -> None:
    text = (DOCS / "native.md").read_text()
    reasons = guide.explain_reasons()
    assert len(reasons) > 40  # the reader of the code still finds them
    missing = [f"{r.where}: {r.text}" for r in reasons if not re.search(r.pattern, text)]
    assert not missing, "migration_docs/docs/native.md does not list:\n" + "\n".join(missing)


def test_every_strict_xfail_is_listed() -> None:
    files = sorted(
        str(path)
        for folder in ("unit", "differential", "reliability")
        for path in (ROOT / "tests" / folder).rglob("test_*.py")
        if "xfail" in path.read_text(encoding="utf-8")
    )
    found = guide.strict_xfails(files)
    assert found, "no strict xfail collected: the collection is broken"
    text = (DOCS / "differences.md").read_text()
    missing = [x["id"] for x in found if f"`{x['id']}`" not in text]
    assert not missing, "migration_docs/docs/differences.md does not name:\n" + "\n".join(missing)
    unexplained = {x["reason"] for x in found if x["reason"].replace("|", "\\|") not in text}
    assert not unexplained, "differences.md does not give these reasons:\n" + "\n".join(unexplained)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    _chromium() is None, reason="chromium is not installed (scripts/test installs Debian's when it can)"
)
@pytest.mark.parametrize("page", ["index", "native"])
def test_page_renders_in_headless_chromium(site: Path, page: str, tmp_path: Path) -> None:
    chromium = _chromium()
    assert chromium is not None
    url = (site / f"{page}.html").as_uri()
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1600"]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.sub(r"<script.*?</script>|<style.*?</style>", "", dom.stdout, flags=re.S)
    words = re.sub(r"<[^>]+>", " ", body).split()
    assert len(words) > 300, f"{page}: only {len(words)} words rendered"
    heading = {"index": "Why, and what to expect", "native": "What runs natively"}[page]
    assert heading in " ".join(words)

    shot = tmp_path / "page.png"
    done = subprocess.run(
        [*common, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    flat = pixels.reshape(-1, pixels.shape[-1])
    sample = {tuple(p) for p in flat[:: max(1, len(flat) // 20000)]}
    assert len(sample) > 20, f"{page}: the screenshot is nearly uniform ({len(sample)} colours)"
