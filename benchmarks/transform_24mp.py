"""Time and peak memory of the transform on a 24 MP camera-like JPEG, against a naive pipeline.

The input is generated: 6000x4000 photo-like content (gradients, edges, noise texture), stored
rotated with EXIF orientation 6, JPEG q92 4:2:0. Each measurement runs in a fresh child process,
so ru_maxrss is that method's own peak (Pillow allocates in C, which tracemalloc cannot see).
The naive reference: open, exif_transpose, convert RGB, thumbnail LANCZOS, save q85 optimize.

    python benchmarks/transform_24mp.py [--max-size 1920] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PEAK_MIB = """
def peak_mib():
    # VmHWM is this process's own high-water mark; ru_maxrss also counts the parent's RSS at
    # fork time (Linux keeps the larger across exec), which would charge us for the generator.
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

CHILD = """
import io, json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from PIL import Image, ImageOps
from pipeline.config import Settings
from pipeline.transform import transform

PEAK_MIB

def naive(data, max_size):
    with Image.open(io.BytesIO(data)) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    im.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()

def ours(data, max_size):
    return transform(data, Settings(max_size=max_size)).data

method, path, max_size, repeat = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
data = open(path, "rb").read()
run = {"naive": naive, "transform": ours}[method]
times = []
for _ in range(repeat):
    start = time.perf_counter()
    out = run(data, max_size)
    times.append(time.perf_counter() - start)
size = Image.open(io.BytesIO(out)).size
peak = peak_mib()
print(json.dumps({"best": min(times), "peak_mib": peak, "size": size, "bytes": len(out)}))
"""

BASELINE = """
import resource, sys
sys.path.insert(0, sys.argv[1])
from PIL import Image, ImageOps
from pipeline.transform import transform

PEAK_MIB
print(peak_mib())
"""


GENERATE = """
import sys
sys.path.insert(0, sys.argv[1])
from benchmarks.transform_24mp import make_input
make_input(sys.argv[2])
"""


def make_input(path: str) -> None:
    """Run in its own process: generating 24 MP with numpy takes ~2 GB."""
    from PIL import Image

    from tests.imaging import photo_like

    upright = photo_like(4000, 6000, seed=24)  # portrait, as the camera held it
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 6000x4000, as the sensor wrote it
    stored.save(path, "JPEG", quality=92, exif=exif)


def measure(method: str, path: Path, max_size: int, repeat: int) -> dict[str, float]:
    args = [
        sys.executable,
        "-c",
        CHILD.replace("PEAK_MIB", PEAK_MIB),
        str(ROOT),
        method,
        str(path),
        str(max_size),
        str(repeat),
    ]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-size", type=int, default=1920)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "camera_24mp_orientation6.jpg"
        subprocess.run([sys.executable, "-c", GENERATE, str(ROOT), str(path)], check=True)
        base = float(
            subprocess.run(
                [sys.executable, "-c", BASELINE.replace("PEAK_MIB", PEAK_MIB), str(ROOT)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        rows = {
            m: measure(m, path, options.max_size, options.repeat) for m in ("naive", "transform")
        }
        size_mb = path.stat().st_size / 1e6
    print(f"24 MP JPEG (6000x4000, EXIF orientation 6, {size_mb:.1f} MB) -> max {options.max_size}")
    print(
        f"(best of {options.repeat}; peak RSS (VmHWM) of a fresh process; "
        f"imports alone: {base:.0f} MiB)"
    )
    print(f"{'method':<12}{'seconds':>9}{'peak MiB':>10}{'output':>12}")
    for name, row in rows.items():
        width, height = row["size"]  # type: ignore[misc]
        print(f"{name:<12}{row['best']:>9.3f}{row['peak_mib']:>10.0f}{f'{width}x{height}':>12}")
    naive, ours = rows["naive"], rows["transform"]
    print(
        f"transform: {naive['best'] / ours['best']:.1f}x faster, "
        f"{naive['peak_mib'] / ours['peak_mib']:.1f}x less peak memory"
    )


if __name__ == "__main__":
    main()
