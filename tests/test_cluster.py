"""Which cluster a run uses, and the local cluster it starts: real schedulers, real processes.

The existing clusters are real `dask scheduler` / `dask worker` processes (dask_procs.py);
the local clusters are the pipeline's own, started by the CLI or by `connected()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import psutil
import pytest
from conftest import PIPELINE_ENV, REPO, reap, run_cli
from dask_procs import DaskProcs, dask_cluster_procs
from distributed import Client, LocalCluster

import pipeline
from pipeline import tuning
from pipeline.cluster import connected
from pipeline.config import RunOptions

THROUGHPUT_TOPIC = "pipeline-throughput"


@pytest.fixture(scope="module")
def procs() -> Iterator[DaskProcs]:
    with dask_cluster_procs(nworkers=1) as running:
        yield running


def _scheduler_file(procs: DaskProcs) -> Path:
    """The file `dask scheduler --scheduler-file` wrote (dask_procs starts it so)."""
    return procs.workdir / "scheduler.json"


def _ran_on(procs: DaskProcs, since: float) -> int:
    """Images the cluster's workers reported done since `since` (epoch seconds)."""
    with Client(procs.address, timeout=10) as client:
        workers = set(client.scheduler_info()["workers"])
        events = client.get_events(THROUGHPUT_TOPIC)
    assert {e["worker"] for t, e in events if t >= since} <= workers
    return sum(e["ok"] for t, e in events if t >= since)


class _Children:
    """Processes this test process started while a run went on (a local cluster's workers)."""

    def __init__(self) -> None:
        self.before = self._now()
        self.new: set[int] = set()

    @staticmethod
    def _now() -> set[int]:
        return {p.pid for p in psutil.Process().children(recursive=True)}

    def __call__(self, report: Any) -> None:
        self.new |= self._now() - self.before


def test_the_current_client_is_used(procs: DaskProcs, tree: Path, tmp_path: Path) -> None:
    """`with Client(address): pipeline.run(src, dst)` runs on that cluster: nothing new starts,
    and the client is still open afterwards."""
    since, children = time.time(), _Children()
    with Client(procs.address, timeout=10) as client:
        report = pipeline.run(tree, tmp_path / "out", progress=children)
        assert client.submit(sum, [1, 2]).result(timeout=30) == 3
    assert report.counts["ok"] == 6
    assert report.dashboard_link == f"{procs.dashboard_url}/status"
    assert children.new == set()
    assert _ran_on(procs, since) == 6


def test_a_named_scheduler_beats_a_current_client_of_another(
    procs: DaskProcs, tree: Path, tmp_path: Path
) -> None:
    since = time.time()
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address="127.0.0.1:0") as other,
        Client(other),
    ):
        report = pipeline.run(tree, tmp_path / "out", scheduler=procs.address)
    assert report.counts["ok"] == 6
    assert _ran_on(procs, since) == 6


def test_dask_config_scheduler_address_for_a_python_caller(
    procs: DaskProcs, tree: Path, tmp_path: Path
) -> None:
    """What DASK_SCHEDULER_ADDRESS sets (Dask's `scheduler-address`) reaches `run()` too."""
    since, children = time.time(), _Children()
    with dask.config.set({"scheduler-address": procs.address}):
        report = pipeline.run(tree, tmp_path / "out", progress=children)
    assert report.counts["ok"] == 6
    assert children.new == set()
    assert _ran_on(procs, since) == 6


def test_scheduler_file_from_the_cli_and_the_api(
    procs: DaskProcs, tree: Path, tmp_path: Path
) -> None:
    since = time.time()
    result = run_cli("run", "--input", tree, "--output", tmp_path / "cli",
                     "--scheduler-file", _scheduler_file(procs))  # fmt: skip
    assert result.code == 0, result.stderr + procs.log_text()
    assert "done: 6 images: 6 ok" in result.stdout
    report = pipeline.run(tree, tmp_path / "api", scheduler_file=_scheduler_file(procs))
    assert report.counts["ok"] == 6
    assert _ran_on(procs, since) == 12


