"""Run a simulation: plan the archives, build and land them in order, write the truth."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lake_assets.catalog.catalog import Catalog
from lake_assets.simulate.build import (
    BuiltArchive,
    FeedKit,
    archive_path,
    build_archive,
    build_kit,
)
from lake_assets.simulate.facilities import Facility, open_facility, run_tag
from lake_assets.simulate.landing import LandingWriter
from lake_assets.simulate.options import SimulationOptions, SimulationSummary, validate_options
from lake_assets.simulate.patients import Identity, build_pool
from lake_assets.simulate.plan import ArchiveSpec, plan_archives
from lake_assets.simulate.render import FeedStats
from lake_assets.simulate.truth import TruthRecord, TruthWriter


@dataclass
class _RunState:
    """What a run carries from one archive to the next."""

    kits: dict[str, FeedKit]
    pool: tuple[Identity, ...]
    tag: str
    copies: Counter[int]
    """Re-sends still to come per original archive; its bytes are kept until the last one."""
    stats: dict[str, FeedStats] = field(default_factory=lambda: defaultdict(FeedStats))
    facilities: dict[int, Facility] = field(default_factory=dict)
    kept: dict[int, BuiltArchive] = field(default_factory=dict)


def simulate(
    catalog: Catalog,
    options: SimulationOptions,
    *,
    progress: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> SimulationSummary:
    """Write the archives and truth file `options` describe; returns the run's counts.

    Raises SimulationOptionError for an option out of range, SimulationError when the output
    cannot be written or a feed cannot be simulated, SecretNotFoundError for a missing password.
    A live run stops cleanly on Ctrl-C and reports `interrupted`.
    """
    validate_options(options, catalog)
    feeds = options.selected_feeds(catalog)
    kits = {feed.name: build_kit(feed, options.fault_kinds) for feed in feeds}
    specs = plan_archives(options, feeds, {name: kit.faults for name, kit in kits.items()})
    # A live run's records depend on the wall clock, so its ids do too.
    started = datetime.now(UTC) if options.live else options.start
    state = _RunState(
        kits=kits,
        pool=build_pool(options.seed, options.start.date()),
        tag=run_tag(options.seed, started),
        copies=Counter(spec.resend_of for spec in specs if spec.resend_of is not None),
    )
    summary = SimulationSummary(seed=options.seed, truth=options.truth)
    landing, truth = LandingWriter(options.out), TruthWriter(options.truth)
    started = time.monotonic()
    try:
        with _progress_bar(progress, len(specs)) as advance:
            for spec, now in _arrivals(specs, options, sleep):
                built = _land(spec, now, options, state)
                landing.put(built.path, built.data)
                truth.write(built.truth)
                _count(summary, built)
                if state.copies[spec.index]:
                    state.kept[spec.index] = built
                advance()
    except KeyboardInterrupt:
        if not options.live:
            raise
        summary.interrupted = True
    finally:
        truth.close()
        landing.close()
        summary.seconds = time.monotonic() - started
    return summary


def _arrivals(
    specs: list[ArchiveSpec], options: SimulationOptions, sleep: Callable[[float], None]
) -> Iterator[tuple[ArchiveSpec, datetime]]:
    """Each spec with its arrival time: planned, or (live) the wall clock after waiting."""
    if not options.live:
        for spec in specs:
            yield spec, options.start + timedelta(seconds=int(spec.offset))
        return
    began = time.monotonic()
    for spec in specs:
        wait = spec.offset - (time.monotonic() - began)
        if wait > 0:
            sleep(wait)
        yield spec, datetime.now(UTC).replace(microsecond=0)


def _land(
    spec: ArchiveSpec, now: datetime, options: SimulationOptions, state: _RunState
) -> BuiltArchive:
    kit = state.kits[spec.feed]
    if spec.resend_of is not None:
        original = state.kept[spec.resend_of]
        state.copies[spec.resend_of] -= 1
        if not state.copies[spec.resend_of]:
            del state.kept[spec.resend_of]
        path, _ = archive_path(kit.feed, original.truth.facility, now, spec.index + 1)
        loaded = kit.feed.resend.action == "load"
        return BuiltArchive(path, original.data, original.truth.resent_as(path, loaded=loaded))
    facility = state.facilities.get(spec.facility)
    if facility is None:
        facility = open_facility(spec.facility, seed=options.seed, pool=state.pool, now=now,
                                 tag=state.tag)
        state.facilities[spec.facility] = facility
    return build_archive(
        kit,
        spec,
        facility,
        now=now,
        seed=options.seed,
        stats=state.stats[spec.feed],
        late_rate=options.late_rate,
        size_scale=options.size_scale,
    )


def _count(summary: SimulationSummary, built: BuiltArchive) -> None:
    truth: TruthRecord = built.truth
    summary.archives += 1
    summary.data_files += truth.data_files
    summary.bytes += len(built.data)
    summary.quarantined += truth.status == "quarantine"
    summary.resent += truth.resent_of is not None
    for target, source in ((summary.rows, truth.rows), (summary.bad_rows, truth.bad_rows)):
        counts = Counter(target.get(truth.feed, {}))
        counts.update(source)
        target[truth.feed] = dict(counts)
    if truth.fault and truth.resent_of is None:
        summary.faults[truth.fault] = summary.faults.get(truth.fault, 0) + 1


@contextmanager
def _progress_bar(show: bool, total: int) -> Iterator[Callable[[], None]]:
    if not show:
        yield lambda: None
        return
    columns = (
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("archives", total=total)
        yield lambda: bar.advance(task)
