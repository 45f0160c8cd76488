"""How the runner cuts the input into partitions (the part of the runner that needs no cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count, islice

import pytest

from pipeline import runner
from pipeline.discover import Job


def _jobs(n: int | None) -> Iterator[Job]:
    numbers = count() if n is None else iter(range(n))
    return (Job(input=f"{i}.png", output=f"{i}.jpg") for i in numbers)


@pytest.mark.parametrize(("n", "threads"), [(1, 2), (7, 2), (200, 2), (200, 64), (5000, 2)])
def test_partitions_keep_every_job_once_in_order(n: int, threads: int) -> None:
    parts = list(runner._partitions(_jobs(n), lambda: threads))
    assert [job.input for part in parts for job in part] == [f"{i}.png" for i in range(n)]
    assert all(1 <= len(part) <= runner.MAX_PARTITION for part in parts)


def test_partition_sizes_shrink_to_single_images_at_the_end() -> None:
    """200 images on 2 threads: 25 first (200 / 8), then ever smaller, ending in ones."""
    sizes = [len(part) for part in runner._partitions(_jobs(200), lambda: 2)]
    assert sizes[0] == 25
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-4:] == [1, 1, 1, 1]
    assert len(sizes) < 60  # still a handful of tasks per thread, not one per image


def test_a_long_stream_gets_full_partitions_without_being_read_to_the_end() -> None:
    """Discovery of millions of files: work starts after LOOKAHEAD inputs, not after all."""
    parts = runner._partitions(_jobs(None), lambda: 2)
    first = list(islice(parts, 3))
    assert [len(part) for part in first] == [runner.MAX_PARTITION] * 3


def _sized(sizes: list[int]) -> Iterator[Job]:
    return (Job(f"{i}.png", f"{i}.jpg", size=size) for i, size in enumerate(sizes))


def test_once_the_rest_is_known_the_largest_files_go_first() -> None:
    """The last, single-image partitions are the smallest files: no long tail on one worker."""
    sizes = [(i * 7919) % 100 for i in range(200)]  # a fixed shuffle of 0..99, each twice
    parts = list(runner._partitions(_sized(sizes), lambda: 2))
    done = [job for part in parts for job in part]
    assert [job.size for job in done] == sorted(sizes, reverse=True)
    ties = [job.input for job in done if job.size == done[0].size]
    assert ties == ["21.png", "121.png"]  # the two of size 99, in discovery order
    assert [len(part) for part in parts][-4:] == [1, 1, 1, 1]
    assert [job.size for job in parts[-1]] == [min(sizes)]


def test_a_long_stream_is_started_in_discovery_order_and_only_its_tail_sorted() -> None:
    n = runner.LOOKAHEAD + runner.MAX_PARTITION + 1  # two full reads, then the end is seen
    sizes = [i % 10 for i in range(n)]  # the largest at every tenth place
    parts = list(runner._partitions(_sized(sizes), lambda: 2))
    streamed = [job.input for part in parts[:2] for job in part]
    assert streamed == [f"{i}.png" for i in range(2 * runner.MAX_PARTITION)]
    tail = [job.size for part in parts[2:] for job in part]
    assert tail == sorted(sizes[2 * runner.MAX_PARTITION :], reverse=True)


def test_the_tail_of_a_long_stream_shrinks_too() -> None:
    n = runner.LOOKAHEAD * 3 + 17
    sizes = [len(part) for part in runner._partitions(_jobs(n), lambda: 4)]
    assert sum(sizes) == n
    assert sizes[0] == runner.MAX_PARTITION
    assert sizes[-1] == 1
