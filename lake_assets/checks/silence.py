"""Facility silence: facilities of a feed that delivered nothing for longer than they should.

A delivery is an archive the manifest recorded (loaded or quarantined: a broken archive is
still a sign of life), at its `committed_at`. A facility is silent when its last delivery is
older than its window: the feed's `silence_after`, or, when shorter, three times the median
gap between its own deliveries over the last HISTORY_DAYS (never under MIN_WINDOW, since
batches land a facility's archives minutes apart). A facility with fewer than MIN_GAPS gaps has
no cadence yet and gets `silence_after` alone. A facility that never delivered is not silent:
nothing says it should. Deliveries come from `Manifest.deliveries`; no I/O here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

HISTORY_DAYS = 14
CADENCE_FACTOR = 3
MIN_GAPS = 3
MIN_WINDOW = dt.timedelta(hours=1)


@dataclass(frozen=True)
class FacilityCadence:
    """One facility's last delivery, its usual gap (None when unknown), and its window."""

    facility: str
    last_delivery: dt.datetime
    deliveries: int
    median_gap: dt.timedelta | None
    window: dt.timedelta

    def silent(self, now: dt.datetime) -> bool:
        """Whether nothing arrived within the window before `now`."""
        return now - self.last_delivery > self.window

    def quiet_for(self, now: dt.datetime) -> dt.timedelta:
        """How long since the last delivery."""
        return now - self.last_delivery


def facility_cadences(
    deliveries: pa.Table, *, silence_after: dt.timedelta | None
) -> list[FacilityCadence]:
    """Each delivering facility's cadence, from deliveries (`facility`, `committed_at`), by
    facility id; a facility with neither a
    `silence_after` nor a known cadence is left out, since nothing sets its window."""
    frame = deliveries.select(["facility", "committed_at"]).to_pandas().dropna()
    frame = frame.drop_duplicates().sort_values(["facility", "committed_at"])
    frame["gap"] = frame.groupby("facility")["committed_at"].diff()
    per = frame.groupby("facility").agg(
        last=("committed_at", "max"), deliveries=("committed_at", "size"),
        gaps=("gap", "count"), median=("gap", "median"))
    cadences = []
    for facility, row in per.iterrows():
        median = row["median"].to_pytimedelta() if row["gaps"] >= MIN_GAPS else None
        window = _window(median, silence_after)
        if window is not None:
            cadences.append(FacilityCadence(
                str(facility), row["last"].to_pydatetime(), int(row["deliveries"]), median,
                window))
    return cadences


def silent_facilities(
    cadences: list[FacilityCadence], *, now: dt.datetime
) -> list[FacilityCadence]:
    """The silent ones, longest silent first."""
    silent = [c for c in cadences if c.silent(now)]
    return sorted(silent, key=lambda c: (c.last_delivery, c.facility))


def _window(
    median: dt.timedelta | None, silence_after: dt.timedelta | None
) -> dt.timedelta | None:
    usual = max(median * CADENCE_FACTOR, MIN_WINDOW) if median is not None else None
    if usual is None or silence_after is None:
        return usual or silence_after
    return min(usual, silence_after)
