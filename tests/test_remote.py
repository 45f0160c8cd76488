"""The CLI submitting to an existing cluster: real `dask scheduler` + `dask worker` processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from dask_procs import DaskProcs, dask_cluster_procs
from distributed import Client
from PIL import Image


@pytest.fixture(scope="module")
def procs() -> Iterator[DaskProcs]:
    with dask_cluster_procs(nworkers=2) as running:
        yield running


def test_scheduler_flag_then_env_var(procs: DaskProcs, tree: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out", tmp_path / "r.json"
    first = run_cli(
        "run", "--input", tree, "--output", out, "--scheduler", procs.address, report=report
    )
    assert first.code == 0, first.stderr + procs.log_text()
    assert first.report is not None
    assert first.report["summary"]["ok"] == 6
    for row in first.report["files"]:
        with Image.open(out / row["output"]) as im:
            assert (im.format, im.mode) == ("JPEG", "RGB")
    with Client(procs.address) as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2  # nothing was started beside the existing cluster
        events = client.get_events("pipeline-throughput")
        assert {e["worker"] for _, e in events} <= set(workers)
        assert sum(e["ok"] for _, e in events) >= 6

    second = run_cli(
        "run",
        "--input",
        tree,
        "--output",
        out,
        report=report,
        env={"DASK_SCHEDULER_ADDRESS": procs.address},
    )
    assert second.code == 0, second.stderr
    assert second.report is not None
    assert second.report["summary"]["skipped"] == 6


def test_remote_run_with_a_bad_file_exits_1(procs: DaskProcs, tree: Path, tmp_path: Path) -> None:
    (tree / "zero.png").write_bytes(b"")
    result = run_cli(
        "run",
        "--input",
        tree,
        "--output",
        tmp_path / "o",
        "--scheduler",
        procs.address,
        report=tmp_path / "r.json",
    )
    assert result.code == 1
    rows = result.by_input()
    assert rows["zero.png"]["error"] == "empty file"
    assert sum(r["status"] == "ok" for r in rows.values()) == 6
