"""Stores: one interface, the same behaviour for a local folder and an S3 bucket (a real moto
server); roots that never let a path climb out; no secret in a store or the task graph."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import cloudpickle
import dask.bag as db
import pytest
import s3fs
from conftest import missing, require_root
from PIL import Image
from s3_server import S3
from s3_server import s3 as s3  # the module-scoped S3 server fixture

from pipeline import outputs, storage
from pipeline.config import Settings
from pipeline.discover import Job
from pipeline.errors import ImageError, UsageError
from pipeline.storage import Entry, LocalStore, ObjectStore, Store, check_locations
from pipeline.task import TaskContext, process_partition

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
MARK = outputs.marker("fp", 1234, "v1")

MakeRoot = Callable[[], str]  # a fresh, empty, writable root of one kind


def jpeg(marker: bytes = MARK, seed: int = 0) -> bytes:
    """A real JPEG whose first headers carry `marker`, as outputs do."""
    out = io.BytesIO()
    Image.new("RGB", (16, 8), (seed % 256, 40, 90)).save(out, "JPEG", comment=marker)
    return out.getvalue()


@pytest.fixture
def s3_env(s3: S3, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """The moto server's endpoint and credentials in this process, file systems opened anew."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    storage.remote.file_system.cache_clear()
    yield s3
    s3fs.S3FileSystem.clear_instance_cache()
    storage.remote.file_system.cache_clear()


@pytest.fixture(params=["local", "s3"])
def make_root(request: pytest.FixtureRequest, tmp_path: Path) -> MakeRoot:
    if request.param == "local":
        return lambda: str(tmp_path / uuid.uuid4().hex[:8] / "out")
    s3 = request.getfixturevalue("s3_env")

    def bucket_root() -> str:
        return f"s3://{s3.fresh_bucket(f'store-{uuid.uuid4().hex[:12]}')}/out"

    return bucket_root


# -- the same interface for every kind --------------------------------------------------------


def test_an_output_is_written_read_listed_and_recognised(make_root: MakeRoot) -> None:
    store = Store.at(make_root())
    store.check_writable()
    data = jpeg()
    store.write("trip/day1/a.jpg", data, MARK, "run-1")
    assert store.read("trip/day1/a.jpg") == data
    assert store.inspect("trip/day1/a.jpg") == (True, MARK)
    assert store.read_marker("trip/day1/a.jpg") == MARK
    assert store.list_folder("") == [Entry("trip", True)]
    assert store.list_folder("trip/day1") == [Entry("a.jpg", False, len(data))]
    size, version = store.identity("trip/day1/a.jpg")
    assert (size, bool(version)) == (len(data), True)


def test_missing_and_foreign_outputs(make_root: MakeRoot) -> None:
    store = Store.at(make_root())
    store.check_writable()
    assert store.inspect("none.jpg") == (False, None)
    assert store.read_marker("none.jpg") is None
    assert not store.written_by("none.jpg", "run-1", 0)
    store.write("theirs.jpg", jpeg(b"someone else's comment"), b"", "")
    assert store.inspect("theirs.jpg") == (True, None)
    assert store.read_marker("theirs.jpg") is None
    store.write("notes.txt", b"not an image", b"", "")
    assert store.inspect("notes.txt") == (True, None)


def test_a_marker_behind_a_large_metadata_block_is_still_found(make_root: MakeRoot) -> None:
    """Kept EXIF can put an AVIF's marker past the first read: stores read on, as far as
    `outputs.MARKER_SPAN`, for files that may hold one."""
    store = Store.at(make_root())
    store.check_writable()
    data = jpeg()
    exif = b"\xff\xe1" + (60_002).to_bytes(2, "big") + b"Exif\0\0" + b"\0" * 59_994
    behind = data[:2] + exif + data[2:]  # SOI, a 60 kB APP1, then the comment with the marker
    assert outputs.find_marker(behind[:4096]) is None
    store.write("a.jpg", behind, MARK, "run-1")
    assert store.inspect("a.jpg") == (True, MARK)


