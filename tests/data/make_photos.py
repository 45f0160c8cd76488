"""Make tests/data/photos from full-size originals: `python tests/data/make_photos.py SRC_DIR`.

Each listed original is fitted within LONG_SIDE px (LANCZOS, never upscaled) and saved as JPEG
quality 90, progressive when the original is, with its EXIF (orientation included) and ICC
profile when it has them. The list and the licences are in tests/data/photos/SOURCES.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

LONG_SIDE = 2048
QUALITY = 90
DEST = Path(__file__).resolve().parent / "photos"
NAMES = (
    "Picture_0B_by_freespace.jpg",
    "Picture_1A_by_freespace.jpg",
    "Wine_by_Jakkub_Mede.jpg",
    "aitzgorri_by_Aitzol_Berasategi.jpg",
    "friends_by_Aitzol_Berasategi.jpg",
    "life_by_Aitzol_Berasategi.jpg",
    "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "seeding_by_Clements_Engelhardt.jpg",
    "sunset_by_Aitzol_Berasategi.jpg",
)


def downscale(source: Path, dest: Path) -> None:
    with Image.open(source) as im:
        params: dict[str, object] = {"quality": QUALITY, "optimize": True}
        params["progressive"] = bool(im.info.get("progressive"))
        for key in ("exif", "icc_profile"):
            if im.info.get(key):
                params[key] = im.info[key]
        scale = min(1.0, LONG_SIDE / max(im.size))
        size = (round(im.width * scale), round(im.height * scale))
        small = im.convert("RGB").resize(size, Image.Resampling.LANCZOS) if scale < 1 else im
        small.save(dest, "JPEG", **params)


def main(source_dir: Path) -> None:
    DEST.mkdir(exist_ok=True)
    for name in NAMES:
        downscale(source_dir / name, DEST / name)
        print(f"{name}: {(DEST / name).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
