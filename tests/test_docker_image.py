"""The real container image: built by a Docker engine, run by a compose implementation.

docker/Dockerfile is built on the base image named by PIPELINE_DOCKER_BASE (CI makes one from
Debian's packages with debootstrap, as no image registry is reachable there; see .ci/run) or
else on the Dockerfile's default, the official Python image, when the engine has it. Then
docker-compose.yml runs a scheduler, two workers and the runner on generated samples. Needs a
running engine (`/usr/bin/docker info`) and a base image: skipped without them, failing
instead when CI is set. Every container, network and image made here is removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from PIL import Image
from test_packaging import lock_pins, norm

from pipeline.samples import write_samples

DOCKER = "/usr/bin/docker"  # Debian's client: the one with the compose plugin, if any
BASE_ENV = "PIPELINE_DOCKER_BASE"
DEFAULT_BASE = "python:3.11-slim-bookworm"
NAME = f"plmh{os.getpid()}"  # project and image names: parallel runs do not meet
IMAGE = f"{NAME}-pipeline:test"
NOT_RUNTIME = {"pytest", "moto", "mypy", "ruff", "hypothesis", "ipykernel", "jupyterlab"}
OUTPUT_UID = 4321  # neither root nor the image's own user: the outputs must be this uid's
pytestmark = pytest.mark.slow


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    proc = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc.stdout


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required when CI is set)")
    pytest.skip(reason)


def compose_argv() -> list[str]:
    """`docker compose` (v2 plugin) when present, else Debian's docker-compose v1."""
    if subprocess.run([DOCKER, "compose", "version"], capture_output=True).returncode == 0:
        return [DOCKER, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        skip_or_fail("no compose implementation: apt-get install docker-compose")
    return [str(legacy)]


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """docker/Dockerfile built on the base image; removed at the end."""
    if not Path(DOCKER).exists():
        skip_or_fail(f"no {DOCKER}: apt-get install docker.io")
    if subprocess.run([DOCKER, "info"], capture_output=True, timeout=30).returncode != 0:
        skip_or_fail("no Docker engine answers `docker info` (start dockerd)")
    base = os.environ.get(BASE_ENV) or DEFAULT_BASE
    if subprocess.run([DOCKER, "image", "inspect", base], capture_output=True).returncode != 0:
        skip_or_fail(f"no base image {base}: set {BASE_ENV} (.ci/run makes one) or pull it")
    started = time.monotonic()
    build = ["build", "-q", "--build-arg", f"PYTHON_IMAGE={base}", "-f", "docker/Dockerfile"]
    try:
        docker(*build, "-t", IMAGE, str(REPO), timeout=900)
        print(f"image built on {base} in {time.monotonic() - started:.0f} s")
        yield IMAGE
    finally:
        docker("rmi", "-f", IMAGE, check=False)


def test_the_image_holds_the_runtime_dependencies_at_the_lock_versions(image: str) -> None:
    out = docker("run", "--rm", "--network", "none", image, "sh", "-c",
                 "id -u && pip list --format=json")  # fmt: skip
    uid, listing = out.split("\n", 1)
    assert uid.strip() not in ("", "0")
    installed = {norm(p["name"]): p["version"] for p in json.loads(listing)}
    expected = {"dask", "distributed", "pillow", "bokeh", "prometheus-client", "s3fs"}
    expected.add("pillow-heif")  # the heif extra: phone photos on the cluster too
    assert expected <= set(installed)
    assert not NOT_RUNTIME & set(installed)
    lock = lock_pins()
    others = {name: v for name, v in installed.items() if name not in ("pip", "pipeline")}
    assert {name: lock.get(name) for name in others} == others


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def project(image: str, tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The compose command and environment of a project of our own; `down` at the end."""
    argv = [*compose_argv(), "-f", str(REPO / "docker-compose.yml"), "-p", NAME]
    (tmp_path / "out").mkdir()
    uid = os.getuid()
    if uid == 0:  # root can hand the output folder to a stand-in user
        uid = OUTPUT_UID
        os.chown(tmp_path / "out", uid, uid)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env.update(INPUT_DIR=str(tmp_path / "in"), OUTPUT_DIR=str(tmp_path / "out"),
               PIPELINE_UID=str(uid), PIPELINE_GID=str(uid), PIPELINE_IMAGE=image,
               DASHBOARD_PORT=str(free_port()), MAX_SIZE="256")  # fmt: skip
    try:
        yield argv, env
    finally:
        down = [*argv, "down", "--remove-orphans", "--volumes", "--timeout", "5"]
        subprocess.run(down, env=env, capture_output=True, timeout=120)


def test_compose_runs_a_scheduler_two_workers_and_the_runner(project, tmp_path: Path) -> None:
    argv, env = project
    inputs = write_samples(tmp_path / "in", count=24, scale=0.1)
    started = time.monotonic()
    up = [*argv, "up", "--no-build", "--scale", "worker=2", "--exit-code-from", "runner"]
    result = subprocess.run(up, env=env, capture_output=True, text=True, timeout=600)
    print(f"compose run: {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    containers = inspect_project()
    check_containers(containers, int(env["DASHBOARD_PORT"]))
    check_outputs(tmp_path / "in", tmp_path / "out", inputs, int(env["PIPELINE_UID"]))


def inspect_project() -> dict[str, dict[str, Any]]:
    """service name (worker-1, ...) -> `docker inspect` of each container of our project."""
    ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={NAME}").split()
    found = {}
    for info in json.loads(docker("inspect", *ids)):
        labels = info["Config"]["Labels"]
        service = labels["com.docker.compose.service"]
        found[f"{service}-{labels.get('com.docker.compose.container-number', '1')}"] = info
    return found


def check_containers(containers: dict[str, dict[str, Any]], dashboard_port: int) -> None:
    assert sorted(containers) == ["runner-1", "scheduler-1", "worker-1", "worker-2"]
    assert containers["runner-1"]["State"]["ExitCode"] == 0
    for name, info in containers.items():
        bindings = {k: v for k, v in (info["HostConfig"]["PortBindings"] or {}).items() if v}
        published = {"8787/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(dashboard_port)}]}
        assert bindings == (published if name == "scheduler-1" else {}), name
        if name != "scheduler-1":
            mounts = {m["Destination"]: m["RW"] for m in info["Mounts"]}
            assert mounts == {"/data/input": False, "/data/output": True}, name


def check_outputs(root: Path, out: Path, inputs: list[Path], uid: int) -> None:
    report = json.loads((out / "report.json").read_text())
    rows = {row["input"]: row for row in report["files"]}
    assert sorted(rows) == sorted(str(p.relative_to(root)) for p in inputs)
    assert {row["status"] for row in rows.values()} == {"ok"}
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(written) == len(inputs) + 1  # and the report
    for path in written:
        assert path.stat().st_uid == uid, path
    for row in rows.values():
        with Image.open(out / row["output"]) as im:
            assert (im.format, im.mode) == ("JPEG", "RGB")
            assert max(im.size) <= 256
