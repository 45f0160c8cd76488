"""The CLI end to end on a real LocalCluster (started by the CLI itself), as a user runs it."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

import psutil
import pytest
from conftest import run_cli
from PIL import Image

EXPECTED_OUTPUTS = ["B.jpg", "a.jpg.jpg", "a.png.jpg", "sub/c.jpg", "sub/deeper/d.jpg", "sub/e.jpg"]


def outputs_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def quality_tables(q: int) -> dict[int, list[int]]:
    buf = BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG", quality=q)
    with Image.open(buf) as im:
        return dict(im.quantization)  # type: ignore[attr-defined]


def test_run_skip_and_overwrite(tree: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out", tmp_path / "report.json"
    args = ["run", "--input", tree, "--output", out, "--max-size", "200", "--workers", "2"]
    first = run_cli(*args, report=report)
    assert first.code == 0, first.stderr
    assert outputs_under(out) == EXPECTED_OUTPUTS
    assert first.report is not None
    assert first.report["summary"]["total"] == 6
    assert first.report["summary"]["ok"] == 6
    assert first.report["summary"]["images_per_second"] > 0
    rows = first.by_input()
    assert rows["a.png"]["output"] == "a.png.jpg"
    assert "a.jpg" in rows["a.png"]["note"]
    assert rows["sub/c.webp"] == rows["sub/c.webp"] | {
        "output": "sub/c.jpg",
        "status": "ok",
        "error": None,
    }
    for name in EXPECTED_OUTPUTS:
        with Image.open(out / name) as im:
            assert im.format == "JPEG"
            assert im.mode == "RGB"
            assert max(im.size) <= 200
    with Image.open(out / "sub" / "c.jpg") as im:
        assert im.size == (200, 150)
        assert dict(im.quantization) == quality_tables(85)  # type: ignore[attr-defined]
    with Image.open(out / "B.jpg") as im:
        assert im.size == (100, 80)  # never upscaled
    assert "done: 6 images: 6 ok" in first.stdout

    again = run_cli(*args, report=report)
    assert again.code == 0, again.stderr
    assert again.report is not None
    assert again.report["summary"]["skipped"] == 6

    redo = run_cli(*args, "--overwrite", report=report)
    assert redo.code == 0, redo.stderr
    assert redo.report is not None
    assert redo.report["summary"]["ok"] == 6
    assert outputs_under(out) == EXPECTED_OUTPUTS


def test_bad_file_among_good_ones(tree: Path, tmp_path: Path) -> None:
    (tree / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tree / "fake.jpg").write_text("just text")
    out, report = tmp_path / "out", tmp_path / "r.json"
    result = run_cli("run", "--input", tree, "--output", out, "--workers", "2", report=report)
    assert result.code == 1
    assert outputs_under(out) == EXPECTED_OUTPUTS
    rows = result.by_input()
    assert rows["fake.jpg"]["status"] == "failed"
    assert rows["fake.jpg"]["output"] is None
    assert rows["fake.jpg"]["error"] == "not an image"
    assert rows["sub/broken.png"]["status"] == "failed"
    assert "failed: fake.jpg: not an image" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_vars_configure_the_run(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "env-out"
    env = {"INPUT_DIR": str(tree), "OUTPUT_DIR": str(out), "MAX_SIZE": "64", "JPEG_QUALITY": "40"}
    result = run_cli("run", "--workers", "1", env=env)
    assert result.code == 0, result.stderr
    with Image.open(out / "sub" / "c.jpg") as im:
        assert im.size == (64, 48)
        assert dict(im.quantization) == quality_tables(40)  # type: ignore[attr-defined]
    flag_beats_env = run_cli(
        "run", "--workers", "1", "--max-size", "32", "--output", tmp_path / "flag-out", env=env
    )
    assert flag_beats_env.code == 0
    with Image.open(tmp_path / "flag-out" / "sub" / "c.jpg") as im:
        assert im.size == (32, 24)


def test_output_inside_input_is_not_reprocessed(tree: Path) -> None:
    first = run_cli("run", "--input", tree, "--output", tree / "web", "--workers", "1")
    assert first.code == 0, first.stderr
    second = run_cli("run", "--input", tree, "--output", tree / "web", "--workers", "1")
    assert "done: 6 images: 0 ok, 6 skipped" in second.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--input", "/nonexistent/folder"], "input folder not found: /nonexistent/folder"),
        (["run", "--quality", "101"], "--quality must be an integer from 1 to 95"),
        (["run", "--max-size", "huge"], "invalid int value: 'huge'"),
        (["run", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_unreachable_scheduler_exits_2_quickly(tree: Path, tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_cli(
        "run",
        "--input",
        tree,
        "--output",
        tmp_path / "o",
        "--scheduler",
        address,
        "--connect-timeout",
        "3",
    )
    assert result.code == 2
    assert time.monotonic() - started < 30
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]]
    assert f"cannot reach Dask scheduler at {address}" in lines[0]
    assert not (tmp_path / "o").exists() or outputs_under(tmp_path / "o") == []


def test_samples_command_writes_a_realistic_mix(tmp_path: Path) -> None:
    result = run_cli("samples", "--output", tmp_path / "s", "--scale", "0.05")
    assert result.code == 0, result.stderr
    names = outputs_under(tmp_path / "s")
    assert {Path(n).suffix.lower() for n in names} >= {".jpg", ".png", ".webp", ".tiff", ".bmp"}
    assert any("/" in n for n in names)
    oriented = 0
    for name in names:
        with Image.open(tmp_path / "s" / name) as im:
            oriented += im.getexif().get(0x0112, 1) != 1
    assert oriented >= 4


def test_no_process_of_a_run_outlives_it(tree: Path, tmp_path: Path) -> None:
    """The scheduler, the workers and multiprocessing's helper all end with the command.

    The command runs in a session of its own, which every process it starts inherits; once it
    has exited, no process of that session may be left (not even a zombie nobody reaps).
    multiprocessing's resource tracker (started for the Nanny's queues) ends by itself once
    the command's end of its pipe closes, which is at exit: it gets a few seconds for that.
    """
    argv = [sys.executable, "-m", "pipeline", "run", "--input", str(tree),
            "--output", str(tmp_path / "out"), "--workers", "2", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(argv, start_new_session=True, stderr=subprocess.PIPE)
    session = proc.pid
    seen: set[int] = set()
    while proc.poll() is None:  # the run's processes, while it runs
        for p in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if p.pid != session and os.getsid(p.pid) == session:
                    seen.add(p.pid)
        time.sleep(0.05)
    _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert len(seen) >= 2  # at least the two workers
    deadline = time.monotonic() + 5
    while (left := _session_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == []


def _session_processes(session: int) -> list[dict[str, object]]:
    left = []
    for p in psutil.process_iter(["pid", "ppid", "status", "cmdline"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(p.pid) == session:
                left.append(p.info)
    return left


# -- conventions: help, version, dry run, messages and progress ----------------------------------


def test_bare_command_prints_the_help() -> None:
    result = run_cli()
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("usage: python -m pipeline")
    assert "run" in result.stdout
    assert "samples" in result.stdout
    assert "examples:" in result.stdout
    assert result.stderr == ""


def test_version_is_the_installed_one() -> None:
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.code == 0, result.stderr
    assert result.stdout == f"pipeline {version('pipeline')}\n"


@pytest.mark.parametrize(
    ("command", "opening"),
    [("run", "Fit every image under the input folder"), ("samples", "Write generated")],
)
def test_each_command_has_a_description_and_examples(command: str, opening: str) -> None:
    result = run_cli(command, "--help")
    assert result.code == 0, result.stderr
    description = result.stdout.split("\n\n")[1]
    assert description.startswith(opening)
    assert f"python -m pipeline {command} " in result.stdout.split("examples:")[1]


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file and folder under root with its mtime and content: any write shows."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, b"" if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


def test_dry_run_counts_new_stale_and_up_to_date_and_writes_nothing(
    tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_cli("run", "--input", tree, "--output", out, "--max-size", "200", "--workers", "1")
    assert first.code == 0, first.stderr
    os.utime(tree / "sub" / "c.webp", ns=(1, 1))  # changed source: stale
    (out / "sub" / "e.jpg").unlink()  # gone: new
    (tree / "new.png").write_bytes((tree / "a.png").read_bytes())  # new
    (out / "new.jpg").write_bytes(b"someone else's file")  # in the way: foreign
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = snapshot(tmp_path)
    report = tmp_path / "never" / "report.json"
    argv = ["run", "--input", tree, "--output", out, "--max-size", "200", "--dry-run"]
    dry = run_cli(*argv, "--report", report, cwd=cwd)
    assert dry.code == 0, dry.stderr
    assert snapshot(tmp_path) == before  # no output, report, cache or temp file anywhere
    lines = dry.stdout.splitlines()
    assert lines[0] == f"dry run: 7 inputs in {tree} -> {out}"
    counts = {line.split(None, 1)[1][:11].strip(): int(line.split()[0]) for line in lines
              if line.strip()[:1].isdigit()}  # fmt: skip
    assert counts == {"new": 1, "stale": 1, "up to date": 4, "foreign": 1}
    assert "    sub/e.bmp -> sub/e.jpg" in dry.stdout
    assert "    new.png -> new.jpg" in dry.stdout
    other_settings = run_cli(*argv[:-1], "--max-size", "300", "--dry-run", "-v")
    assert other_settings.code == 0, other_settings.stderr
    assert "         5  stale" in other_settings.stdout
    assert snapshot(tmp_path) == before


def test_dry_run_creates_no_output_folder(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    result = run_cli("run", "--input", tree, "--output", out, "--dry-run", "--workers", "1")
    assert result.code == 0, result.stderr
    assert "         6  new" in result.stdout
    assert not (tmp_path / "a").exists()
    missing = run_cli("run", "--input", tmp_path / "nope", "--output", out, "--dry-run")
    assert missing.code == 2
    assert missing.stderr.strip().count("\n") == 0
    same = run_cli("run", "--input", tree, "--output", tree, "--dry-run")
    assert same.code == 2
    assert "the output is the input folder" in same.stderr
    negative = run_cli("run", "--input", tree, "--dry-run", "--progress-every", "-1")
    assert negative.code == 2
    assert "--progress-every" in negative.stderr


def test_progress_lines_when_stdout_is_not_a_terminal(tree: Path, tmp_path: Path) -> None:
    """stdout is a pipe here, as in docker compose or SLURM logs: plain lines, no bar."""
    argv = ["run", "--input", tree, "--output", tmp_path / "out", "--workers", "1"]
    result = run_cli(*argv, "--progress-every", "0.1")
    assert result.code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("progress: ")]
    assert lines, result.stdout  # the cluster's start alone takes longer than 0.1 s
    pattern = r"progress: \d/6 images \(\d+%\), \d ok, \d skipped, 0 failed, [\d.]+ images/s, "
    assert all(re.match(pattern + r"ETA (\d+ s|-), \d+ s elapsed$", line) for line in lines), lines
    assert "\r" not in result.stdout + result.stderr
    quiet = run_cli(*argv, "--overwrite", "-q", "--progress-every", "0.1")
    assert quiet.code == 0, quiet.stderr
    assert quiet.stdout == ""


def test_log_level_flags() -> None:
    from pipeline import logs

    assert logs.level_for(verbose=0, explicit=None) is None
    assert logs.level_for(verbose=1, explicit=None) == "INFO"
    assert logs.level_for(verbose=2, explicit=None) == "DEBUG"
    assert logs.level_for(verbose=2, explicit="warning") == "WARNING"
    bad = run_cli("run", "--log-level", "loud", "--dry-run")
    assert bad.code == 2
    assert "--log-level" in bad.stderr


def test_log_level_reaches_dask_in_this_process_and_in_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import logging

    from pipeline import logs

    monkeypatch.setenv(logs.DASK_ENV, "warning")  # restored (or removed) after the test
    saved = {name: logging.getLogger(name).level for name in ("pipeline", *logs.DASK_LOGGERS)}
    try:
        logs.configure("DEBUG")
        assert logging.getLogger("pipeline").getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("distributed.worker").getEffectiveLevel() == logging.DEBUG
        assert os.environ[logs.DASK_ENV] == "debug"
        code = "import distributed, logging; print(logging.getLogger('distributed').level)"
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert child.stdout.strip() == str(logging.DEBUG), child.stderr
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
