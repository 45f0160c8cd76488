"""Generated sample images: a realistic mix for a first `make run`, the notebooks and tests.

Photo-like scenes (sky gradient, hills, a sun, grain, and an arrow that points up when the
image is upright) as large landscape and portrait JPEGs, some stored sideways with an EXIF
orientation tag, plus a PNG with transparency, WebP, TIFF and BMP, spread over sub-folders.
Made by code from a fixed seed: the same call writes the same files. No downloads.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

# (sub-folder, name, size at scale 1, orientation tag or 1)
_PLAN: tuple[tuple[str, str, tuple[int, int], int], ...] = (
    ("", "landscape.jpg", (4000, 3000), 1),
    ("", "portrait.JPG", (3000, 4000), 1),
    ("", "sideways-6.jpg", (4000, 3000), 6),
    ("", "sideways-8.jpeg", (4000, 3000), 8),
    ("", "upside-down-3.jpg", (4000, 3000), 3),
    ("", "mirrored-2.jpg", (3000, 4000), 2),
    ("", "transposed-5.jpg", (3000, 2000), 5),
    ("", "transverse-7.jpg", (3000, 2000), 7),
    ("", "flipped-4.jpg", (2400, 1600), 4),
    ("shop", "logo-alpha.png", (1600, 1200), 1),
    ("shop", "product.webp", (2800, 2100), 1),
    ("shop", "scan.tiff", (2000, 2600), 1),
    ("shop", "banner.bmp", (2200, 800), 1),
    ("shop", "small.png", (800, 600), 1),
    ("trip/day1", "beach.jpg", (4032, 3024), 6),
    ("trip/day1", "beach.png", (1200, 900), 1),
    ("trip/day2", "mountain.jpg", (6000, 4000), 1),
    ("trip/day2", "panorama.jpg", (8000, 2000), 1),
    ("trip/day2", "phone.webp", (3024, 4032), 1),
    ("trip/day2", "grey.tif", (2500, 2000), 1),
)
_T = Image.Transpose
# transpose that turns the upright picture into the pixels a camera stores with that tag
_TO_STORED = {
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_90,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_270,
}


def write_samples(folder: Path, *, count: int = len(_PLAN), scale: float = 1.0) -> list[Path]:
    """Write `count` sample images under `folder` (cycling the plan); return their paths."""
    written = []
    for i in range(count):
        sub, name, size, orientation = _PLAN[i % len(_PLAN)]
        if i >= len(_PLAN):
            stem, ext = name.rsplit(".", 1)
            name = f"{stem}-{i // len(_PLAN)}.{ext}"
        width, height = (max(8, round(side * scale)) for side in size)
        path = folder / sub / name
        path.parent.mkdir(parents=True, exist_ok=True)
        _save(scene(width, height, seed=i), path, orientation)
        written.append(path)
    return written


def scene(width: int, height: int, *, seed: int = 0) -> Image.Image:
    """An upright photo-like RGB picture with an arrow pointing up."""
    rng = random.Random(seed)
    sky = Image.linear_gradient("L").resize((width, height))
    image = Image.merge(
        "RGB",
        (
            sky.point(lambda v: 60 + v // 3),
            sky.point(lambda v: 110 + v // 3),
            Image.new("L", (width, height), 235),
        ),
    )
    draw = ImageDraw.Draw(image)
    sun = min(width, height) // 8
    cx, cy = rng.randint(sun, width - sun), rng.randint(sun, height // 3)
    draw.ellipse((cx - sun, cy - sun, cx + sun, cy + sun), fill=(255, 214, 120))
    for layer in range(3):
        base = height * (0.55 + 0.12 * layer)
        points = (
            [(0, height)]
            + [
                (x, base - rng.random() * height * 0.15)
                for x in range(0, width + 1, max(1, width // 12))
            ]
            + [(width, height)]
        )
        shade = 40 + 30 * layer
        draw.polygon(points, fill=(shade, 90 + 25 * layer, shade // 2))
    _arrow(draw, width, height)
    grain = Image.effect_noise((width, height), 12).convert("RGB")
    return Image.blend(image, grain, 0.06).filter(ImageFilter.SMOOTH)


def _arrow(draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    s = min(width, height) // 5
    x, y = width // 4, height // 2
    draw.polygon([(x, y - s), (x - s // 2, y), (x + s // 2, y)], fill=(220, 30, 30))
    draw.rectangle((x - s // 6, y, x + s // 6, y + s), fill=(220, 30, 30))


def _save(image: Image.Image, path: Path, orientation: int) -> None:
    ext = path.suffix.lower()
    if orientation != 1:
        image = image.transpose(_TO_STORED[orientation])
    exif = Image.Exif()
    exif[0x010F] = "pipeline samples"
    if orientation != 1:
        exif[0x0112] = orientation
    if ext in (".jpg", ".jpeg"):
        image.save(path, "JPEG", quality=90, exif=exif.tobytes())
    elif ext == ".png":
        _with_alpha(image).save(path, "PNG", compress_level=3)
    elif ext == ".webp":
        image.save(path, "WEBP", quality=85, exif=exif.tobytes())
    elif ext in (".tif", ".tiff"):
        image = image.convert("L") if "grey" in path.name else image
        image.save(path, "TIFF", compression="tiff_lzw")
    else:
        image.save(path, "BMP")


def _with_alpha(image: Image.Image) -> Image.Image:
    """A transparent border fading into the picture, as in a product cut-out."""
    width, height = image.size
    mask = Image.new("L", (width, height), 0)
    inset = min(width, height) // 8
    ImageDraw.Draw(mask).ellipse((inset, inset, width - inset, height - inset), fill=255)
    rgba = image.convert("RGBA")
    rgba.putalpha(mask.filter(ImageFilter.GaussianBlur(inset // 3 or 1)))
    return rgba
