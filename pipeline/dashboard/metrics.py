"""Prometheus counters for the scheduler's /metrics: images per worker and status, bytes, and
output files and bytes per rendition (format and size).

distributed serves /metrics from prometheus_client's global REGISTRY, one per process. Each
throughput plugin registers a collector of its own when it starts and unregisters it when it
closes. A second scheduler with the plugin in the same process (two LocalClusters in one
notebook) would serve the same metric names: the registry refuses that, and the second one's
counters stay off /metrics, with a warning that says so (its page and snapshots still work).
prometheus_client is optional, as it is for distributed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pipeline.record import STATUSES

logger = logging.getLogger(__name__)

IMAGES = "pipeline_images"
BYTES_READ = "pipeline_bytes_read"
BYTES_WRITTEN = "pipeline_bytes_written"
OUTPUTS = "pipeline_outputs_written"
OUTPUT_BYTES = "pipeline_output_bytes_written"


class ThroughputCollector:
    """Yields pipeline_images_total{worker,status}, pipeline_bytes_*_total{worker} and
    pipeline_output(s|_bytes)_written_total{worker,format,size}."""

    def __init__(self, source: Any) -> None:
        # an object with .metrics: {worker: {count: int}} and
        # .outputs: {worker: {rendition: {"files": int, "bytes": int}}}
        self.source = source

    def describe(self) -> list[Any]:
        return [*self._families({}), *self._outputs({})]

    def collect(self) -> list[Any]:
        return [*self._families(self.source.metrics), *self._outputs(self.source.outputs)]

    @staticmethod
    def _outputs(outputs: dict[str, dict[str, dict[str, int]]]) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        labels = ["worker", "format", "size"]
        files = CounterMetricFamily(OUTPUTS, "Output files written, by rendition", labels=labels)
        sizes = CounterMetricFamily(
            OUTPUT_BYTES, "Output bytes written, by rendition", labels=labels
        )
        for worker, renditions in sorted(outputs.items()):
            for key, counts in sorted(renditions.items()):
                fmt, _, size = key.partition(" ")
                files.add_metric([worker, fmt, size], counts["files"])
                sizes.add_metric([worker, fmt, size], counts["bytes"])
        yield from (files, sizes)

    @staticmethod
    def _families(metrics: dict[str, dict[str, int]]) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        images = CounterMetricFamily(
            IMAGES, "Images handled by pipeline workers, by status", labels=["worker", "status"]
        )
        read = CounterMetricFamily(BYTES_READ, "Bytes of input read", labels=["worker"])
        written = CounterMetricFamily(BYTES_WRITTEN, "Bytes of output written", labels=["worker"])
        for worker, counts in sorted(metrics.items()):
            for status in STATUSES:
                images.add_metric([worker, status], counts[status])
            read.add_metric([worker], counts["bytes_read"])
            written.add_metric([worker], counts["bytes_written"])
        yield from (images, read, written)


def attach(source: Any) -> ThroughputCollector | None:
    """Serve `source.metrics` on /metrics; None when that cannot be (see the module's doc)."""
    try:
        from prometheus_client import REGISTRY
    except ImportError:
        logger.info("prometheus_client not installed: no pipeline metrics on /metrics")
        return None
    collector = ThroughputCollector(source)
    try:
        REGISTRY.register(collector)
    except ValueError:  # the names are taken
        logger.warning(
            "%s_total is already on this process's /metrics (another scheduler here with the"
            " throughput plugin?): this scheduler's pipeline counters are not served there",
            IMAGES,
        )
        return None
    return collector


def detach(collector: ThroughputCollector) -> None:
    """Take the collector off /metrics."""
    from prometheus_client import REGISTRY

    REGISTRY.unregister(collector)
