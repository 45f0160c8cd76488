from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pipeline.discover import is_candidate, iter_jobs, output_names


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def jobs(root: Path, output: Path | None = None) -> dict[str, str]:
    return {job.input: job.output for job in iter_jobs(root, output)}


def test_extensions_match_in_any_case(tmp_path: Path) -> None:
    names = [
        "a.jpg",
        "b.JPG",
        "c.Jpeg",
        "d.png",
        "e.BMP",
        "f.tif",
        "g.TIFF",
        "h.webp",
        "i.gif",
        "j.txt",
        "k",
        "l.jpg.bak",
        ".hidden.jpg",
        "._m.jpg",
    ]
    touch(tmp_path, *names)
    assert sorted(jobs(tmp_path)) == [
        "a.jpg",
        "b.JPG",
        "c.Jpeg",
        "d.png",
        "e.BMP",
        "f.tif",
        "g.TIFF",
        "h.webp",
    ]
    assert jobs(tmp_path)["b.JPG"] == "b.jpg"


def test_sub_folders_are_mirrored(tmp_path: Path) -> None:
    touch(tmp_path, "x/y/z/deep.png", "x/top.webp", "root.bmp")
    assert jobs(tmp_path) == {
        "root.bmp": "root.jpg",
        "x/top.webp": "x/top.jpg",
        "x/y/z/deep.png": "x/y/z/deep.jpg",
    }


def test_stem_collisions_get_distinct_deterministic_names(tmp_path: Path) -> None:
    touch(tmp_path, "a.png", "a.jpg", "A.webp", "b.jpg")
    found = {job.input: job for job in iter_jobs(tmp_path)}
    outs = {name: job.output for name, job in found.items()}
    assert outs == {
        "A.webp": "A.webp.jpg",
        "a.jpg": "a.jpg.jpg",
        "a.png": "a.png.jpg",
        "b.jpg": "b.jpg",
    }
    assert found["a.png"].note is not None
    assert "a.jpg" in found["a.png"].note
    assert found["b.jpg"].note is None


def test_collision_with_a_name_that_is_already_natural(tmp_path: Path) -> None:
    touch(tmp_path, "a.png", "a.jpg", "a.png.jpg")
    outs = jobs(tmp_path)
    assert outs["a.png.jpg"] == "a.png.jpg"  # its own stem is unique: it keeps its name
    assert outs["a.png"] == "a.png-2.jpg"
    assert len(set(outs.values())) == 3


def test_output_name_never_shadows_a_sub_folder(tmp_path: Path) -> None:
    touch(tmp_path, "photo.png", "photo.jpg/inside.png")
    outs = jobs(tmp_path)
    assert outs["photo.png"] == "photo-2.jpg"
    assert outs["photo.jpg/inside.png"] == "photo.jpg/inside.jpg"


