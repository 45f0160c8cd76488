"""A bar chart of throughput per core, drawn with Pillow alone (no browser, no plotting library)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLOURS = {"pipeline": (31, 119, 180), "pool": (120, 170, 210), "vips": (255, 127, 14)}
OTHER = (150, 150, 150)


def draw(values: dict[str, float], title: str, footer: str, path: Path) -> None:
    """Horizontal bars, one per runner, labelled with the value."""
    width, bar_h, gap, left, top = 900, 46, 18, 150, 70
    height = top + len(values) * (bar_h + gap) + 60
    im = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=18)
    small = ImageFont.load_default(size=13)
    pen.text((20, 20), title, fill="black", font=font)
    scale = (width - left - 110) / max(max(values.values()), 1e-9)
    for i, (name, value) in enumerate(values.items()):
        y = top + i * (bar_h + gap)
        pen.text((20, y + bar_h / 2), name, fill="black", font=font, anchor="lm")
        pen.rectangle((left, y, left + value * scale, y + bar_h), fill=COLOURS.get(name, OTHER))
        label = f"{value:.2f} img/s"
        pen.text(
            (left + value * scale + 8, y + bar_h / 2), label, fill="black", font=font, anchor="lm"
        )
    pen.text((20, height - 30), footer, fill=(90, 90, 90), font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
