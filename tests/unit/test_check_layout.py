"""scripts/check_layout.py: import cycles in the Python package and the Rust crate, and files
over 800 lines, on small trees made for each test (and the repository's own crate)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_layout.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_layout", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


check_layout = _load()


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


CLEAN = {
    "python/fastrapi_compat/__init__.py": "from fastrapi_compat.app import App\n",
    "python/fastrapi_compat/app.py": "from fastrapi_compat import _native\nfrom fastrapi_compat.core import util\n",
    "python/fastrapi_compat/_native.pyi": "class Engine: ...\n",
    "python/fastrapi_compat/core/__init__.py": "",
    "python/fastrapi_compat/core/util.py": "import json\nfrom . import base\n",
    "python/fastrapi_compat/core/base.py": "import fastrapi_compat._native\n",
    "native/lib.rs": "mod a;\nmod b;\nmod m;\nfn init() { a::init(); b::init(); }\n",
    "native/a.rs": (
        "//! Uses b.\nuse crate::b::Thing;\n"
        "// crate::m::child::f() in a comment is no edge\n"
        'const S: &str = "crate::m::child::f()";\n'
        "pub fn init() {}\n"
    ),
    "native/b.rs": "pub struct Thing;\npub fn init() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
    "native/m/mod.rs": "mod child;\npub use child::f;\npub fn helper<'a>(x: &'a str) -> char { 'x' }\n",
    "native/m/child.rs": "use super::helper;\nuse crate::b;\npub fn f() { b::init(); }\n",
}


def test_a_clean_tree_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(tmp_path, CLEAN)
    problems, summary = check_layout.check(root)
    assert problems == []
    assert check_layout.main(["--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("layout ok: 6 Python modules") and "5 Rust modules" in out, out


def test_the_graphs_of_the_clean_tree(tmp_path: Path) -> None:
    root = _tree(tmp_path, CLEAN)
    python, problems = check_layout.python_graph(root / "python" / "fastrapi_compat")
    assert problems == []
    assert python == {
        "fastrapi_compat": {"fastrapi_compat.app"},
        "fastrapi_compat.app": {"fastrapi_compat._native", "fastrapi_compat.core.util"},
        "fastrapi_compat._native": set(),
        "fastrapi_compat.core": set(),
        "fastrapi_compat.core.util": {"fastrapi_compat.core.base"},
        "fastrapi_compat.core.base": {"fastrapi_compat._native"},
    }
    rust = check_layout.rust_graph(root / "native")
    assert rust == {"crate": set(), "a": {"b"}, "b": set(), "m": set(), "m::child": {"m", "b"}}


def test_a_python_cycle_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(
        tmp_path,
        {
            **CLEAN,
            "python/fastrapi_compat/server.py": "from fastrapi_compat import cli\n",
            # Imports inside functions and under TYPE_CHECKING count.
            "python/fastrapi_compat/cli.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from .core.util import x\n"
                "def main():\n    from fastrapi_compat.server import run\n"
            ),
            "python/fastrapi_compat/core/util.py": "from ..cli import main\n",
        },
    )
    assert check_layout.main(["--root", str(root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "python import cycle: fastrapi_compat.cli -> fastrapi_compat.core.util -> fastrapi_compat.cli",
        "python import cycle: fastrapi_compat.cli -> fastrapi_compat.server -> fastrapi_compat.cli",
    ]


def test_a_rust_cycle_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(
        tmp_path,
        {
            **CLEAN,
            # b -> m (use) and m::child (a path through the name `use` bound), m -> a (use)
            "native/b.rs": "use crate::m;\npub struct Thing;\npub fn init() { m::child::f(); }\n",
            "native/m/mod.rs": "mod child;\nuse crate::a;\npub fn helper() { a::init(); }\n",
        },
    )
    assert check_layout.main(["--root", str(root)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "rust import cycle: b -> m::child -> b",
        "rust import cycle: a -> b -> m -> a",
        "rust import cycle: a -> b -> m::child -> m -> a",
    ]


def test_super_in_an_inline_module_is_its_file(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "native/lib.rs": "mod x;\nmod y;\n",
            "native/x.rs": "mod inner {\n    use super::super::y::T;\n    fn f() { super::g(); }\n}\nfn g() {}\n",
            "native/y.rs": "pub struct T;\nfn h() { let _ = crate::x::g as fn(); }\n",
        },
    )
    assert check_layout.rust_graph(root / "native") == {"crate": set(), "x": {"y"}, "y": {"x"}}


def test_a_file_over_800_lines_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(
        tmp_path,
        {
            **CLEAN,
            "python/fastrapi_compat/long.py": "x = 1\n" * 801,
            "python/fastrapi_compat/just.py": "x = 1\n" * 800,
            "native/long.rs": "\n" * 800 + "fn f() {}",  # the last line has no newline
        },
    )
    assert check_layout.main(["--root", str(root)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "python/fastrapi_compat/long.py: 801 lines (at most 800)",
        "native/long.rs: 801 lines (at most 800)",
    ]


def test_the_repositorys_crate_has_no_cycle_and_no_long_file() -> None:
    crate = SCRIPT.parents[1] / "native"
    graph = check_layout.rust_graph(crate)
    assert {"crate", "engine", "shared", "site", "asgi::http"} <= set(graph)
    assert check_layout.cycles(graph) == []
    long = [path.name for path in crate.rglob("*.rs") if check_layout.count_lines(path) > check_layout.MAX_LINES]
    assert long == []
