"""`run --dry-run`: what a run would do, found by reading only.

Discovery and the up-to-date check run in this process, without a cluster: per input one
`stat` of the source and one small read of the output's head (its marker), the same check a
worker makes before it decodes anything. Nothing is created, written or deleted: not the output
folder, not a report, not a temporary file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline import freshness, safety
from pipeline.config import RunOptions, Settings
from pipeline.discover import Job, Naming, iter_jobs
from pipeline.errors import UsageError
from pipeline.safety import shown as shown_name
from pipeline.storage import Store

NEW, STALE, UP_TO_DATE, FOREIGN, UNREADABLE = "new", "stale", "up to date", "foreign", "unreadable"
#: What each state means for a run, in the order they are printed.
MEANING = {
    NEW: "no output yet: would be written",
    STALE: "output from another version of the source or other settings: redone",
    UP_TO_DATE: "output up to date: skipped",
    FOREIGN: "a file the pipeline did not write is in the way: failed unless --overwrite",
    UNREADABLE: "source cannot be read: failed",
}


@dataclass
class Plan:
    """The state of every discovered input, counted, with the first few of each kind."""

    input: str
    output: str
    overwrite: bool
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[Job]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, job: Job, state: str, *, keep: int) -> None:
        """Count `job` as `state`; keep it for display if fewer than `keep` are kept."""
        self.counts[state] += 1
        shown = self.examples.setdefault(state, [])
        if len(shown) < keep:
            shown.append(job)

    def lines(self) -> list[str]:
        """The plan as the terminal shows it."""
        out = [f"dry run: {self.total} inputs in {self.input} -> {self.output}"]
        for state, meaning in MEANING.items():
            if state == UP_TO_DATE and self.overwrite:
                meaning = "output up to date: redone (--overwrite)"
            if self.counts[state] or state in (NEW, STALE, UP_TO_DATE):
                out.append(f"  {self.counts[state]:>8}  {state:<11} {meaning}")
            shown = self.examples.get(state, [])
            out += [
                f"            {shown_name(job.input)} -> {shown_name(job.output)}" for job in shown
            ]
            if 0 < len(shown) < self.counts[state]:
                out.append(
                    f"            ... and {self.counts[state] - len(shown)} more (-v lists all)"
                )
        out.append("nothing was written (dry run)")
        return out


def plan(opts: RunOptions, *, examples: int = 0, all_examples: bool = False) -> Plan:
    """Discover the inputs of `opts` and tell which are new, stale or up to date (reads only).

    `examples` is how many inputs of each state to keep for display (with their output paths);
    `all_examples` keeps that many of the up-to-date ones too, which are otherwise not shown.
    An unreadable input folder is a UsageError, as for a run.
    """
    source, target = Store.at(opts.input), Store.at(opts.output)
    _check_overlap(source, target)
    try:
        source.list_folder("")
    except FileNotFoundError:
        raise UsageError(f"input folder not found: {opts.input}") from None
    except OSError as exc:
        raise UsageError(f"cannot read input {opts.input}: {exc.strerror or exc}") from None
    result = Plan(input=source.root, output=target.root, overwrite=opts.overwrite)
    state_of = _checker(source, target, opts.settings)
    jobs = iter_jobs(
        source, target, naming=Naming.of(opts.settings), include=opts.include, exclude=opts.exclude
    )
    for job in jobs:
        state = state_of(job)
        keep = examples if all_examples or state != UP_TO_DATE or opts.overwrite else 0
        result.add(job, state, keep=keep)
    return result


def _check_overlap(source: Store, target: Store) -> None:
    """The refusals a run makes before any work, for overlapping input and output."""
    if source.remote == target.remote:
        safety.check_overlap(source.root, target.root, remote=source.remote)


def _checker(source: Store, target: Store, settings: Settings) -> Callable[[Job], str]:
    """A job's state, read as a run reads it (`Store.inspect`: no link followed, any store).

    The state of its outputs taken together: foreign if any is foreign, up to date if all are,
    new if none exists, else stale.
    """

    def state_of(job: Job) -> str:
        states = set()
        try:
            size, version = source.identity(job.input)
            for out, mark in freshness.marks(job.output, settings, size, version).items():
                exists, found = target.inspect(out.path)
                states.add(_state(exists, found, mark))
        except OSError:
            return UNREADABLE
        if FOREIGN in states:
            return FOREIGN
        return states.pop() if len(states) == 1 else STALE

    return state_of


def _state(exists: bool, found: bytes | None, mark: bytes) -> str:
    if found == mark:
        return UP_TO_DATE
    if found is not None:
        return STALE
    return FOREIGN if exists else NEW
