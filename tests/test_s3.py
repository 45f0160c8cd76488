"""Object storage: s3:// inputs and outputs against a real S3 API server on 127.0.0.1.

The server is moto's, with authentication enforced (`s3_server`), so wrong credentials really
are refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, save_image
from dask_procs import dask_cluster_procs
from s3_server import EXPECTED, INPUTS, S3, upload_inputs
from s3_server import s3 as s3  # the module-scoped S3 server fixture


def test_s3_to_s3_on_a_local_cluster_then_skips(s3: S3, tmp_path: Path) -> None:
    upload_inputs(s3, "photos-in", tmp_path)
    s3.fresh_bucket("photos-out")
    args = ["run", "--input", "s3://photos-in/shoot", "--output", "s3://photos-out/web",
            "--workers", "2", "--max-size", "256"]  # fmt: skip
    first = run_cli(*args, env=s3.env, report=tmp_path / "r.json")
    assert first.code == 0, first.stderr
    assert {r["input"]: r["output"] for r in first.by_input().values()} == EXPECTED
    assert s3.keys("photos-out") == sorted(f"web/{out}" for out in EXPECTED.values())
    for out in EXPECTED.values():
        image = s3.image("photos-out", f"web/{out}")
        assert (image.format, image.mode) == ("JPEG", "RGB")
        assert max(image.size) <= 256
        head = s3.client.head_object(Bucket="photos-out", Key=f"web/{out}")
        assert head["Metadata"]["pipeline"].startswith("pipeline fp=")
        assert first.report is not None
        assert head["Metadata"]["pipeline-run"] == first.report["summary"]["run_id"]
        assert head["ContentType"] == "image/jpeg"
    assert s3.keys("photos-in") == sorted(f"shoot/{n}" for n in INPUTS)  # input untouched

    second = run_cli(*args, env=s3.env, report=tmp_path / "r2.json")
    assert second.code == 0, second.stderr
    assert second.report is not None
    assert second.report["summary"]["skipped"] == len(INPUTS)


def test_s3_on_a_separately_started_scheduler(s3: S3, tmp_path: Path) -> None:
    upload_inputs(s3, "remote-in", tmp_path)
    s3.fresh_bucket("remote-out")
    with dask_cluster_procs(nworkers=2, env=s3.env) as procs:
        result = run_cli("run", "--input", "s3://remote-in/shoot", "--output", "s3://remote-out",
                         "--scheduler", procs.address, env=s3.env)  # fmt: skip
        assert result.code == 0, result.stderr + procs.log_text()
    assert s3.keys("remote-out") == sorted(EXPECTED.values())


def test_local_to_s3_and_s3_to_local(s3: S3, tree: Path, tmp_path: Path) -> None:
    s3.fresh_bucket("mixed")
    up = run_cli("run", "--input", tree, "--output", "s3://mixed/web", "--workers", "1",
                 env=s3.env)  # fmt: skip
    assert up.code == 0, up.stderr
    assert len(s3.keys("mixed", "web/")) == 6
    down = run_cli("run", "--input", "s3://mixed/web", "--output", tmp_path / "local",
                   "--workers", "1", "--max-size", "100", env=s3.env)  # fmt: skip
    assert down.code == 0, down.stderr
    files = sorted(str(p.relative_to(tmp_path / "local")) for p in (tmp_path / "local").rglob("*"))
    assert "sub/deeper/d.jpg" in files
    assert len([f for f in files if f.endswith(".jpg")]) == 6


def test_failed_image_leaves_no_object(s3: S3, tmp_path: Path) -> None:
    bucket = s3.fresh_bucket("with-bad")
    s3.client.put_object(Bucket=bucket, Key="in/broken.jpg", Body=b"\xff\xd8\xff\xe0 truncated")
    save_image(tmp_path / "good.png", (64, 48))
    s3.client.upload_file(str(tmp_path / "good.png"), bucket, "in/good.png")
    result = run_cli("run", "--input", f"s3://{bucket}/in", "--output", f"s3://{bucket}/out",
                     "--workers", "1", env=s3.env, report=tmp_path / "r.json")  # fmt: skip
    assert result.code == 1
    assert result.by_input()["broken.jpg"]["status"] == "failed"
    assert s3.keys(bucket, "out/") == ["out/good.jpg"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong-secret", "cannot read input s3://photos-in/shoot"),
        ("no-input-bucket", "input folder not found: s3://no-such-bucket/x"),
        ("no-output-bucket", "output folder is not writable: s3://no-such-out/web"),
    ],
)
def test_credentials_and_buckets_are_checked_before_work(
    s3: S3, tmp_path: Path, case: str, message: str
) -> None:
    if "photos-in" not in {b["Name"] for b in s3.client.list_buckets()["Buckets"]}:
        upload_inputs(s3, "photos-in", tmp_path)
    env = dict(s3.env)
    source, target = "s3://photos-in/shoot", "s3://photos-out-2"
    if case == "wrong-secret":
        env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
    elif case == "no-input-bucket":
        source = "s3://no-such-bucket/x"
    else:
        target = "s3://no-such-out/web"
    s3.client.create_bucket(Bucket="photos-out-2")
    result = run_cli("run", "--input", source, "--output", target, env=env)
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"pipeline: error: {message}")
    assert env["AWS_SECRET_ACCESS_KEY"] not in result.stderr  # never echo secrets


def test_output_inside_the_input_prefix_is_refused(s3: S3) -> None:
    result = run_cli("run", "--input", "s3://photos-in/shoot", "--output",
                     "s3://photos-in/shoot/web", env=s3.env)  # fmt: skip
    assert result.code == 2
    assert "must not be inside the input" in result.stderr


def test_listing_an_s3_prefix_gives_the_object_sizes(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sizes that put the largest images first come from the listing, with no extra call."""
    import s3fs

    from pipeline import storage
    from pipeline.discover import iter_jobs

    upload_inputs(s3, "sized", tmp_path)
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    storage.remote.file_system.cache_clear()
    try:
        sizes = {job.input: job.size for job in iter_jobs("s3://sized/shoot")}
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        storage.remote.file_system.cache_clear()
    assert sizes == {name: (tmp_path / "src" / name).stat().st_size for name in INPUTS}
