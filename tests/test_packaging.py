"""The pins stay in step: environment.yml (conda), requirements/lock.txt (pip) and the image's
requirements/runtime.txt."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from conftest import REPO
from packaging.requirements import Requirement

CONDA_TO_PIP = {"dask-core": "dask"}


def norm(name: str) -> str:
    name = CONDA_TO_PIP.get(name, name)
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[norm(name)] = version.strip()
    return pins


def conda_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "environment.yml").read_text().splitlines():
        match = re.fullmatch(r"\s+- ([A-Za-z0-9_.-]+)=([0-9][^\s=]*)", line)
        if match and match.group(1) != "python":
            pins[norm(match.group(1))] = match.group(2)
    return pins


def test_conda_pins_equal_the_lock_file() -> None:
    conda, lock = conda_pins(), lock_pins()
    assert len(conda) >= 20
    mismatched = {name: (v, lock.get(name)) for name, v in conda.items() if lock.get(name) != v}
    assert mismatched == {}


def test_security_floors_hold() -> None:
    lock = lock_pins()
    assert tuple(map(int, lock["distributed"].split("."))) > (2024, 8, 2)
    assert tuple(map(int, lock["pillow"].split("."))) >= (12, 2, 0)
    assert lock["dask"] == lock["distributed"] == "2026.8.0"
    assert lock["bokeh"].startswith("3.")


def runtime_names() -> list[str]:
    text = (REPO / "requirements" / "runtime.txt").read_text()
    return [norm(line.strip()) for line in text.splitlines() if line.strip()[:1].isalnum()]


def test_the_image_requirements_are_the_runtime_dependencies() -> None:
    """requirements/runtime.txt: the package's dependencies, its s3 and heif extras, nothing
    else."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = [*project["dependencies"], *extras["s3"], *extras["heif"]]
    assert sorted(runtime_names()) == sorted(norm(Requirement(r).name) for r in declared)


def test_the_lock_pins_every_runtime_dependency_and_no_tool() -> None:
    """The image installs runtime.txt with lock.txt as constraints: every package it pulls in
    (followed through the installed metadata, which `make install` took from the lock) has a
    pin there, so the image gets exactly the lock's versions."""
    needed, todo = set(), list(runtime_names())
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(norm(requirement.name))
    lock = lock_pins()
    assert sorted(needed - set(lock)) == []
    assert {"pytest", "moto", "mypy", "ruff", "hypothesis", "ipykernel"} & needed == set()
    assert len(needed) > 20
