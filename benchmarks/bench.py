"""`make bench`: the pipeline CLI end to end against its baselines, side by side, same machine.

    python benchmarks/bench.py [--quick] [--workers 2] [--rounds 3] [--only renditions]
    BENCH_CORPUS=DIR   use this folder of images instead of the generated corpus
    BENCH_QUICK=1      a ~3 minute smoke run (60 images, one round, small scaling runs)
    BENCH_CACHE=DIR    where the generated corpus is kept between runs (~/.cache/pipeline-bench)

Every run is a fresh process measured from outside: wall time (interpreter start, imports and the
cluster start included), CPU time of the whole process tree, and the peak RSS (VmHWM) of each
worker process. Each round runs every runner once, the pipeline next to libvips and the bare pool
(pipeline, vips, pool, seed; the next round in reverse order, and so on), so that the slow drift
of a shared machine's speed (tens of percent over minutes) cancels out of the pairs compared; the
table gives medians over rounds, and the ratios are medians of per-round ratios. Dask's cost
(pipeline vs pool) and 1 worker vs N are measured as alternating sequences (A, B, A, B, ...),
each run after the first and before the last compared with the mean of its two neighbours,
which cancels a steady drift; with the CPU time the hypervisor took meanwhile (steal).

Runners: `pipeline` = `python -m pipeline run --workers N`; `pool` = the same per-image work
(pipeline.task) in a bare ProcessPoolExecutor (what Dask costs); `seed` = the original script's
approach in a process pool; `vips` = pyvips thumbnail in a process pool, when pyvips is installed
(`make bench` installs requirements/bench.txt); all three in benchmarks/baselines.py.
The generated corpus is `python -m pipeline samples --count 200` (photo-like scenes of every
input format, 2-48 MP); BENCH_CORPUS=DIR measures your own images instead.
Renditions (benchmarks/renditions.py): `--sizes 1920,1280,640` against `--sizes 1920`, and
`--format jpeg,webp` against `jpeg`, alternating, with the PSNR of every rendition.
Results: benchmarks/results/bench.{md,json,png}; a full run also writes docs/bench.png
(`--only renditions`: benchmarks/results/renditions.{md,json}).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PY = sys.executable
FULL_COUNT, QUICK_COUNT = 200, 60
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class Run:
    impl: str
    images: int
    seconds: float
    cpu: float
    worker_peak_mib: float
    megapixels: float
    ok: bool = True
    note: str = ""
    steal: float = 0.0  # core-seconds the hypervisor gave to other guests during the run
    idle: float = 0.0  # core-seconds no process of this machine used during the run

    @property
    def rate(self) -> float:
        return self.images / self.seconds


@dataclass
class Row:
    impl: str
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)


# -- corpus ---------------------------------------------------------------------------------------


def corpus(quick: bool) -> Path:
    """BENCH_CORPUS, or the generated corpus (made once, kept in the cache folder)."""
    given = os.environ.get("BENCH_CORPUS")
    if given:
        return Path(given)
    cache = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "pipeline-bench"))
    count = QUICK_COUNT if quick else FULL_COUNT
    folder = cache / f"samples-{count}"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [PY, "-m", "pipeline", "samples", "--output", str(folder), "--count", str(count)]
    print(f"generating the corpus into {folder} (once): {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    (folder / ".complete").touch()
    return folder


def images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.name[0] != "."
    )


def megapixels(paths: list[Path]) -> float:
    from PIL import Image

    total = 0
    for path in paths:
        with Image.open(path) as im:
            total += im.size[0] * im.size[1]
    return total / 1e6


def linked_set(base: list[Path], count: int, into: Path) -> Path:
    """`count` images (the corpus repeated, hard-linked into sub-folders), built once per run."""
    if into.exists():
        return into
    for i in range(count):
        src = base[i % len(base)]
        dst = into / f"copy{i // len(base)}" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    return into


# -- measuring one run ----------------------------------------------------------------------------


def _vm_hwm_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_ticks() -> tuple[float, float]:
    """Machine-wide (idle, steal) core-seconds since boot, from /proc/stat; zeros elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[4]) / hz, (int(fields[8]) if len(fields) > 8 else 0) / hz


