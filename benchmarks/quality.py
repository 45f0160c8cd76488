"""What the speed costs in quality: PSNR of the pipeline's outputs against a full-decode reference.

    python benchmarks/quality.py INPUT_DIR OUTPUT_DIR [--workers 2] [--sizes 1920,640]
                                 [--format jpeg,webp]

The reference for each output (every size in every format, named as a run names them) is the
pipeline's own transform of that one size alone with its shortcuts switched off: no
reduced-scale JPEG (DCT) decode, and LANCZOS for the one resample, from the full-size image
(so a smaller size is not made from a larger one either). Everything else (EXIF orientation,
alpha over the background, ICC to sRGB, 16-bit tones, the format and its quality) is the same,
so the score measures exactly what the shortcuts change. Both are decoded and compared in RGB.
`make bench` runs this on the output of pipeline runs.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a clone without installing the package
    sys.path.insert(0, str(ROOT))


def reference(data: bytes, size: int | None = None, fmt: str = "jpeg", **settings: Any) -> bytes:
    """The full-decode LANCZOS output of one input at `size` in `fmt`, made by the transform."""
    from unittest import mock

    from PIL import Image

    from pipeline import decode as d
    from pipeline import transform as t
    from pipeline.config import Settings

    wanted = Settings(**settings)
    one = Settings(
        **{**settings, "sizes": (size or wanted.largest,), "formats": (fmt,)}  # one size alone
    )
    with (
        mock.patch.object(d, "_reduced", side_effect=lambda im, data, max_size: (im, None)),
        mock.patch.object(t, "_resample_for", return_value=Image.Resampling.LANCZOS),
        mock.patch.object(t, "REDUCING_GAP", None),
    ):
        return t.transform(data, one).data


def psnr(ours: bytes, ref: bytes) -> float:
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(ours)) as a, Image.open(io.BytesIO(ref)) as b:
        if a.size != b.size:
            return 0.0
        x = np.asarray(a.convert("RGB"), dtype=np.float64)
        y = np.asarray(b.convert("RGB"), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def _score_one(task: tuple[str, str, int, str, dict[str, Any]]) -> tuple[str, float]:
    source, output, size, fmt, settings = task
    data = Path(source).read_bytes()
    return output, psnr(Path(output).read_bytes(), reference(data, size, fmt, **settings))


def score(inp: Path, out: Path, workers: int = 2, **settings: Any) -> dict[str, Any]:
    """min / median PSNR (dB) over every output found, overall and per rendition.

    `settings` are the run's (`sizes`, `formats`, qualities...): they name the outputs.
    """
    from pipeline.config import Settings
    from pipeline.discover import Naming, iter_jobs

    naming = Naming.of(Settings(**settings))
    tasks = [
        (str(inp / job.input), str(out / o.path), o.size, o.format, settings)
        for job in iter_jobs(inp, out, naming=naming)
        for o in naming.outputs(job.output)
        if (out / o.path).exists()
    ]
    kind = {t[1]: f"{t[3]} {t[2]}" for t in tasks}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        scores = dict(pool.map(_score_one, tasks, chunksize=1))
    result = _summary(scores)
    if len(set(kind.values())) > 1:
        result["renditions"] = {
            k: _summary({o: v for o, v in scores.items() if kind[o] == k})
            for k in sorted(set(kind.values()), key=_order)
        }
    return result


def _order(kind: str) -> tuple[str, int]:
    """`jpeg 1920` before `jpeg 640`: by format, then largest size first."""
    fmt, _, size = kind.partition(" ")
    return fmt, -int(size)


def _summary(scores: dict[str, float]) -> dict[str, Any]:
    if not scores:
        return {"images": 0}
    worst = min(scores, key=lambda k: scores[k])
    finite = [min(v, 99.0) for v in scores.values()]  # identical images count as 99 dB
    return {
        "images": len(scores),
        "min_db": round(min(scores[worst], 99.0), 2),
        "median_db": round(statistics.median(finite), 2),
        "below_32_db": sum(v < 32 for v in scores.values()),
        "worst": Path(worst).name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", default="", help="the run's --sizes [its --max-size, 1920]")
    parser.add_argument("--format", default="jpeg", help="the run's --format [jpeg]")
    args = parser.parse_args()
    settings: dict[str, Any] = {"formats": args.format}
    if args.sizes:
        settings["sizes"] = args.sizes
    print(json.dumps(score(args.input, args.output, args.workers, **settings)))


if __name__ == "__main__":
    main()
