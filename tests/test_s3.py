"""Object storage: s3:// inputs and outputs against a real S3 API server on 127.0.0.1.

moto's standalone server runs as a subprocess with authentication enforced (after the three
IAM calls that create our user), so wrong credentials really are refused.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import run_cli, save_image
from dask_procs import dask_cluster_procs
from PIL import Image

INPUTS = {
    "a.jpg": ((320, 240), "JPEG"),
    "a.png": ((200, 300), "PNG"),
    "trip/day1/beach.webp": ((640, 480), "WEBP"),
    "trip/day2/scan.tif": ((300, 200), "TIFF"),
}
EXPECTED = {"a.jpg": "a.jpg.jpg", "a.png": "a.png.jpg", "trip/day1/beach.webp":
            "trip/day1/beach.jpg", "trip/day2/scan.tif": "trip/day2/scan.jpg"}  # fmt: skip


@dataclass
class S3:
    endpoint: str
    env: dict[str, str]  # what a process needs to reach it: endpoint and credentials
    client: Any  # boto3 client with the same credentials

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def image(self, bucket: str, key: str) -> Image.Image:
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        image = Image.open(BytesIO(body))
        image.load()
        return image

    def fresh_bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server_env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=server_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for(endpoint, proc, log)
        key = _make_user(endpoint)
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        yield S3(endpoint, env, client)
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_for(endpoint: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(log.read_text())


def _make_user(endpoint: str) -> dict[str, str]:
    """The three unauthenticated calls: a user, its S3 policy, and its access key."""
    iam = boto3.client("iam", endpoint_url=endpoint, aws_access_key_id="bootstrap",
                       aws_secret_access_key="bootstrap", region_name="us-east-1")  # fmt: skip
    iam.create_user(UserName="pipeline")
    policy = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}  # fmt: skip
    iam.put_user_policy(UserName="pipeline", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key: dict[str, str] = iam.create_access_key(UserName="pipeline")["AccessKey"]
    return key


def upload_inputs(s3: S3, bucket: str, tmp_path: Path, prefix: str = "shoot") -> None:
    s3.fresh_bucket(bucket)
    for i, (name, (size, fmt)) in enumerate(INPUTS.items()):
        path = save_image(tmp_path / "src" / name, size, fmt=fmt, seed=i)
        s3.client.upload_file(str(path), bucket, f"{prefix}/{name}")


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
