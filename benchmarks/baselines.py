"""The baselines the pipeline is measured against, each run as its own process by bench.py.

    python benchmarks/baselines.py seed --input DIR --output DIR [--workers N]
    python benchmarks/baselines.py pool --input DIR --output DIR [--workers N]
    python benchmarks/baselines.py vips --input DIR --output DIR [--workers N]

seed: the original script's approach, one image per task in a ProcessPoolExecutor: open ->
      exif_transpose -> convert RGB -> thumbnail LANCZOS -> JPEG q85 optimize (full decode).
pool: the pipeline's own per-image work (`pipeline.task`: read, transform, atomic write, record)
      in a bare ProcessPoolExecutor, one image per task, workers tuned as the Dask workers are;
      the difference to a pipeline run is what Dask costs.
vips: pyvips' thumbnail (shrink-on-load, auto-rotate) written at Q 85 with optimized Huffman
      tables and no metadata, one libvips thread per process; inputs libvips cannot load (BMP in
      the pyvips-binary build) go through the seed path (needs requirements/bench.txt).
Prints one JSON line: images, ok, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BOX = 1920
QUALITY = 85


def seed_one(job: tuple[str, str]) -> bool:
    from PIL import Image, ImageOps

    src, dst = job
    with Image.open(src) as im:
        upright = ImageOps.exif_transpose(im)
        assert upright is not None
        rgb = upright.convert("RGB")
    rgb.thumbnail((BOX, BOX), Image.Resampling.LANCZOS)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    rgb.save(dst, "JPEG", quality=QUALITY, optimize=True)
    return True


def vips_one(job: tuple[str, str]) -> bool:
    import pyvips

    src, dst = job
    try:
        im = pyvips.Image.thumbnail(src, BOX, height=BOX, size="down")
    except pyvips.Error:
        return seed_one(job)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    im.write_to_file(dst, Q=QUALITY, optimize_coding=True, keep="none")
    return True


def _init_vips() -> None:
    os.environ.setdefault("VIPS_CONCURRENCY", "1")  # one process per core, as the others
    import pyvips

    pyvips.cache_set_max(0)


def pool_one(args: tuple[Any, Any]) -> bool:
    from pipeline.task import process_partition

    job, ctx = args
    return all(r["status"] == "ok" for r in process_partition([job], ctx))


def _seed_jobs(inp: Path, out: Path) -> list[tuple[str, str]]:
    from pipeline.discover import iter_jobs

    return [(str(inp / j.input), str(out / j.output)) for j in iter_jobs(inp, out)]


def _pool_jobs(inp: Path, out: Path) -> list[tuple[Any, Any]]:
    from pipeline.config import Settings
    from pipeline.discover import iter_jobs
    from pipeline.task import TaskContext

    ctx = TaskContext(
        input_root=str(inp.resolve()),
        output_root=str(out.resolve()),
        settings=Settings(max_size=BOX, quality=QUALITY),
        run_id=uuid.uuid4().hex[:12],
        started_ns=time.time_ns(),
        overwrite=True,
    )
    return [(job, ctx) for job in iter_jobs(inp, out)]


def _init_pool() -> None:
    from pipeline import tuning

    tuning.apply_in_process()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=["seed", "pool", "vips"])
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    start = time.perf_counter()
    args.output.mkdir(parents=True, exist_ok=True)
    if args.impl in ("seed", "vips"):
        jobs: list[Any] = _seed_jobs(args.input, args.output)
        fn: Any = seed_one if args.impl == "seed" else vips_one
        init = None if args.impl == "seed" else _init_vips
    else:
        jobs, fn, init = _pool_jobs(args.input, args.output), pool_one, _init_pool
    with ProcessPoolExecutor(max_workers=args.workers, initializer=init) as pool:
        ok = sum(pool.map(fn, jobs, chunksize=1))
    seconds = time.perf_counter() - start
    print(json.dumps({"impl": args.impl, "images": len(jobs), "ok": ok, "seconds": seconds}))


if __name__ == "__main__":
    main()
