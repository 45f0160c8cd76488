"""What the speed costs in quality: PSNR of the pipeline's JPEGs against a full-decode reference.

    python benchmarks/quality.py INPUT_DIR OUTPUT_DIR [--workers 2]

The reference for each input is the pipeline's own transform with its shortcuts switched off:
no reduced-scale JPEG (DCT) decode, and LANCZOS for the one resample, from the full-size
image. Everything else (EXIF orientation, alpha over the background, ICC to sRGB, 16-bit tones,
JPEG q85) is the same, so the score measures exactly what the shortcuts change. Both JPEGs are
decoded and compared in RGB. `make bench` runs this on the output of one pipeline run.
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


def reference(data: bytes) -> bytes:
    """The full-decode LANCZOS JPEG of one input, made by the pipeline's own transform."""
    from unittest import mock

    from PIL import Image

    from pipeline import transform as t
    from pipeline.config import Settings

    with (
        mock.patch.object(t, "_reduced", side_effect=lambda im, data, max_size: (im, None)),
        mock.patch.object(t, "_resample_for", return_value=Image.Resampling.LANCZOS),
        mock.patch.object(t, "REDUCING_GAP", None),
    ):
        return t.transform(data, Settings()).data


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


def _score_one(pair: tuple[str, str]) -> tuple[str, float]:
    source, output = pair
    data = Path(source).read_bytes()
    return source, psnr(Path(output).read_bytes(), reference(data))


def score(inp: Path, out: Path, workers: int = 2) -> dict[str, Any]:
    """min / median PSNR (dB) over every input that has an output, and the worst image."""
    from pipeline.discover import iter_jobs

    pairs = [
        (str(inp / job.input), str(out / job.output))
        for job in iter_jobs(inp, out)
        if (out / job.output).exists()
    ]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        scores = dict(pool.map(_score_one, pairs, chunksize=1))
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
    args = parser.parse_args()
    print(json.dumps(score(args.input, args.output, args.workers)))


if __name__ == "__main__":
    main()
