"""The Dask cluster a run uses: found or reached (connect.py), or started for it (local.py).

- connect.py  which cluster, in the order a Dask user expects: the caller's client, the current
              client, a scheduler address or scheduler file, else a new local cluster; TLS files
              for a remote scheduler; a remote scheduler that cannot be reached is a UsageError
- local.py    the local cluster: loopback only, TLS with credentials made for the run, one
              single-threaded worker per core, worker tuning, a memory cap, an orderly shutdown,
              Dask's dashboard pages mounted at the first request
- credentials.py  the local cluster's TLS key and certificate, made for the run
- forkserver.py  the CLI's local workers forked from a process that imports their modules
              while the CLI starts up
Importing this package imports no Dask.
"""

from __future__ import annotations

from pipeline.cluster.connect import connected, start_local_early

__all__ = ["connected", "start_local_early"]
