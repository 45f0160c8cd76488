"""Across machines: network namespaces as hosts, no shared disk, a host lost mid-run.

The lab (tests/multihost.py): moto's S3 server on one host, a `dask scheduler` with default
settings on another, a client host that runs the CLI and the Python API, and worker hosts each
with an empty private /tmp, so object storage is the only way images move. Needs root, `ip`,
`nft`; skipped without them, and failing instead when CI is set.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import PIPELINE_ENV, REPO, save_image
from multihost import Host, Lab, require

CLIENT_TOOL = str(REPO / "tests" / "multihost_client.py")
S3_PORT, SCHEDULER_PORT, DASHBOARD_PORT = 5000, 8786, 8787  # dask's defaults; each host is its own
CUT_DEADLINE = 150.0  # a run ends this soon after a worker host is cut off
START_TIMEOUT = 60.0
_octets = itertools.count(11)


@dataclass
class World:
    lab: Lab
    client: Host
    scheduler: str
    env: dict[str, str]
    logs: Path

    def tool(self, *args: str, timeout: float = 120) -> Any:
        """Run an action of multihost_client.py on the client host; its JSON result."""
        proc = self.client.run([sys.executable, CLIENT_TOOL, *args], env=self.env, timeout=timeout)
        assert proc.returncode == 0, proc.stderr + self.log_text()
        return json.loads(proc.stdout.splitlines()[-1])

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "pipeline", "run", *args, "--scheduler", self.scheduler]
        return self.client.run(argv, env=self.env, timeout=timeout)

    def log_text(self) -> str:
        return "".join(f"\n== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                       for p in sorted(self.logs.glob("*.log")))  # fmt: skip


def host_env(s3_ip: str) -> dict[str, str]:
    """The environment of every process in the lab: moto's endpoint, fixed credentials."""
    drop = {*PIPELINE_ENV, "PYTHONPATH"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not _foreign(k)}
    env.update(AWS_ENDPOINT_URL=f"http://{s3_ip}:{S3_PORT}", AWS_ACCESS_KEY_ID="lab",
               AWS_SECRET_ACCESS_KEY="lab-secret", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")  # fmt: skip
    return env


def _foreign(name: str) -> bool:
    """Settings of the machine's own shell that must not reach the lab's processes."""
    return name.startswith(("DASK_", "AWS_")) or "proxy" in name.lower()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require()
    logs = tmp_path_factory.mktemp("lab-logs")
    with Lab() as lab:
        s3, sched, client = lab.host("s3", 2), lab.host("sched", 3), lab.host("client", 4)
        env = host_env(s3.ip)
        moto = [sys.executable, "-m", "moto.server", "-H", s3.ip, "-p", str(S3_PORT)]
        s3.spawn(moto, env=env, log=logs / "moto.log")
        sched.spawn([sys.executable, "-m", "dask", "scheduler"], env=env, log=logs / "sched.log")
        world = World(lab, client, f"tcp://{sched.ip}:{SCHEDULER_PORT}", env, logs)
        for ip, port in ((s3.ip, S3_PORT), (sched.ip, SCHEDULER_PORT)):
            assert world.tool("wait-port", ip, str(port), str(START_TIMEOUT))["open"], (
                world.log_text()
            )
        yield world


@pytest.fixture
def workers(world: World) -> Iterator[Callable[[int], list[Host]]]:
    """Start N worker hosts (private /tmp, one thread each); all removed after the test."""
    started: list[Host] = []

    def start(count: int, *, wait: bool = True) -> list[Host]:
        hosts = []
        for _ in range(count):
            octet = next(_octets)
            host = world.lab.host(f"w{octet}", octet, private_tmp=True)
            argv = [sys.executable, "-m", "dask", "worker", world.scheduler,
                    "--name", host.role, "--nthreads", "1"]  # fmt: skip
            host.spawn(argv, env=world.env, log=world.logs / f"{host.role}.log")
            hosts.append(host)
        started.extend(hosts)
        if wait:
            names = [h.role for h in hosts]
            found = world.tool("wait-workers", world.scheduler, str(START_TIMEOUT), "1", *names)
            assert found["done"], world.log_text()
        return hosts

    yield start
    for host in started:
        world.lab.remove(host)
    # the next test starts with a scheduler that has forgotten these (a cut one takes ~30 s)
    if started:
        world.tool("wait-workers", world.scheduler, "60", "0", *[h.role for h in started])


def put_inputs(world: World, tmp_path: Path, bucket: str, count: int, side: int) -> list[str]:
    """`count` generated PNGs (side x 3/4 side) in s3://bucket/in; their relative names."""
    folder = tmp_path / "in"
    names = []
    for i in range(count):
        name = f"set{i % 3}/img{i:03d}.png"
        save_image(folder / name, (side + i % 7, side * 3 // 4), fmt="PNG", seed=i)
        names.append(name)
    assert world.tool("upload", bucket, "in", str(folder))["uploaded"] == count
    return names


def assert_written_once(world: World, bucket: str, names: list[str]) -> None:
    """Every output exists, each written exactly once (a versioned bucket counts the PUTs)."""
    expected = {f"web/{n.removesuffix('.png')}.jpg": 1 for n in names}
    found = world.tool("versions", f"{bucket}-out")
    outputs = {k: n for k, n in found["versions"].items() if k.startswith("web/")}
    assert outputs == expected


def assert_report(report: dict[str, Any], names: list[str]) -> None:
    rows = report["files"]
    assert sorted(row["input"] for row in rows) == sorted(names)  # each once
    assert {row["status"] for row in rows} == {"ok"}, [r for r in rows if r["status"] != "ok"]


def test_s3_to_s3_through_the_cli_with_no_shared_disk(world, workers, tmp_path: Path) -> None:
    hosts = workers(2)
    names = put_inputs(world, tmp_path, "cli", 12, 160)
    report = tmp_path / "report.json"
    result = world.cli("--input", "s3://cli/in", "--output", "s3://cli-out/web",
                       "--max-size", "128", "--report", str(report))  # fmt: skip
    assert result.returncode == 0, result.stderr + world.log_text()
    assert_report(json.loads(report.read_text()), names)
    assert_written_once(world, "cli", names)
    # the workers see none of the client's files, and a /tmp of their own
    seen = world.tool("probe", world.scheduler, str(report))["workers"]
    assert len(seen) == len(hosts)
    for look in seen.values():
        assert not look["exists"]
        # an empty tmpfs of its own (but for the checkout itself, when it lives under /tmp)
        assert set(look["tmp"]) <= {"dask-scratch-space", *_checkout_in_tmp()}, look


def test_s3_to_s3_through_the_python_api(world, workers, tmp_path: Path) -> None:
    workers(2)
    names = put_inputs(world, tmp_path, "api", 8, 160)
    report = world.tool("api-run", "s3://api/in", "s3://api-out/web", world.scheduler)
    assert report["summary"]["ok"] == len(names), report["summary"]
    assert_report(report, names)
    assert_written_once(world, "api", names)


def test_the_dashboard_pages_answer_from_the_client_host(world, workers, tmp_path) -> None:
    workers(1)
    put_inputs(world, tmp_path, "pages", 3, 64)
    result = world.cli("--input", "s3://pages/in", "--output", "s3://pages-out/web")
    assert result.returncode == 0, result.stderr + world.log_text()
    base = f"http://{world.scheduler.split('//')[1].split(':')[0]}:{DASHBOARD_PORT}"
    page = world.tool("get", f"{base}/throughput")
    assert page["status"] == 200
    assert "bokeh" in page["body"].lower()
    assert world.tool("get", f"{base}/no-such-page")["status"] == 404  # a 200 means something
    metrics = world.tool("get", f"{base}/metrics")
    assert metrics["status"] == 200
    assert "dask_scheduler_workers" in metrics["body"]


class Watch:
    """multihost_client.py's `watch` on the client host, alongside a run."""

    def __init__(self, world: World, bucket: str, target: str) -> None:
        argv = [sys.executable, CLIENT_TOOL, "watch", world.scheduler, bucket, target, "600"]
        self.proc = subprocess.Popen(
            world.client.argv(argv), env=world.env, cwd="/", stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        world.lab.procs.append(self.proc)

    def ready(self) -> int:
        """Blocks until the run has an output and the target worker has tasks; their number."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: the watcher gives up after its timeout
        assert line.startswith("ready"), line + (
            self.proc.stderr.read() if self.proc.stderr else ""
        )
        return int(line.split()[1])

    def finish(self) -> dict[str, Any]:
        out, err = self.proc.communicate("", timeout=60)
        assert self.proc.returncode == 0, err
        result: dict[str, Any] = json.loads(out.splitlines()[-1])
        return result


def start_run(world: World, bucket: str, report: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "pipeline", "run", "--input", f"s3://{bucket}/in",
            "--output", f"s3://{bucket}-out/web", "--max-size", "128",
            "--scheduler", world.scheduler, "--report", str(report)]  # fmt: skip
    proc = subprocess.Popen(
        world.client.argv(argv), env=world.env, cwd="/", stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    world.lab.procs.append(proc)
    return proc


@pytest.mark.slow
def test_a_worker_host_joins_mid_run_and_gets_work(world, workers, tmp_path: Path) -> None:
    workers(1)
    names = put_inputs(world, tmp_path, "join", 100, 400)
    watch = Watch(world, "join-out", "-")
    run = start_run(world, "join", tmp_path / "report.json")
    watch.ready()
    (late,) = workers(1, wait=False)
    _, err = run.communicate(timeout=300)
    seen = watch.finish()
    assert run.returncode == 0, err + world.log_text()
    assert late.role in seen["busy"], (seen, world.log_text())
    assert_report(json.loads((tmp_path / "report.json").read_text()), names)
    assert_written_once(world, "join", names)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["while-it-holds-work", "just-before-the-run"])
def test_a_worker_host_cut_off_silently(world, workers, tmp_path: Path, moment: str) -> None:
    """Every image is still written once, exit 0, the run over within 150 s of the cut. Cut
    before the run, the scheduler still counts the host and sends it work that never starts."""
    _, victim = workers(2)
    bucket = f"cut-{moment[:4]}"
    names = put_inputs(world, tmp_path, bucket, 60, 400)
    watch = Watch(world, f"{bucket}-out", victim.role)
    if moment == "just-before-the-run":
        world.lab.cut(victim)
        cut_at = time.time()
    run = start_run(world, bucket, tmp_path / "report.json")
    if moment == "while-it-holds-work":
        held = watch.ready()
        world.lab.cut(victim)
        cut_at = time.time()
        assert held > 0
    _, err = run.communicate(timeout=CUT_DEADLINE + 60)
    ended = time.time() - cut_at
    seen = watch.finish()
    gone = None if seen["gone_at"] is None else round(seen["gone_at"] - cut_at, 1)
    print(f"cut {moment}: the scheduler removed the host after {gone} s, run ended {ended:.1f} s")
    assert run.returncode == 0, err + world.log_text()
    assert ended < CUT_DEADLINE, (ended, world.log_text())
    assert_report(json.loads((tmp_path / "report.json").read_text()), names)
    assert_written_once(world, bucket, names)


def _checkout_in_tmp() -> set[str]:
    """The first folder of this checkout's path below /tmp, which the lab's workers keep."""
    repo = Path(__file__).resolve().parents[1]
    return {repo.relative_to("/tmp").parts[0]} if repo.is_relative_to("/tmp") else set()
