"""A real S3 API server for tests: moto's standalone server on 127.0.0.1, as a subprocess.

Authentication is enforced after the three IAM calls that create our user, so wrong credentials
really are refused. `s3` is a module-scoped fixture: a test module imports it
(`from s3_server import s3 as s3`) to start one server for all its tests.
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
from conftest import save_image
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
