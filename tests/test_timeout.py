"""A timeout frees the machine: the worker process that held the stuck decode is replaced.

Real LocalCluster worker processes under Nannies. The stuck image is a valid PNG with a trailer
that a worker plugin's transform recognises: it then behaves like a decoder that never ends,
burning a core (hashing, with the GIL released as a C decoder does) and holding 300 MB.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import save_image
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from pipeline.config import RunOptions
from pipeline.runner import run_pipeline

TRAILER = b"PIPELINE-TEST-NEVER-ENDING-DECODE"
BALLAST = 300 << 20
FREED_WITHIN = 10.0


class NeverEndingDecode(WorkerPlugin):
    """Wraps the transform: an input ending in TRAILER never finishes (within 120 s)."""

    def __init__(self, pid_file: str) -> None:
        self.pid_file = pid_file

    def setup(self, worker: Any) -> None:
        import pipeline.task

        real = pipeline.task.transform
        pid_file = self.pid_file

        def transform(data: bytes, *args: Any, **kwargs: Any) -> Any:
            if not data.endswith(TRAILER):
                return real(data, *args, **kwargs)
            Path(pid_file).write_text(str(os.getpid()))
            ballast = b"\x01" * BALLAST  # touched pages: resident memory
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                hashlib.sha256(ballast[: 32 << 20]).digest()
            return real(data, *args, **kwargs)

        pipeline.task.transform = transform  # type: ignore[attr-defined]


@pytest.fixture(params=[2, 1], ids=["two-workers", "one-worker"])
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=request.param,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


def worker_processes(client: Client) -> list[psutil.Process]:
    pids = client.run(os.getpid).values()
    return [psutil.Process(pid) for pid in pids]


def test_a_timed_out_image_frees_its_cpu_and_memory(tmp_path: Path, client: Client) -> None:
    pid_file = tmp_path / "stuck.pid"
    before = worker_processes(client)
    client.register_plugin(NeverEndingDecode(str(pid_file)))
    source = tmp_path / "in"
    for n in range(6):
        save_image(source / f"ok{n}.png", (120, 90), seed=n)
    stuck = save_image(source / "stuck.png", (120, 90))
    stuck.write_bytes(stuck.read_bytes() + TRAILER)
    seen: dict[str, float] = {}

    def progress(report: Any) -> None:
        if "t" not in seen and any("timed out" in str(r["error"]) for r in report.failures):
            seen["t"] = time.monotonic()

    opts = RunOptions(input=source, output=tmp_path / "out", timeout=1.0)
    report = run_pipeline(opts, client=client, progress=progress)
    assert report.counts == {"ok": 6, "skipped": 0, "failed": 1}
    assert report.failures[0]["input"] == "stuck.png"
    assert "t" in seen
    stuck_pid = int(pid_file.read_text())
    while time.monotonic() < seen["t"] + FREED_WITHIN and _alive(stuck_pid):
        time.sleep(0.1)
    assert not _alive(stuck_pid), "the process with the stuck decode still runs"
    client.wait_for_workers(len(before), timeout=60)  # the Nanny started a fresh one
    workers = worker_processes(client)
    assert stuck_pid not in {p.pid for p in workers}
    for proc in workers:
        proc.cpu_percent(None)
    time.sleep(1.0)
    for proc in workers:
        assert proc.cpu_percent(None) < 50, proc
        assert proc.memory_info().rss < BALLAST, proc


def _alive(pid: int) -> bool:
    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False
