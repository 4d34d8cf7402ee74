"""The Faker patient pool: identities built once per run, then picked with a seeded Random.

Faker is slow per call (about 30 µs), so records never call it; they pick from this pool.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from faker import Faker

POOL_SIZE = 4_000
MAX_AGE_DAYS = 95 * 365


@dataclass(frozen=True)
class Identity:
    """Demographics of one synthetic person."""

    family_name: str
    given_name: str
    sex: str
    birth_date: date
    postal_code: str


@lru_cache(maxsize=4)
def build_pool(seed: int, reference: date, size: int = POOL_SIZE) -> tuple[Identity, ...]:
    """`size` seeded identities; birth dates count back from `reference` so reruns agree."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(f"{seed}:pool")
    people: list[Identity] = []
    for _ in range(size):
        sex = rng.choices(("F", "M", "U"), weights=(0.5, 0.49, 0.01))[0]
        given = fake.first_name_female() if sex == "F" else fake.first_name_male()
        people.append(
            Identity(
                family_name=_clean(fake.last_name()),
                given_name=_clean(given),
                sex=sex,
                birth_date=reference - timedelta(days=rng.randrange(1, MAX_AGE_DAYS)),
                postal_code=fake.zipcode(),
            )
        )
    return tuple(people)


def age_on(birth_date: date, day: date) -> int:
    """Whole years between `birth_date` and `day`."""
    years = day.year - birth_date.year
    return years - ((day.month, day.day) < (birth_date.month, birth_date.day))


def _clean(name: str) -> str:
    """Keep letters, spaces, hyphens and apostrophes: safe in CSV, HL7 and XML alike."""
    return "".join(c for c in name if c.isalpha() or c in " -'")
