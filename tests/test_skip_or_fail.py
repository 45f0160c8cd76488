"""The rule for tests that need a system tool or root: skipped with the reason, failed in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

NEEDS_A_MISSING_TOOL = """
from conftest import require_tool

def test_needs_it():
    require_tool("no-such-tool-for-pipeline-tests", hint="install it with care")
"""


def run_pytest_on(test_file: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(REPO / "tests")
    argv = [sys.executable, "-m", "pytest", "-rsf", "-p", "no:cacheprovider", str(test_file)]
    argv += ["--rootdir", str(test_file.parent), "-c", os.devnull]
    return subprocess.run(argv, cwd=test_file.parent, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("ci", [None, "false"])
def test_a_missing_tool_skips_with_the_reason_outside_ci(tmp_path: Path, ci: str | None) -> None:
    test_file = tmp_path / "test_tool.py"
    test_file.write_text(NEEDS_A_MISSING_TOOL)
    result = run_pytest_on(test_file, ci)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert "no-such-tool-for-pipeline-tests not found: install it with care" in result.stdout


@pytest.mark.parametrize("ci", ["true"])
def test_a_missing_tool_fails_in_ci(tmp_path: Path, ci: str) -> None:
    test_file = tmp_path / "test_tool.py"
    test_file.write_text(NEEDS_A_MISSING_TOOL)
    result = run_pytest_on(test_file, ci)
    assert result.returncode == 1, result.stdout
    assert "1 failed" in result.stdout
    assert "(CI is set: this test must run)" in result.stdout
