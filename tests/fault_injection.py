"""Test-only fault injection for real worker processes, as a Dask worker preload.

`env(crash=NAME)` / `env(hang=NAME)` give the environment for a process that starts Dask workers
(the CLI's local cluster, `dask worker`): each worker preloads this file, and its images whose
relative path contains NAME make the worker process exit (`crash`) or hang (`hang`) when the
task reaches them. The pipeline itself knows nothing of this: `dask_setup` wraps the task
module's read-and-transform step in the worker process. `install(...)` does the same in the
current process, for tests that call the task functions directly.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FAULT_ENV = "PIPELINE_TEST_FAULTS"
CRASH_EXIT_CODE = 70


def env(**faults: str) -> dict[str, str]:
    """Environment for a process whose Dask workers should meet these faults."""
    return {
        "DASK_DISTRIBUTED__WORKER__PRELOAD": json.dumps([str(Path(__file__).resolve())]),
        FAULT_ENV: json.dumps({name: kind for kind, name in faults.items()}),
    }


def install(faults: dict[str, str]) -> Callable[[], None]:
    """Wrap the task's read step in this process (NAME -> "crash" | "hang"); return an undo."""
    from pipeline import task

    original = task._read_and_transform

    def faulty(source: Any, name: str, *args: Any) -> Any:
        for needle, kind in faults.items():
            if needle in name:
                _meet(kind)
        return original(source, name, *args)

    task._read_and_transform = faulty  # type: ignore[assignment]

    def undo() -> None:
        task._read_and_transform = original  # type: ignore[assignment]

    return undo


def _meet(kind: str) -> None:
    if kind == "crash":
        os._exit(CRASH_EXIT_CODE)
    if kind == "hang":
        time.sleep(1e6)


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: runs in each worker process as it starts."""
    install(json.loads(os.environ.get(FAULT_ENV) or "{}"))
