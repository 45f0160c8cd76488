"""Names shared by the workers that report progress and the scheduler page that shows it.

Workers send one event per batch of images (never one per image) with
`distributed.get_worker().log_event(THROUGHPUT_TOPIC, BatchEvent-as-dict)`; the client sends
`RUN_TOPIC` events when a run starts, learns its total, and ends.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

THROUGHPUT_TOPIC = "pipeline-throughput"
RUN_TOPIC = "pipeline-run"


class BatchEvent(TypedDict):
    """What one worker did since its previous event (counts are deltas, not totals)."""

    run: str  # run id
    worker: str  # the worker's address
    nthreads: int
    t: float  # wall clock when the batch ended (time.time())
    ok: int
    failed: int
    skipped: int
    bytes_read: int
    bytes_written: int
    busy: float  # seconds spent processing these images
    # outputs written, by rendition: "<format> <size>" (e.g. "webp 640") -> files, bytes
    outputs: NotRequired[dict[str, int]]
    output_bytes: NotRequired[dict[str, int]]


def rendition_key(fmt: str, size: int) -> str:
    """How events, the page and /metrics name one rendition: format and size asked for."""
    return f"{fmt} {size}"


class RunEvent(TypedDict, total=False):
    """A run's life cycle, sent by the client."""

    run: str
    state: str  # "started" | "discovered" | "finished"
    total: int  # images discovered so far (final when state is "discovered" or "finished")
    t: float
