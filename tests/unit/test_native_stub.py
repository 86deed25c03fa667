"""The `_native.pyi` stub must match the compiled module (mypy.stubtest)."""

import subprocess
import sys


def test_stub_matches_compiled_module(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "fastrapi_compat._native"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
