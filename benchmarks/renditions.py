"""`make bench`, part 4: what more sizes and formats cost, and the quality of every rendition.

    python benchmarks/bench.py --only renditions     (this part alone)

Two ratios of wall time, each from runs of the pipeline CLI alternating on the same corpus
(A, B, A, B, A: each inner run against the mean of its neighbours, `bench.drift_free_ratios`,
so a steady drift of the machine's speed cancels out):
- sizes: `--sizes 1920,1280,640` (B) against `--sizes 1920` (A); bar: at most 1.4x;
- formats: `--format jpeg,webp` (B) against `--format jpeg` (A), one size; bar: at most 1.6x.
The outputs of the last B run of each are scored per rendition by `quality.score` against a
full-decode LANCZOS reference of the same size and format (bars: 32 dB on every image,
40 dB median).
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

PAIRS = {
    "sizes": (("--sizes", "1920"), ("--sizes", "1920,1280,640"), 1.4),
    "formats": (("--format", "jpeg"), ("--format", "jpeg,webp"), 1.6),
}


def measure_all(
    inp: Path, scratch: Path, workers: int, images: int, mp: float, quick: bool
) -> dict[str, Any]:
    """Both ratios and the PSNR per rendition; JSON-able."""
    from bench import PY, drift_free_ratios, measure
    from quality import score

    results: dict[str, Any] = {}
    for name, (plain, more, bar) in PAIRS.items():
        out = scratch / f"out-{name}"
        sequence = [plain, more, plain] if quick else [plain, more, plain, more, plain]
        runs, quality = [], {}
        for i, extra in enumerate(sequence):
            shutil.rmtree(out, ignore_errors=True)
            cmd = [PY, "-m", "pipeline", "run", "--input", str(inp), "--output", str(out),
                   "--workers", str(workers), "--quiet", "--overwrite", *extra]  # fmt: skip
            run = measure(f"pipeline {' '.join(extra)}", cmd, images, mp)
            runs.append(run)
            print(f"  {run.impl:<34}{run.seconds:7.2f} s{'' if run.ok else '  FAILED'}", flush=True)
            if extra == more and i == len(sequence) - 2:  # the last B run: keep, score
                settings = {"sizes": more[1]} if name == "sizes" else {"formats": more[1]}
                quality = score(inp, out, workers, **settings)
        shutil.rmtree(out, ignore_errors=True)
        ratios = drift_free_ratios(runs)  # B's time over A's
        results[name] = {
            "plain": " ".join(plain),
            "more": " ".join(more),
            "bar": bar,
            "ratios": [round(r, 3) for r in ratios],
            "ratio": round(statistics.median(ratios), 3),
            "runs": [(r.impl, round(r.seconds, 2), round(r.cpu, 2), r.ok) for r in runs],
            "quality": quality,
        }
    return results


def lines(results: dict[str, Any]) -> list[str]:
    """The report's paragraph and table on renditions."""
    out = ["Renditions: wall time of the pipeline CLI with more outputs per input, against one "
           "(alternating runs, each inner run against the mean of its neighbours):"]  # fmt: skip
    for name, r in results.items():
        verdict = "within" if r["ratio"] <= r["bar"] else "OVER"
        out.append(
            f"- {name}: `{r['more']}` takes {r['ratio']:.2f}x the time of `{r['plain']}` "
            f"({', '.join(f'{x:.2f}x' for x in r['ratios'])}; {verdict} the {r['bar']}x bar)"
        )
    out += ["", "| rendition | images | PSNR min dB | median dB | below 32 dB | worst |",
            "| --- | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    shown = set()  # the largest JPEG is scored in both runs: one row
    for r in results.values():
        per = r["quality"].get("renditions") or {r["more"]: r["quality"]}
        for kind, q in per.items():
            if kind in shown:
                continue
            shown.add(kind)
            out.append(
                f"| {kind} | {q.get('images', 0)} | {q.get('min_db')} | {q.get('median_db')} "
                f"| {q.get('below_32_db')} | {q.get('worst')} |"
            )
    return out
