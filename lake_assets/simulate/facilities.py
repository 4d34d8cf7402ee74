"""Per-facility state: patients, beds and visits, and the ADT events that move them.

Each facility draws from its own seeded Random, so its history does not depend on which other
facilities a run touches. Events mutate the state: an A01 admits into a free bed, an A02 moves
the patient, an A03 or A23 frees the bed, and an A08 changes demographics for later records.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from array import array
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from lake_assets.simulate.domain import ADT_EVENT_WEIGHTS, BED_TYPE_WEIGHTS, UNITS
from lake_assets.simulate.patients import Identity

Context = dict[str, object]
OCCUPANCY = 0.65
_EVENTS = [event for event, _ in ADT_EVENT_WEIGHTS]
_EVENT_WEIGHTS = list(itertools.accumulate(weight for _, weight in ADT_EVENT_WEIGHTS))


@dataclass
class Bed:
    """A staffed bed on a nursing unit."""

    unit: str
    room: str
    bed_id: str
    bed_type: str
    licensed: bool


@dataclass
class Visit:
    """A hospital visit (encounter) of one patient."""

    number: str
    patient: int
    patient_class: str
    admit_time: datetime
    npi: str
    bed: Bed | None = None
    discharge_time: datetime | None = None


@dataclass
class Facility:
    """Everything the simulator remembers about one facility during a run."""

    code: str
    index: int
    rng: random.Random
    pool: tuple[Identity, ...]
    patient_count: int
    beds: list[Bed]
    occupant: dict[str, Visit] = field(default_factory=dict)
    active: dict[str, Visit] = field(default_factory=dict)
    discharged: deque[Visit] = field(default_factory=lambda: deque(maxlen=200))
    changed: dict[int, Identity] = field(default_factory=dict)
    results: deque[Context] = field(default_factory=lambda: deque(maxlen=200))
    held: dict[str, list[Context]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    snapshots: dict[datetime, array] = field(default_factory=dict)
    """Recent bed-board snapshots by time (see `streams.census_stream`)."""
    tag: str = ""
    """The run's tag, part of every identifier, so two runs never reuse one (`run_tag`)."""

    def next_id(self, kind: str) -> int:
        """The next number of a per-facility sequence (messages, visits, orders, results)."""
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return self.counters[kind]

    def identity(self, patient: int) -> Identity:
        """Current demographics of a patient, after any A08 change."""
        found = self.changed.get(patient)
        if found is not None:
            return found
        return self.pool[(self.index * 7919 + patient * 104_729) % len(self.pool)]

    def mrn(self, patient: int) -> str:
        """The patient's medical record number; the same in every feed of this facility."""
        return f"{self.tag}{self.index:05d}{patient:05d}"

    def patient_context(self, patient: int) -> Context:
        """Context keys of a patient: mrn and demographics."""
        person = self.identity(patient)
        return {
            "mrn": self.mrn(patient),
            "family_name": person.family_name,
            "given_name": person.given_name,
            "sex": person.sex,
            "birth_date": person.birth_date,
            "postal_code": person.postal_code,
        }

    def visit_context(self, visit: Visit) -> Context:
        """Context keys of a visit, including its patient."""
        bed = visit.bed
        return {
            **self.patient_context(visit.patient),
            "visit_number": visit.number,
            "encounter_id": visit.number,
            "patient_class": visit.patient_class,
            "unit": bed.unit if bed else None,
            "room": bed.room if bed else None,
            "bed": bed.bed_id.rsplit("-", 1)[-1] if bed else None,
            "bed_id": bed.bed_id if bed else None,
            "admit_time": visit.admit_time,
            "discharge_time": visit.discharge_time,
            "attending_npi": visit.npi,
        }

    def any_visit(self, when: datetime) -> Visit:
        """An active or recently discharged visit, or a new outpatient visit at `when`."""
        pick = self.rng.random()
        if self.discharged and pick < 0.3:
            return self.rng.choice(self.discharged)
        if self.active and pick < 0.95:
            return self.rng.choice(list(self.active.values()))
        return self._new_visit(when, "O")

    def _new_visit(self, when: datetime, patient_class: str) -> Visit:
        number = f"V{self.index:05d}{self.tag}{self.next_id('visit'):07d}"
        npi = f"1{self.rng.randrange(10**9):09d}"
        patient = self.rng.randrange(self.patient_count)
        return Visit(number, patient, patient_class, when, npi)


