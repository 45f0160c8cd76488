"""--include / --exclude: the glob semantics, pruning of the walk, and every way a run is made
(CLI on a local cluster, dry run, Python API, bag, S3 inputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, save_image
from distributed import Client, LocalCluster
from s3_server import S3, upload_inputs
from s3_server import s3 as s3  # the module-scoped S3 server fixture

import pipeline
from pipeline.config import RunOptions
from pipeline.discover import iter_jobs
from pipeline.dryrun import plan
from pipeline.errors import UsageError
from pipeline.records import options_from_json, options_to_json
from pipeline.select import Selection
from pipeline.storage import Store

PATHS = [
    "a.jpg",
    "IMG_0001.JPG",
    "raw/b.jpg",
    "raw/deep/c.png",
    "2024/trip/raw/d.jpg",
    "2024/trip/e.heic",
    "2024/best/f.webp",
    "2023/g.jpg",
]

ALL = [path.rsplit("/", 1)[-1] for path in PATHS]


def chosen(include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> list[str]:
    """The base names (all different) of the PATHS the patterns select."""
    selection = Selection(include, exclude)
    return [p.rsplit("/", 1)[-1] for p in PATHS if selection.takes(p)]


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ((), (), ALL),
        # no `/`: the name at any depth; case is ignored (a camera's .JPG)
        (("*.jpg",), (), ["a.jpg", "IMG_0001.JPG", "b.jpg", "d.jpg", "g.jpg"]),
        (("**/*.jpg",), ("raw/**",), ["a.jpg", "IMG_0001.JPG", "d.jpg", "g.jpg"]),
        # a pattern with `/` is anchored at the input; `*` stays within one folder
        (("*/*.jpg",), (), ["b.jpg", "g.jpg"]),
        (("2024/*.heic",), (), []),
        (("/*.jpg",), (), ["a.jpg", "IMG_0001.JPG"]),
        # a pattern that matches a folder takes (or leaves out) all of it
        (("2024/best",), (), ["f.webp"]),
        (("2024/*",), (), ["d.jpg", "e.heic", "f.webp"]),
        ((), ("raw",), ["a.jpg", "IMG_0001.JPG", "e.heic", "f.webp", "g.jpg"]),
        # a trailing `/`: folders only
        ((), ("*.jpg/",), ALL),
        ((), ("trip/",), ["a.jpg", "IMG_0001.JPG", "b.jpg", "c.png", "f.webp", "g.jpg"]),
        # `**` in the middle: any number of folders, none included
        (("2024/**/*.heic",), (), ["e.heic"]),
        (("raw/**/*",), (), ["b.jpg", "c.png"]),
        # `**` alone, or twice in a row, is everything below
        ((), ("**",), []),
        (("**",), (), ALL),
        ((), ("raw/**/**",), ["a.jpg", "IMG_0001.JPG", "d.jpg", "e.heic", "f.webp", "g.jpg"]),
        # sets, alternatives, `?`; exclude wins over include
        (("*.{heic,webp}",), (), ["e.heic", "f.webp"]),
        (("202[!4]/*",), (), ["g.jpg"]),
        (("?.jpg",), ("a*",), ["b.jpg", "d.jpg", "g.jpg"]),
    ],
)  # fmt: skip
def test_glob_semantics(
    include: tuple[str, ...], exclude: tuple[str, ...], expected: list[str]
) -> None:
    assert chosen(include, exclude) == expected


def test_special_characters_are_literal() -> None:
    selection = Selection(["[x].jpg", "a+b(1).jpg", r"\*.jpg", "{x.jpg"])
    assert selection.takes("[x].jpg") is False  # a set: matches "x.jpg"
    assert selection.takes("x.jpg")
    assert selection.takes("sub/a+b(1).jpg")
    assert selection.takes("*.jpg")
    assert not selection.takes("y.jpg")
    assert selection.takes("{x.jpg")


@pytest.mark.parametrize("bad", ["", "/", "../x.jpg", "a//b", "a/../b"])
def test_unusable_patterns_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError, match="--include"):
        RunOptions(include=(bad,))


def test_options_normalise_and_survive_the_json_report() -> None:
    opts = RunOptions(include="*.jpg", exclude=["raw/**"])  # type: ignore[arg-type]
    assert opts.include == ("*.jpg",)
    assert opts.exclude == ("raw/**",)
    again = options_from_json(options_to_json(opts))
    assert again.include == ("*.jpg",)
    assert again.exclude == ("raw/**",)


def make_tree(root: Path) -> Path:
    for i, rel in enumerate(["a.png", "a.jpg", "raw/x.jpg", "raw/deep/y.jpg", "keep/z.jpg"]):
        save_image(root / rel, (40, 30), seed=i)
    return root


def test_excluded_folders_are_not_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.at(make_tree(tmp_path / "in"))
    listed: list[str] = []
    real = type(store).list_folder

    def listing(self: Store, rel: str) -> Any:
        listed.append(rel)
        return real(self, rel)

    monkeypatch.setattr(type(store), "list_folder", listing)  # the real listing, recorded
    jobs = list(iter_jobs(store, exclude=["raw"]))
    assert [j.input for j in jobs] == ["a.jpg", "a.png", "keep/z.jpg"]
    assert sorted(listed) == ["", "keep"]
    listed.clear()
    assert [j.input for j in iter_jobs(store, include=["keep/*.jpg"])] == ["keep/z.jpg"]
    assert sorted(listed) == ["", "keep"]  # no include pattern can reach raw/


def test_output_names_do_not_depend_on_the_selection(tmp_path: Path) -> None:
    """a.png and a.jpg share a stem: each keeps its full-name output whatever is selected."""
    root = make_tree(tmp_path / "in")
    everything = {j.input: j.output for j in iter_jobs(root)}
    only_png = {j.input: j.output for j in iter_jobs(root, include=["*.png"])}
    assert only_png == {"a.png": everything["a.png"]} == {"a.png": "a.png.jpg"}


def test_dry_run_honours_the_patterns(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "in")
    found = plan(RunOptions(input=root, output=tmp_path / "out", exclude=("raw/**",)))
    assert found.total == 3


def test_cli_run_on_a_local_cluster_then_a_wider_run(tmp_path: Path) -> None:
    root, out = make_tree(tmp_path / "in"), tmp_path / "out"
    args = ["run", "--input", root, "--output", out, "--workers", "1", "--max-size", "32"]
    patterns = ["--include", "**/*.jpg", "--exclude", "raw/**"]
    first = run_cli(*args, *patterns, report=tmp_path / "1.json")
    assert first.code == 0, first.stderr
    assert sorted(first.by_input()) == ["a.jpg", "keep/z.jpg"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == [
        "a.jpg.jpg",
        "keep/z.jpg",
    ]
    second = run_cli(*args, report=tmp_path / "2.json")  # everything: the two are up to date
    assert second.code == 0, second.stderr
    status = {k: v["status"] for k, v in second.by_input().items()}
    assert status == {"a.jpg": "skipped", "a.png": "ok", "keep/z.jpg": "skipped",
                      "raw/x.jpg": "ok", "raw/deep/y.jpg": "ok"}  # fmt: skip
    bad = run_cli(*args, "--include", "../*.jpg")
    assert bad.code == 2, bad.stderr
    assert bad.stderr.count("\n") == 1, bad.stderr


def test_python_api_and_bag_take_the_patterns(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "in")
    with LocalCluster(
        n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    ) as cluster, Client(cluster) as client:  # fmt: skip
        report = pipeline.run(root, tmp_path / "out", client=client, include=["raw"], max_size=32)
        rows = pipeline.bag(root, tmp_path / "out2", exclude="*.png", max_size=32).compute()
    assert sorted(r["input"] for r in report.records) == ["raw/deep/y.jpg", "raw/x.jpg"]
    assert report.options is not None
    assert report.options.include == ("raw",)
    assert sorted(r["input"] for r in rows) == [
        "a.jpg",
        "keep/z.jpg",
        "raw/deep/y.jpg",
        "raw/x.jpg",
    ]
    assert all(r["status"] == "ok" for r in rows)


def test_s3_inputs_are_selected_too(s3: S3, tmp_path: Path) -> None:
    upload_inputs(s3, "select-in", tmp_path)  # a.jpg a.png trip/day1/beach.webp trip/day2/scan.tif
    args = ["run", "--input", "s3://select-in/shoot", "--output", tmp_path / "out", "--dry-run"]
    result = run_cli(*args, "-v", "--include", "trip/**", "--exclude", "*.tif", env=s3.env)
    assert result.code == 0, result.stderr
    assert "dry run: 1 inputs" in result.stdout, result.stdout
    assert "trip/day1/beach.webp -> trip/day1/beach.jpg" in result.stdout