def _adopt_orphans() -> None:
    """Become the reaper of orphaned descendants (Linux), so that the CPU of a process that
    outlives the command (the CLI's fork server, whose children are the workers) is counted:
    RUSAGE_CHILDREN holds only what this process reaps itself."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _reap_orphans(timeout: float = 30.0) -> None:
    """Wait (bounded) for every remaining descendant to exit and reap it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def measure(impl: str, cmd: list[str], images: int, mp: float) -> Run:
    """Run `cmd`; wall time, CPU of the process tree, max VmHWM of any child of the root,
    and the machine's idle and stolen core-seconds meanwhile."""
    import psutil

    _adopt_orphans()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    idle_before, steal_before = _cpu_ticks()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peaks: dict[int, float] = {}
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            for child in root.children(recursive=True):
                peaks[child.pid] = max(peaks.get(child.pid, 0.0), _vm_hwm_mib(child.pid))
        except psutil.Error:
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    _, err = proc.communicate()
    _reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    idle_after, steal_after = _cpu_ticks()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    note = "" if proc.returncode == 0 else err.decode(errors="replace").strip()[-300:]
    # workers are the big children; tiny helpers (multiprocessing's resource tracker) are not
    worker_peak = max((v for v in peaks.values() if v > 40), default=0.0)
    ok = proc.returncode == 0
    steal, idle = steal_after - steal_before, idle_after - idle_before
    return Run(impl, images, seconds, cpu, worker_peak, mp, ok, note, steal, idle)


def command(impl: str, inp: Path, out: Path, workers: int) -> list[str]:
    if impl == "pipeline":
        return [
            *(PY, "-m", "pipeline", "run", "--input", str(inp), "--output", str(out)),
            *("--workers", str(workers), "--quiet", "--overwrite"),
        ]
    if impl in ("pool", "seed", "vips"):
        script = str(ROOT / "benchmarks" / "baselines.py")
        return [
            PY,
            script,
            impl,
            "--input",
            str(inp),
            "--output",
            str(out),
            "--workers",
            str(workers),
        ]
    raise ValueError(f"unknown runner {impl!r}")


def run_once(
    impl: str, inp: Path, scratch: Path, workers: int, paths: int, mp: float, keep: bool = False
) -> Run:
    """One measured run; with `keep`, its output stays in scratch/out-<impl> afterwards."""
    out = scratch / f"out-{impl}"
    shutil.rmtree(out, ignore_errors=True)
    result = measure(impl, command(impl, inp, out, workers), paths, mp)
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    status = "" if result.ok else f"  FAILED: {result.note}"
    print(
        f"  {impl:<9}{paths:>5} images {workers} workers {result.seconds:7.2f} s "
        f"{result.rate:6.2f} img/s{status}",
        flush=True,
    )
    return result


def has_vips() -> bool:
    probe = subprocess.run([PY, "-c", "import pyvips"], capture_output=True)
    return probe.returncode == 0


# -- the report -----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    from importlib.metadata import version

    from PIL import features

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "pillow": version("pillow"),
        "libjpeg-turbo": str(features.version("libjpeg_turbo")),
        "dask": version("distributed"),
    }
    with contextlib.suppress(Exception):
        info["pyvips"] = version("pyvips")
    return info


def ratios(rounds: list[dict[str, Run]], num: str, den: str) -> float | None:
    pairs = [r[num].rate / r[den].rate for r in rounds if num in r and den in r]
    return statistics.median(pairs) if pairs else None


