"""Worker set-up for image work: what the runner applies to local and remote workers.

`local_config()` is Dask config set around a LocalCluster the pipeline starts; `register(client)`
prepares workers the pipeline did not start (a remote cluster), whose environment is not ours.
"""

from __future__ import annotations

from typing import Any


def local_config() -> dict[str, Any]:
    """Dask config for a LocalCluster started by the pipeline."""
    return {}


def register(client: Any) -> None:
    """Prepare the client's workers for image work (idempotent)."""
