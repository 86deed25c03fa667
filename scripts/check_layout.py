#!/usr/bin/env python3
"""Check the repository's layout: no import cycle among the modules of the Python package
(python/fastrapi_compat/) or of the Rust crate (native/), and no source file over 800 lines.

    python3 scripts/check_layout.py [--root PATH]

Exits 1 with one line per problem, or 0 with a one-line summary. Standard library only.

What counts as a dependency (an edge of the module graph):

Python: every ``import fastrapi_compat.x``, ``from fastrapi_compat.x import y``,
``from fastrapi_compat import x`` and relative import (``from . import x``, ``from .x import y``),
wherever it is: at module level, inside functions, under ``if TYPE_CHECKING:``. A package's
``__init__.py`` is the node of the package. ``from p import name`` is an edge to the module
``p.name`` when there is one, else to ``p``; ``import a.b.c`` is an edge to the longest prefix
that is a module. Extension modules known only by a stub or a compiled file (``_native.pyi``,
``_native*.so``) are nodes without edges. Imports by string (``importlib.import_module``) are
not seen.

Rust: each ``.rs`` file is a node; ``lib.rs`` is the crate root (``crate``) and ``foo/mod.rs``
is ``foo``. Edges come from paths that start with ``crate::`` or ``super::`` (``super`` is
resolved from the module the path is written in, so inside an inline ``mod tests { ... }``
``super::`` is the file itself), in ``use`` declarations and in code, and from paths in code
that start with a name a ``use crate::...`` or ``use super::...`` declaration of the same file
bound to a module (``use crate::asgi;`` then ``asgi::http::handle``). A path is an edge to the
deepest module it names. ``mod x;`` declarations, ``self::`` paths and other bare paths (a
module's own children, or another crate) are not edges: a module may use what it declares.
Inline modules belong to their file's node; ``#[cfg(test)] mod tests`` blocks are counted like
any other code. Comments and string literals are ignored; ``#[path]`` attributes and macros
that build paths are not understood.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "fastrapi_compat"
PACKAGE_DIR = "python"  # maturin's python-source: the package is python/fastrapi_compat
CRATE_DIR = "native"
MAX_LINES = 800

Graph = dict[str, set[str]]


# --------------------------------------------------------------------------------------------
# Shared: line counts and cycles


def count_lines(path: Path) -> int:
    """The number of lines of `path`, as an editor shows them (a last line without a newline
    counts)."""
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the strongly connected components, each sorted, in a
    stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return sorted(components)


MAX_CYCLES = 50  # per group of mutually dependent modules; the rest are counted


def elementary_cycles(graph: Graph, members: list[str], limit: int) -> tuple[list[list[str]], bool]:
    """The elementary cycles among `members` (a strongly connected group), each starting at its
    smallest module and ending where it starts, shortest first; at most `limit` of them, and
    whether there were more. A tangle with very many cycles is explored only so far: the
    shortest of those found are given."""
    found: list[list[str]] = []
    inside = set(members)
    budget = limit * 20  # cycles found before the search stops
    steps = 200_000  # and edges followed
    for start in members:
        allowed = {m for m in inside if m >= start}
        path = [start]
        on_path = {start}
        stack = [iter(sorted(graph.get(start, set()) & allowed))]
        while stack and len(found) < budget and steps > 0:
            steps -= 1
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                on_path.discard(path.pop())
            elif child == start:
                found.append([*path, start])
            elif child not in on_path:
                path.append(child)
                on_path.add(child)
                stack.append(iter(sorted(graph.get(child, set()) & allowed)))
    found.sort(key=lambda cycle: (len(cycle), cycle))
    return found[:limit], len(found) > limit or steps <= 0


def cycles(graph: Graph) -> list[tuple[list[list[str]], list[str], bool]]:
    """For each group of mutually dependent modules: its elementary cycles (see
    `elementary_cycles`), its modules, and whether some cycles were left out."""
    groups = []
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue  # self-edges are never recorded
        found, more = elementary_cycles(graph, component, MAX_CYCLES)
        groups.append((found, component, more))
    return groups


def describe(kind: str, group: tuple[list[list[str]], list[str], bool]) -> list[str]:
    """One problem line per cycle of `group`, and one more when some were left out."""
    found, component, more = group
    lines = [f"{kind} import cycle: {' -> '.join(cycle)}" for cycle in found]
    if more:
        lines.append(f"{kind} import cycles: more than {len(found)} among {', '.join(component)}")
    return lines


# --------------------------------------------------------------------------------------------
# Python


def python_modules(package_dir: Path) -> tuple[dict[str, Path], set[str]]:
    """The package's `.py` modules by dotted name, and the names of its modules without source
    (extension modules: a stub or a compiled file only)."""
    sources: dict[str, Path] = {}
    others: set[str] = set()
    base = package_dir.parent
    for path in sorted(package_dir.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        parts = list(path.relative_to(base).parts)
        name = path.name
        if name.endswith(".py"):
            parts[-1] = name[: -len(".py")]
            if parts[-1] == "__init__":
                parts.pop()
            sources[".".join(parts)] = path
        elif name.endswith((".pyi", ".so", ".pyd")):
            parts[-1] = name.split(".", 1)[0]
            if parts[-1] != "__init__":
                others.add(".".join(parts))
    return sources, others - set(sources)


def python_graph(package_dir: Path) -> tuple[Graph, list[str]]:
    """The import graph of the package (dotted names), and the files that do not parse."""
    sources, others = python_modules(package_dir)
    known = set(sources) | others
    graph: Graph = {name: set() for name in known}
    problems: list[str] = []

    def deepest(dotted: str) -> str | None:
        parts = dotted.split(".")
        while parts:
            candidate = ".".join(parts)
            if candidate in known:
                return candidate
            parts.pop()
        return None

    def inside(dotted: str) -> bool:
        return dotted == PACKAGE or dotted.startswith(PACKAGE + ".")

    for name, path in sources.items():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError) as error:
            problems.append(f"{path}: cannot parse: {error}")
            continue
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if inside(alias.name) and (target := deepest(alias.name)):
                        targets.add(target)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = package.split(".") if package else []
                    if node.level - 1 >= len(anchor):
                        continue  # beyond the top-level package
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                if not inside(base):
                    continue
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    if alias.name != "*" and submodule in known:
                        targets.add(submodule)
                    elif target := deepest(base):
                        targets.add(target)
        targets.discard(name)
        graph[name] = targets
    return graph, problems


# --------------------------------------------------------------------------------------------
# Rust

_IDENT = r"(?:r#)?[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(rf"(?P<ident>{_IDENT})|(?P<sep>::)|(?P<punct>[^\sA-Za-z0-9_])|(?P<other>\S)")
_RAW_STRING = re.compile(r'(?:br|cr|r)(#*)"')
_CHAR = re.compile(r"b?'(?:\\(?:x[0-9A-Fa-f]{2}|u\{[0-9A-Fa-f_]{1,8}\}|.)|[^\\'\n])'")


def strip_rust(source: str) -> str:
    """`source` with comments and string and character literals blanked (newlines kept)."""
    out: list[str] = []
    i, n = 0, len(source)

    def blank(text: str) -> str:
        return re.sub(r"[^\n]", " ", text)

    while i < n:
        c = source[i]
        if source.startswith("//", i):
            end = source.find("\n", i)
            end = n if end < 0 else end
            out.append(blank(source[i:end]))
            i = end
        elif source.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if source.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif source.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(source[i:j]))
            i = j
        elif (raw := _RAW_STRING.match(source, i)) and not (i and re.match(r"\w", source[i - 1])):
            closing = '"' + raw.group(1)
            end = source.find(closing, raw.end())
            end = n if end < 0 else end + len(closing)
            out.append(blank(source[i:end]))
            i = end
        elif c == '"' or (c in "bc" and source.startswith('"', i + 1) and not (i and re.match(r"\w", source[i - 1]))):
            j = source.index('"', i) + 1
            while j < n and source[j] != '"':
                j += 2 if source[j] == "\\" else 1
            out.append(blank(source[i : j + 1]))
            i = j + 1
        elif (c == "'" or (c == "b" and source.startswith("'", i + 1))) and (char := _CHAR.match(source, i)):
            out.append(blank(char.group()))
            i = char.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


@dataclass
class _Token:
    kind: str
    text: str
    module: tuple[str, ...]  # the (possibly inline) module the token is written in


def rust_tokens(source: str, module: tuple[str, ...]) -> list[_Token]:
    """The tokens of a stripped source, each with the module it is in (inline `mod x { }`
    blocks extend the file's module path)."""
    tokens: list[_Token] = []
    frames: list[str | None] = []  # one per open brace: the inline module it opens, or None
    pending_mod: str | None = None
    previous: list[str] = []
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup or "other"
        text = match.group()
        current = module + tuple(f for f in frames if f is not None)
        if text == "{":
            frames.append(pending_mod)
            pending_mod = None
        elif text == "}":
            if frames:
                frames.pop()
        elif kind == "ident" and len(previous) >= 1 and previous[-1] == "mod":
            pending_mod = text
        elif text == ";":
            pending_mod = None
        tokens.append(_Token(kind, text, current))
        previous = (previous + [text])[-2:]
    return tokens


def _use_paths(tokens: list[_Token]) -> list[tuple[list[str], str | None]]:
    """The paths a `use` tree names, each with the name it binds (`None` for a glob)."""
    paths: list[tuple[list[str], str | None]] = []
    position = 0

    def tree(prefix: list[str]) -> None:
        nonlocal position
        segments = list(prefix)
        while position < len(tokens):
            token = tokens[position]
            if token.text == "{":
                position += 1
                while position < len(tokens) and tokens[position].text != "}":
                    tree(segments)
                    if position < len(tokens) and tokens[position].text == ",":
                        position += 1
                position += 1
                return
            if token.text == "*":
                position += 1
                paths.append((segments, None))
                return
            if token.kind == "ident":
                position += 1
                if not (token.text == "self" and segments):  # `a::{self}` names `a` itself
                    segments = [*segments, token.text]
                if position < len(tokens) and tokens[position].text == "::":
                    position += 1
                    continue
                binding = segments[-1] if segments else None
                if position < len(tokens) and tokens[position].text == "as":
                    binding = tokens[position + 1].text if position + 1 < len(tokens) else None
                    position += 2
                paths.append((segments, binding))
                return
            if token.text == "::":
                position += 1  # a leading `::` (another crate)
                segments = [*segments, "::"]
                continue
            position += 1
            return

    while position < len(tokens):
        before = position
        tree([])
        if position < len(tokens) and tokens[position].text == ",":
            position += 1
        if position == before:
            position += 1
    return paths


def _absolute(segments: list[str], module: tuple[str, ...]) -> list[str] | None:
    """`segments` (a path starting with `crate` or `super`) as a path from the crate root, or
    `None` when it starts otherwise (or climbs above the root)."""
    if not segments:
        return None
    if segments[0] in ("crate", "$crate"):
        return segments[1:]
    if segments[0] == "super":
        base = list(module)
        rest = list(segments)
        while rest and rest[0] == "super":
            if not base:
                return None
            base.pop()
            rest.pop(0)
        return base + rest
    return None


@dataclass
class RustCrate:
    files: dict[tuple[str, ...], Path] = field(default_factory=dict)

    def node(self, path: tuple[str, ...]) -> str:
        return "::".join(path) if path else "crate"

    def deepest(self, path: list[str]) -> tuple[str, ...]:
        """The deepest file module that `path` (from the crate root) names."""
        for length in range(len(path), -1, -1):
            if tuple(path[:length]) in self.files:
                return tuple(path[:length])
        return ()


def rust_files(crate_dir: Path) -> RustCrate:
    crate = RustCrate()
    for path in sorted(crate_dir.rglob("*.rs")):
        parts = list(path.relative_to(crate_dir).with_suffix("").parts)
        if parts == ["lib"]:
            parts = []
        elif parts[-1] == "mod":
            parts.pop()
        crate.files[tuple(parts)] = path
    return crate


def rust_graph(crate_dir: Path) -> Graph:
    """The module graph of the crate under `crate_dir` (module paths; `crate` is the root)."""
    crate = rust_files(crate_dir)
    graph: Graph = {crate.node(module): set() for module in crate.files}
    for module, path in crate.files.items():
        tokens = rust_tokens(strip_rust(path.read_text(encoding="utf-8")), module)
        targets: set[tuple[str, ...]] = set()
        aliases: dict[str, list[str]] = {}
        in_use: list[bool] = [False] * len(tokens)
        # `use` declarations: their paths, and the names they bind to modules.
        i = 0
        while i < len(tokens):
            if tokens[i].text == "use" and tokens[i].kind == "ident":
                end = i + 1
                while end < len(tokens) and tokens[end].text != ";":
                    end += 1
                for j in range(i, min(end + 1, len(tokens))):
                    in_use[j] = True
                for segments, binding in _use_paths(tokens[i + 1 : end]):
                    absolute = _absolute(segments, tokens[i].module)
                    if absolute is None:
                        continue
                    target = crate.deepest(absolute)
                    targets.add(target)
                    if binding and binding != "_" and tuple(absolute) in crate.files:
                        aliases[binding] = absolute
                i = end
            i += 1
        # Paths in code: `crate::...`, `super::...`, or a bound module name followed by `::`.
        for i, token in enumerate(tokens):
            if in_use[i] or token.kind != "ident":
                continue
            if i and tokens[i - 1].text in ("::", "."):
                continue  # not the start of a path
            if i + 1 >= len(tokens) or tokens[i + 1].text != "::":
                continue
            segments = [token.text]
            j = i + 1
            while j + 1 < len(tokens) and tokens[j].text == "::" and tokens[j + 1].kind == "ident":
                segments.append(tokens[j + 1].text)
                j += 2
            if token.text in aliases:
                resolved: list[str] | None = aliases[token.text] + segments[1:]
            else:
                resolved = _absolute(segments, token.module)
            if resolved is not None:
                targets.add(crate.deepest(resolved))
        targets.discard(module)
        graph[crate.node(module)] = {crate.node(target) for target in targets}
    return graph


# --------------------------------------------------------------------------------------------


def check(root: Path) -> tuple[list[str], str]:
    """The problems found under `root`, and a summary for when there are none."""
    problems: list[str] = []
    package_dir = root / PACKAGE_DIR / PACKAGE
    crate_dir = root / CRATE_DIR
    py_graph: Graph = {}
    rs_graph: Graph = {}
    if package_dir.is_dir():
        py_graph, parse_problems = python_graph(package_dir)
        problems += parse_problems
        for group in cycles(py_graph):
            problems += describe("python", group)
    else:
        problems.append(f"{package_dir}: no such directory")
    if crate_dir.is_dir():
        rs_graph = rust_graph(crate_dir)
        for group in cycles(rs_graph):
            problems += describe("rust", group)
    else:
        problems.append(f"{crate_dir}: no such directory")
    files = sorted(package_dir.rglob("*.py")) if package_dir.is_dir() else []
    files += sorted(crate_dir.rglob("*.rs")) if crate_dir.is_dir() else []
    for path in files:
        if "__pycache__" in path.parts:
            continue
        lines = count_lines(path)
        if lines > MAX_LINES:
            shown = path.relative_to(root) if path.is_relative_to(root) else path
            problems.append(f"{shown}: {lines} lines (at most {MAX_LINES})")
    summary = (
        f"layout ok: {len(py_graph)} Python modules ({sum(map(len, py_graph.values()))} imports) "
        f"and {len(rs_graph)} Rust modules ({sum(map(len, rs_graph.values()))} dependencies), "
        f"no import cycle, no file over {MAX_LINES} lines"
    )
    return problems, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the repository root (default: the parent of scripts/)",
    )
    args = parser.parse_args(argv)
    problems, summary = check(args.root.resolve())
    if problems:
        print("\n".join(problems))
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
