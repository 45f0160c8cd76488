"""JPEG decoding at a reduced scale, picked for the target size (libjpeg-turbo's DCT scaling).

libjpeg-turbo can decode straight to M/8 of the stored size: the inverse DCT of each 8x8 block
produces M x M pixels, so the cost of the IDCT, the colour conversion and the memory all shrink
with the square of M. The smallest M is taken whose decoded size is still DCT_MARGIN[M] x the
target, so the final resample has enough to work with.

Plain YCbCr and greyscale JPEGs (what Pillow opens as RGB or L) are decoded by `simplejpeg`,
whose wheels bundle libjpeg-turbo and which offers every scale, 3/8 included; Pillow copies the
small decoded pixels into an image of its own. (Handing Pillow libjpeg-turbo's 4-byte RGBX
rows without a copy was measured and rejected: Pillow then resamples four bands instead of
three, 20% more resize CPU, more than the copy saves.) Every other JPEG (CMYK or YCCK, which
need their Adobe and ICC handling) goes through Pillow's public `draft`, which offers 1/2, 1/4
and 1/8. A file libjpeg-turbo complains about (truncated, corrupt, or a recoverable glitch)
is handed back to Pillow too, whose verdict and reason then stand, as for every other format.
"""

from __future__ import annotations

from PIL import Image

#: M -> how many times the target the image decoded at M/8 must still be. The 3x3 and 4x4
#: scaled IDCTs are clean enough to go right down to the target; 1/4 and 1/8 (2x2 and 1x1 per
#: block) alias visibly unless the filter still has 1.5x to work with (with 1.0 the 640 px
#: seed-photo minimum fell to 31.8 dB). libjpeg-turbo's 5/8-7/8 scales are left out: taken down
#: to the target they saved ~10% CPU on the 13 corpus photos they applied to, but cost 1.5-3.6 dB
#: on 9 of the 13 seed photos at 1920 px (minimum 35.6 -> 31.9 dB, below the 32 dB bar).
DCT_MARGIN = {1: 1.5, 2: 1.5, 3: 1.0, 4: 1.0}
#: The scales Pillow's `draft` offers.
DRAFT_EIGHTHS = (1, 2, 4)
#: Pillow mode -> simplejpeg colorspace (the same pixel layout as Pillow's raw mode).
_TURBO_MODES = {"RGB": "RGB", "L": "GRAY"}

Box = tuple[float, float, float, float]


def eighths_for(size: tuple[int, int], target: tuple[int, int], offered: tuple[int, ...]) -> int:
    """The smallest offered M whose M/8 decode keeps DCT_MARGIN[M] x `target`; else 8 (full)."""
    for eighths in offered:
        scaled = scaled_size(size, eighths)
        if min(scaled[0] / target[0], scaled[1] / target[1]) >= DCT_MARGIN[eighths]:
            return eighths
    return 8


def scaled_size(size: tuple[int, int], eighths: int) -> tuple[int, int]:
    """libjpeg's output size at M/8: each side rounded up."""
    return -(-size[0] * eighths // 8), -(-size[1] * eighths // 8)


def decode_reduced(
    im: Image.Image, data: bytes, target: tuple[int, int]
) -> tuple[Image.Image, Box | None]:
    """The JPEG `im` (opened, not loaded; `data` its bytes) decoded small for `target`.

    Returns the image to load and resample, and the box of it that holds the stored image
    (None: all of it). The image is `im` itself (Pillow decodes, drafted) or a new one with
    `im`'s mode and info.
    """
    if im.mode in _TURBO_MODES:
        decoded = _turbo(im, data, eighths_for(im.size, target, tuple(DCT_MARGIN)))
        if decoded is not None:
            return decoded
    eighths = eighths_for(im.size, target, DRAFT_EIGHTHS)
    if eighths == 8:
        return im, None
    width, height = im.size
    # floor, as Pillow's draft picks its scale by integer division; at least 1 px for tiny images
    drafted = im.draft(None, (max(1, width * eighths // 8), max(1, height * eighths // 8)))
    return im, (drafted[1] if drafted else None)


def _turbo(im: Image.Image, data: bytes, eighths: int) -> tuple[Image.Image, Box | None] | None:
    """Decode with simplejpeg at M/8; None when libjpeg-turbo finds anything wrong."""
    import simplejpeg

    width, height = scaled_size(im.size, eighths)
    try:  # strict: a warning (truncated data, a corrupt segment) raises ValueError
        pixels = simplejpeg.decode_jpeg(
            data, colorspace=_TURBO_MODES[im.mode], min_width=width, min_height=height, strict=True
        )
    except ValueError:
        return None
    if pixels.shape[:2] != (height, width):  # another scale than asked: let Pillow decode
        return None
    out = Image.frombytes(im.mode, (width, height), pixels, "raw", im.mode)
    out.info = im.info
    box = None if eighths == 8 else (0.0, 0.0, im.width * eighths / 8, im.height * eighths / 8)
    return out, box
