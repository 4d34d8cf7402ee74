"""Facility id and arrival date and hour from a landing path and the feed's rules."""

from __future__ import annotations

from datetime import date

import pytest

from lake_assets.catalog.models import FacilityRule, Feed
from lake_assets.errors import LandingPathError
from lake_assets.ingest import ArchiveLocation, locate_archive
from tests.unit.ingest_builders import feed

LAB = feed("lab_results")
NAME = "FAC00042-lab_results-20240115T101500-000001.zip"


def by_filename(pattern: str) -> Feed:
    landing = LAB.landing.model_copy(update={"facility": FacilityRule(filename_pattern=pattern)})
    return LAB.model_copy(update={"landing": landing})


def test_relative_path_by_path_segment() -> None:
    assert locate_archive(LAB, f"lab_results/2024-01-15/10/FAC00042/{NAME}") == ArchiveLocation(
        "FAC00042", date(2024, 1, 15), 10
    )


def test_full_path_or_url_containing_the_prefix() -> None:
    for root in ("/data/landing", "s3://bucket/landing"):
        found = locate_archive(LAB, f"{root}/lab_results/2024-01-15/07/FAC00042/{NAME}")
        assert (found.facility_id, found.arrival_hour) == ("FAC00042", 7)


def test_facility_from_filename_pattern() -> None:
    lab = by_filename(r"^(?P<facility>FAC\d{5})-")
    assert locate_archive(lab, f"lab_results/2024-01-15/10/anything/{NAME}").facility_id == (
        "FAC00042"
    )


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (f"bed_census/2024-01-15/10/FAC00042/{NAME}", "not under the feed's prefix lab_results/"),
        (f"lab_results/FAC00042/2024-01-15/{NAME}", "expected <prefix><YYYY-MM-DD>/<HH>/"),
        (f"lab_results/2024-02-30/10/FAC00042/{NAME}", "2024-02-30 is not a calendar date"),
        (f"lab_results/2024-01-15/24/FAC00042/{NAME}", "expected <prefix><YYYY-MM-DD>/<HH>/"),
        (f"lab_results/2024-01-15/10/{NAME}", "no folder at path segment 2"),
        (f"lab_results/2024-01-15/10/FAC 42;rm/{NAME}", "the facility id must be"),
    ],
)
def test_paths_that_do_not_fit_name_the_path_and_feed(path: str, problem: str) -> None:
    with pytest.raises(LandingPathError) as caught:
        locate_archive(LAB, path)
    assert str(caught.value).startswith(f"{path}: feed lab_results: ")
    assert problem in str(caught.value)


def test_filename_that_does_not_match_the_pattern() -> None:
    with pytest.raises(LandingPathError, match="filename_pattern"):
        locate_archive(
            by_filename(r"^(?P<facility>HOSP\d+)-"), f"lab_results/2024-01-15/10/x/{NAME}"
        )