def test_a_scheduler_file_written_after_the_start_is_waited_for(
    procs: DaskProcs, tree: Path, tmp_path: Path
) -> None:
    """A batch job's scheduler may write its file a moment after the run starts."""
    later = tmp_path / "cluster-fs" / "scheduler.json"
    later.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in PIPELINE_ENV}
    argv = [sys.executable, "-m", "pipeline", "run", "--input", str(tree), "--output",
            str(tmp_path / "out"), "--scheduler-file", str(later),
            "--connect-timeout", "60"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        assert proc.poll() is None  # still waiting for the file
        shutil.copy(_scheduler_file(procs), later)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    assert "done: 6 images: 6 ok" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "was not found (waited 1 s)"),
        ("{}", "has no scheduler address (waited 1 s)"),
        ("not json", "has no scheduler address (waited 1 s)"),
    ],
)
def test_a_bad_scheduler_file_is_a_usage_error(
    tree: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "scheduler.json"
    if content is not None:
        path.write_text(content)
    result = run_cli("run", "--input", tree, "--output", tmp_path / "out",
                     "--scheduler-file", path, "--connect-timeout", "1")  # fmt: skip
    assert result.code == 2
    assert result.stderr.splitlines() == [f"pipeline: error: scheduler file {path} {message}"]
    assert not list((tmp_path / "out").rglob("*.jpg"))


def test_a_stale_scheduler_file_is_an_unreachable_scheduler(tree: Path, tmp_path: Path) -> None:
    with dask_cluster_procs(nworkers=1) as gone:
        stale = tmp_path / "scheduler.json"
        shutil.copy(_scheduler_file(gone), stale)
        address = gone.address
    result = run_cli("run", "--input", tree, "--output", tmp_path / "out",
                     "--scheduler-file", stale, "--connect-timeout", "2")  # fmt: skip
    assert result.code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"pipeline: error: cannot reach Dask scheduler at {address} (from scheduler file {stale})"
    )


def test_a_scheduler_without_workers_is_connected() -> None:
    """Connecting needs no worker (an adaptive cluster starts them for queued work); the wait
    for the first one is the runner's (tests/test_elastic.py)."""
    with (
        LocalCluster(n_workers=0, processes=False, dashboard_address="127.0.0.1:0") as empty,
        connected(RunOptions(scheduler=empty.scheduler_address, connect_timeout=5)) as client,
    ):
        assert client.scheduler.address == empty.scheduler_address
        assert client.nthreads() == {}


def _worker_environment() -> dict[str, str | None]:
    names = [*tuning.MALLOC_ENVIRON, "OMP_NUM_THREADS"]
    return {name: os.environ.get(name) for name in names}


