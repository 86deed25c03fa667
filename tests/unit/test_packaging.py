"""What the package promises a user who installs it: its metadata (classifiers, license file,
typing marker), the re-export of every public name of fastapi, and the ``check`` extra's error.

The re-export is checked by walking the installed fastapi: each name its ``__init__`` exports is
a name of ``fastrapi_compat`` (the same object; ``FastAPI`` is the engine's subclass), and each
of its public submodules imports through ``fastrapi_compat`` as fastapi's very module, except
``testclient``, which is the engine's.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import re
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path
from types import ModuleType

import fastapi
import pytest
import starlette.testclient

import fastrapi_compat
from fastrapi_compat.tools import cli

ROOT = Path(__file__).resolve().parents[2]
DIST = importlib.metadata.distribution("fastrapi-compat")


# -- metadata ------------------------------------------------------------------------------


def verified_pythons() -> list[str]:
    """The Python versions the README's table says were verified."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Supported Python versions", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| (3\.\d+) \|", section, re.MULTILINE)


def test_classifiers_name_each_verified_python_and_exist() -> None:
    trove_classifiers = pytest.importorskip("trove_classifiers")
    classifiers = DIST.metadata.get_all("Classifier") or []
    unknown = [c for c in classifiers if c not in trove_classifiers.classifiers]
    assert not unknown, f"not trove classifiers: {unknown}"
    pythons = [
        c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert pythons == verified_pythons() == ["3.10", "3.11", "3.12", "3.13"]
    for expected in ("Framework :: FastAPI", "Framework :: Pytest", "Typing :: Typed"):
        assert expected in classifiers
    assert DIST.metadata["Requires-Python"] == ">=3.10"
    assert DIST.metadata["License-Expression"] == "MIT"


def test_wheel_ships_the_license_and_the_typing_marker() -> None:
    files = {str(path) for path in DIST.files or []}
    licenses = [name for name in files if name.endswith("/LICENSE") and ".dist-info/" in name]
    assert licenses, sorted(files)
    shipped = Path(str(DIST.locate_file(licenses[0]))).read_text(encoding="utf-8")
    assert shipped == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert shipped.startswith("MIT License")
    assert "fastrapi_compat/py.typed" in files
    assert "fastrapi_compat/_native.pyi" in files


@pytest.mark.timeout(300)
def test_sdist_ships_the_license(tmp_path: Path) -> None:
    result = subprocess.run(
        ["maturin", "sdist", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr
    (sdist,) = tmp_path.glob("fastrapi_compat-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        top = names[0].split("/")[0]
        assert f"{top}/LICENSE" in names
        assert f"{top}/python/fastrapi_compat/py.typed" in names
        pkg_info = archive.extractfile(f"{top}/PKG-INFO")
        assert pkg_info is not None
        text = pkg_info.read().decode()
    assert "License-File: LICENSE" in text
    assert "Classifier: Typing :: Typed" in text


def test_every_public_entry_points_dependencies_are_declared() -> None:
    requires = DIST.metadata.get_all("Requires-Dist") or []

    def extra(name: str) -> set[str]:
        marker = re.compile(rf"""extra\s*==\s*["']{name}["']""")
        return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requires if marker.search(r)}

    core = {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requires if "extra ==" not in r}
    assert core == {"fastapi"}
    assert {"httpx", "schemathesis"} <= extra("check")  # check.py sends with httpx
    assert {"httpx", "websockets"} <= extra("testing")


# -- every public name of fastapi, through fastrapi_compat ---------------------------------


def _public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def fastapi_public_modules() -> list[str]:
    found = pkgutil.walk_packages(fastapi.__path__, "fastapi.", onerror=lambda name: None)
    return sorted(m.name for m in found if _public(m.name))


def test_fastapis_top_level_names_are_reexported() -> None:
    names = {
        name: value
        for name, value in vars(fastapi).items()
        if not name.startswith("_")
        and not (isinstance(value, ModuleType) and value.__name__.startswith("fastapi."))  # submodules: below
    }
    assert {"FastAPI", "Depends", "APIRouter", "status", "Request", "Response"} <= set(names)
    for name, value in names.items():
        ours = getattr(fastrapi_compat, name)
        if name == "FastAPI":
            assert issubclass(ours, value)
        else:
            assert ours is value, name
        assert name in fastrapi_compat.__all__, name
    assert fastrapi_compat.fastapi_version == fastapi.__version__


def test_fastapis_public_submodules_import_through_fastrapi_compat() -> None:
    modules = fastapi_public_modules()
    assert {"fastapi.responses", "fastapi.security", "fastapi.middleware.cors", "fastapi.encoders"} <= set(modules)
    checked = 0
    with warnings.catch_warnings():  # e.g. fastapi.middleware.wsgi's deprecation
        warnings.simplefilter("ignore")
        for name in modules:
            checked += _check_alias(name)
    assert checked >= 30


def _check_alias(name: str) -> int:
    """Checks ``fastrapi_compat``'s alias of fastapi's module ``name``; 1 when it was imported."""
    alias = "fastrapi_compat" + name[len("fastapi") :]
    parent, _, leaf = alias.rpartition(".")
    try:
        theirs = importlib.import_module(name)
    except ImportError as exc:  # an optional dependency of fastapi's (e.g. fastapi.cli)
        with pytest.raises(type(exc)):
            importlib.import_module(alias)
        return 0
    ours = importlib.import_module(alias)
    # `from fastrapi_compat.<parent> import <leaf>` and the `import` statement agree
    assert getattr(importlib.import_module(parent), leaf) is ours, alias
    if name == "fastapi.testclient":
        assert issubclass(ours.TestClient, starlette.testclient.TestClient)
        assert ours.TestClient.__module__.startswith("fastrapi_compat.")
    else:
        assert ours is theirs, alias
        assert ours.__name__ == name and ours.__spec__ is not None and ours.__spec__.name == name  # untouched
    return 1


def test_the_issues_imports(tmp_path: Path) -> None:
    """In a fresh interpreter, as a user's module would write them."""
    code = """
from fastrapi_compat import FastAPI, Depends, responses, status, security
from fastrapi_compat.middleware.cors import CORSMiddleware
from fastrapi_compat.responses import JSONResponse
from fastrapi_compat.security import OAuth2PasswordBearer
import fastrapi_compat.encoders
import fastapi, fastapi.middleware.cors, fastapi.responses
assert responses is fastapi.responses and JSONResponse is fastapi.responses.JSONResponse
assert CORSMiddleware is fastapi.middleware.cors.CORSMiddleware
assert status.HTTP_201_CREATED == 201
assert "responses" in dir(__import__("fastrapi_compat"))
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_unknown_names_fail_as_usual() -> None:
    with pytest.raises(AttributeError, match="module 'fastrapi_compat' has no attribute 'no_such_name'"):
        fastrapi_compat.no_such_name  # noqa: B018
    with pytest.raises(ModuleNotFoundError, match="fastrapi_compat.no_such_module"):
        importlib.import_module("fastrapi_compat.no_such_module")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("fastrapi_compat.middleware.no_such_module")
    with pytest.raises(ModuleNotFoundError):  # private modules of fastapi are not aliased
        importlib.import_module("fastrapi_compat._compat")


# -- the check extra -----------------------------------------------------------------------


@pytest.mark.skipif(sys.version_info < (3, 11), reason="on 3.10 check says it needs 3.11 (the test below)")
def test_check_without_its_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "httpx" else real(name, *a))
    message = cli.missing_for_check()
    assert message.startswith("check needs httpx, from the check extra: pip install '.[check]' in a clone")


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="check runs on 3.11+")
def test_check_on_python_310_says_it_needs_311(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fastrapi_compat", "check", "examples.hello:app", "--app-dir", str(ROOT)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("Error: check needs Python >= 3.11 (schemathesis 4); this is Python 3.10")
