"""What the migration guide must list, read from the code and the test suite: every reason
``explain`` (and the test client's summary) can give for the ASGI tier or a Python middleware,
as a regex per reason, and every strict xfail of the suite."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "python" / "fastrapi_compat"

#: module -> the functions whose strings are reasons shown by ``explain`` (route, middleware
#: and miss reasons) or by the test client's summary (``live.py``, ``dispatch.py``).
REASON_FUNCTIONS = {
    "plan/compiler.py": ("app_reason", "under_reason", "route_reason", "_layer_reason", "compile_app"),
    "plan/internals.py": ("_custom_router", "misses_reason", "request_handler", "starlette_handler", "leaves", "_walk"),
    "plan/middleware.py": ("layer", "_cors", "_gzip", "_trusted_host", "_https_redirect", "_session"),
    "plan/live.py": ("fallback_reason", "find"),
    "serve/dispatch.py": ("native_plan",),
}
#: module -> module-level constants that are reasons in the test client's summary.
REASON_CONSTANTS = {
    "serve/dispatch.py": ("HANDOFF_WITH_NATIVE_MIDDLEWARE",),
    "testing/loopback.py": ("NOT_REACHED", "TIER_OFF"),
}
#: Names a reason is assigned to inside those functions.
REASON_TARGETS = ("reason", "reason_for_app", "why_not", "declined")


@dataclass(frozen=True)
class Reason:
    where: str  # module:function
    text: str  # the reason with each variable part shown as {...}
    pattern: str  # a regex matching the reason with its variable parts filled in


def _pattern(node: ast.expr) -> tuple[str, str] | None:
    """``(text, regex)`` of a string literal, f-string or literal + anything; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        text, regex = "", ""
        for part in node.values:
            if isinstance(part, ast.Constant):
                text += str(part.value)
                regex += re.escape(str(part.value))
            else:
                text += "{...}"
                regex += ".+?"
        return text, regex
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _pattern(node.left)
    return None


def _strings(node: ast.expr) -> list[ast.expr]:
    """``node``, or each operand of ``a or b or "c"``."""
    return list(node.values) if isinstance(node, ast.BoolOp) else [node]


def _candidates(function: ast.AST) -> list[ast.expr]:
    found: list[ast.expr] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Return) and node.value is not None:
            value = node.value
            found.extend(value.elts if isinstance(value, ast.Tuple) else [value])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "Layer" and len(node.args) >= 3:
                found.append(node.args[2])
            elif node.func.id == "Leaf" and len(node.args) >= 4:
                found.append(node.args[3])
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                if name in REASON_TARGETS:
                    found.append(node.value)
    return found


def explain_reasons() -> list[Reason]:
    reasons: dict[str, Reason] = {}
    for module, names in REASON_CONSTANTS.items():
        tree = ast.parse((PACKAGE / module).read_text())
        values = {
            target.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for name in names:
            assert name in values, f"{module} has no constant {name} any more: update REASON_CONSTANTS"
            found = _pattern(values[name])
            assert found is not None, f"{module}:{name} is not a string"
            reasons.setdefault(found[1], Reason(f"{module}:{name}", found[0], found[1]))
    for module, names in REASON_FUNCTIONS.items():
        tree = ast.parse((PACKAGE / module).read_text())
        functions = {
            node.name: node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        for name in names:
            assert name in functions, f"{module} has no function {name} any more: update REASON_FUNCTIONS"
            for candidate in (c for node in _candidates(functions[name]) for c in _strings(node)):
                found = _pattern(candidate)
                # a reason has words: a bare name ("cors", "route_app") is a spec's or a kind's
                if found is None or " " not in found[0]:
                    continue
                text, regex = found
                reasons.setdefault(regex, Reason(f"{module}:{name}", text, regex))
    return list(reasons.values())


def strict_xfails(paths: list[str]) -> list[dict[str, str]]:
    """``{"id", "reason"}`` of every strict xfail pytest collects under ``paths`` (an xfail
    without ``strict=`` is strict when the ini's ``xfail_strict`` is, as this project's is)."""
    with tempfile.TemporaryDirectory() as tmp:
        plugin = Path(tmp) / "strict_xfails_dump.py"
        out = Path(tmp) / "xfails.json"
        plugin.write_text(
            "import json\n"
            "def pytest_collection_modifyitems(session, config, items):\n"
            "    default = config.getini('xfail_strict')\n"
            "    found = [{'id': item.nodeid, 'reason': mark.kwargs.get('reason', '')}\n"
            "             for item in items for mark in item.iter_markers('xfail')\n"
            "             if mark.kwargs.get('strict', default)]\n"
            f"    open({str(out)!r}, 'w').write(json.dumps(found))\n"
        )
        env = {**os.environ, "PYTHONPATH": tmp + os.pathsep + os.environ.get("PYTHONPATH", "")}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
             "-p", "no:cacheprovider", "-p", "strict_xfails_dump", "--collect-only", "-q", *paths],
            cwd=tmp, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert out.exists(), f"collection failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        found: list[dict[str, str]] = json.loads(out.read_text())
    return found
