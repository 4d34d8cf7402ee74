"""Record contexts: what each record is about (patient, visit, event, test, bed), by domain.

A feed's columns choose its stream: `bed_id` means bed snapshots, `test_code` lab results,
HL7 or `event_type` ADT events, `encounter_id`/`visit_number` encounter documents; anything
else gets one patient visit per record. Each stream yields batches of contexts.
"""

from __future__ import annotations

import itertools
import random
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from lake_assets.catalog.models import Feed
from lake_assets.simulate.domain import (
    ALIASES,
    CORRECTION_RATE,
    ENCOUNTER_TYPES,
    FINAL_RATE,
    FREE_BED_STATUS,
    ICD10_CODES,
    LAB_TESTS,
    LabTest,
)
from lake_assets.simulate.facilities import Context, Facility, adt_event
from lake_assets.simulate.patients import age_on

SNAPSHOT_EVERY = timedelta(minutes=15)
EVENT_TICK = 100  # microseconds: HL7 DTM carries four digits of a second
SNAPSHOT_MEMORY = timedelta(hours=6)
FREE_STATUSES = [status for status, _ in FREE_BED_STATUS]
FREE_WEIGHTS = list(itertools.accumulate(weight for _, weight in FREE_BED_STATUS))


@dataclass(frozen=True)
class StreamRequest:
    """Which facility and archive a stream feeds, and about how many records it should yield."""

    feed: str
    facility: Facility
    rng: random.Random
    now: datetime
    expected: int
    late_rate: float


Stream = Callable[[StreamRequest], Iterator[list[Context]]]


def choose_stream(feed: Feed) -> Stream:
    """The context stream that fits the feed's columns and format."""
    names = {ALIASES.get(c.name, c.name) for t in feed.tables for c in t.columns}
    if "bed_id" in names:
        return census_stream
    if "test_code" in names:
        return lab_stream
    if feed.format.kind == "hl7v2" or "event_type" in names:
        return adt_stream
    if names & {"encounter_id", "visit_number"}:
        return encounter_stream
    return visit_stream


def adt_stream(request: StreamRequest) -> Iterator[list[Context]]:
    """ADT events in time order over the last 0.5-2 hours; a few are held back to the
    facility's next ADT archive, so they arrive late and out of order.

    Event times have a 1/10,000 s resolution (HL7 DTM's finest) and strictly increase: two
    events of one visit or patient never share a time, which would make them conflicting
    records of one identity (keys and sequence_by).
    """
    facility, rng, now = request.facility, request.rng, request.now
    late = facility.held.pop(request.feed, [])
    window = timedelta(hours=rng.uniform(0.5, 2.0))
    step = window / max(1, request.expected)
    when = now - window
    last = when
    while True:
        when = min(when + step * rng.uniform(0.5, 1.5), now)
        moment = when - timedelta(microseconds=when.microsecond % EVENT_TICK)
        last = moment if moment > last else last + timedelta(microseconds=EVENT_TICK)
        context = adt_event(facility, last)
        context["facility_code"] = facility.code
        context["message_id"] = f"{facility.code}{facility.tag}{facility.next_id('message'):010d}"
        if rng.random() < request.late_rate:
            facility.held.setdefault(request.feed, []).append(context)
            continue
        yield [*late, context]  # events held back last time open this archive, late
        late = []


def lab_stream(request: StreamRequest) -> Iterator[list[Context]]:
    """Orders of 1-6 results; some batches re-send an earlier result corrected (status C)."""
    facility, rng, now = request.facility, request.rng, request.now
    while True:
        if facility.results and rng.random() < CORRECTION_RATE:
            yield [_correction(facility, rng.choice(facility.results), rng, now)]
            continue
        visit = facility.any_visit(now)
        base = {**facility.visit_context(visit), "facility_code": facility.code}
        base["order_id"] = f"O{facility.index:05d}{facility.tag}{facility.next_id('order'):07d}"
        collected = now - timedelta(minutes=rng.randint(20, 360))
        batch = []
        for test in rng.sample(LAB_TESTS, rng.randint(1, 6)):
            resulted = min(collected + timedelta(minutes=rng.randint(10, 180)), now)
            context = {**base, **_result(test, rng), "collected_at": collected}
            number = facility.next_id("result")
            context["result_id"] = f"R{facility.index:05d}{facility.tag}{number:08d}"
            context["resulted_at"] = resulted
            context["status"] = "F" if rng.random() < FINAL_RATE else "P"
            facility.results.append(context)
            batch.append(context)
        yield batch


