"""fastapi's public submodules, imported through ``fastrapi_compat``.

``from fastrapi_compat import responses``, ``import fastrapi_compat.middleware.cors`` and
``from fastrapi_compat.security import OAuth2PasswordBearer`` give fastapi's own module objects
(``fastrapi_compat.responses is fastapi.responses``), so code whose ``fastapi`` imports were
rewritten to ``fastrapi_compat`` keeps working, for whichever submodules the installed FastAPI
has. A name of fastrapi_compat's own (``testclient``, ``testing``, ``tools``, ...) is never an
alias: ``fastrapi_compat.testclient`` is the engine's test client.

The finder below answers only for ``fastrapi_compat.<name>...`` where ``fastapi.<name>...``
is a public module and ``<name>`` is not one of ours; the module it "loads" puts fastapi's
module in its place in ``sys.modules`` (the import system then returns that one), so nothing is
imported twice and fastapi's modules are left untouched.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

PACKAGE = "fastrapi_compat"
_PREFIX = PACKAGE + "."


def _own(name: str) -> bool:
    """Whether ``fastrapi_compat.<name>`` is a module of this package."""
    package = sys.modules[PACKAGE]
    return importlib.machinery.PathFinder.find_spec(_PREFIX + name, list(package.__path__)) is not None


class FastAPIAliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``fastrapi_compat.X`` to ``fastapi.X`` for fastapi's public modules."""

    def __init__(self) -> None:
        self._own: dict[str, bool] = {}

    def target(self, fullname: str) -> str | None:
        """The fastapi module ``fullname`` stands for, or None."""
        if not fullname.startswith(_PREFIX):
            return None
        rest = fullname[len(_PREFIX) :]
        parts = rest.split(".")
        if any(part.startswith("_") for part in parts):
            return None
        own = self._own.get(parts[0])
        if own is None:
            own = self._own[parts[0]] = _own(parts[0])
        return None if own else "fastapi." + rest

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        name = self.target(fullname)
        if name is None:
            return None
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):  # a parent of it is not a package
            return None
        if spec is None:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=spec.submodule_search_locations is not None)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a placeholder, replaced by fastapi's module in exec_module

    def exec_module(self, module: ModuleType) -> None:
        name = self.target(module.__name__)
        assert name is not None
        sys.modules[module.__name__] = importlib.import_module(name)


FINDER = FastAPIAliasFinder()


def install() -> None:
    """Puts the finder first on ``sys.meta_path`` (once): below an alias the path-based finder
    would otherwise load fastapi's files a second time under our name."""
    if not any(finder is FINDER for finder in sys.meta_path):
        sys.meta_path.insert(0, FINDER)


def submodule(name: str) -> ModuleType:
    """``fastrapi_compat.<name>`` for the package's ``__getattr__``: fastapi's public submodule
    (imported on first use), or AttributeError."""
    if FINDER.target(_PREFIX + name) is not None:
        try:
            return importlib.import_module(_PREFIX + name)
        except ModuleNotFoundError as exc:
            if exc.name not in (_PREFIX + name, "fastapi." + name):
                raise
    raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")


def public_submodules() -> list[str]:
    """The names of fastapi's public top-level submodules (for ``dir(fastrapi_compat)``)."""
    import fastapi

    return sorted(m.name for m in pkgutil.iter_modules(fastapi.__path__) if not m.name.startswith("_"))