def main_table(rows: dict[str, Row], rounds: list[dict[str, Run]], workers: int) -> str:
    lines = [
        "| runner | img/s | img/s per core | input MP/s | CPU ms/image | peak RSS/worker MiB "
        "| vs vips | vs seed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in rows.items():
        rate = statistics.median(r.rate for r in row.runs)
        mps = statistics.median(r.megapixels / r.seconds for r in row.runs)
        cpu_ms = statistics.median(1000 * r.cpu / r.images for r in row.runs)
        vs_vips, vs_seed = ratios(rounds, name, "vips"), ratios(rounds, name, "seed")
        lines.append(
            f"| {name} | {rate:.2f} | {rate / workers:.2f} | {mps:.1f} | {cpu_ms:.0f} "
            f"| {row.median('worker_peak_mib'):.0f} | {_x(vs_vips)} | {_x(vs_seed)} |"
        )
    return "\n".join(lines)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("BENCH_QUICK")))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--only", choices=["renditions"], help="run this part alone")
    args = parser.parse_args()
    quick, workers = args.quick, args.workers
    rounds_n = args.rounds or (1 if quick else 3)
    base_dir = corpus(quick)
    base = images_in(base_dir)
    base_mp = megapixels(base)
    if args.only == "renditions":
        renditions_alone(base_dir, len(base), base_mp, workers, quick)
        return
    impls = ["pipeline", *(["vips"] if has_vips() else []), "pool", "seed"]
    info = machine()
    print(f"machine: {info}")
    print(f"corpus: {base_dir} ({len(base)} images, {base_mp:.0f} MP)\n", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        scratch = Path(tmp)
        # 1. side by side on the corpus
        print(f"1. side by side, {rounds_n} round(s), alternating:")
        rows = {name: Row(name) for name in impls}
        rounds: list[dict[str, Run]] = []
        for i in range(rounds_n):
            order = impls if i % 2 == 0 else impls[::-1]
            last = i == rounds_n - 1
            this = {
                n: run_once(n, base_dir, scratch, workers, len(base), base_mp, keep=last)
                for n in order
            }
            rounds.append(this)
            for name, run in this.items():
                rows[name].runs.append(run)
        print("   quality of the last pipeline run's JPEGs (full-decode LANCZOS reference)...")
        from quality import score  # benchmarks/ is on sys.path when run as a script

        quality = score(base_dir, scratch / "out-pipeline", workers)
        # 2. what Dask costs: pipeline vs the same work in a bare pool, on more images
        n_cost = 120 if quick else 500
        cost_dir = linked_set(base, n_cost, scratch / f"n{n_cost}")
        cost_mp = base_mp * n_cost / len(base)
        print(f"2. Dask's cost on {n_cost} images:")
        cost_runs = [
            run_once(n, cost_dir, scratch, workers, n_cost, cost_mp)
            for n in ["pipeline", "pool", "pipeline", "pool"][: 3 if quick else 4]
        ]
        # 3. scaling: images (time per image) and workers
        small, large = (20, 120) if quick else (50, 1000)
        print(f"3. scaling: {small} vs {large} images, 1 vs {workers} workers:")
        scaling = {}
        for n in (small, large):
            folder = linked_set(base, n, scratch / f"n{n}")
            scaling[f"{n} images, {workers} workers"] = run_once(
                "pipeline", folder, scratch, workers, n, base_mp * n / len(base)
            )
        # 1 vs N workers, alternating (N, 1, N, 1, N): this machine's speed drifts by 10-40% over
        # minutes, see `drift_free_ratios`; libvips' own pool is measured the same way (N, 1, N),
        # as what the machine allows
        sandwiches = {"pipeline": 1 if quick else 2, **({"vips": 1} if "vips" in impls else {})}
        worker_runs: dict[str, list[Run]] = {}
        for impl, ones in sandwiches.items():
            sequence = [workers, *[w for _ in range(ones) for w in (1, workers)]]
            worker_runs[impl] = [
                run_once(impl, base_dir, scratch, w, len(base), base_mp) for w in sequence
            ]
        pipeline_runs = worker_runs["pipeline"]
        scaling[f"{len(base)} images, 1 worker"] = pipeline_runs[-2]
        scaling[f"{len(base)} images, {workers} workers"] = pipeline_runs[-1]
        print("4. renditions: more sizes, more formats, alternating:")
        from renditions import measure_all  # benchmarks/ is on sys.path when run as a script

        renditions = measure_all(base_dir, scratch, workers, len(base), base_mp, quick)
    elapsed = time.perf_counter() - started
    report(
        info,
        base_dir,
        base,
        base_mp,
        rows,
        rounds,
        quality,
        cost_runs,
        scaling,
        worker_runs,
        workers,
        quick,
        elapsed,
        renditions,
    )


def renditions_alone(base_dir: Path, images: int, mp: float, workers: int, quick: bool) -> None:
    """Part 4 alone: benchmarks/results/renditions.{md,json}."""
    from renditions import lines, measure_all

    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        results = measure_all(base_dir, Path(tmp), workers, images, mp, quick)
    text = "\n".join([f"Corpus: {base_dir} ({images} images), {workers} workers.", *lines(results)])
    print("\n" + text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "renditions.md").write_text(text + "\n")
    (RESULTS / "renditions.json").write_text(json.dumps(results, indent=1))


def drift_free_ratios(runs: list[Run]) -> list[float]:
    """time(B) / time(A) for runs alternating A, B, A, B, ...: one ratio per inner run.

    Each run after the first and before the last is compared with the mean of its two
    neighbours (which are of the other kind), so a steady drift of the machine's speed over
    the sequence cancels out; adjacent pairs alone would carry half of it into every ratio.
    """
    ratios = []
    for i in range(1, len(runs) - 1):
        around = (runs[i - 1].seconds + runs[i + 1].seconds) / 2
        ratios.append(runs[i].seconds / around if i % 2 else around / runs[i].seconds)
    return ratios


def _core_seconds(runs: list[Run]) -> float:
    return sum(r.seconds for r in runs) * (os.cpu_count() or 1)


def report(
    info: dict[str, str],
    base_dir: Path,
    base: list[Path],
    base_mp: float,
    rows: dict[str, Row],
    rounds: list[dict[str, Run]],
    quality: dict[str, Any],
    cost_runs: list[Run],
    scaling: dict[str, Run],
    worker_runs: dict[str, list[Run]],
    workers: int,
    quick: bool,
    elapsed: float,
    renditions: dict[str, Any],
) -> None:
    from renditions import lines as rendition_lines

    costs = [1 / ratio - 1 for ratio in drift_free_ratios(cost_runs)]  # pipeline over pool
    n_cost = cost_runs[0].images
    machine_line = (
        f"{info['cpu']}, {info['cores']} cores; Python {info['python']}, Pillow {info['pillow']} "
        f"(libjpeg-turbo {info['libjpeg-turbo']}), dask/distributed {info['dask']}"
        + (f", pyvips {info['pyvips']}" if "pyvips" in info else "")
    )
    lines = [
        f"Machine: {machine_line}",
        f"Corpus: {base_dir} ({len(base)} images, {base_mp:.0f} MP), fit 1920 px, JPEG q85 "
        f"optimized, {workers} worker processes; {len(rounds)} alternating round(s), medians; "
        "wall time of each whole command (start-up included).",
        "",
        main_table(rows, rounds, workers),
        "",
        f"Quality: PSNR of the pipeline's JPEGs against a full-decode LANCZOS reference (the "
        f"same transform without its reduced-scale decode and short filter), "
        f"{quality.get('images', 0)} images: min {quality.get('min_db')} dB "
        f"({quality.get('worst')}), median {quality.get('median_db')} dB, "
        f"{quality.get('below_32_db')} below 32 dB.",
        "",
        f"Dask's cost: the pipeline CLI vs the same per-image work in a bare process pool on "
        f"{n_cost} images, alternating: {100 * statistics.median(costs):+.1f}% wall time "
        f"(median of "
        + ", ".join(f"{100 * c:+.1f}%" for c in costs)
        + "; runs "
        + ", ".join(f"{r.impl} {r.seconds:.1f} s" for r in cost_runs)
        + ").",
        "",
        "| scaling run | wall s | ms/image (wall) | img/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, run in scaling.items():
        lines.append(
            f"| {label} | {run.seconds:.1f} | {1000 * run.seconds / run.images:.0f} "
            f"| {run.rate:.2f} |"
        )
    lines += ["", f"{workers} workers vs 1, alternating runs, each inner run against the mean of "
              "its neighbours:"]  # fmt: skip
    for impl, runs in worker_runs.items():
        ratios = drift_free_ratios(runs)
        stolen = sum(r.steal for r in runs) / _core_seconds(runs)
        many = runs[0::2]  # the N-worker runs
        idle = sum(r.idle for r in many) / _core_seconds(many)
        lines.append(
            f"- {impl}: "
            + ", ".join(f"{x:.2f}x" for x in ratios)
            + f" (median {statistics.median(ratios):.2f}x); the hypervisor took "
            f"{100 * stolen:.0f}% of the machine's CPU time during these runs, and "
            f"{100 * idle:.1f}% stayed idle during the {workers}-worker runs"
        )
    lines += ["", *rendition_lines(renditions)]
    lines += [
        "",
        f"Peak RSS per worker (max over all pipeline runs): "
        f"{max(r.worker_peak_mib for r in rows['pipeline'].runs):.0f} MiB. "
        f"Bench time {elapsed / 60:.1f} min.",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.md").write_text(text + "\n")
    data = {
        "machine": info,
        "quick": quick,
        "rounds": [{k: asdict(v) for k, v in r.items()} for r in rounds],
        "quality": quality,
        "dask_cost": [asdict(r) for r in cost_runs],
        "scaling": {k: asdict(v) for k, v in scaling.items()},
        "workers_vs_1": {k: [asdict(r) for r in runs] for k, runs in worker_runs.items()},
        "renditions": renditions,
    }
    (RESULTS / "bench.json").write_text(json.dumps(data, indent=1))
    from chart import draw  # benchmarks/ is on sys.path when run as a script

    per_core = {n: statistics.median(r.rate for r in row.runs) / workers for n, row in rows.items()}
    title = f"images/s per core, {len(base)} photos ({base_mp:.0f} MP) -> 1920 px JPEG q85"
    draw(per_core, title, machine_line, RESULTS / "bench.png")
    if not quick:
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(RESULTS / "bench.png", ROOT / "docs" / "bench.png")
    print(f"\nwrote {RESULTS / 'bench.md'}, bench.json, bench.png")


if __name__ == "__main__":
    main()
