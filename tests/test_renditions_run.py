"""Renditions end to end: the CLI over the sample photos (six files per input, a second run
skips them all, an added size writes only its files), and the Python API and bag agreeing."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from conftest import run_cli, save_image
from distributed import Client
from PIL import Image
from s3_server import INPUTS, S3, upload_inputs
from s3_server import s3 as s3  # the module-scoped S3 server fixture

import pipeline
from pipeline.report import RunReport
from pipeline.transform import fit_size

PHOTOS = Path(__file__).parent / "data" / "photos"
FORMATS = {"jpg": "JPEG", "webp": "WEBP", "avif": "AVIF"}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """The sample photos, one sideways (EXIF orientation 6) and one smaller than every size."""
    root = tmp_path / "in"
    shutil.copytree(PHOTOS, root, ignore=shutil.ignore_patterns("*.md"))
    save_image(root / "sideways.jpg", (2400, 1200), orientation=6)
    save_image(root / "small" / "tiny.png", (300, 200))
    return root


def upright_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        w, h = im.size
        return (h, w) if im.getexif().get(0x0112, 1) >= 5 else (w, h)


def test_six_files_per_input_then_a_second_run_skips_all(photos: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out", tmp_path / "report.json"
    args = ("run", "--input", photos, "--output", out, "--workers", "1",
            "--sizes", "1920,640", "--format", "jpeg,webp,avif")  # fmt: skip
    first = run_cli(*args, report=report)
    assert first.code == 0, first.stderr
    rows = first.by_input()
    assert len(rows) == 11
    assert all(r["status"] == "ok" for r in rows.values())
    for name, row in rows.items():
        source = upright_size(photos / name)
        stem = name.rsplit(".", 1)[0]
        assert row["output"] == f"{stem}.jpg"
        assert (row["width"], row["height"]) == fit_size(*source, 1920)
        assert [(o["path"], o["format"], o["size"]) for o in row["outputs"]] == [
            (f"{stem}{tail}.{ext}", fmt, size)
            for tail, size in (("", 1920), ("-640", 640))
            for ext, fmt in (("jpg", "jpeg"), ("webp", "webp"), ("avif", "avif"))
        ]
        for entry in row["outputs"]:
            path = out / entry["path"]
            assert entry["bytes"] == path.stat().st_size
            with Image.open(path) as im:
                im.load()
                assert im.format == FORMATS[path.suffix[1:]]
                assert im.size == (entry["width"], entry["height"])
                assert im.size == fit_size(*source, entry["size"])  # upright, never upscaled
                assert im.getexif().get(0x0112, 1) == 1
    assert sum(r["bytes_written"] for r in rows.values()) == sum(
        p.stat().st_size for p in out.rglob("*") if p.is_file()
    )
    assert len([p for p in out.rglob("*") if p.is_file()]) == 66
    second = run_cli(*args, report=report)
    assert second.code == 0, second.stderr
    assert {r["status"] for r in second.by_input().values()} == {"skipped"}
    assert "11 skipped" in second.stdout + second.stderr


def test_adding_a_size_writes_only_the_new_files(photos: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out", tmp_path / "report.json"
    base = ("run", "--input", photos, "--output", out, "--workers", "1")
    assert run_cli(*base).code == 0  # the default: one 1920 px JPEG each
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    added = run_cli(*base, "--sizes", "1920,800", report=report)
    assert added.code == 0, added.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before  # left alone: still up to date
    new = {p for p in out.rglob("*") if p.is_file()} - set(before)
    assert sorted(str(p.relative_to(out)) for p in new) == sorted(
        f"{name.rsplit('.', 1)[0]}-800.jpg" for name in added.by_input()
    )
    for row in added.by_input().values():
        assert [o["status"] for o in row["outputs"]] == ["skipped", "written"]


@pytest.mark.parametrize(
    "args",
    [("--webp-quality", "0"), ("--avif-quality", "101"), ("--format", "gif"), ("--sizes", "big")],
)
def test_bad_rendition_options_are_usage_errors(args: tuple[str, str], tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    result = run_cli("run", "--input", tmp_path / "in", "--output", tmp_path / "out", *args)
    assert result.code == 2
    assert args[0] in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_run_and_bag_take_the_same_settings(local_client: Client, tmp_path: Path) -> None:
    root = tmp_path / "in"
    save_image(root / "a.png", (900, 600))
    save_image(root / "a-300.png", (500, 400), seed=1)  # its name is a rendition of a.png's
    settings = {"sizes": [600, 300], "formats": "webp,jpeg", "webp_quality": 70}
    report = pipeline.run(root, tmp_path / "api", keep_records=True, **settings)
    bagged = pipeline.bag(root, tmp_path / "bag", **settings).compute()
    assert report.counts["ok"] == 2
    api_rows = sorted(report.records or [], key=lambda r: r["input"])
    bag_rows = sorted(bagged, key=lambda r: r["input"])
    assert [r["outputs"] for r in api_rows] == [r["outputs"] for r in bag_rows]
    paths = [o["path"] for r in api_rows for o in r["outputs"]]
    assert paths == ["a-300.webp", "a-300.jpg", "a-300-300.webp", "a-300-300.jpg",
                     "a-2.webp", "a-2.jpg", "a-2-300.webp", "a-2-300.jpg"]  # fmt: skip
    for path in paths:
        assert (tmp_path / "api" / path).read_bytes() == (tmp_path / "bag" / path).read_bytes()
    frame = report.to_frame()
    assert "outputs" in frame.columns
    assert len(frame.outputs[0]) == 4


def test_the_report_round_trips_with_its_outputs(local_client: Client, tmp_path: Path) -> None:
    root = tmp_path / "in"
    save_image(root / "a.jpg", (400, 300))
    path = tmp_path / "report.json"
    pipeline.run(root, tmp_path / "out", sizes="300,100", formats="avif", report=path)
    loaded = RunReport.from_json(path)
    assert loaded.options is not None
    assert loaded.options.settings.sizes == (300, 100)
    assert loaded.options.settings.formats == ("avif",)
    (row,) = list(loaded.records or [])
    assert [(o["path"], o["width"], o["height"]) for o in row["outputs"]] == [
        ("a.avif", 300, 225), ("a-100.avif", 100, 75),
    ]  # fmt: skip
    time.sleep(0.05)  # a later run, also where the file system keeps no run id (FS_CLOCK_SLACK_NS)
    again = pipeline.rerun(loaded, failed_only=False)
    assert again.counts["skipped"] == 1


def test_every_rendition_on_an_object_store_then_skips(s3: S3, tmp_path: Path) -> None:
    """The marker of each format lies in the head an object store's up-to-date check reads."""
    upload_inputs(s3, "srcset-in", tmp_path)
    s3.fresh_bucket("srcset-out")
    args = ["run", "--input", "s3://srcset-in/shoot", "--output", "s3://srcset-out/web",
            "--workers", "1", "--sizes", "200,100", "--format", "jpeg,webp,avif"]  # fmt: skip
    first = run_cli(*args, env=s3.env, report=tmp_path / "r.json")
    assert first.code == 0, first.stderr
    assert len(s3.keys("srcset-out")) == 6 * len(INPUTS)
    for key in s3.keys("srcset-out"):
        image = s3.image("srcset-out", key)
        assert image.format == FORMATS[key.rsplit(".", 1)[1]]
        assert max(image.size) == (100 if "-100." in key else 200)
    second = run_cli(*args, env=s3.env, report=tmp_path / "r2.json")
    assert second.code == 0, second.stderr
    assert second.report is not None
    assert second.report["summary"]["skipped"] == len(INPUTS)