def test_order_and_names_do_not_depend_on_listing_order(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    names = ["c.png", "a.jpg", "b.bmp", "a.PNG", "sub/q.webp", "sub/p.jpg"]
    touch(first, *names)
    touch(second, *reversed(names))
    assert list(iter_jobs(first)) == list(iter_jobs(second))


def test_output_folder_inside_input_is_not_scanned(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg", "out/a.jpg", "out/old/b.jpg", "keep/c.jpg")
    assert jobs(tmp_path, tmp_path / "out") == {"a.jpg": "a.jpg", "keep/c.jpg": "keep/c.jpg"}


def test_symlinked_folders_are_not_followed(tmp_path: Path) -> None:
    touch(tmp_path, "real/a.jpg")
    os.symlink(tmp_path, tmp_path / "real" / "loop")
    assert jobs(tmp_path) == {"real/a.jpg": "real/a.jpg"}


def test_jobs_carry_the_file_size_through_links_too(tmp_path: Path) -> None:
    (tmp_path / "big.jpg").write_bytes(b"x" * 5000)
    (tmp_path / "small.png").write_bytes(b"x" * 30)
    os.symlink(tmp_path / "big.jpg", tmp_path / "link.jpg")
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")  # not a file: skipped
    assert {job.input: job.size for job in iter_jobs(tmp_path)} == {
        "big.jpg": 5000,
        "link.jpg": 5000,
        "small.png": 30,
    }


def test_discovery_is_lazy(tmp_path: Path) -> None:
    touch(tmp_path, "a/1.jpg", "b/2.jpg")
    stream = iter_jobs(tmp_path)
    assert next(stream).input == "a/1.jpg"
    (tmp_path / "b" / "3.jpg").write_bytes(b"x")  # seen: folder b is listed only when reached
    assert [job.input for job in stream] == ["b/2.jpg", "b/3.jpg"]


def test_is_candidate() -> None:
    assert is_candidate("x.WebP")
    assert not is_candidate("._x.jpg")
    assert is_candidate("IMG_0001.HEIC")
    assert is_candidate("x.avif")
    assert not is_candidate("x.gif")


names = st.text(alphabet="aAbB.-_1", min_size=1, max_size=6)
exts = st.sampled_from([".jpg", ".JPG", ".jpeg", ".png", ".PNG", ".webp", ".tif", ".bmp"])


@given(st.lists(st.tuples(names, exts), max_size=25), st.lists(names, max_size=4))
def test_outputs_are_unique_case_insensitively(
    parts: list[tuple[str, str]], folders: list[str]
) -> None:
    files = sorted({stem + ext for stem, ext in parts})
    result = output_names(files, reserved=folders)
    outs = [out.lower() for out, _ in result.values()]
    assert sorted(result) == files
    assert len(set(outs)) == len(outs)
    assert not set(outs) & {f.lower() for f in folders}
    assert all(out.endswith(".jpg") for out in outs)
    assert output_names(list(reversed(files)), reserved=folders) == result


def test_names_equal_after_nfc_normalisation_collide() -> None:
    nfc, nfd = "caf\u00e9.png", "cafe\u0301.jpg"
    result = output_names([nfc, nfd])
    outs = {out for out, _ in result.values()}
    assert len({unicodedata.normalize("NFC", o).lower() for o in outs}) == 2
    assert all(note and note.startswith("renamed") for _, note in result.values())


def test_output_names_stay_within_255_bytes() -> None:
    long_stem = "\u00e9" * 125 + "x"  # 251 bytes in UTF-8
    files = [long_stem + ".png", long_stem + ".jpg", long_stem + ".JPG"]
    result = output_names(files, reserved=[long_stem + ".jpg"])
    outs = [out for out, _ in result.values()]
    assert all(len(os.fsencode(o)) <= 255 for o in outs)
    assert len({o.lower() for o in outs}) == 3
    assert all(o.endswith(".jpg") for o in outs)
    assert output_names(list(reversed(files)), reserved=[long_stem + ".jpg"]) == result


@given(st.lists(st.text(min_size=1, max_size=300).filter(lambda s: "/" not in s), max_size=6))
def test_any_names_give_unique_outputs_within_the_limit(stems: list[str]) -> None:
    files = sorted({s.encode("utf-8", "surrogatepass")[:240].decode("utf-8", "ignore") + ".png"
                    for s in stems} - {".png"})  # fmt: skip
    result = output_names(files)
    keys = [unicodedata.normalize("NFC", out).casefold() for out, _ in result.values()]
    assert len(set(keys)) == len(keys)
    assert all(len(out.encode("utf-8", "surrogateescape")) <= 255 for out, _ in result.values())


def test_input_links_are_listed_and_folder_links_are_not_entered(tmp_path: Path) -> None:
    touch(tmp_path, "in/a.jpg", "private/p.jpg")
    os.symlink(tmp_path / "private" / "p.jpg", tmp_path / "in" / "out-of-tree.jpg")
    os.symlink(tmp_path / "private", tmp_path / "in" / "folder")
    assert jobs(tmp_path / "in") == {"a.jpg": "a.jpg", "out-of-tree.jpg": "out-of-tree.jpg"}
