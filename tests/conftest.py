"""Shared fixtures: generated images, a clean environment, CLI runs as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline.samples import scene

REPO = Path(__file__).resolve().parents[1]
PIPELINE_ENV = ("INPUT_DIR", "OUTPUT_DIR", "MAX_SIZE", "JPEG_QUALITY", "DASK_SCHEDULER_ADDRESS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pipeline setting leaks in from the developer's shell."""
    for name in PIPELINE_ENV:
        monkeypatch.delenv(name, raising=False)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None

    def by_input(self) -> dict[str, dict[str, Any]]:
        assert self.report is not None, self.stderr
        return {row["input"]: row for row in self.report["files"]}


def run_cli(
    *args: str | Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    report: Path | None = None,
    timeout: float = 180,
) -> CliResult:
    """Run `python -m pipeline` as a real process and collect its outcome."""
    full_env = {k: v for k, v in os.environ.items() if k not in PIPELINE_ENV}
    full_env.update(env or {})
    argv = [sys.executable, "-m", "pipeline", *map(str, args)]
    if report is not None:
        argv += ["--report", str(report)]
    proc = subprocess.run(
        argv, env=full_env, cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout
    )
    data = json.loads(report.read_text()) if report is not None and report.exists() else None
    return CliResult(proc.returncode, proc.stdout, proc.stderr, data)


def save_image(
    path: Path,
    size: tuple[int, int] = (64, 48),
    *,
    fmt: str | None = None,
    mode: str = "RGB",
    orientation: int = 1,
    seed: int = 0,
) -> Path:
    """Write a small photo-like image (any format Pillow writes) with an optional EXIF tag."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = scene(*size, seed=seed)
    if mode != "RGB":
        image = image.convert(mode)
    kwargs: dict[str, Any] = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    image.save(path, fmt, **kwargs)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """A small mixed input tree: nested folders, every format, a stem collision."""
    root = tmp_path / "in"
    save_image(root / "a.jpg", (320, 240))
    save_image(root / "a.png", (200, 300), seed=1)
    save_image(root / "B.JPEG", (100, 80), seed=2)
    save_image(root / "sub" / "c.webp", (640, 480), seed=3)
    save_image(root / "sub" / "deeper" / "d.tif", (300, 200), seed=4)
    save_image(root / "sub" / "e.bmp", (120, 90), seed=5)
    (root / "notes.txt").write_text("not an image, and not an image extension either")
    return root
