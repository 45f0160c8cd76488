"""Prometheus counters for the scheduler's /metrics: images per worker and status, bytes.

distributed serves /metrics from prometheus_client's global REGISTRY, shared by every
scheduler in the process. So there is one collector per process, found again by the metric
name it owns, that sums the counters of every live throughput state attached to it; the
last state to detach unregisters it. prometheus_client is optional, as it is for distributed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

IMAGES = "pipeline_images"
BYTES_READ = "pipeline_bytes_read"
BYTES_WRITTEN = "pipeline_bytes_written"
STATUSES = ("ok", "failed", "skipped")


class ThroughputCollector:
    """Yields pipeline_images_total{worker,status} and pipeline_bytes_*_total{worker}."""

    def __init__(self) -> None:
        self.sources: list[Any] = []  # objects with .metrics: {worker: {count: int}}

    def describe(self) -> list[Any]:
        return list(self._families([]))

    def collect(self) -> list[Any]:
        return list(self._families(self.sources))

    @staticmethod
    def _families(sources: list[Any]) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        images = CounterMetricFamily(
            IMAGES, "Images handled by pipeline workers, by status", labels=["worker", "status"]
        )
        read = CounterMetricFamily(BYTES_READ, "Bytes of input read", labels=["worker"])
        written = CounterMetricFamily(BYTES_WRITTEN, "Bytes of output written", labels=["worker"])
        for worker, counts in sorted(_merged(sources).items()):
            for status in STATUSES:
                images.add_metric([worker, status], counts[status])
            read.add_metric([worker], counts["bytes_read"])
            written.add_metric([worker], counts["bytes_written"])
        yield from (images, read, written)


def _merged(sources: list[Any]) -> dict[str, dict[str, int]]:
    merged: dict[str, dict[str, int]] = {}
    for source in sources:
        for worker, counts in source.metrics.items():
            into = merged.setdefault(worker, dict.fromkeys(counts, 0))
            for key, value in counts.items():
                into[key] = into.get(key, 0) + value
    return merged


def attach(source: Any) -> bool:
    """Serve `source.metrics` on /metrics; False when prometheus_client is missing."""
    try:
        from prometheus_client import REGISTRY
    except ImportError:
        logger.info("prometheus_client not installed: no pipeline metrics on /metrics")
        return False
    collector = _registered(REGISTRY)
    if collector is None:
        collector = ThroughputCollector()
        try:
            REGISTRY.register(collector)
        except ValueError:  # the names belong to a collector that is not ours
            logger.warning("%s_total is already registered: no pipeline metrics", IMAGES)
            return False
    collector.sources.append(source)
    return True


def detach(source: Any) -> None:
    """Stop serving `source`; unregister the collector once nothing is left to serve."""
    from prometheus_client import REGISTRY

    collector = _registered(REGISTRY)
    if collector is None:
        return
    if source in collector.sources:
        collector.sources.remove(source)
    if not collector.sources:
        REGISTRY.unregister(collector)


def _registered(registry: Any) -> Any:
    """The collector that owns our metric names, even one built from another copy of this
    module (the plugin arrives by value, so its classes are not ours to isinstance-check)."""
    collector = getattr(registry, "_names_to_collectors", {}).get(f"{IMAGES}_total")
    return collector if isinstance(getattr(collector, "sources", None), list) else None
