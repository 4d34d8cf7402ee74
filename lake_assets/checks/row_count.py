"""Row-count anomaly: a day's rows against the trailing average of the days before it.

The counts come from the Delta data (rows per arrival date of the table's bronze tables, see
`frames.daily_counts`), not from run metadata: they hold whatever ran, re-ran or was backfilled,
and a day's arrivals never change once loaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from lake_assets.catalog.models import RowCountCheck


@dataclass(frozen=True)
class RowCountVerdict:
    """A day's rows, the trailing average it was held to (None without history), and the
    accepted range `expected_min`..`expected_max`."""

    rows: int
    average: float | None
    history_days: int
    expected_min: float | None
    expected_max: float | None

    @property
    def ratio(self) -> float | None:
        """Rows over the trailing average; None without history."""
        return self.rows / self.average if self.average else None

    @property
    def passed(self) -> bool:
        """Whether the rows fall in the accepted range; a day without history passes."""
        if self.expected_min is None or self.expected_max is None:
            return True
        return self.expected_min <= self.rows <= self.expected_max


def history_window(check: RowCountCheck, day: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day whose counts `judge_row_count` needs: the lookback and `day`."""
    return day - dt.timedelta(days=check.lookback_days), day


def judge_row_count(
    check: RowCountCheck, *, day: dt.date, counts: Mapping[dt.date, int]
) -> RowCountVerdict:
    """Hold `day`'s count to the average of the `lookback_days` days before it.

    Only days that hold rows count towards the average: a table younger than the lookback, or a
    day nothing arrived, does not drag the average to zero.
    """
    first, _ = history_window(check, day)
    history = [n for d, n in counts.items() if first <= d < day and n > 0]
    rows = counts.get(day, 0)
    if not history:
        return RowCountVerdict(rows, None, 0, None, None)
    average = sum(history) / len(history)
    return RowCountVerdict(
        rows=rows,
        average=average,
        history_days=len(history),
        expected_min=average * check.min_ratio,
        expected_max=average * check.max_ratio,
    )
