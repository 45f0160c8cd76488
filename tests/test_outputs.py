from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline import outputs


def jpeg_with_comment(comment: bytes) -> bytes:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "JPEG", comment=comment)
    return buf.getvalue()


def test_marker_round_trip(tmp_path: Path) -> None:
    mark = outputs.marker("abc123", 1234, 987654321)
    path = tmp_path / "x.jpg"
    path.write_bytes(jpeg_with_comment(mark))
    assert outputs.read_marker(path) == mark


@pytest.mark.parametrize(
    "content", [b"", b"not a jpeg", jpeg_with_comment(b"someone else's comment")]
)
def test_foreign_files_have_no_marker(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    assert outputs.read_marker(path) is None
    assert outputs.read_marker(tmp_path / "missing.jpg") is None


def test_write_atomic_creates_folders_and_leaves_only_the_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.jpg"
    outputs.write_atomic(target, b"first")
    outputs.write_atomic(target, b"second")  # replacing goes through a named temp file
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["out.jpg"]


def test_write_atomic_honours_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        outputs.write_atomic(tmp_path / "m.jpg", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "m.jpg").stat().st_mode & 0o777 == 0o640


def test_named_temp_path_when_o_tmpfile_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    outputs.write_atomic(tmp_path / "y.jpg", b"data")
    assert (tmp_path / "y.jpg").read_bytes() == b"data"
    assert os.listdir(tmp_path) == ["y.jpg"]


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".pipeline-z.jpg.deadbeef.tmp"
    other = tmp_path / ".pipeline-other.jpg.deadbeef.tmp"
    stale.write_bytes(b"half")
    other.write_bytes(b"half")
    outputs.write_atomic(tmp_path / "z.jpg", b"whole")
    assert sorted(os.listdir(tmp_path)) == [other.name, "z.jpg"]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"a file where the output folder should be")
    with pytest.raises((FileExistsError, NotADirectoryError)):
        outputs.write_atomic(blocker / "x.jpg", b"data")
    assert os.listdir(tmp_path) == ["not-a-folder"]


def test_a_folder_link_in_the_output_tree_is_not_followed(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    stale = elsewhere / ".pipeline-x.jpg.deadbeef.tmp"
    stale.write_bytes(b"not ours to delete")
    (root / "a").mkdir(parents=True)
    os.symlink(elsewhere, root / "a" / "link")
    with pytest.raises(OSError, match="symbolic link in the output folder") as info:
        outputs.write_atomic(root / "a" / "link" / "x.jpg", b"data", root)
    assert info.value.filename == "a/link"
    with pytest.raises(OSError, match="symbolic link"):
        outputs.inspect(root / "a" / "link" / "x.jpg", root)
    outputs.remove_stale_temps(root / "a" / "link" / "x.jpg", root)
    assert sorted(os.listdir(elsewhere)) == [stale.name]
    assert outputs.modified_ns(root / "a" / "link" / "x.jpg", root) is None


def test_a_file_link_at_the_output_path_is_replaced_not_written_through(tmp_path: Path) -> None:
    root, victim = tmp_path / "out", tmp_path / "victim.jpg"
    root.mkdir()
    victim.write_bytes(b"precious")
    os.symlink(victim, root / "x.jpg")
    assert outputs.inspect(root / "x.jpg", root) == (True, None)  # there, and not ours
    outputs.write_atomic(root / "x.jpg", b"ours", root)
    assert victim.read_bytes() == b"precious"
    assert not (root / "x.jpg").is_symlink()
    assert (root / "x.jpg").read_bytes() == b"ours"


def test_inspect_tells_absent_foreign_and_ours(tmp_path: Path) -> None:
    mark = outputs.marker("fp", 1, 2)
    (tmp_path / "ours.jpg").write_bytes(jpeg_with_comment(mark))
    (tmp_path / "theirs.jpg").write_bytes(jpeg_with_comment(b"a camera's comment"))
    (tmp_path / "dir.jpg").mkdir()
    assert outputs.inspect(tmp_path / "none.jpg", tmp_path) == (False, None)
    assert outputs.inspect(tmp_path / "ours.jpg", tmp_path) == (True, mark)
    assert outputs.inspect(tmp_path / "theirs.jpg", tmp_path) == (True, None)
    assert outputs.inspect(tmp_path / "dir.jpg", tmp_path) == (True, None)
    assert outputs.inspect(tmp_path / "no" / "such" / "x.jpg", tmp_path) == (False, None)


@pytest.mark.parametrize("o_tmpfile", [True, False])
def test_a_255_byte_name_is_written_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, o_tmpfile: bool
) -> None:
    if not o_tmpfile:
        monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    name = "\u00e9" * 125 + "x.jpg"  # 255 bytes
    assert len(os.fsencode(name)) == 255
    for data in (b"first", b"second"):  # the second write goes through a named temp file
        outputs.write_atomic(tmp_path / "sub" / name, data, tmp_path)
    assert os.listdir(tmp_path / "sub") == [name]
    assert (tmp_path / "sub" / name).read_bytes() == b"second"


def test_stale_temps_of_a_255_byte_name_are_removed(tmp_path: Path) -> None:
    name = "y" * 251 + ".jpg"
    outputs.write_atomic(tmp_path / name, b"one", tmp_path)
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        stale = outputs._temp_stem(folder, name) + "0badf00d.tmp"
    finally:
        os.close(folder)
    assert len(stale) < 255
    (tmp_path / stale).write_bytes(b"half")
    outputs.write_atomic(tmp_path / name, b"two", tmp_path)
    assert os.listdir(tmp_path) == [name]
