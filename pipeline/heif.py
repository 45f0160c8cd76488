"""HEIC/HEIF inputs (what phones store) through pillow-heif, an optional extra.

`pip install '.[heif]'` (and `make install`, and the container image) add pillow-heif; without
it a HEIC input fails with one line that says what to install. pi-heif, the decode-only build of
the same library (its wheels are LGPL: no x265 encoder, which makes pillow-heif's wheels GPLv2),
serves as well when installed instead. AVIF inputs need nothing extra: Pillow's own wheels
decode AVIF.

What pillow-heif's Pillow plugin does, and why the transform needs nothing special for it:
- libheif applies the HEIF transformations (`irot`, `imir`, `clap`) while decoding, as the HEIF
  standard makes them authoritative, and the plugin resets the EXIF orientation to 1 (the
  original stays in `info["original_orientation"]`). The pixels arrive upright and the EXIF
  says 1, so the transform's own orientation step does nothing: applied exactly once.
- 10- and 12-bit colour arrives as 8-bit RGB/RGBA (the plugin decodes with
  `convert_hdr_to_8bit`), 16-bit grey as `I;16`: modes the transform's tone step handles.
- The ICC profile (`prof`, e.g. an iPhone's Display P3) is in `info["icc_profile"]` as for
  every other format, so colour is converted to sRGB the usual way. Colour given only by code
  points (an `nclx` box, in `info["nclx_profile"]`) becomes an ICC profile first (`cicp`).

Options: one decoding thread per image (the pipeline already runs one image per core; more
threads per image only contend), and no depth or auxiliary images (never used; not parsed).
"""

from __future__ import annotations

import importlib
import threading

from PIL import features

#: The Pillow format names pillow-heif's plugin adds.
FORMATS = ("HEIF",)
#: How the transform's content sniffing names these files (`ftyp` brands).
HEIF_NAMES = ("HEIC", "HEIF")
INSTALL_HINT = "pip install 'pipeline[heif]' (pillow-heif)"
#: The openers tried, in order: pillow-heif (the heif extra), else pi-heif, its decode-only
#: twin with the same API whose wheels leave out the GPL-licensed x265 encoder (LGPL only).
PLUGINS = ("pillow_heif", "pi_heif")

_lock = threading.Lock()
_registered: bool | None = None  # None: not tried yet


def register() -> tuple[str, ...]:
    """Register pillow-heif's opener with Pillow once; the format names now openable.

    Idempotent and thread-safe; returns () when pillow-heif is not installed. Call it before
    `Image.open(..., formats=...)` and add what it returns to the formats.
    """
    global _registered
    if _registered is None:
        with _lock:
            if _registered is None:
                _registered = _try_register()
    return FORMATS if _registered else ()


def available() -> bool:
    """Whether HEIC/HEIF inputs can be decoded here (registers the opener when they can)."""
    return bool(register())


def unsupported_reason(name: str) -> str:
    """Why a file sniffed as `name` (an ftyp brand's name) could not be opened, in one line."""
    if name in HEIF_NAMES:
        if available():
            return f"corrupt {name} header"
        return f"unsupported image format ({name}): {INSTALL_HINT}"
    if name == "AVIF" and features.check("avif"):
        return "corrupt AVIF header"
    return f"unsupported image format ({name})"


def _try_register() -> bool:
    for module in PLUGINS:
        try:
            plugin = importlib.import_module(module)
        except ImportError:
            continue
        plugin.register_heif_opener(decode_threads=1, depth_images=False, aux_images=False)
        return True
    return False
