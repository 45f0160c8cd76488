"""Stores keep to their roots and carry no secrets; overlapping roots are refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cloudpickle
import dask.bag as db
import pytest

from pipeline import safety
from pipeline.config import Settings
from pipeline.discover import Job
from pipeline.errors import ImageError, UsageError
from pipeline.storage import Store, check_locations
from pipeline.task import TaskContext, process_partition

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize("rel", ["../x.jpg", "a/../../x.jpg", "/etc/x.jpg", "a//b.jpg", "./a.jpg",
                                 "a/..", "a\x00b.jpg"])  # fmt: skip
@pytest.mark.parametrize("root", ["s3://bucket/out", "/tmp/out"])
def test_paths_never_climb_out_of_the_root(root: str, rel: str) -> None:
    with pytest.raises(ImageError, match="unsafe path refused"):
        Store(root).url(rel)


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


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("s3://b/in", "s3://b/in/", "the output is the input"),
        ("s3a://b/in", "s3://b/in", "the output is the input"),
        ("s3://b/in/sub", "s3://b/in", "is inside the output"),
        ("s3://b/x", "s3://b", "is inside the output"),
        ("s3://b/in", "s3://b/in/web", "must not be inside the input"),
    ],
)
def test_overlapping_urls_are_refused(source: str, target: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        safety.check_overlap(Store.at(source).root, Store.at(target).root, remote=True)


@pytest.mark.parametrize(("source", "target"), [("s3://b/in", "s3://b/input"),
                                                ("s3://b/in", "s3://c/in")])  # fmt: skip
def test_neighbouring_urls_are_fine(source: str, target: str) -> None:
    safety.check_overlap(source, target, remote=True)


def test_the_same_folder_is_refused_and_a_neighbour_is_fine(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(UsageError, match="the output is the input"):
        safety.check_overlap(str(tmp_path / "in"), str(tmp_path / "in"), remote=False)
    safety.check_overlap(str(tmp_path / "in"), str(tmp_path / "in-web"), remote=False)


def test_confined_reads_refuse_links_out_of_the_root(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "secret.jpg").write_bytes(b"private")
    (tmp_path / "in" / "sub" / "real.jpg").write_bytes(b"fine")
    os.symlink("../secret.jpg", tmp_path / "in" / "leak.jpg")
    os.symlink("sub/real.jpg", tmp_path / "in" / "inner.jpg")
    root = str(tmp_path / "in")
    store = Store(root, confined=True)
    assert store.read("inner.jpg") == b"fine"
    with pytest.raises(ImageError, match="--follow-symlinks"):
        store.read("leak.jpg")
    with pytest.raises(ImageError):
        store.identity("leak.jpg")
    assert Store(root).read("leak.jpg") == b"private"  # --follow-symlinks


def test_shown_escapes_control_characters_only() -> None:
    assert safety.shown("caf\u00e9 \u65e5\u672c.jpg") == "caf\u00e9 \u65e5\u672c.jpg"
    assert safety.shown("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert safety.shown("x\nfailed: y") == "x\\nfailed: y"
    assert safety.shown("\u202eevil\x7f\x9b") == "\\u202eevil\\x7f\\x9b"
    assert safety.shown("back\\slash\udcff") == "back\\\\slash\\udcff"


def test_json_rows_round_trip_names_that_are_not_utf8() -> None:
    name = os.fsdecode(b"caf\xe9.png")
    row = {"input": name, "output": None, "error": f"bad {name}", "status": "failed"}
    safe = safety.json_row(row)
    for value in safe.values():
        if isinstance(value, str):
            value.encode("utf-8")  # strict: no lone surrogates left
    assert safety.name_from_json(safe) == name
    assert safety.name_from_json(safe, "output") is None
    assert safety.json_row({"input": "ok.png"}) == {"input": "ok.png"}
