"""Which Dask cluster a run uses, in the order a Dask user expects.

1. the `client=` the caller passes;
2. the current client (`distributed.default_client()`: the one in a `with Client(...):` block,
   or the last one created), unless the caller names a different scheduler in 3 or 4;
3. `scheduler=` / `--scheduler` / `DASK_SCHEDULER_ADDRESS`;
4. `scheduler_file=` / `--scheduler-file`, the file `dask scheduler --scheduler-file` writes
   (the HPC convention: jobs find the scheduler through a shared file system);
5. else a new local cluster (local.py), closed when the run ends.
A client the run did not create is left open. A scheduler that cannot be reached within
`--connect-timeout` is a UsageError; a reached one without workers is not: the run submits
its first work anyway (an adaptive deployment starts workers only for queued work), and the
runner decides how long to wait for a worker (`pipeline.capacity`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline import tuning
from pipeline.config import RunOptions
from pipeline.errors import UsageError

SCHEDULER_FILE_POLL = 0.1  # seconds between looks for a scheduler file not written yet


@contextlib.contextmanager
def connected(opts: RunOptions, client: Any = None) -> Iterator[Any]:
    """Yield the Client a run uses (see the module docstring for the order).

    Workers the pipeline did not start get its worker tuning (`tuning.register`); those of
    its own local cluster start with it.
    """
    if client is None:
        named = _named_scheduler(opts)
        client = _current_client(named)
        if client is None and named is not None:
            with _remote_client(*named, opts) as remote:
                tuning.register(remote)
                yield remote
            return
        if client is None:
            from pipeline.cluster.local import local_client

            with local_client(opts) as local:
                yield local
            return
    tuning.register(client)
    yield client


def start_local_early(opts: RunOptions, env: Mapping[str, str]) -> None:
    """Start the local cluster's fork server now, before Dask is imported, if the run will
    start a local cluster (no scheduler named by flag or DASK_SCHEDULER_ADDRESS): the command
    line's start-up. A scheduler named only in a Dask config file leaves it unused."""
    if opts.scheduler or opts.scheduler_file is not None or env.get("DASK_SCHEDULER_ADDRESS"):
        return
    from pipeline.cluster import forkserver

    forkserver.start()


def _named_scheduler(opts: RunOptions) -> tuple[str, str] | None:
    """(address, how it was named) from options 3 and 4, or Dask's `scheduler-address` config
    (what DASK_SCHEDULER_ADDRESS sets for a Python caller); None when none is named."""
    if opts.scheduler:
        return opts.scheduler, ""
    if opts.scheduler_file is not None:
        path = opts.scheduler_file
        return _address_in_file(path, opts.connect_timeout), f" (from scheduler file {path})"
    import dask

    address = dask.config.get("scheduler-address", None)
    return (str(address), "") if address else None


def _current_client(named: tuple[str, str] | None) -> Any:
    """The current client, if there is one and it is connected to the named scheduler (if any)."""
    from distributed import default_client

    try:
        current = default_client()
    except ValueError:  # no client in this process
        return None
    if named is None or _same_address(current.scheduler.address, named[0]):
        return current
    return None


def _same_address(one: str, other: str) -> bool:
    from distributed.comm.addressing import normalize_address

    try:
        return bool(normalize_address(one) == normalize_address(other))
    except ValueError:  # not an address: it cannot be the current client's
        return False


def _address_in_file(path: Path, timeout: float) -> str:
    """The scheduler address in a scheduler file, waiting up to `timeout` s for it to appear
    (a batch job's scheduler may write it a moment after the run starts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            address = json.loads(path.read_text())["address"]
            if isinstance(address, str) and address:
                return address
            problem = "has no scheduler address"
        except FileNotFoundError:
            problem = "was not found"
        except (ValueError, KeyError, TypeError):  # being written, or not a scheduler file
            problem = "has no scheduler address"
        except OSError as exc:  # a folder, no permission: waiting will not help
            raise UsageError(f"cannot read scheduler file {path}: {exc.strerror}") from None
        if time.monotonic() >= deadline:
            raise UsageError(f"scheduler file {path} {problem} (waited {timeout:g} s)")
        time.sleep(SCHEDULER_FILE_POLL)


@contextlib.contextmanager
def _remote_client(address: str, source: str, opts: RunOptions) -> Iterator[Any]:
    from distributed import Client

    try:
        client = Client(address, timeout=opts.connect_timeout, security=_security(opts))
    except Exception as exc:  # OSError, TimeoutError, and TLS set-up errors of any type
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(f"cannot reach Dask scheduler at {address}{source}: {reason}") from None
    try:
        yield client
    finally:
        client.close()


def _security(opts: RunOptions) -> Any:
    """TLS from --tls-* flags; otherwise Dask's own config (distributed.comm.tls.*) applies."""
    from distributed.security import Security

    if opts.tls is None:
        return Security()
    key = str(opts.tls.key) if opts.tls.key else None
    return Security(
        tls_ca_file=str(opts.tls.ca_file),
        tls_client_cert=str(opts.tls.cert),
        tls_client_key=key,
        require_encryption=True,
    )
