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
