"""Shared fixtures: generated images, a clean environment, CLI runs as real subprocesses, and
the skip-or-fail rule for tests that need a system tool or root (`require_tool`, `require_root`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from PIL import Image

from pipeline.samples import scene

REPO = Path(__file__).resolve().parents[1]
PIPELINE_ENV = ("INPUT_DIR", "OUTPUT_DIR", "MAX_SIZE", "JPEG_QUALITY", "DASK_SCHEDULER_ADDRESS")


def in_ci() -> bool:
    """True when the env var `CI` is set (to anything but empty, 0 or false), as CI systems do."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(reason: str) -> NoReturn:
    """A system tool or privilege a test needs is missing: skip with the reason, or fail in CI.

    CI installs every tool the suite needs (.ci/run), so there a missing one is a defect; on a
    developer's machine the rest of the suite still runs and `-ra` lists what was skipped.
    """
    if in_ci():
        pytest.fail(f"{reason} (CI is set: this test must run)", pytrace=False)
    pytest.skip(reason)


def require_tool(*names: str, hint: str) -> str:
    """The path of the first of `names` found on PATH; otherwise `missing()` with the hint."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    missing(f"{' or '.join(names)} not found: {hint}")


def require_root(what: str) -> None:
    """Skip (or fail in CI) unless the tests run as root, which `what` needs."""
    if os.geteuid() != 0:
        missing(f"{what} needs root (CI runs the suite as root)")


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


def reap(proc: subprocess.Popen[str]) -> None:
    """End a CLI started with Popen (killed if it still runs) and close its pipes."""
    proc.kill()
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


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


@pytest.fixture(scope="module")
def local_client() -> Iterator[Any]:
    """A real in-process LocalCluster (one worker process, two threads) and its Client, the
    active one, shared by a module's tests."""
    from distributed import Client, LocalCluster  # here: most tests start no cluster

    with LocalCluster(
        n_workers=1, threads_per_worker=2, host="127.0.0.1", dashboard_address=":0"
    ) as cluster, Client(cluster) as client:  # fmt: skip
        yield client


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
