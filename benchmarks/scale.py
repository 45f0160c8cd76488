"""`make bench-scale`: the CLI over a million input paths, to measure what Dask and discovery cost.

    python benchmarks/scale.py [--count 1000000] [--workers 2] [--root /tmp/pipeline-scale]

The inputs are zero-byte `.jpg` files in a nested tree (1,000 folders of 1,000), made once and
kept under --root; every image fails fast ("empty file"), so what is left is the pipeline's own
machinery: streamed discovery, partitions submitted in waves, results streamed back into the
report. The run is the real CLI (`pipeline.cli.main`) in this process, observed from outside the
pipeline's code: each wave's graph is rebuilt and pickled (timed apart and not counted), the
task stream is read from the scheduler at the end. The client process also hosts the local
cluster's scheduler, so its peak RSS is both.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PER_FOLDER = 1000


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


def vm_hwm_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", type=Path, default=Path("/tmp/pipeline-scale"))
    args = parser.parse_args()
    tree = make_tree(args.root, args.count)
    out = args.root / "out"

    import cloudpickle

    from pipeline import cli, runner
    from pipeline.discover import iter_jobs

    started = time.perf_counter()
    found = sum(1 for _ in iter_jobs(tree, out))
    discovery = time.perf_counter() - started
    rss_after_discovery = vm_hwm_mib()

    waves: list[dict[str, float]] = []
    measuring = [0.0]
    first_submit: list[float] = []
    stream: list[dict[str, Any]] = []
    submit, run_pipeline = runner._submit, runner.run_pipeline

    def observed_submit(client: Any, wave: Any, ctx: Any, flights: Any, first: int = 0) -> None:
        if wave and not first_submit:
            first_submit.append(time.time())
        submit(client, wave, ctx, flights, first)
        if wave:
            t = time.perf_counter()
            import dask.bag as db

            size = 0
            for jobs in wave:  # the graphs _submit sends: one one-partition bag per partition
                bag = db.from_sequence([jobs], partition_size=1)
                bag = bag.map_partitions(runner._run_partition, ctx)
                size += len(cloudpickle.dumps(dict(bag.__dask_graph__())))
            waves.append({"partitions": len(wave), "images": sum(map(len, wave)), "bytes": size})
            measuring[0] += time.perf_counter() - t

    def observed_run(*a: Any, **kw: Any) -> Any:
        finish, connect = kw.get("on_finish"), kw.get("on_connect")

        def on_connect(client: Any) -> None:
            client.get_task_stream(count=1)  # installs the scheduler's task-stream recorder
            if connect is not None:
                connect(client)

        def on_finish(client: Any) -> None:
            stream.extend(client.get_task_stream(start=run_started))
            if finish is not None:
                finish(client)

        kw["on_finish"], kw["on_connect"] = on_finish, on_connect
        return run_pipeline(*a, **kw)

    runner._submit, runner.run_pipeline = observed_submit, observed_run  # type: ignore[assignment]
    report_path = args.root / "report.json"
    run_started = time.time()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # a million "failed: empty file" lines
        code = cli.main(
            [
                *("run", "--input", str(tree), "--output", str(out)),
                *("--workers", str(args.workers), "--quiet", "--report", str(report_path)),
            ]
        )
    wall = time.perf_counter() - t0 - measuring[0]
    starts = [
        ss["start"]
        for rec in stream
        for ss in rec.get("startstops", ())
        if ss["action"] == "compute"
    ]
    summary = json.loads(report_path.read_text())["summary"]
    result = {
        "inputs": found,
        "exit_code": code,
        "report_total": summary["total"],
        "failed_empty": summary["failed"],
        "discovery_alone_s": round(discovery, 1),
        "discovery_paths_per_s": round(found / discovery),
        "waves": len(waves),
        "partitions": sum(w["partitions"] for w in waves),
        "images_per_partition_max": max(w["images"] / w["partitions"] for w in waves),
        "graph_bytes_per_wave_median": statistics.median(w["bytes"] for w in waves),
        "graph_bytes_per_wave_max": max(w["bytes"] for w in waves),
        "graph_bytes_per_partition": round(
            sum(w["bytes"] for w in waves) / sum(w["partitions"] for w in waves)
        ),
        "first_submission_s": round(first_submit[0] - run_started, 2),
        "first_task_start_s": round(min(starts) - run_started, 2) if starts else None,
        "total_wall_s": round(wall, 1),
        "paths_per_s": round(found / wall),
        "client_peak_rss_mib": round(vm_hwm_mib()),
        "client_rss_after_discovery_mib": round(rss_after_discovery),
        "report_mib": round(report_path.stat().st_size / 2**20, 1),
    }
    print(json.dumps(result, indent=1))
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "scale.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