def _result(test: LabTest, rng: random.Random) -> Context:
    span = test.high - test.low
    pick = rng.random()
    if pick < 0.8:
        value, flag = rng.uniform(test.low, test.high), "N"
    elif pick < 0.9:
        value, flag = test.low - rng.uniform(0.01, 0.3) * span, "L"
    elif pick < 0.98:
        value, flag = test.high + rng.uniform(0.01, 0.5) * span, "H"
    else:
        value, flag = test.high + rng.uniform(1, 3) * span, "HH"
    return {
        "test_code": test.code,
        "test_name": test.name,
        "unit": test.unit,
        "value": max(round(value, 3), 0.0),
        "abnormal_flag": flag,
    }


def _correction(facility: Facility, earlier: Context, rng: random.Random, now: datetime
                ) -> Context:
    """`earlier` corrected: new value, status C, resulted after it (a second later at least,
    so a correction never shares its result id and time with what it corrects); it replaces
    `earlier` as the result a later correction builds on."""
    test = next(t for t in LAB_TESTS if t.code == earlier["test_code"])
    resulted = max(now, earlier["resulted_at"] + timedelta(seconds=1))  # type: ignore[operator]
    corrected = {**earlier, **_result(test, rng), "status": "C", "resulted_at": resulted}
    facility.results.remove(earlier)
    facility.results.append(corrected)
    return corrected


def census_stream(request: StreamRequest) -> Iterator[list[Context]]:
    """Bed-board snapshots every 15 minutes back from the arrival time, one row per bed.

    A snapshot time another archive of the facility already sent is sent again as it was: a bed
    board does not change its past (see `_snapshot`).
    """
    facility, rng = request.facility, request.rng
    when = request.now.replace(minute=request.now.minute // 15 * 15, second=0)
    newest = when
    try:
        while True:
            batch = []
            for bed, state in zip(facility.beds, _snapshot(facility, rng, when), strict=True):
                occupied = state >= 0
                batch.append({
                    "facility_code": facility.code,
                    "snapshot_time": when,
                    "unit": bed.unit,
                    "bed_id": bed.bed_id,
                    "bed_type": bed.bed_type,
                    "status": "occupied" if occupied else FREE_STATUSES[-1 - state],
                    "mrn": facility.mrn(state) if occupied else None,
                    "licensed": bed.licensed,
                })
            yield batch
            when -= SNAPSHOT_EVERY
    finally:
        # Snapshots older than any later archive reaches back are forgotten.
        for moment in [m for m in facility.snapshots if m < newest - SNAPSHOT_MEMORY]:
            del facility.snapshots[moment]


def _snapshot(facility: Facility, rng: random.Random, when: datetime) -> array:
    """Per bed, the occupying patient (>= 0) or -1 - the index of its free status, at `when`:
    as first drawn (occupants from the ADT state, free statuses at random), then remembered
    compactly so later archives send the same record."""
    known = facility.snapshots.get(when)
    if known is not None:
        return known
    states = array("i")
    for bed in facility.beds:
        visit = facility.occupant.get(bed.bed_id)
        if visit is not None:
            states.append(visit.patient)
        else:
            status = rng.choices(FREE_STATUSES, cum_weights=FREE_WEIGHTS)[0]
            states.append(-1 - FREE_STATUSES.index(status))
    facility.snapshots[when] = states
    return states


def encounter_stream(request: StreamRequest) -> Iterator[list[Context]]:
    """Encounter documents of current and recent visits, each with 1-8 coded diagnoses."""
    facility, rng, now = request.facility, request.rng, request.now
    while True:
        visit = facility.any_visit(now)
        context = {**facility.visit_context(visit), "facility_code": facility.code}
        kind = ENCOUNTER_TYPES[visit.patient_class]
        if kind != "inpatient" and rng.random() < 0.15:
            kind = "observation"
        context["encounter_type"] = kind
        birth_date = facility.identity(visit.patient).birth_date
        context["age"] = age_on(birth_date, visit.admit_time.date())
        updated = now - timedelta(seconds=rng.randint(0, 1200))
        context["updated_at"] = max(updated, visit.admit_time).replace(microsecond=0)
        codes = rng.sample(ICD10_CODES, rng.randint(1, 8))
        context["children"] = [
            {"rank": rank, "code": code, "code_system": "ICD-10-CM"}
            for rank, code in enumerate(codes, start=1)
        ]
        yield [context]


def visit_stream(request: StreamRequest) -> Iterator[list[Context]]:
    """One patient visit per record, for feeds no domain stream knows."""
    facility, rng, now = request.facility, request.rng, request.now
    while True:
        visit = facility.any_visit(now)
        context = {**facility.visit_context(visit), "facility_code": facility.code}
        context["event_time"] = now - timedelta(seconds=rng.randrange(3600))
        yield [context]
