"""The pins stay in step: environment.yml (conda) and requirements/lock.txt (pip)."""

from __future__ import annotations

import re

from conftest import REPO

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
