"""The Python API as a Dask user meets it: the active client, URLs, spooled records, the JSON
report loaded back for rerun and DataFrames, and the lazy bag."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dask
import pandas as pd
import pytest
from conftest import run_cli, save_image
from dask_procs import DaskProcs, dask_cluster_procs
from distributed import Client, LocalCluster
from PIL import Image
from s3_server import EXPECTED, S3, upload_inputs
from s3_server import s3 as s3  # the module-scoped S3 server fixture

import pipeline
from pipeline.config import RunOptions
from pipeline.events import THROUGHPUT_TOPIC
from pipeline.records import SpooledRecords, options_from_json, options_to_json
from pipeline.report import RunReport


@pytest.fixture(scope="module")
def procs() -> Iterator[DaskProcs]:
    with dask_cluster_procs(nworkers=2) as running:
        yield running


def test_run_uses_the_active_client(procs: DaskProcs, tree: Path, tmp_path: Path) -> None:
    with Client(procs.address) as client:
        before = sum(e["ok"] for _, e in client.get_events(THROUGHPUT_TOPIC))
        report = pipeline.run(tree, tmp_path / "out")
        after = sum(e["ok"] for _, e in client.get_events(THROUGHPUT_TOPIC))
        assert len(client.scheduler_info()["workers"]) == 2
    assert report.counts["ok"] == 6, report.summary()
    assert after - before == 6  # the images went through this scheduler
    assert f":{procs.dashboard_port}/" in report.dashboard_link


def test_run_takes_urls_as_they_are(
    s3: S3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    upload_inputs(s3, "api-in", tmp_path)
    s3.fresh_bucket("api-out")
    with LocalCluster(  # started after the credentials are set: its workers inherit them
        n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    ) as cluster, Client(cluster) as client:  # fmt: skip
        report = pipeline.run("s3://api-in/shoot", "s3://api-out/web", client=client, max_size=256)
    assert report.counts["ok"] == len(EXPECTED), report.summary()
    assert s3.keys("api-out") == sorted(f"web/{out}" for out in EXPECTED.values())
    assert report.options is not None
    assert report.options.input == "s3://api-in/shoot"


def test_records_are_spooled_and_read_back(
    local_client: Client, tree: Path, tmp_path: Path
) -> None:
    (tree / "bad.png").write_bytes(b"not a png")
    report = pipeline.run(tree, tmp_path / "out", client=local_client, max_size=64)
    assert isinstance(report.records, SpooledRecords)
    rows = list(report.records)
    assert len(rows) == len(report.records) == 7
    assert sorted(r["status"] for r in rows).count("ok") == 6
    frame = report.to_frame()
    assert len(frame) == 7
    assert set(frame.loc[frame.status == "failed", "input"]) == {"bad.png"}
    assert report.failed_inputs == ["bad.png"]


def test_a_cli_report_loads_for_rerun_and_frames(
    local_client: Client, tree: Path, tmp_path: Path
) -> None:
    out, path = tmp_path / "out", tmp_path / "report.json"
    (tree / "bad.png").write_bytes(b"not a png")
    first = run_cli("run", "--input", tree, "--output", out, "--workers", "1",
                    "--max-size", "100", report=path)  # fmt: skip
    assert first.code == 1, first.stderr
    loaded = RunReport.from_json(path)
    assert loaded.counts == {"ok": 6, "skipped": 0, "failed": 1}
    assert loaded.options is not None
    assert loaded.options.settings.max_size == 100
    assert len(loaded.to_frame()) == 7
    assert loaded.failed_inputs == ["bad.png"]

    save_image(tree / "bad.png", (50, 40), fmt="PNG")  # the failed input, now fixed
    again = pipeline.rerun(path, client=local_client)
    assert RunReport.from_json(path).counts == loaded.counts  # the first report stays
    assert again.total == 1
    assert again.counts["ok"] == 1
    with Image.open(out / "bad.jpg") as image:
        assert max(image.size) == 50  # never upscaled; max_size 100 came from the report


def test_a_report_written_by_run_round_trips(
    local_client: Client, tree: Path, tmp_path: Path
) -> None:
    path = tmp_path / "r.json"
    perf, plot = tmp_path / "perf.html", tmp_path / "throughput.html"
    report = pipeline.run(tree, tmp_path / "out", client=local_client, quality=70, report=path,
                          performance_report=perf, throughput_report=plot)  # fmt: skip
    assert "<html" in perf.read_text(errors="replace").lower()
    assert "<html" in plot.read_text(errors="replace").lower()
    data = json.loads(path.read_text())
    assert set(data) == {"summary", "run", "files"}
    assert data["run"]["settings"]["quality"] == 70
    loaded = RunReport.from_json(path)
    assert loaded.counts == report.counts
    assert list(loaded.records or []) == list(report.records or [])
    assert loaded.options == report.options


def test_the_bag_is_lazy_and_composes(local_client: Client, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tree / "bad.png").write_bytes(b"not a png")
    records = pipeline.bag(tree, out, max_size=64, partition_size=2)
    assert records.npartitions == 4
    assert not list(out.rglob("*.jpg"))  # nothing done yet
    failed = records.filter(lambda r: r["status"] == "failed").pluck("input")
    counts = records.pluck("status").frequencies()
    failed_inputs, statuses = dask.compute(failed, counts)  # one pass over the images
    assert list(failed_inputs) == ["bad.png"]
    assert dict(statuses) == {"ok": 6, "failed": 1}
    assert len(list(out.rglob("*.jpg"))) == 6
    frame = pd.DataFrame(records.compute())  # the same run: its outputs are its own
    assert list(frame.columns[:4]) == ["input", "output", "status", "error"]
    assert sorted(frame.status) == ["failed"] + ["ok"] * 6


def test_the_report_keeps_no_credentials_of_a_url() -> None:
    opts = RunOptions(input="s3://AKIA:secret@photos/in", output=Path("/srv/web"))
    data = options_to_json(opts)
    assert data["input"] == "s3://photos/in"
    assert "secret" not in json.dumps(data)
    assert options_from_json(data) == RunOptions(input="s3://photos/in", output=Path("/srv/web"))
