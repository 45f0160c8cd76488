"""Real `dask scheduler` and `dask worker` processes for tests, on 127.0.0.1, ephemeral ports.

    with dask_cluster_procs(nworkers=2) as procs:
        with Client(procs.address) as client: ...

The processes run from an empty temporary directory with the test process's environment.
`hide=("pipeline",)` makes those packages unimportable there (a `sitecustomize` that blocks
them, since an editable install would otherwise find them), to stand in for a scheduler or
worker machine where this project is not installed. Everything is stopped on exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from distributed import Client

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass
class DaskProcs:
    """A running scheduler and its workers (one `dask worker --nworkers N` process)."""

    address: str
    dashboard_port: int
    scheduler_proc: subprocess.Popen
    worker_procs: list[subprocess.Popen]
    workdir: Path
    logs: list[Path] = field(default_factory=list)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def log_text(self) -> str:
        """All process output so far, for assertion messages."""
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')}" for p in self.logs)


@contextlib.contextmanager
def dask_cluster_procs(
    nworkers: int = 2,
    env: Mapping[str, str] | None = None,
    scheduler_args: Sequence[str] = (),
    worker_args: Sequence[str] = (),
    nthreads: int = 1,
    timeout: float = START_TIMEOUT,
    hide: Sequence[str] = (),
) -> Iterator[DaskProcs]:
    """Start `dask scheduler` + `dask worker --nworkers N --nthreads 1`; wait for the workers."""
    with tempfile.TemporaryDirectory(prefix="dask-procs-") as tmp:
        workdir = Path(tmp)
        procs: list[subprocess.Popen] = []
        full_env = _env(env, _blocker(workdir, hide) if hide else None)
        try:
            yield _start(
                workdir, procs, nworkers, nthreads, full_env, scheduler_args, worker_args, timeout
            )
        finally:
            for proc in reversed(procs):  # workers first, then the scheduler
                _stop(proc)


def _start(workdir, procs, nworkers, nthreads, env, scheduler_args, worker_args, timeout):
    scheduler_file = workdir / "scheduler.json"
    logs = [workdir / "scheduler.log", workdir / "worker.log"]
    procs.append(
        _spawn(
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(scheduler_file),
                *scheduler_args,
            ],
            workdir,
            env,
            logs[0],
        )
    )
    info = _read_scheduler_file(scheduler_file, procs[0], logs, timeout)
    procs.append(
        _spawn(
            [
                "worker",
                "--scheduler-file",
                str(scheduler_file),
                "--host",
                "127.0.0.1",
                "--nworkers",
                str(nworkers),
                "--nthreads",
                str(nthreads),
                "--dashboard-address",
                "127.0.0.1:0",
                *worker_args,
            ],
            workdir,
            env,
            logs[1],
        )
    )
    result = DaskProcs(
        info["address"], int(info["services"]["dashboard"]), procs[0], procs[1:], workdir, logs
    )
    _wait_for_workers(result, nworkers, timeout)
    return result


def _env(extra: Mapping[str, str] | None, blocker: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra or {})
    if blocker is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocker), env.get("PYTHONPATH")]))
    return env


_BLOCKER = """
import sys

# drop the finders of editable installs of these packages, and path entries holding them
names = {names!r}
sys.meta_path[:] = [
    f for f in sys.meta_path
    if not any(getattr(f, "__module__", "").startswith(f"__editable___{{n}}_") for n in names)
]
for name in names:
    sys.modules.pop(name, None)
"""


def _blocker(workdir: Path, names: Sequence[str]) -> Path:
    """A folder with a sitecustomize.py that makes `names` unimportable."""
    folder = workdir / "hide"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(_BLOCKER.format(names=set(names)))
    return folder


def _spawn(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _read_scheduler_file(path: Path, proc: subprocess.Popen, logs: list[Path], timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"dask scheduler exited with {proc.returncode}:\n"
                f"{logs[0].read_text(errors='replace')}"
            )
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            info = json.loads(path.read_text())
            if info.get("services", {}).get("dashboard"):
                return info
        time.sleep(0.1)
    raise TimeoutError(
        f"no scheduler file after {timeout}s:\n{logs[0].read_text(errors='replace')}"
    )


def _wait_for_workers(procs: DaskProcs, nworkers: int, timeout: float) -> None:
    with Client(procs.address, timeout=timeout) as client:
        try:
            client.wait_for_workers(nworkers, timeout=timeout)
        except TimeoutError as err:
            raise TimeoutError(f"{nworkers} workers did not come up:\n{procs.log_text()}") from err


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (dask worker starts nannies and workers), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers left in the group
    proc.wait()
