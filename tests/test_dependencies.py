"""The library's dependencies are ranges, and requirements/minimum.txt pins their floors."""

from __future__ import annotations

import re
import tomllib

from conftest import REPO


def _ranges() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {
        re.split(r"[<>=!~ \[]", dep, maxsplit=1)[0].lower(): dep for dep in project["dependencies"]
    }


def test_no_exact_pins_in_the_library_metadata() -> None:
    ranges = _ranges()
    assert {"dask", "distributed", "pillow"} <= set(ranges)
    assert not [dep for dep in ranges.values() if "==" in dep]
    assert all("<" in ranges[name] for name in ("dask", "distributed", "pillow"))


def test_the_minimum_versions_are_the_floors_of_the_ranges() -> None:
    pins = {}
    for line in (REPO / "requirements" / "minimum.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = version
    for name, dep in _ranges().items():
        floor = re.search(r">=\s*([0-9][0-9.]*)", dep)
        assert floor is not None, f"{dep} has no floor"
        assert pins.get(name) is not None, f"{name} is not pinned in requirements/minimum.txt"
        assert tuple(map(int, pins[name].split("."))) == tuple(
            map(int, (floor.group(1) + ".0.0").split(".")[: len(pins[name].split("."))])
        ), (name, pins[name], dep)
    distributed = tuple(map(int, pins["distributed"].split(".")))
    assert distributed > (2024, 8, 2)  # the security floor
