"""`make bench-scale`: the CLI over a million inputs, run and measured as a user runs it.

    python benchmarks/scale.py [--count 1000000] [--ceiling-count 200000] [--workers 2]
                               [--root /tmp/pipeline-scale]

The inputs are zero-byte `.jpg` files in a nested tree (folders of 1,000), made once and kept
under --root. Every one fails at once ("empty file"), so what is measured is the pipeline's
own machinery: streamed discovery, partitions submitted in waves, results streamed back into
the spooled report. Two runs, each `python -m pipeline run` as a separate process:

1. **Memory, as users run it**: --count inputs on the CLI's own local cluster (its scheduler
   lives in the CLI process). The CLI's peak RSS is read from outside, from /proc, every 0.1 s
   (VmHWM: the kernel's high-water mark); wait4's figure, the largest of the CLI and the
   worker processes it started, is an upper bound.
2. **The driver's ceiling**: --ceiling-count inputs through a separately started
   `dask scheduler` with --workers single-threaded `dask worker`s, so the CPU the client and
   the scheduler spend is each measured on its own process (rusage of the CLI; /proc ticks of
   the scheduler). With workers doing no image work, inputs/s is what the client, the
   scheduler and these workers handle together on this machine; inputs per CPU second of the
   CLI and of the scheduler is what each handles with a core to itself (the ceiling).

The graph per wave is the pickled graph of the one-partition bags `runner._submit` sends, for a
full partition and for a wave of IN_FLIGHT_PER_THREAD partitions per worker thread, built here
by the same code. Results: printed and written to benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import _vm_hwm_mib  # noqa: E402 - benchmarks/ is this script's own folder

PER_FOLDER = 1000
TICK = os.sysconf("SC_CLK_TCK")


def make_tree(root: Path, count: int) -> Path:
    tree = root / f"in-{count}"
    done = tree / ".complete"
    if done.exists():
        return tree
    started = time.perf_counter()
    for i in range(count):
        folder = tree / f"d{i // PER_FOLDER // 100:02d}" / f"d{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(folder / f"img_{i:07d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
    done.touch()
    print(f"made {count} empty files under {tree} in {time.perf_counter() - started:.0f} s")
    return tree


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def run_cli(args: list[str], *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the CLI as its own process; its exit code, wall time, CPU and peak RSS."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--quiet", *args],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _vm_hwm_mib(proc.pid))
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit_code": proc.returncode,
        "wall_s": round(time.perf_counter() - started, 1),
        "cli_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "cli_peak_rss_mib": round(peak),
        "cli_or_its_workers_peak_rss_mib": round(usage.ru_maxrss / 1024),
    }


def graph_bytes(workers: int) -> dict[str, int]:
    """Pickled size of the graphs `runner._submit` sends: one full partition, one full wave."""
    import cloudpickle
    import dask.bag as db

    from pipeline import runner
    from pipeline.config import Settings
    from pipeline.discover import Job
    from pipeline.task import TaskContext

    ctx = TaskContext("/in", "/out", Settings(), "0" * 12, time.time_ns())
    jobs = [
        Job(f"d00/d0000/img_{i:07d}.jpg", f"d00/d0000/img_{i:07d}.jpg", None, 0)
        for i in range(runner.MAX_PARTITION)
    ]
    bag = db.from_sequence([jobs], partition_size=1).map_partitions(runner._run_partition, ctx)
    one = len(cloudpickle.dumps(dict(bag.__dask_graph__())))
    return {
        "images_per_partition": runner.MAX_PARTITION,
        "graph_bytes_per_partition": one,
        "partitions_per_wave": workers * runner.IN_FLIGHT_PER_THREAD,
        "graph_bytes_per_wave": one * workers * runner.IN_FLIGHT_PER_THREAD,
    }


def memory_run(tree: Path, root: Path, workers: int, count: int) -> dict[str, Any]:
    report = root / "report.json"
    out = run_cli(
        ["--input", str(tree), "--output", str(root / "out"), "--workers", str(workers),
         "--report", str(report)]
    )  # fmt: skip
    summary = json.loads(report.read_text())["summary"]
    # the local workers are the CLI's descendants, reaped within its tree: rusage counts them
    out["cli_and_its_workers_cpu_s"] = out.pop("cli_cpu_s")
    out.update(
        inputs=count,
        report_total=summary["total"],
        failed_empty=summary["failed"],
        inputs_per_s=round(count / out["wall_s"]),
        report_mib=round(report.stat().st_size / 2**20, 1),
    )
    return out


def ceiling_run(tree: Path, root: Path, workers: int, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pipeline-scale-procs-") as tmp:
        scheduler_file = Path(tmp) / "scheduler.json"
        dask = [sys.executable, "-m", "dask"]
        quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        scheduler = subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
             "127.0.0.1:0", "--scheduler-file", str(scheduler_file)], cwd=tmp, **quiet,
        )  # fmt: skip
        worker = None
        try:
            deadline = time.monotonic() + 60
            while not scheduler_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            address = json.loads(scheduler_file.read_text())["address"]
            worker = subprocess.Popen(
                [*dask, "worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                 "--nworkers", str(workers), "--nthreads", "1"], cwd=tmp, **quiet,
            )  # fmt: skip
            time.sleep(5)  # the workers join; the run would wait for them anyway
            before = _cpu_s(scheduler.pid)
            out = run_cli(
                ["--input", str(tree), "--output", str(root / "out-ceiling"), "--scheduler",
                 address, "--report", str(root / "report-ceiling.json")]
            )  # fmt: skip
            scheduler_cpu = _cpu_s(scheduler.pid) - before
        finally:
            for proc in (worker, scheduler):
                if proc is not None:
                    proc.terminate()
                    proc.wait(30)
    out.update(
        inputs=count,
        inputs_per_s=round(count / out["wall_s"]),
        scheduler_cpu_s=round(scheduler_cpu, 1),
        cli_cpu_ms_per_1000_inputs=round(out["cli_cpu_s"] * 1e6 / count),
        scheduler_cpu_ms_per_1000_inputs=round(scheduler_cpu * 1e6 / count),
    )
    # what each could handle with a core to itself: the driver's ceiling on a bigger machine
    out["cli_saturates_at_inputs_per_s"] = round(count / max(out["cli_cpu_s"], 1e-9))
    out["scheduler_saturates_at_inputs_per_s"] = round(count / max(scheduler_cpu, 1e-9))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--ceiling-count", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", type=Path, default=Path("/tmp/pipeline-scale"))
    args = parser.parse_args()
    result: dict[str, Any] = {"graph": graph_bytes(args.workers)}
    ceiling_tree = make_tree(args.root, args.ceiling_count)
    result["ceiling"] = ceiling_run(ceiling_tree, args.root, args.workers, args.ceiling_count)
    print(json.dumps(result, indent=1), flush=True)
    tree = make_tree(args.root, args.count)
    result["memory"] = memory_run(tree, args.root, args.workers, args.count)
    print(json.dumps(result["memory"], indent=1))
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "scale.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