def test_rewriting_replaces_the_whole_output_and_its_version(make_root: MakeRoot) -> None:
    store = Store.at(make_root())
    store.check_writable()
    store.write("a.jpg", jpeg(seed=1), MARK, "run-1")
    first = store.identity("a.jpg")
    time.sleep(0.01)  # a later mtime for the folder; a new ETag for the bucket
    newer = outputs.marker("fp", 99, "v2")
    store.write("a.jpg", jpeg(newer, seed=200) + b"\0" * 100, newer, "run-2")
    assert store.read_marker("a.jpg") == newer
    assert store.read("a.jpg") == jpeg(newer, seed=200) + b"\0" * 100
    assert store.identity("a.jpg") != first


def test_written_by_tells_this_run_from_another(make_root: MakeRoot) -> None:
    store = Store.at(make_root())
    store.check_writable()
    started = time.time_ns()
    store.write("a.jpg", jpeg(), MARK, "run-1")
    assert store.written_by("a.jpg", "run-1", started)
    later = time.time_ns() + 10 * 1_000_000_000  # a run that started after the write
    assert not store.written_by("a.jpg", "run-2", later)


def test_a_run_that_follows_another_at_once_does_not_take_its_outputs(
    make_root: MakeRoot,
) -> None:
    """A notebook's rerun starts a few milliseconds after the run before it ends, well within
    the file clock's slack: that run's outputs are still not the new run's own."""
    store = Store.at(make_root())
    store.check_writable()
    store.write("a.jpg", jpeg(), MARK, "run-1")
    started = time.time_ns()
    if not store.remote and outputs.run_of(Path(store.root) / "a.jpg") is None:
        missing(f"the file system of {store.root} keeps no extended attributes")
    assert not store.written_by("a.jpg", "run-2", started)
    assert store.written_by("a.jpg", "run-1", started)


def test_stores_are_small_picklable_and_found_again_by_root(make_root: MakeRoot) -> None:
    store = Store.at(make_root())
    blob = pickle.dumps(store)
    assert len(blob) < 200
    assert SECRET.encode() not in blob
    assert pickle.loads(blob) == store
    assert Store.at(store.root) is Store.at(store.root), "a known root is not resolved again"
    assert Store.at(store.root) == store


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_unwritable_locations_are_found_before_any_write(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "local":
        (tmp_path / "a-file").write_bytes(b"")
        root, error, match = str(tmp_path / "a-file" / "out"), NotADirectoryError, "Not a directory"
    else:
        request.getfixturevalue("s3_env")
        root, error, match = "s3://no-such-bucket/out", FileNotFoundError, "bucket not found"
    with pytest.raises(error, match=match):
        Store.at(root).check_writable()


# -- the kinds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "kind", "root"),
    [
        ("s3://bucket/out/", ObjectStore, "s3://bucket/out"),
        ("memory://scratch/out", ObjectStore, "memory://scratch/out"),
        ("file:///tmp/../tmp/out", LocalStore, "/tmp/out"),
        ("/tmp/./out", LocalStore, "/tmp/out"),
    ],
)
def test_the_factory_picks_the_kind_and_normalises_the_root(
    location: str, kind: type[Store], root: str
) -> None:
    store = Store.at(location)
    assert type(store) is kind
    assert store.remote is (kind is ObjectStore)
    assert store.root == (os.path.realpath(root) if kind is LocalStore else root)


def test_only_the_factory_makes_stores() -> None:
    with pytest.raises(TypeError):
        Store()  # type: ignore[abstract]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("a.jpg", "image/jpeg"), ("b.JPEG", "image/jpeg"), ("c.webp", "image/webp"),
     ("d.avif", "image/avif"), ("e.png.bin", "application/octet-stream"),
     ("no-extension", "application/octet-stream")],
)  # fmt: skip
def test_objects_get_the_content_type_of_their_extension_and_the_run_in_metadata(
    s3_env: S3, name: str, content_type: str
) -> None:
    bucket = s3_env.fresh_bucket(f"types-{uuid.uuid4().hex[:12]}")
    Store.at(f"s3://{bucket}/web").write(f"sub/{name}", jpeg(), MARK, "run-7")
    head = s3_env.client.head_object(Bucket=bucket, Key=f"web/sub/{name}")
    assert head["ContentType"] == content_type
    assert head["Metadata"] == {"pipeline": MARK.decode(), "pipeline-run": "run-7"}


# -- roots that keep paths in, and secrets out ----------------------------------------------------


@pytest.mark.parametrize("rel", ["../x.jpg", "a/../../x.jpg", "/etc/x.jpg", "a//b.jpg", "./a.jpg",
                                 "a/..", "a\x00b.jpg"])  # fmt: skip
