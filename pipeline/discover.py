"""Find the input images and name their outputs, streaming the tree one folder at a time.

Only one folder's names are in memory at once: a tree of a million files never becomes a list.
Within a folder the names are sorted, so the same tree always gives the same jobs in the same
order and the same output names, whatever order the file system lists them in.

Naming rule: `sub/a.png` -> `sub/a.jpg`. When two inputs in a folder share a stem (`a.png` and
`a.jpg`, or `a.jpg` and `a.JPG`), each of them is named after its full file name instead
(`a.png.jpg`, `a.jpg.jpg`), and any name still taken gets `-2`, `-3`... Names are compared
case-insensitively and after Unicode NFC normalisation, so outputs stay distinct on file
systems that fold case or normalise names (macOS, Windows). A name that would pass the file
system's limit of 255 bytes is shortened, with a hash of the full name to keep it unique.

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

from pipeline.safety import local_identity, nfc_key
from pipeline.select import Selection
from pipeline.storage import Store

#: The input extensions, compared in lower case.
EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
#: Phone photos (HEIC/HEIF, decoded by pillow-heif when installed) and AVIF (by Pillow).
EXTENSIONS |= {".heic", ".heif", ".hif", ".avif"}
OUTPUT_SUFFIX = ".jpg"
NAME_MAX = 255  # bytes in one file name on common file systems (ext4, XFS, APFS, NTFS in UTF-16)


@dataclass(frozen=True, slots=True)
class Job:
    """One input image and the output it becomes, both relative POSIX paths."""

    input: str
    output: str
    note: str | None = None  # why the output name differs from the plain `<stem>.jpg`
    size: int = field(default=0, compare=False)  # bytes when listed (0: unknown)


def is_candidate(name: str) -> bool:
    """An input file name we process: a known extension, any case; hidden files are skipped."""
    if name.startswith("."):  # also AppleDouble `._IMG_0001.JPG` files, which are not images
        return False
    return os.path.splitext(name)[1].lower() in EXTENSIONS


def output_names(
    names: Iterable[str], reserved: Iterable[str] = ()
) -> dict[str, tuple[str, str | None]]:
    """Map each input file name of one folder to (output file name, note or None).

    `reserved` are names already used in the output folder by something else (sub-folders).
    Inputs with a stem of their own claim their plain name first; the rest, in sorted order,
    get a name made unique from their full file name.
    """
    ordered = sorted(names)
    groups: dict[str, list[str]] = {}
    for name in ordered:
        groups.setdefault(_stem(name), []).append(name)
    taken = {nfc_key(r) for r in reserved}
    chosen: dict[str, tuple[str, str | None]] = {}
    for name in ordered:
        plain = _fit(os.path.splitext(name)[0] + OUTPUT_SUFFIX)
        if len(groups[_stem(name)]) == 1 and nfc_key(plain) not in taken:
            chosen[name] = (plain, None)
            taken.add(nfc_key(plain))
    for name in ordered:
        if name in chosen:
            continue
        others = [n for n in groups[_stem(name)] if n != name]
        base = name + OUTPUT_SUFFIX if others else os.path.splitext(name)[0] + OUTPUT_SUFFIX
        out = _unique(_fit(base), taken)
        taken.add(nfc_key(out))
        note = f"renamed: stem shared with {', '.join(others)}" if others else "renamed: name taken"
        chosen[name] = (out, note)
    return {name: chosen[name] for name in ordered}


def iter_jobs(
    input_root: str | Path | Store,
    output_root: str | Path | Store | None = None,
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> Iterator[Job]:
    """Yield a Job for every input image under `input_root`, folder by folder, sorted.

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
        for name, (out, note) in output_names(files, reserved=dirs).items():
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


def _unique(base: str, taken: set[str]) -> str:
    if nfc_key(base) not in taken:
        return base
    stem = base[: -len(OUTPUT_SUFFIX)]
    n = 2
    while nfc_key(_fit(f"{stem}-{n}{OUTPUT_SUFFIX}")) in taken:
        n += 1
    return _fit(f"{stem}-{n}{OUTPUT_SUFFIX}")


def _fit(name: str) -> str:
    """`name` (ending in .jpg), shortened to NAME_MAX bytes with a hash when it is longer."""
    raw = os.fsencode(name)
    if len(raw) <= NAME_MAX:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:10]
    room = NAME_MAX - len(OUTPUT_SUFFIX) - len(digest) - 1
    stem = os.fsencode(name[: -len(OUTPUT_SUFFIX)])[:room]
    while True:  # cut on a character boundary (names that are not UTF-8 stay bytes-exact)
        try:
            text = os.fsdecode(stem)
            if len(os.fsencode(text)) == len(stem):
                break
        except UnicodeError:
            pass
        stem = stem[:-1]
    return f"{text}~{digest}{OUTPUT_SUFFIX}"


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name
