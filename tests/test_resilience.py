"""Nothing lost: dead workers, poisonous and hanging images, interrupts, full or read-only disks.

Real processes and real signals: the CLI as a subprocess, a real `dask scheduler` + `dask worker
--nworkers 2`, SIGKILL/SIGINT/SIGTERM, and small tmpfs mounts for full and read-only disks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from conftest import PIPELINE_ENV, REPO, require_root, require_tool, run_cli
from dask_procs import dask_cluster_procs
from distributed import Client
from PIL import Image

from pipeline.samples import scene
from tests import fault_injection


def photo_bytes(size: tuple[int, int] = (640, 480), seed: int = 0) -> bytes:
    buf = BytesIO()
    scene(*size, seed=seed).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_inputs(root: Path, count: int, size: tuple[int, int] = (640, 480)) -> list[str]:
    """`count` JPEGs in a few sub-folders (same pixels, distinct files)."""
    data = photo_bytes(size)
    names = [f"set{i % 4}/img{i:04d}.jpg" for i in range(count)]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return names


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_clean_outputs(root: Path, expected: int) -> None:
    """Exactly `expected` files, every one a complete JPEG, and no hidden temp files."""
    files = [p for p in root.rglob("*") if p.is_file()]
    assert [p.name for p in files if p.name.startswith(".")] == []
    assert len(files) == expected
    for path in files:
        with Image.open(path) as im:
            im.load()  # raises on a truncated file
            assert im.format == "JPEG"


def cli_process(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in PIPELINE_ENV}
    full_env.update(env or {})
    argv = [sys.executable, "-m", "pipeline", "run", *map(str, args)]
    return subprocess.Popen(
        argv, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_files(root: Path, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if root.exists() and sum(1 for p in root.rglob("*.jpg")) >= at_least:
            return
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {at_least} outputs after {timeout} s")


def test_worker_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    names = make_inputs(tmp_path / "in", 500)
    out, report = tmp_path / "out", tmp_path / "r.json"
    with dask_cluster_procs(nworkers=2) as procs, Client(procs.address) as client:
        proc = cli_process("--input", tmp_path / "in", "--output", out, "--report", report,
                           "--scheduler", procs.address)  # fmt: skip
        wait_for_files(out, 40)
        victim = next(iter(client.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr + procs.log_text()
        assert len(client.scheduler_info()["workers"]) == 2  # the nanny restarted it
    assert_clean_outputs(out, 500)
    import json

    rows = json.loads(report.read_text())["files"]
    assert sorted(r["input"] for r in rows) == sorted(names)  # each input exactly once
    assert {r["status"] for r in rows} == {"ok"}


def test_poisonous_image_is_isolated(tmp_path: Path) -> None:
    names = make_inputs(tmp_path / "in", 24, size=(120, 90))
    poison = names[5]
    result = run_cli("run", "--input", tmp_path / "in", "--output", tmp_path / "out",
                     "--workers", "2", report=tmp_path / "r.json",
                     env=fault_injection.env(crash=poison), timeout=240)  # fmt: skip
    assert result.code == 1, result.stderr
    rows = result.by_input()
    assert rows[poison]["status"] == "failed"
    assert rows[poison]["error"] == "worker died while processing this image"
    assert {n: r["status"] for n, r in rows.items() if n != poison} == dict.fromkeys(
        set(names) - {poison}, "ok"
    )
    assert_clean_outputs(tmp_path / "out", 23)


def test_hanging_image_is_reported_not_waited_for(tmp_path: Path) -> None:
    names = make_inputs(tmp_path / "in", 12, size=(120, 90))
    started = time.monotonic()
    result = run_cli("run", "--input", tmp_path / "in", "--output", tmp_path / "out",
                     "--workers", "2", "--timeout", "2", report=tmp_path / "r.json",
                     env=fault_injection.env(hang=names[3]))  # fmt: skip
    assert time.monotonic() - started < 60
    assert result.code == 1, result.stderr
    assert result.by_input()[names[3]]["error"] == "timed out after 2 s"
    assert_clean_outputs(tmp_path / "out", 11)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path: Path, sig: int) -> None:
    make_inputs(tmp_path / "in", 300, size=(800, 600))
    reference = tmp_path / "reference"
    full = run_cli("run", "--input", tmp_path / "in", "--output", reference, "--workers", "2")
    assert full.code == 0, full.stderr

    out, report = tmp_path / "out", tmp_path / "r.json"
    proc = cli_process("--input", tmp_path / "in", "--output", out, "--workers", "2",
                       "--report", report)  # fmt: skip
    wait_for_files(out, 20)
    proc.send_signal(sig)
    sent = time.monotonic()
    proc.communicate(timeout=60)
    assert time.monotonic() - sent < 15, "the run must stop promptly"
    time.sleep(1)  # let a killed client's workers notice and exit
    assert [p.name for p in out.rglob(".*")] == []
    done = len(list(out.rglob("*.jpg")))
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130
        import json

        summary = json.loads(report.read_text())["summary"]
        assert summary["interrupted"] is True
        assert summary["ok"] == done  # the report tells exactly what was written
    assert 0 < done < 300

    resumed = run_cli("run", "--input", tmp_path / "in", "--output", out, "--workers", "2")
    assert resumed.code == 0, resumed.stderr
    assert f"{300 - done} ok, {done} skipped" in resumed.stdout
    assert tree_digest(out) == tree_digest(reference)


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A small tmpfs mounted at `path` (needs root, which CI has)."""
    require_root("mounting a tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_disk_full_stops_the_run_and_accounts_for_every_input(tmp_path: Path) -> None:
    names = make_inputs(tmp_path / "in", 60, size=(1200, 900))
    with tmpfs(tmp_path / "small", "400k") as out:
        result = run_cli("run", "--input", tmp_path / "in", "--output", out, "--workers", "2",
                         "--max-size", "1200", report=tmp_path / "r.json")  # fmt: skip
        assert result.code == 1, result.stderr
        rows = result.by_input()
        assert sorted(rows) == sorted(names)  # every input accounted for
        ok = [n for n, r in rows.items() if r["status"] == "ok"]
        failed = [r["error"] for r in rows.values() if r["status"] == "failed"]
        assert 0 < len(ok) < 60
        assert all("output disk full" in e for e in failed), failed[:3]
        assert result.report is not None
        assert result.report["summary"]["stopped"] == "output disk full"
        assert "stopped (output disk full)" in result.stdout
        assert_clean_outputs(out, len(ok))


def test_read_only_output_folder_is_a_set_up_error(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 3, size=(64, 48))
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as out:
        result = run_cli("run", "--input", tmp_path / "in", "--output", out)
        assert result.code == 2
        assert result.stderr.strip() == (
            f"pipeline: error: output folder is not writable: {out} (Read-only file system)"
        )


def test_permission_denied_folder_fails_only_its_images(tmp_path: Path) -> None:
    """As an unprivileged user: one output sub-folder not writable (EACCES), the rest fine."""
    require_root("running the CLI as user nobody")
    setpriv = require_tool("setpriv", hint="it is in util-linux")
    as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    _require_nobody_can_run_the_checkout(as_nobody)
    base = Path("/tmp") / f"pipeline-eacces-{os.getpid()}"
    base.mkdir(mode=0o777)
    try:
        os.chmod(base, 0o777)
        make_inputs(base / "in", 8, size=(64, 48))
        (base / "out" / "set1").mkdir(parents=True)
        os.chmod(base / "out", 0o777)
        os.chmod(base / "out" / "set1", 0o555)  # owned by root: closed to others
        for path in base.rglob("*"):
            if path != base / "out" / "set1":
                os.chmod(path, 0o777 if path.is_dir() else 0o666)
        env = {k: v for k, v in os.environ.items() if k not in PIPELINE_ENV}
        env["HOME"] = str(base)
        argv = [*as_nobody, sys.executable, "-m", "pipeline", "run", "--input", str(base / "in"),
                "--output", str(base / "out"), "--workers", "1", "--report",
                str(base / "out" / "r.json")]  # fmt: skip
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr
        import json

        rows = {r["input"]: r for r in json.loads((base / "out" / "r.json").read_text())["files"]}
        denied = {n for n, r in rows.items() if r["status"] == "failed"}
        assert denied == {n for n in rows if n.startswith("set1/")}
        assert all("Permission denied" in rows[n]["error"] for n in denied)
        assert sum(r["status"] == "ok" for r in rows.values()) == 6
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def _require_nobody_can_run_the_checkout(as_nobody: list[str]) -> None:
    """The test runs this checkout's Python as nobody: every folder above it must let nobody in.

    A clone inside a private folder (a home directory with mode 700, say) does not: that is
    about where the checkout lives, not a defect, so the test is skipped with the reason.
    """
    probe = [*as_nobody, sys.executable, "-c", "import pipeline.cli"]
    proc = subprocess.run(probe, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"user nobody cannot run this checkout's Python ({REPO}): {last}")


def test_read_only_input_folder_is_only_read(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro-in", "8m") as source:
        names = make_inputs(source, 6, size=(64, 48))
        subprocess.run(["mount", "-o", "remount,ro", str(source)], check=True)
        before = tree_digest(source)
        result = run_cli("run", "--input", source, "--output", tmp_path / "out", "--workers", "1")
        assert result.code == 0, result.stderr
        assert tree_digest(source) == before
        assert len(list((tmp_path / "out").rglob("*.jpg"))) == len(names)
