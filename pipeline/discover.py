"""Find the input images and name their outputs, streaming the tree one folder at a time.

Only one folder's names are in memory at once: a tree of a million files never becomes a list.
Within a folder the names are sorted, so the same tree always gives the same jobs in the same
order and the same output names, whatever order the file system lists them in.

Naming rule: `sub/a.png` -> `sub/a.jpg`. With several sizes and formats (`Naming`), the largest
size keeps the plain name and every other size adds `-<size>` (the size asked for, not the
pixels it came to): `a.jpg`, `a.webp`, `a-640.jpg`, `a-640.webp`. When two inputs in a folder
share a stem (`a.png` and `a.jpg`, or `a.jpg` and `a.JPG`), each of them is named after its full
file name instead (`a.png.jpg`, `a.jpg.jpg`), and an input any of whose names is still taken
(by another input's outputs or by a sub-folder) gets `-2`, `-3`... on all of its names. Names are
compared case-insensitively and after Unicode NFC normalisation, so outputs stay distinct on file
systems that fold case or normalise names (macOS, Windows). A name whose longest output name
would pass the file system's limit of 255 bytes is shortened, with a hash to keep it unique.

Symbolic links: links to files are listed (a worker refuses to read one that leads outside
the input folder, unless `--follow-symlinks`); links to folders are never entered, since a
link can lead back to its own parent.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.safety import local_identity, nfc_key
from pipeline.select import Selection
from pipeline.storage import Store

if TYPE_CHECKING:
    from pipeline.config import Settings

#: The input extensions, compared in lower case.
EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
#: Phone photos (HEIC/HEIF, decoded by pillow-heif when installed) and AVIF (by Pillow).
EXTENSIONS |= {".heic", ".heif", ".hif", ".avif"}
OUTPUT_SUFFIX = ".jpg"
#: The file name extension of each output format.
SUFFIXES = {"jpeg": ".jpg", "webp": ".webp", "avif": ".avif"}
NAME_MAX = 255  # bytes in one file name on common file systems (ext4, XFS, APFS, NTFS in UTF-16)


@dataclass(frozen=True, slots=True)
class Job:
    """One input image and the output it becomes, both relative POSIX paths."""

    input: str
    output: str
    note: str | None = None  # why the output name differs from the plain `<stem>.jpg`
    size: int = field(default=0, compare=False)  # bytes when listed (0: unknown)


@dataclass(frozen=True, slots=True)
class Output:
    """One output of an input: its relative path, the size asked for and the format."""

    path: str
    size: int
    format: str


@dataclass(frozen=True)
class Naming:
    """Which outputs each input becomes: every size (largest first) in every format."""

    sizes: tuple[int, ...] = (0,)  # only their order and text matter for names
    formats: tuple[str, ...] = ("jpeg",)

    @classmethod
    def of(cls, settings: Settings) -> Naming:
        return cls(settings.output_sizes, settings.formats)

    @property
    def suffix(self) -> str:
        """The extension of an input's first output (`Job.output`)."""
        return SUFFIXES[self.formats[0]]

    def tails(self) -> list[tuple[str, int, str]]:
        """(what follows the base name, size, format) of each output, the first one first."""
        return [
            (("" if i == 0 else f"-{size}") + SUFFIXES[fmt], size, fmt)
            for i, size in enumerate(self.sizes)
            for fmt in self.formats
        ]

    def outputs(self, first: str) -> list[Output]:
        """Every output of the input whose first output is `first` (a `Job.output`)."""
        base = first[: -len(self.suffix)]
        return [Output(base + tail, size, fmt) for tail, size, fmt in self.tails()]


def is_candidate(name: str) -> bool:
    """An input file name we process: a known extension, any case; hidden files are skipped."""
    if name.startswith("."):  # also AppleDouble `._IMG_0001.JPG` files, which are not images
        return False
    return os.path.splitext(name)[1].lower() in EXTENSIONS


