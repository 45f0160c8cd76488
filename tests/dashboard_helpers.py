"""Shared helpers for the dashboard tests: a simulated image task, batch events, a LocalCluster
with a client, HTTP/metrics readers and the checks of a run's totals.

`simulate_partition` stands in for the real task: it sleeps per "image" and reports batches
with `get_worker().log_event(THROUGHPUT_TOPIC, BatchEvent)`. It uses only the stdlib and
distributed, so it can be pickled by value to workers that cannot import this directory.
"""

from __future__ import annotations

import contextlib
import time
import urllib.request
from typing import Any

import dask
import dask.bag as db
from distributed import Client, LocalCluster, get_worker

from pipeline.events import RUN_TOPIC, THROUGHPUT_TOPIC

COUNT_KEYS = ("ok", "failed", "skipped", "bytes_read", "bytes_written")


@contextlib.contextmanager
def local_client(**config):
    with (
        dask.config.set(config),
        LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield cluster, client


def batch(worker="tcp://w:1", t=100.0, busy=1.0, run="r", nthreads=2, **counts):
    return {
        "run": run,
        "worker": worker,
        "nthreads": nthreads,
        "t": t,
        "busy": busy,
        **dict.fromkeys(COUNT_KEYS, 0),
        **counts,
    }


def status_of(item: int) -> str:
    """Deterministic mix: 10% failed, 10% skipped, the rest ok."""
    return {0: "failed", 1: "skipped"}.get(item % 10, "ok")


def expected_counts(items: range) -> dict[str, int]:
    counts = dict.fromkeys(COUNT_KEYS, 0)
    for item in items:
        counts[status_of(item)] += 1
        counts["bytes_read"] += 0 if status_of(item) == "skipped" else 1000 + item
        counts["bytes_written"] += 100 if status_of(item) == "ok" else 0
    return counts


def simulate_partition(items, run: str, delay: float, every: int) -> list[int]:
    """Fake image work: sleep `delay` per item, send one BatchEvent per `every` items."""
    worker = get_worker()
    batch, started, done = dict.fromkeys(COUNT_KEYS, 0), time.time(), 0
    for i, item in enumerate(items, 1):
        time.sleep(delay if status_of(item) != "skipped" else 0)
        batch[status_of(item)] += 1
        batch["bytes_read"] += 0 if status_of(item) == "skipped" else 1000 + item
        batch["bytes_written"] += 100 if status_of(item) == "ok" else 0
        done += 1
        if i % every == 0 or i == len(items):
            now = time.time()
            event = {
                "run": run,
                "worker": worker.address,
                "nthreads": worker.state.nthreads,
                "t": now,
                "busy": now - started,
                **batch,
            }
            worker.log_event(THROUGHPUT_TOPIC, event)
            batch, started = dict.fromkeys(COUNT_KEYS, 0), now
    return [done]


def simulated_bag(n: int, run: str, *, npartitions: int, delay: float = 0.005, every: int = 10):
    """A bag whose partitions run `simulate_partition`.

    The closure matters for remote clusters: distributed pickles a task graph with the stdlib
    pickle (functions by reference) unless that fails, and only then uses cloudpickle, which
    honours `cloudpickle.register_pickle_by_value(this module)`.
    """

    def task(items):
        return simulate_partition(items, run, delay, every)

    return db.from_sequence(list(range(n)), npartitions=npartitions).map_partitions(task)


def run_simulation(client, n: int, run: str, **kwargs: Any) -> dict[str, int]:
    """A whole simulated run with RunEvents around it; returns the expected totals."""
    client.log_event(RUN_TOPIC, {"run": run, "state": "started", "total": 0, "t": time.time()})
    client.log_event(RUN_TOPIC, {"run": run, "state": "discovered", "total": n, "t": time.time()})
    assert sum(simulated_bag(n, run, **kwargs).compute()) == n
    client.log_event(RUN_TOPIC, {"run": run, "state": "finished", "total": n, "t": time.time()})
    return expected_counts(range(n))


def http_get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode("utf-8", errors="replace")


def pipeline_metrics(url: str) -> dict[tuple[str, str, str], float]:
    """{(metric, worker, status or ""): value} for the pipeline_* samples on /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(http_get(url)[1]):
        for sample in family.samples:
            if sample.name.startswith("pipeline_"):
                labels = sample.labels
                out[(sample.name, labels["worker"], labels.get("status", ""))] = sample.value
    return out


def wait_until(predicate, timeout: float, message: str, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s: {message}")


def metrics_by_status(metrics, workers):
    totals = dict.fromkeys(COUNT_KEYS, 0.0)
    for (name, worker, status), value in metrics.items():
        assert worker in workers, f"{worker} is not a worker of this cluster"
        key = status or name.removeprefix("pipeline_").removesuffix("_total")
        totals[key] += value
    return totals


def assert_run_matches(snap, run, expected, workers):
    data = snap["runs"][run]
    assert {k: data[k] for k in ("ok", "failed", "skipped")} == {
        k: expected[k] for k in ("ok", "failed", "skipped")
    }
    assert data["done"] == data["total"] == sum(expected[k] for k in ("ok", "failed", "skipped"))
    assert set(data["workers"]) == set(workers), "per-worker rows must be the real workers"
    for key in COUNT_KEYS:
        assert sum(w[key] for w in data["workers"].values()) == expected[key], key
    assert all(w["nthreads"] == workers[a]["nthreads"] for a, w in data["workers"].items())
