"""Clusters that change during a run: workers joining, adaptive scaling, none yet, retiring.

Real `dask scheduler` / `dask worker` processes and a real adaptive LocalCluster. The inputs
are names for one 4000 x 3000 PNG (hard links: real files, little disk), about 0.2 s of CPU
each, so a run lasts long enough for workers to come and go while it is under way.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from dask_procs import DaskProcs, dask_cluster_procs
from distributed import Client, LocalCluster

import pipeline
from pipeline.events import THROUGHPUT_TOPIC
from pipeline.samples import scene

COUNT = 150
FEW = 40
WAIT = 120.0  # seconds: upper bound for any one step on a loaded machine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("elastic-original") / "original.png"
    scene(4000, 3000, seed=7).save(path)
    return path


def _linked(original: Path, root: Path, count: int) -> Path:
    for i in range(count):
        target = root / f"part{i % 3}" / f"img_{i:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(original, target)
    return root


@pytest.fixture
def big_inputs(original: Path, tmp_path: Path) -> Path:
    return _linked(original, tmp_path / "in", COUNT)


@pytest.fixture
def few_inputs(original: Path, tmp_path: Path) -> Path:
    return _linked(original, tmp_path / "in", FEW)


def _start_cli(*args: str | Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", *map(str, args)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@contextlib.contextmanager
def _more_workers(procs: DaskProcs, n: int) -> Iterator[subprocess.Popen[bytes]]:
    """`dask worker --nworkers n` joining the running scheduler; stopped on exit."""
    log = procs.workdir / f"more-workers-{n}.log"
    procs.logs.append(log)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", "--scheduler-file",
             str(procs.workdir / "scheduler.json"), "--host", "127.0.0.1", "--nworkers", str(n),
             "--nthreads", "1", "--dashboard-address", "127.0.0.1:0"],
            cwd=procs.workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(30)


def _wait_until(check: object, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _outputs(out: Path) -> list[Path]:
    return sorted(out.rglob("*.jpg")) if out.exists() else []


def _check_each_input_once(report: dict, out: Path, count: int) -> None:
    inputs = [row["input"] for row in report["files"]]
    assert len(inputs) == len(set(inputs)) == count
    assert {row["status"] for row in report["files"]} == {"ok"}, report["summary"]
    assert len(_outputs(out)) == count
    assert not [p for p in out.rglob("*") if p.is_file() and not p.name.endswith(".jpg")]


def test_workers_that_join_mid_run_all_get_images(big_inputs: Path, tmp_path: Path) -> None:
    out, report_path = tmp_path / "out", tmp_path / "report.json"
    with dask_cluster_procs(nworkers=1) as procs:
        cli = _start_cli("--input", big_inputs, "--output", out, "--scheduler", procs.address,
                         "--report", report_path, log=tmp_path / "cli.log")  # fmt: skip
        try:
            _wait_until(lambda: _outputs(out), "the first output")
            with _more_workers(procs, 5):
                assert cli.wait(WAIT * 2) == 0, (tmp_path / "cli.log").read_text()
                with Client(procs.address) as client:
                    events = [e for _, e in client.get_events(THROUGHPUT_TOPIC)]
                    workers = set(client.scheduler_info()["workers"])
        finally:
            if cli.poll() is None:
                cli.kill()
    per_worker: dict[str, int] = {}
    for event in events:
        per_worker[event["worker"]] = per_worker.get(event["worker"], 0) + event["ok"]
    assert len(workers) == 6
    assert set(per_worker) == workers, per_worker  # each of the six processed images
    assert all(n > 0 for n in per_worker.values()), per_worker
    assert sum(per_worker.values()) == COUNT  # none processed twice
    _check_each_input_once(json.loads(report_path.read_text()), out, COUNT)


def test_an_adaptive_cluster_scales_up_for_the_run(big_inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen: list[int] = []
    with LocalCluster(
        n_workers=0, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    ) as cluster, Client(cluster) as client:  # fmt: skip
        cluster.adapt(minimum=0, maximum=2, interval="200ms")
        report = pipeline.run(
            big_inputs, out, client=client,
            progress=lambda _: seen.append(len(cluster.scheduler.workers)),
        )  # fmt: skip
    assert report.counts["ok"] == COUNT, report.summary()
    assert max(seen) == 2, seen


def test_no_workers_waits_then_gives_up_with_exit_2(few_inputs: Path, tmp_path: Path) -> None:
    with dask_cluster_procs(nworkers=1) as procs:
        with Client(procs.address) as client:
            client.retire_workers(list(client.scheduler_info()["workers"]))
            _wait_until(lambda: not client.scheduler_info()["workers"], "no workers")
        started = time.monotonic()
        result = run_cli("run", "--input", few_inputs, "--output", tmp_path / "out",
                         "--scheduler", procs.address, "--connect-timeout", "3")  # fmt: skip
    assert result.code == 2, result.stderr
    assert time.monotonic() - started >= 3
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("pipeline: waiting for workers to join tcp://127.0.0.1:")
    assert lines[-1].startswith("pipeline: error: no workers joined the Dask scheduler")
    assert "Traceback" not in result.stderr


def test_a_worker_that_comes_later_gets_the_run(few_inputs: Path, tmp_path: Path) -> None:
    out, report_path = tmp_path / "out", tmp_path / "report.json"
    with dask_cluster_procs(nworkers=1) as procs:
        with Client(procs.address) as client:
            client.retire_workers(list(client.scheduler_info()["workers"]))
            _wait_until(lambda: not client.scheduler_info()["workers"], "no workers")
        log = tmp_path / "cli.log"
        cli = _start_cli("--input", few_inputs, "--output", out, "--scheduler", procs.address,
                         "--report", report_path, "--connect-timeout", "300", log=log)  # fmt: skip
        try:
            _wait_until(lambda: "waiting for workers" in log.read_text(), "the waiting line")
            with _more_workers(procs, 2):
                assert cli.wait(WAIT * 2) == 0, log.read_text()
        finally:
            if cli.poll() is None:
                cli.kill()
    _check_each_input_once(json.loads(report_path.read_text()), out, FEW)


def test_retired_workers_lose_and_duplicate_nothing(few_inputs: Path, tmp_path: Path) -> None:
    out, report_path = tmp_path / "out", tmp_path / "report.json"
    with dask_cluster_procs(nworkers=3) as procs:
        log = tmp_path / "cli.log"
        cli = _start_cli("--input", few_inputs, "--output", out, "--scheduler", procs.address,
                         "--report", report_path, log=log)  # fmt: skip
        try:
            _wait_until(lambda: len(_outputs(out)) >= 3, "the first outputs")
            with Client(procs.address) as client:
                busy = [w for w, tasks in client.processing().items() if tasks]
                assert busy, "no worker was busy"
                client.retire_workers(busy[:2])
                assert len(client.scheduler_info()["workers"]) == 1
            assert cli.wait(WAIT * 2) == 0, log.read_text()
        finally:
            if cli.poll() is None:
                cli.kill()
    _check_each_input_once(json.loads(report_path.read_text()), out, FEW)