def output_names(
    names: Iterable[str], reserved: Iterable[str] = (), naming: Naming | None = None
) -> dict[str, tuple[str, str | None]]:
    """Map each input file name of one folder to (first output file name, note or None).

    `reserved` are names already used in the output folder by something else (sub-folders).
    Inputs with a stem of their own claim their plain names first; the rest, in sorted order,
    get names made unique from their full file name. An input's names are all of `naming`'s
    outputs (`Naming.outputs` gives them from the first one), claimed together.
    """
    naming = naming or Naming()
    tails = [tail for tail, _, _ in naming.tails()]
    longest = max(len(os.fsencode(tail)) for tail in tails)
    ordered = sorted(names)
    groups: dict[str, list[str]] = {}
    for name in ordered:
        groups.setdefault(_stem(name), []).append(name)
    taken = {nfc_key(r) for r in reserved}

    def claim(base: str) -> bool:
        keys = [nfc_key(base + tail) for tail in tails]
        if any(key in taken for key in keys):
            return False
        taken.update(keys)
        return True

    chosen: dict[str, tuple[str, str | None]] = {}
    for name in ordered:
        plain = _fit(os.path.splitext(name)[0], naming.suffix, longest)
        if len(groups[_stem(name)]) == 1 and claim(plain):
            chosen[name] = (plain + naming.suffix, None)
    for name in ordered:
        if name in chosen:
            continue
        others = [n for n in groups[_stem(name)] if n != name]
        base = _fit(name if others else os.path.splitext(name)[0], naming.suffix, longest)
        n = 2
        out = base
        while not claim(out):
            out = _fit(f"{base}-{n}", naming.suffix, longest)
            n += 1
        note = f"renamed: stem shared with {', '.join(others)}" if others else "renamed: name taken"
        chosen[name] = (out + naming.suffix, note)
    return {name: chosen[name] for name in ordered}


def iter_jobs(
    input_root: str | Path | Store,
    output_root: str | Path | Store | None = None,
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    naming: Naming | None = None,
) -> Iterator[Job]:
    """Yield a Job for every input image under `input_root`, folder by folder, sorted.

    `naming`: the sizes and formats each input is written in (default: one JPEG), which its
    output names are made unique for; `Job.output` is its first output.

    The output folder is not entered when it lies inside the input (compared by identity for
    local folders, by prefix for URLs), and neither are hidden folders or symbolic links to
    folders (which could loop). Links to files are listed; where they may lead is checked
    when the file is read.

    `include`/`exclude`: glob patterns that choose inputs (`pipeline.select`); folders nothing
    can be chosen from are not listed. Output names do not depend on them: they are made from
    all the images of a folder, so a run with other patterns names every output the same.
    """
    chosen = Selection(include, exclude)
    source = _store(input_root)
    is_output = _output_test(source, None if output_root is None else _store(output_root))
    pending = [""]
    while pending:
        rel = pending.pop()
        files: dict[str, int] = {}
        dirs: list[str] = []
        for entry in source.list_folder(rel):
            if entry.name.startswith("."):
                continue
            if entry.is_dir:
                if not is_output(_join(rel, entry.name)):
                    dirs.append(entry.name)
            elif is_candidate(entry.name):
                files[entry.name] = entry.size
        for name, (out, note) in output_names(files, dirs, naming).items():
            if chosen.takes(_join(rel, name)):
                yield Job(_join(rel, name), _join(rel, out), note, files[name])
        pending.extend(p for d in sorted(dirs, reverse=True) if chosen.enters(p := _join(rel, d)))


def _store(location: str | Path | Store) -> Store:
    return location if isinstance(location, Store) else Store.at(location)


def _output_test(source: Store, target: Store | None) -> Callable[[str], bool]:
    """A test for 'this sub-folder of the input is the output folder'."""
    if target is None or source.remote != target.remote:
        return lambda rel: False
    if source.remote:
        return lambda rel: source.url(rel) == target.root
    wanted = local_identity(target.root)
    return lambda rel: wanted is not None and local_identity(source.url(rel)) == wanted


def _stem(name: str) -> str:
    return nfc_key(os.path.splitext(name)[0])


def _fit(stem: str, suffix: str, longest: int) -> str:
    """`stem`, shortened with a hash when `stem` + the longest output tail passes NAME_MAX.

    The hash is of `stem` + `suffix` (the first output's extension).
    """
    raw = os.fsencode(stem)
    if len(raw) + longest <= NAME_MAX:
        return stem
    digest = hashlib.sha256(raw + os.fsencode(suffix)).hexdigest()[:10]
    cut = raw[: NAME_MAX - longest - len(digest) - 1]
    while True:  # cut on a character boundary (names that are not UTF-8 stay bytes-exact)
        try:
            text = os.fsdecode(cut)
            if len(os.fsencode(text)) == len(cut):
                break
        except UnicodeError:
            pass
        cut = cut[:-1]
    return f"{text}~{digest}"


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name