def test_local_workers_are_tuned_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Nanny gives each local worker the tuning environment; memory is capped per worker."""
    for name in tuning.MALLOC_ENVIRON:  # a Nanny copies them into this process too
        monkeypatch.delenv(name, raising=False)
    with connected(RunOptions(workers=1)) as client:
        (environ,) = client.run(_worker_environment).values()
        (info,) = client.scheduler_info()["workers"].values()
        address = client.scheduler.address
    assert environ == {**tuning.MALLOC_ENVIRON, "OMP_NUM_THREADS": "1"}
    assert info["nthreads"] == 1
    assert 0 < info["memory_limit"] <= 4 << 30
    assert address.startswith("tls://127.0.0.1:")


_FORK_SERVER = "from multiprocessing.forkserver import main"


def _environ(process: psutil.Process) -> dict[str, str]:
    """The environment `process` started with (/proc/PID/environ; a forked child shares it)."""
    return dict(process.environ())


def test_cli_workers_are_forked_from_a_server_started_tuned(tree: Path, tmp_path: Path) -> None:
    """The CLI starts multiprocessing's fork server first, with the workers' malloc settings
    (read once, when a process starts) in its environment, and forks every worker from it."""
    env = {k: v for k, v in os.environ.items() if k not in (*PIPELINE_ENV, *tuning.MALLOC_ENVIRON)}
    argv = [sys.executable, "-m", "pipeline", "run", "--input", str(tree),
            "--output", str(tmp_path / "out"), "--workers", "2", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True, text=True)
    seen: dict[int, tuple[int, str, dict[str, str]]] = {}
    try:
        while proc.poll() is None:
            for p in psutil.process_iter():
                with contextlib.suppress(psutil.Error, OSError):
                    # the command line and environment again on every pass (a child caught
                    # between fork and exec shows the run's); the parent as first seen (once
                    # the run exits, its children are handed to init)
                    if os.getsid(p.pid) == proc.pid != p.pid:
                        parent = seen[p.pid][0] if p.pid in seen else p.ppid()
                        seen[p.pid] = (parent, " ".join(p.cmdline()), _environ(p))
            time.sleep(0.02)
    finally:
        reap(proc)
    assert proc.returncode == 0
    # the server is the run's child; the workers it forks show its command line too
    servers = [pid for pid, (up, cmd, _) in seen.items() if up == proc.pid and _FORK_SERVER in cmd]
    assert len(servers) == 1, seen
    forked = [env for parent, _, env in seen.values() if parent == servers[0]]
    assert len(forked) >= 2  # the two workers
    for started in [seen[servers[0]][2], *forked]:
        assert {k: started.get(k) for k in tuning.MALLOC_ENVIRON} == tuning.MALLOC_ENVIRON


_NO_BOKEH_UNTIL_OPENED = """
import sys, urllib.request
from pipeline.config import RunOptions
from pipeline.report import RunReport
from pipeline.runner import run_pipeline

def opened(client):
    print("bokeh before:", "bokeh" in sys.modules)
    with urllib.request.urlopen(report.throughput_link, timeout=30) as page:
        print("page:", page.status, b"Throughput" in page.read())
    print("bokeh after:", "bokeh" in sys.modules)

if __name__ == "__main__":
    report = RunReport(run_id="deferred")
    opts = RunOptions(input=sys.argv[1], output=sys.argv[2], workers=1)
    run_pipeline(opts, report=report, on_finish=opened)
    print("ok:", report.counts["ok"])
"""


def test_a_local_run_imports_no_bokeh_until_its_dashboard_is_opened(
    tree: Path, tmp_path: Path
) -> None:
    """Importing Bokeh and building Dask's pages is ~0.4 s of CPU the first images would wait
    for: the local cluster mounts the pages at the first request, which they then answer."""
    script = tmp_path / "deferred.py"
    script.write_text(_NO_BOKEH_UNTIL_OPENED)
    env = {k: v for k, v in os.environ.items() if k not in PIPELINE_ENV}
    argv = [sys.executable, str(script), str(tree), str(tmp_path / "out")]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "bokeh before: False",
        "page: 200 True",
        "bokeh after: True",
        "ok: 6",
    ]


def test_a_taken_dashboard_port_is_no_warning(tree: Path, tmp_path: Path) -> None:
    """With :8787 taken, the local dashboard gets a free port; the run prints the link it got."""
    with contextlib.ExitStack() as stack:
        holder = stack.enter_context(socket.socket())
        with contextlib.suppress(OSError):  # already taken (another cluster's): as good
            holder.bind(("127.0.0.1", 8787))
            holder.listen()
        result = run_cli("run", "--input", tree, "--output", tmp_path / "out", "--workers", "1")
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("Dask dashboard: http://127.0.0.1:")


_INTRUDER = """
import json, os, sys
from distributed import Client
from distributed.security import Security

