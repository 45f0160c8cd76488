from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from conftest import save_image
from PIL import Image

from pipeline import outputs
from pipeline.config import Settings
from pipeline.discover import Job
from pipeline.task import TaskContext, process_job, process_partition
from tests import fault_injection


def context(tmp_path: Path, **overrides: object) -> TaskContext:
    base: dict[str, object] = {
        "input_root": str(tmp_path / "in"),
        "output_root": str(tmp_path / "out"),
        "settings": Settings(max_size=100),
        "run_id": uuid.uuid4().hex[:12],  # each context is a run of its own
        "started_ns": time.time_ns(),
    }
    base.update(overrides)
    return TaskContext(**base)  # type: ignore[arg-type]


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_ok_writes_a_fitted_jpeg_with_its_marker(tmp_path: Path) -> None:
    save_image(tmp_path / "in" / "s" / "a.png", (400, 300))
    record = process_job(Job("s/a.png", "s/a.jpg"), context(tmp_path))
    assert record["status"] == "ok", record
    assert record["error"] is None
    out = tmp_path / "out" / "s" / "a.jpg"
    with Image.open(out) as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (100, 75))
    assert (record["width"], record["height"]) == (100, 75)
    assert record["bytes_written"] == out.stat().st_size
    assert outputs.read_marker(out) is not None


def test_up_to_date_output_is_skipped_then_redone_on_overwrite(tmp_path: Path) -> None:
    save_image(tmp_path / "in" / "a.jpg", (300, 200))
    job = Job("a.jpg", "a.jpg")
    assert process_job(job, context(tmp_path))["status"] == "ok"
    out = tmp_path / "out" / "a.jpg"
    first = out.stat()
    time.sleep(0.05)  # a later run, also where the file system keeps no run id (FS_CLOCK_SLACK_NS)
    assert process_job(job, context(tmp_path))["status"] == "skipped"
    assert (out.stat().st_ino, out.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    assert process_job(job, context(tmp_path, overwrite=True))["status"] == "ok"
    assert out.stat().st_ino != first.st_ino  # a new file renamed over the old one


@pytest.mark.parametrize("change", ["settings", "source"])
def test_output_is_redone_when_settings_or_source_change(tmp_path: Path, change: str) -> None:
    src = save_image(tmp_path / "in" / "a.jpg", (300, 200))
    job = Job("a.jpg", "a.jpg")
    assert process_job(job, context(tmp_path))["status"] == "ok"
    overrides: dict[str, object] = {}
    if change == "settings":
        overrides["settings"] = Settings(max_size=50)
    else:
        os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    record = process_job(job, context(tmp_path, **overrides))
    assert record["status"] == "ok"


def test_output_written_by_an_earlier_attempt_of_the_same_run_counts_as_ok(
    tmp_path: Path,
) -> None:
    save_image(tmp_path / "in" / "a.jpg", (300, 200))
    ctx = context(tmp_path)
    assert process_job(Job("a.jpg", "a.jpg"), ctx)["status"] == "ok"
    again = process_job(Job("a.jpg", "a.jpg"), ctx)  # Dask re-ran the partition
    assert again["status"] == "ok"
    assert again.get("resumed") is True


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"hello, not an image", "not an image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "truncated"),
    ],
)
def test_bad_input_is_a_failed_record_and_writes_nothing(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.jpg").write_bytes(content)
    record = process_job(Job("bad.jpg", "bad.jpg"), context(tmp_path))
    assert record["status"] == "failed"
    assert record["output"] is None
    assert reason in (record["error"] or "")
    assert not (tmp_path / "out").exists() or files_under(tmp_path / "out") == []


def test_missing_input_is_a_failed_record(tmp_path: Path) -> None:
    record = process_job(Job("gone.png", "gone.jpg"), context(tmp_path))
    assert record["status"] == "failed"
    assert "No such file" in (record["error"] or "")


def test_unwritable_target_fails_without_partial_file(tmp_path: Path) -> None:
    save_image(tmp_path / "in" / "sub" / "a.png", (200, 100))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").write_bytes(b"a file where a folder should be")
    record = process_job(Job("sub/a.png", "sub/a.jpg"), context(tmp_path))
    assert record["status"] == "failed"
    assert files_under(tmp_path / "out") == ["sub"]


def test_hanging_image_times_out(tmp_path: Path) -> None:
    save_image(tmp_path / "in" / "slow.png", (50, 50))
    save_image(tmp_path / "in" / "fast.png", (50, 50))
    undo = fault_injection.install({"slow.png": "hang"})
    started = time.monotonic()
    jobs = [Job("slow.png", "slow.jpg"), Job("fast.png", "fast.jpg")]
    try:
        records = process_partition(jobs, context(tmp_path, timeout=0.5))
    finally:
        undo()
    assert time.monotonic() - started < 10
    assert [r["status"] for r in records] == ["failed", "ok"]
    assert records[0]["error"] == "timed out after 0.5 s"
    assert files_under(tmp_path / "out") == ["fast.jpg"]


def test_partition_keeps_order_and_survives_bad_images(tmp_path: Path) -> None:
    save_image(tmp_path / "in" / "1.png", (50, 40))
    (tmp_path / "in" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    save_image(tmp_path / "in" / "3.webp", (40, 50))
    jobs = [Job(f"{i}.{e}", f"{i}.jpg") for i, e in [(1, "png"), (2, "png"), (3, "webp")]]
    records = process_partition(jobs, context(tmp_path))
    assert [(r["input"], r["status"]) for r in records] == [
        ("1.png", "ok"),
        ("2.png", "failed"),
        ("3.webp", "ok"),
    ]
