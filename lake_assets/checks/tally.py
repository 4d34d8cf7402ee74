"""What checks found over some rows: failing counts, masked samples, failing facilities.

A tally is small and bounded whatever the row count, merges by summing, and travels as one
JSON string, so each Spark task can send its own to the driver.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SAMPLE_SIZE = 5
MAX_FACILITIES = 20
MAX_ARCHIVES = 20
MASK = "***"
_MAX_TEXT = 40


def sample_text(value: object, *, phi: bool) -> str:
    """How a failing value shows in a sample: `***` for a PHI-tagged column, never the value;
    `null` for a missing one; else its text, cut to 40 characters."""
    if value is None:
        return "null"
    if phi:
        return MASK
    text = str(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


@dataclass(frozen=True)
class CheckTally:
    """Counts over evaluated rows, by rule name (`status.allowed`) and by check name.

    `failing` counts rows breaking each rule; `failing_by_check` counts rows breaking any rule
    of a check (uniqueness counted separately is added, so it can exceed distinct rows);
    `samples` holds at most SAMPLE_SIZE masked values per rule; `facilities` counts failing
    rows per facility and check, keeping the MAX_FACILITIES largest when merged; `archives`
    names up to MAX_ARCHIVES archives involved per rule (conflicts span archives).
    """

    rows: int = 0
    failing: Mapping[str, int] = field(default_factory=dict)
    failing_by_check: Mapping[str, int] = field(default_factory=dict)
    samples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    facilities: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    archives: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def merge(self, other: CheckTally) -> CheckTally:
        """Both tallies summed; samples and facility counts stay capped."""
        samples = {
            rule: _first_distinct((*self.samples.get(rule, ()), *other.samples.get(rule, ())))
            for rule in {**self.samples, **other.samples}
        }
        facilities = {
            check: _largest(Counter(self.facilities.get(check, {}))
                            + Counter(other.facilities.get(check, {})))
            for check in {**self.facilities, **other.facilities}
        }
        archives = {
            rule: tuple(dict.fromkeys((*self.archives.get(rule, ()),
                                       *other.archives.get(rule, ()))))[:MAX_ARCHIVES]
            for rule in {**self.archives, **other.archives}
        }
        return CheckTally(
            rows=self.rows + other.rows,
            failing=_add(self.failing, other.failing),
            failing_by_check=_add(self.failing_by_check, other.failing_by_check),
            samples=samples,
            facilities=facilities,
            archives=archives,
        )

    @staticmethod
    def merge_all(tallies: Iterable[CheckTally]) -> CheckTally:
        """The sum of `tallies`; an empty tally when there are none."""
        total = CheckTally()
        for tally in tallies:
            total = total.merge(tally)
        return total

    def to_json(self) -> str:
        """The tally as one compact JSON object."""
        return json.dumps({
            "rows": self.rows,
            "failing": dict(self.failing),
            "failing_by_check": dict(self.failing_by_check),
            "samples": {rule: list(values) for rule, values in self.samples.items()},
            "facilities": {check: dict(counts) for check, counts in self.facilities.items()},
            "archives": {rule: list(paths) for rule, paths in self.archives.items()},
        }, separators=(",", ":"), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> CheckTally:
        """The tally `to_json` wrote; raises ValueError for text that is not one."""
        try:
            data = json.loads(text)
            return CheckTally(
                rows=int(data["rows"]),
                failing={str(k): int(v) for k, v in data["failing"].items()},
                failing_by_check={str(k): int(v) for k, v in data["failing_by_check"].items()},
                samples={str(k): tuple(map(str, v)) for k, v in data["samples"].items()},
                facilities={str(k): {str(f): int(n) for f, n in v.items()}
                            for k, v in data["facilities"].items()},
                archives={str(k): tuple(map(str, v))
                          for k, v in data.get("archives", {}).items()},
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a check tally: {exc}") from exc

    def failing_facilities(self, check: str) -> list[tuple[str, int]]:
        """(facility, failing rows) of `check`, most failing first."""
        counts = self.facilities.get(check, {})
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _add(left: Mapping[str, int], right: Mapping[str, int]) -> dict[str, int]:
    return {key: left.get(key, 0) + right.get(key, 0) for key in {**left, **right}}


def _first_distinct(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))[:SAMPLE_SIZE]


def _largest(counts: Counter[str]) -> dict[str, int]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return dict(ranked[:MAX_FACILITIES])
