"""The README is a user's guide that matches the CLI, and the repository stands on its own."""

from __future__ import annotations

import re
import subprocess

from conftest import REPO, run_cli

README = REPO / "README.md"


def test_readme_is_short() -> None:
    assert len(README.read_text().splitlines()) <= 250


def test_readme_documents_every_run_option() -> None:
    help_text = run_cli("run", "--help").stdout
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", help_text.split("options:")[1]))
    options -= {"--help"}
    readme = README.read_text()
    assert sorted(o for o in options if f"`{o}" not in readme and f" {o}`" not in readme) == []


def test_no_file_refers_to_a_folder_outside_the_repository() -> None:
    """Tests, documents, defaults and benchmarks read only what the repository holds."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    texts = [REPO / name for name in listed if name.endswith((".py", ".md", ".yml", ".toml"))]
    texts += [REPO / "Makefile", REPO / ".ci" / "run"]
    outside = re.compile(r"\.\./shared|parents\[1\]\.parent|ROOT\.parent")
    found = [
        str(p.relative_to(REPO)) for p in texts if p.exists() and outside.search(p.read_text())
    ]
    assert found == []