address = sys.argv[1]
attempts = {
    "no credentials": dict(address=address),
    "plain tcp": dict(address=address.replace("tls://", "tcp://")),
    "credentials of its own": dict(address=address, security=Security.temporary()),
}
outcome = {}
for name, kwargs in attempts.items():
    try:
        with Client(timeout=5, **kwargs) as client:
            outcome[name] = "ran code: " + repr(client.run(os.getpid))
    except Exception as exc:
        outcome[name] = "refused"
print(json.dumps(outcome))
"""


def _read_until(proc: subprocess.Popen[str], prefix: str, timeout: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(ln.startswith(prefix) for ln in lines):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    return lines


def test_another_process_cannot_use_a_kept_alive_local_cluster(tree: Path, tmp_path: Path) -> None:
    """During `--keep-alive`, a client in another process with the scheduler's address (read
    from the dashboard's JSON) is refused, with or without TLS, with credentials of its own."""
    env = {k: v for k, v in os.environ.items() if k not in PIPELINE_ENV}
    argv = [sys.executable, "-m", "pipeline", "run", "--input", str(tree), "--output",
            str(tmp_path / "out"), "--workers", "1", "--keep-alive"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        lines = _read_until(proc, "dashboard stays up at", timeout=120)
        assert lines, "the command ended before the run did"
        assert lines[-1].startswith("dashboard stays up at http://127.0.0.1:"), lines
        link = lines[-1].split()[4]
        identity_url = link.replace("/status", "/json/identity.json")
        with urllib.request.urlopen(identity_url, timeout=10) as response:
            address = json.loads(response.read())["address"]
        assert address.startswith("tls://127.0.0.1:")
        intruder = subprocess.run([sys.executable, "-c", _INTRUDER, address], env=env,
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
        assert intruder.returncode == 0, intruder.stderr[-2000:]
        assert json.loads(intruder.stdout.splitlines()[-1]) == {
            "no credentials": "refused",
            "plain tcp": "refused",
            "credentials of its own": "refused",
        }
        assert proc.poll() is None  # the run's own cluster is still up
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        reap(proc)


_SLOW_REPLIES = """
import asyncio, time
from pipeline.cluster import connected
from pipeline.config import RunOptions

def slow_heartbeat_replies(dask_scheduler):
    handle = dask_scheduler.handlers["heartbeat_worker"]

    async def slowly(*args, **kwargs):
        await asyncio.sleep(0.4)
        return handle(*args, **kwargs)

    dask_scheduler.handlers["heartbeat_worker"] = slowly

if __name__ == "__main__":
    for _ in range(2):
        with connected(RunOptions(workers=2)) as client:
            client.run_on_scheduler(slow_heartbeat_replies)
            client.gather(client.map(time.sleep, [0.05] * 8))
            time.sleep(1)  # heartbeats on their way, as at the end of a run
    print("closed")
"""


def test_closing_leaves_no_heartbeat_in_flight(tmp_path: Path) -> None:
    """A local cluster closing on a busy machine, made certain: the scheduler answers each
    heartbeat 0.4 s late (half a heartbeat period), so one is always in flight when the run
    ends. The workers still close without an error, and no heartbeat arrives late."""
    script = tmp_path / "slow_replies.py"
    script.write_text(_SLOW_REPLIES)
    env = {k: v for k, v in os.environ.items() if k not in PIPELINE_ENV}
    done = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["closed"]
    assert "Traceback" not in done.stderr
    assert "ERROR" not in done.stderr
    assert "heartbeat" not in done.stderr


@pytest.mark.slow
def test_successful_runs_print_no_traceback(tree: Path, tmp_path: Path) -> None:
    """The local cluster shuts down in order: run after run, no worker reports an error."""
    for attempt in range(5):
        result = run_cli("run", "--input", tree, "--output", tmp_path / f"out{attempt}",
                         "--workers", "2")  # fmt: skip
        output = result.stdout + result.stderr
        assert result.code == 0, output
        assert "done: 6 images: 6 ok" in result.stdout
        assert "Traceback" not in output
        assert "ERROR" not in output
