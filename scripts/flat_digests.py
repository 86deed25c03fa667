"""Digests of the FastAPI functions a current-generation flat plan replicates, per release wheel.

    python scripts/flat_digests.py WHEEL_DIR [--json OUT]

For every ``fastapi-*.whl`` in WHEEL_DIR (``pip download --no-deps fastapi==X -d WHEEL_DIR``),
reads the functions listed in ``_CURRENT_FUNCTIONS`` of ``plan/flat_helpers.py`` from the wheel's
source without importing it (the lines ``inspect.getsource`` gives: from the first decorator to
the end of the body, following ``from ... import`` re-exports) and prints their digests as
``flat_helpers._digest`` computes them (sha256 of the source with all whitespace removed; ""
where the release has no such function), then the releases grouped by identical digest tuples,
newest first. What ``_CURRENT_DIGESTS`` admits is a tuple of a group whose release passed its own
FastAPI suite through the engine (``tests/fastapi_suite/run.py --fastapi-version X``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAT_HELPERS = ROOT / "python" / "fastrapi_compat" / "plan" / "flat_helpers.py"


def current_functions() -> list[tuple[str, str]]:
    """``_CURRENT_FUNCTIONS`` of flat_helpers.py, read as a literal (nothing imported)."""
    tree = ast.parse(FLAT_HELPERS.read_text())
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "_CURRENT_FUNCTIONS" and node.value is not None:  # type: ignore[union-attr]
            return [(module, name) for module, name in ast.literal_eval(node.value)]  # type: ignore[union-attr]
    raise SystemExit("error: _CURRENT_FUNCTIONS not found in flat_helpers.py")


def _module_source(wheel: zipfile.ZipFile, module: str) -> str | None:
    base = module.replace(".", "/")
    for path in (f"{base}.py", f"{base}/__init__.py"):
        try:
            return wheel.read(path).decode()
        except KeyError:
            continue
    return None


def _find(body: list[ast.stmt], name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None:
    found = None
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            found = node  # the last definition is the one the module keeps
        elif isinstance(node, ast.If) and found is None:  # ``if PYDANTIC_V2:`` (older releases)
            found = _find(node.body, name) or _find(node.orelse, name)
    return found


def function_source(wheel: zipfile.ZipFile, module: str, qualname: str, depth: int = 0) -> str | None:
    """The source ``inspect.getsource`` gives for ``module.qualname`` in this wheel (None: absent)."""
    text = _module_source(wheel, module)
    if text is None or depth > 5:
        return None
    tree = ast.parse(text)
    head, _, rest = qualname.partition(".")
    node = _find(tree.body, head)
    if node is None:  # a re-export: follow ``from X import head``
        for statement in tree.body:
            if isinstance(statement, ast.ImportFrom):
                for alias in statement.names:
                    if (alias.asname or alias.name) == head:
                        source_module = statement.module or ""
                        if statement.level:
                            package = module.split(".")
                            if f"{module.replace('.', '/')}/__init__.py" not in wheel.namelist():
                                package = package[:-1]  # a module: its package is the parent
                            package = package[: len(package) - (statement.level - 1)]
                            source_module = ".".join([*package, *([source_module] if source_module else [])])
                        name = alias.name + (f".{rest}" if rest else "")
                        return function_source(wheel, source_module, name, depth + 1)
        return None
    if rest:
        if not isinstance(node, ast.ClassDef):
            return None
        node = _find(node.body, rest)
        if node is None:
            return None
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = text.splitlines(keepends=True)
    return "".join(lines[first - 1 : node.end_lineno])


def digest(source: str | None) -> str:
    if source is None:
        return ""
    return hashlib.sha256("".join(source.split()).encode()).hexdigest()


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheels", type=Path, help="a folder of fastapi-X-py3-none-any.whl files")
    parser.add_argument("--json", type=Path, default=None, help="write {release: [digests]} here")
    args = parser.parse_args(argv)
    functions = current_functions()
    table: dict[str, list[str]] = {}
    for path in sorted(args.wheels.glob("fastapi-*.whl")):
        version = path.name.split("-")[1]
        with zipfile.ZipFile(path) as wheel:
            table[version] = [digest(function_source(wheel, module, name)) for module, name in functions]
    if not table:
        print(f"error: no fastapi wheels in {args.wheels}", file=sys.stderr)
        return 1
    groups: dict[tuple[str, ...], list[str]] = {}
    for version in sorted(table, key=_version_key, reverse=True):
        groups.setdefault(tuple(table[version]), []).append(version)
    for number, (digests, versions) in enumerate(groups.items(), 1):
        print(f"group {number}: {len(versions)} release(s): {', '.join(versions)}")
        for (module, name), value in zip(functions, digests, strict=True):
            print(f"    {module}.{name}: {value or '(absent)'}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
