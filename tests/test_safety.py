"""The user's files are safe: `python -m pipeline run` as a user runs it, on real folders.

Overlapping folders, files the pipeline did not write, symbolic links in the output and the
input, credentials in URLs, hostile and over-long names; then the checks of `safety` alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli, save_image

from pipeline import outputs, safety
from pipeline.errors import UsageError
from pipeline.safety import name_from_json
from pipeline.storage import Store

ONE_WORKER = ("--workers", "1", "--max-size", "64")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (links not followed) with its bytes: what must stay as it was."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = Path(folder, name)
            rel = str(path.relative_to(root))
            found[rel] = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    return found


def one_error_line(result: object) -> str:
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert result.code == 2, result  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    return lines[0]


# -- 1. overlapping folders --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("output", "message"),
    [
        (".", "the output is the input folder"),
        ("link-to-in", "the output is the input folder"),
        ("..", "is inside the output folder"),
        ("link-to-parent", "is inside the output folder"),
    ],
)
def test_overlapping_folders_are_usage_errors(tmp_path: Path, output: str, message: str) -> None:
    source = tmp_path / "D" / "in"
    save_image(source / "a.png", (80, 60))
    save_image(source / "a.jpg", (80, 60), seed=1)
    os.symlink(source, source / "link-to-in")
    os.symlink(tmp_path / "D", source / "link-to-parent")
    before = snapshot(tmp_path)
    result = run_cli("run", "--input", source, "--output", source / output, *ONE_WORKER)
    assert message in one_error_line(result)
    assert snapshot(tmp_path) == before  # nothing written, nothing replaced


def test_output_inside_input_stays_allowed(tmp_path: Path) -> None:
    save_image(tmp_path / "in" / "a.png", (80, 60))
    result = run_cli("run", "--input", tmp_path / "in", "--output", tmp_path / "in" / "web",
                     *ONE_WORKER)  # fmt: skip
    assert result.code == 0, result.stderr
    assert (tmp_path / "in" / "web" / "a.jpg").is_file()


# -- 2. files the pipeline did not write -------------------------------------------------------
def test_foreign_files_are_kept_unless_overwrite(tmp_path: Path) -> None:
    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    for name in ("user.png", "notes.png", "fresh.png"):
        save_image(source / name, (80, 60))
    save_image(out / "user.jpg", (300, 200), seed=9)  # the user's own photo, no marker
    (out / "notes.jpg").write_text("not an image at all")
    before = snapshot(out)
    first = run_cli("run", "--input", source, "--output", out, *ONE_WORKER, report=report)
    assert first.code == 1
    rows = first.by_input()
    assert rows["fresh.png"]["status"] == "ok"
    for name in ("user", "notes"):
        assert rows[f"{name}.png"]["status"] == "failed"
        error = rows[f"{name}.png"]["error"]
        assert f"{name}.jpg" in error, error
        assert "--overwrite" in error, error
        assert f"failed: {name}.png: " in first.stderr
    assert {k: v for k, v in snapshot(out).items() if k != "fresh.jpg"} == before
    second = run_cli("run", "--input", source, "--output", out, *ONE_WORKER, "--overwrite")
    assert second.code == 0, second.stderr
    for name in ("user", "notes"):
        assert outputs.read_marker(out / f"{name}.jpg") is not None  # replaced by ours


def test_our_outdated_output_is_redone_without_overwrite(tmp_path: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    save_image(source / "a.png", (80, 60))
    assert run_cli("run", "--input", source, "--output", out, *ONE_WORKER).code == 0
    old = outputs.read_marker(out / "a.jpg")
    result = run_cli("run", "--input", source, "--output", out, *ONE_WORKER, "--quality", "50")
    assert result.code == 0, result.stderr
    assert outputs.read_marker(out / "a.jpg") not in (None, old)


# -- 3. symbolic links in the output tree ------------------------------------------------------
def test_links_in_the_output_tree_are_not_followed(tmp_path: Path) -> None:
    source, out, elsewhere = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere"
    save_image(source / "sub" / "a.png", (80, 60))
    save_image(source / "b.png", (80, 60))
    save_image(source / "c.png", (80, 60))
    save_image(elsewhere / "a.jpg", (30, 20), seed=7)
    (elsewhere / ".pipeline-a.jpg.deadbeef.tmp").write_bytes(b"someone's file")
    (elsewhere / "victim.jpg").write_bytes(b"precious")
    out.mkdir()
    os.symlink(elsewhere, out / "sub")  # a folder link: outputs would land in `elsewhere`
    os.symlink(elsewhere / "victim.jpg", out / "b.jpg")  # a file link at an output path
    before = snapshot(elsewhere)
    result = run_cli("run", "--input", source, "--output", out, *ONE_WORKER,
                     report=tmp_path / "r.json")  # fmt: skip
    assert result.code == 1
    rows = result.by_input()
    assert "symbolic link in the output folder, not followed" in rows["sub/a.png"]["error"]
    assert "b.jpg" in rows["b.png"]["error"]
    assert "--overwrite" in rows["b.png"]["error"]
    assert rows["c.png"]["status"] == "ok"
    assert snapshot(elsewhere) == before
    forced = run_cli("run", "--input", source, "--output", out, *ONE_WORKER, "--overwrite")
    assert forced.code == 1  # sub/a.png still refused
    assert snapshot(elsewhere) == before  # the link itself was replaced, not its target
    assert not (out / "b.jpg").is_symlink()
    assert outputs.read_marker(out / "b.jpg") is not None


# -- 4. symbolic links in the input ------------------------------------------------------------
def test_input_links_stay_inside_the_input_unless_allowed(tmp_path: Path) -> None:
    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    save_image(tmp_path / "private" / "photo.jpg", (80, 60))
    save_image(source / "sub" / "real.jpg", (80, 60))
    os.symlink("../private/photo.jpg", source / "leak.jpg")
    os.symlink("sub/real.jpg", source / "inner.jpg")
    os.symlink(tmp_path / "private", source / "folder-link")  # folders links are not entered
    result = run_cli("run", "--input", source, "--output", out, *ONE_WORKER, report=report)
    assert result.code == 1
    rows = result.by_input()
    assert set(rows) == {"leak.jpg", "inner.jpg", "sub/real.jpg"}
    assert rows["inner.jpg"]["status"] == "ok"
    assert rows["leak.jpg"]["status"] == "failed"
    assert "--follow-symlinks" in rows["leak.jpg"]["error"]
    assert not (out / "leak.jpg").exists()
    allowed = run_cli("run", "--input", source, "--output", out, *ONE_WORKER,
                      "--follow-symlinks")  # fmt: skip
    assert allowed.code == 0, allowed.stderr
    assert (out / "leak.jpg").is_file()


# -- 6. credentials in URLs --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "url"),
    [
        ("--input", "s3://AKIAEXAMPLE:Sup3rS3cretValue@photos/shoot"),
        ("--output", "https://someone:Sup3rS3cretValue@example.invalid/web"),
    ],
)
def test_credentials_in_urls_are_refused_and_never_shown(
    tmp_path: Path, flag: str, url: str
) -> None:
    save_image(tmp_path / "in" / "a.png", (80, 60))
    other = "--output" if flag == "--input" else "--input"
    report = tmp_path / "r.json"
    result = run_cli("run", flag, url, other, tmp_path / ("out" if flag == "--input" else "in"),
                     *ONE_WORKER, report=report)  # fmt: skip
    line = one_error_line(result)
    assert "credentials in URLs are not accepted" in line
    assert "environment" in line
    assert "Sup3rS3cretValue" not in result.stdout + result.stderr
    assert "someone" not in line
    assert "AKIAEXAMPLE" not in line
    assert not report.exists() or "Sup3rS3cretValue" not in report.read_text()


# -- 8. names on the terminal and in the report ------------------------------------------------
def test_hostile_names_are_escaped_on_the_terminal_and_exact_in_the_report(
    tmp_path: Path,
) -> None:
    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    source.mkdir()
    hostile = ["a\x1b[2Jb.png", "x\nfailed: forged.png", "cr\rline.png"]
    for name in hostile:
        (source / name).write_bytes(b"not an image")  # each fails, so each is printed
    raw = b"caf\xe9-latin1.png"  # not valid UTF-8
    save_image(Path(os.fsdecode(os.path.join(os.fsencode(source), raw))), (80, 60))
    bad_raw = b"\xff\xfe-broken.png"
    Path(os.fsdecode(os.path.join(os.fsencode(source), bad_raw))).write_bytes(b"junk")
    result = run_cli("run", "--input", source, "--output", out, *ONE_WORKER, report=report)
    assert result.code == 1
    assert not any(ch in result.stderr for ch in "\x1b\r")
    failed_lines = [ln for ln in result.stderr.splitlines() if ln.startswith("failed: ")]
    assert len(failed_lines) == 4, result.stderr  # no forged line
    assert "failed: a\\x1b[2Jb.png: " in result.stderr
    assert "failed: x\\nfailed: forged.png: " in result.stderr
    assert "failed: \\udcff\\udcfe-broken.png: " in result.stderr
    text = report.read_bytes().decode("utf-8", errors="strict")
    data = json.loads(text)
    json.dumps(data, ensure_ascii=False).encode("utf-8", errors="strict")  # no lone surrogates
    names = {name_from_json(row): row for row in data["files"]}
    assert set(names) >= set(hostile)
    latin = os.fsdecode(raw)
    assert names[latin]["status"] == "ok"
    assert os.fsencode(name_from_json(names[latin], "output") or "") == b"caf\xe9-latin1.jpg"
    assert os.path.exists(os.path.join(os.fsencode(out), b"caf\xe9-latin1.jpg"))
    assert names[os.fsdecode(bad_raw)]["input_bytes"]


# -- 9. long names and Unicode normalisation ---------------------------------------------------
def test_255_byte_names_and_nfc_collisions(tmp_path: Path) -> None:
    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    long_png = "x" * 251 + ".png"
    pair = ["y" * 251 + ".png", "y" * 251 + ".jpg"]  # a collision: `<name>.jpg` is 259 bytes
    nfc, nfd = "caf\u00e9.png", "cafe\u0301.jpg"
    for n, name in enumerate([long_png, *pair, nfc, nfd]):
        save_image(source / name, (80, 60), seed=n)
    args = ("run", "--input", source, "--output", out, *ONE_WORKER)
    first = run_cli(*args, report=report)
    assert first.code == 0, first.stderr
    rows = first.by_input()
    written = sorted(os.listdir(out))
    assert len(written) == 5
    assert all(len(os.fsencode(n)) <= 255 for n in written)
    assert rows[long_png]["output"] == "x" * 251 + ".jpg"
    assert rows[pair[0]]["output"] != rows[pair[1]]["output"]
    assert rows[nfc]["note"]
    assert rows[nfd]["note"]
    again = run_cli(*args, "--overwrite")  # replacing goes through named temp files
    assert again.code == 0, again.stderr
    assert sorted(os.listdir(out)) == written


# -- the checks themselves, without a run ------------------------------------------------------


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