@pytest.mark.parametrize("root", ["s3://bucket/out", "/tmp/out"])
def test_paths_never_climb_out_of_the_root(root: str, rel: str) -> None:
    with pytest.raises(ImageError, match="unsafe path refused"):
        Store.at(root).url(rel)


def test_local_writes_follow_no_link(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "out" / "linked")
    store = Store.at(tmp_path / "out")
    with pytest.raises(OSError, match="symbolic link"):
        store.write("linked/a.jpg", jpeg(), MARK, "run-1")
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        f"s3://AKIAEXAMPLE:{SECRET}@bucket/photos",
        f"https://user:{SECRET}@example.invalid/photos",
        f"gs://{SECRET}@bucket/photos",
    ],
)
def test_credentials_in_urls_are_refused_without_echoing_them(url: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        Store.at(url)
    assert SECRET not in str(info.value)
    assert "AKIAEXAMPLE" not in str(info.value)
    for args in ((url, tmp_path), (tmp_path, url)):
        with pytest.raises(UsageError) as info:
            check_locations(*args)
        assert SECRET not in str(info.value)


def test_the_task_graph_holds_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers read credentials from their own environment: none travel with the tasks."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    ctx = TaskContext(
        input_root=Store.at("s3://bucket/photos").root,
        output_root=Store.at(tmp_path).root,
        settings=Settings(),
        run_id="r",
        started_ns=0,
    )
    bag = db.from_sequence([[Job("a.jpg", "a.jpg")]], partition_size=1).map_partitions(
        process_partition, ctx
    )
    for blob in (pickle.dumps(ctx), cloudpickle.dumps(bag.__dask_graph__())):
        assert SECRET.encode() not in blob
        assert b"AKIAEXAMPLE" not in blob


def test_confined_reads_refuse_links_out_of_the_root(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "secret.jpg").write_bytes(b"private")
    (tmp_path / "in" / "sub" / "real.jpg").write_bytes(b"fine")
    os.symlink("../secret.jpg", tmp_path / "in" / "leak.jpg")
    os.symlink("sub/real.jpg", tmp_path / "in" / "inner.jpg")
    root = str(tmp_path / "in")
    store = Store.at(root, confined=True)
    assert store.read("inner.jpg") == b"fine"
    with pytest.raises(ImageError, match="--follow-symlinks"):
        store.read("leak.jpg")
    with pytest.raises(ImageError):
        store.identity("leak.jpg")
    assert Store.at(root).read("leak.jpg") == b"private"  # --follow-symlinks


# -- the run id kept with a local file --------------------------------------------------------


def test_a_local_output_keeps_the_id_of_the_run_that_wrote_it_last(tmp_path: Path) -> None:
    store = Store.at(tmp_path / "out")
    store.write("s/a.jpg", jpeg(), MARK, "run-1")  # a new file: linked in from O_TMPFILE
    assert outputs.run_of(tmp_path / "out" / "s" / "a.jpg") == "run-1"
    store.write("s/a.jpg", jpeg(seed=9), MARK, "run-2")  # replaced: a renamed temp file
    assert outputs.run_of(tmp_path / "out" / "s" / "a.jpg") == "run-2"
    (tmp_path / "out" / "b.jpg").write_bytes(jpeg())  # a copy the pipeline did not write
    assert outputs.run_of(tmp_path / "out" / "b.jpg") == ""
    assert not store.written_by("b.jpg", "run-2", 0)
    assert outputs.run_of(tmp_path / "out" / "none.jpg") == ""


@pytest.fixture
def without_xattrs(tmp_path: Path) -> Iterator[Path]:
    """A fresh ramfs: a file system that keeps no extended attributes."""
    require_root("mounting a ramfs")
    folder = tmp_path / "ramfs"
    folder.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def test_where_no_run_id_can_be_kept_the_mtime_tells(without_xattrs: Path) -> None:
    store = Store.at(without_xattrs / "out")
    started = time.time_ns()
    store.write("a.jpg", jpeg(), MARK, "run-1")
    assert outputs.run_of(without_xattrs / "out" / "a.jpg") is None
    assert store.written_by("a.jpg", "run-1", started)
    assert not store.written_by("a.jpg", "run-2", time.time_ns() + storage.FS_CLOCK_SLACK_NS + 1)