def run_tag(seed: int, started: datetime) -> str:
    """Eight hex digits from the seed and the run's start: every identifier a run makes
    (messages, visits, orders, results, MRNs) carries it, so runs of other seeds or start times
    never reuse one for a different record, while a run repeated exactly repeats its ids."""
    digest = hashlib.sha256(f"{seed}:{started.isoformat()}".encode()).hexdigest()
    return digest[:8].upper()


def open_facility(index: int, *, seed: int, pool: tuple[Identity, ...], now: datetime,
                  tag: str = "") -> Facility:
    """A facility with beds and an initial census of patients admitted before `now`; its
    identifiers carry `tag` (`run_tag`)."""
    rng = random.Random(f"{seed}:facility:{index}")
    facility = Facility(
        code=f"FAC{index:05d}",
        index=index,
        rng=rng,
        pool=pool,
        patient_count=rng.randint(800, 6000),
        beds=_beds(rng, rng.randint(40, 300)),
        tag=tag,
    )
    for bed in facility.beds:
        if rng.random() < OCCUPANCY:
            admitted = now - timedelta(minutes=rng.randint(60, 5 * 24 * 60))
            visit = facility._new_visit(admitted, "E" if bed.bed_type == "ED" else "I")
            _occupy(facility, visit, bed)
            facility.active[visit.number] = visit
    return facility


def _beds(rng: random.Random, count: int) -> list[Bed]:
    kinds = rng.choices(list(BED_TYPE_WEIGHTS), weights=list(BED_TYPE_WEIGHTS.values()), k=count)
    beds: list[Bed] = []
    for number, kind in enumerate(sorted(kinds)):
        unit = rng.choice(UNITS[kind])
        room = f"{100 + number // 2}"
        bed_id = f"{unit}-{room}{'AB'[number % 2]}"
        beds.append(Bed(unit, room, bed_id, kind, licensed=rng.random() < 0.97))
    return beds


def _occupy(facility: Facility, visit: Visit, bed: Bed | None) -> None:
    if visit.bed is not None:
        facility.occupant.pop(visit.bed.bed_id, None)
    visit.bed = bed
    if bed is not None:
        facility.occupant[bed.bed_id] = visit


def _free_bed(facility: Facility, bed_type: str | None = None) -> Bed | None:
    for _ in range(8):
        bed = facility.rng.choice(facility.beds)
        if bed.bed_id not in facility.occupant and bed_type in (None, bed.bed_type):
            return bed
    return None


def adt_event(facility: Facility, when: datetime) -> Context:
    """Advance the facility by one ADT event at `when`; returns the message context."""
    rng = facility.rng
    kind = rng.choices(_EVENTS, cum_weights=_EVENT_WEIGHTS)[0] if facility.active else "A01"
    if kind == "A01":
        patient_class = rng.choices(("I", "E", "O"), weights=(0.55, 0.3, 0.15))[0]
        visit = facility._new_visit(when, patient_class)
        if patient_class != "O":
            _occupy(facility, visit, _free_bed(facility, "ED" if patient_class == "E" else None))
        facility.active[visit.number] = visit
    else:
        visit = rng.choice(list(facility.active.values()))
    if kind == "A02":
        _occupy(facility, visit, _free_bed(facility) or visit.bed)
    elif kind == "A03":
        visit.discharge_time = when
    elif kind == "A08":
        _update_demographics(facility, visit.patient)
    context = {**facility.visit_context(visit), "event_type": kind, "event_time": when}
    if kind in ("A03", "A23"):
        _occupy(facility, visit, None)
        del facility.active[visit.number]
        if kind == "A03":
            facility.discharged.append(visit)
    return context


def _update_demographics(facility: Facility, patient: int) -> None:
    person = facility.identity(patient)
    other = facility.pool[facility.rng.randrange(len(facility.pool))]
    if facility.rng.random() < 0.7:
        changed = replace(person, postal_code=other.postal_code)
    else:
        changed = replace(person, family_name=other.family_name)
    facility.changed[patient] = changed
