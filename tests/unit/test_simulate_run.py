"""A simulation run: reproducible by seed, consistent patients over feeds and time, re-sent
copies, option ranges, live dripping, and the `lakehouse simulate` command."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog
from lake_assets.catalog.models import Feed
from lake_assets.errors import SimulationOptionError
from lake_assets.simulate import SimulationOptions, read_truth, simulate
from lake_assets.simulate.command import register
from tests.conftest import METADATA
from tests.unit.simulate_readers import members, run_simulation


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(METADATA)


def _is_zipcrypto(feed: Feed, data: bytes) -> bool:
    """An encrypted zip whose first member is not WinZip AES: compression method (offset 8 of
    the first local header, which the header-damage fault leaves alone) is not 99."""
    locked = feed.archive.kind == "zip" and bool(feed.archive.password_secret)
    return locked and len(data) > 30 and data[8:10] != (99).to_bytes(2, "little")


def test_same_seed_gives_the_same_archives_and_truth(catalog: Catalog, tmp_path: Path) -> None:
    """Byte-identical except ZipCrypto, whose 12-byte header libarchive draws from the OS:
    those archives are compared by their decrypted members."""
    runs = [tmp_path / "a", tmp_path / "b"]
    for root in runs:
        run_simulation(root, catalog, rate=80, faults=0.3)
    assert (runs[0] / "truth.jsonl").read_bytes() == (runs[1] / "truth.jsonl").read_bytes()
    identical = 0
    for record in read_truth(runs[0] / "truth.jsonl"):
        first, second = ((root / "landing" / record.archive).read_bytes() for root in runs)
        feed = catalog.feed(record.feed)
        if _is_zipcrypto(feed, first):
            assert len(first) == len(second), record.archive
            if record.status == "good":
                assert members(feed, first) == members(feed, second), record.archive
        else:
            assert first == second, record.archive
            identical += 1
    assert identical > 20


def test_another_seed_gives_other_data(catalog: Catalog, tmp_path: Path) -> None:
    _, _, first = run_simulation(tmp_path / "a", catalog, rate=20, seed=1)
    _, _, second = run_simulation(tmp_path / "b", catalog, rate=20, seed=2)
    assert [r.archive for r in first] != [r.archive for r in second]


def test_resent_archives_are_byte_identical_copies_expected_to_load_nothing(
    catalog: Catalog, tmp_path: Path
) -> None:
    _, summary, truth = run_simulation(tmp_path, catalog, rate=120, resend_rate=0.2)
    landing = tmp_path / "landing"
    by_path = {record.archive: record for record in truth}
    copies = [record for record in truth if record.resent_of]
    assert copies and summary.resent == len(copies)
    for copy in copies:
        original = by_path[copy.resent_of]
        assert copy.archive != original.archive
        assert (landing / copy.archive).read_bytes() == (landing / original.archive).read_bytes()
        # The shipped feeds skip re-sends (resend.action: skip): the copy loads nothing.
        assert (copy.status, copy.reason) == ("resent", "resent")
        assert not any(copy.rows.values()) and not any(copy.bad_rows.values())
        assert set(copy.rows) == set(original.rows)


def test_a_feed_that_loads_resends_expects_the_original_rows_again(
    catalog: Catalog, tmp_path: Path
) -> None:
    loading = [f.model_copy(update={"resend": f.resend.model_copy(update={"action": "load"})})
               for f in catalog.feeds]
    _, _, truth = run_simulation(tmp_path, replace(catalog, feeds=tuple(loading)), rate=120,
                                 resend_rate=0.2)
    by_path = {record.archive: record for record in truth}
    copies = [record for record in truth if record.resent_of]
    assert copies
    for copy in copies:
        original = by_path[copy.resent_of]
        assert (copy.rows, copy.bad_rows, copy.status) == (
            original.rows, original.bad_rows, original.status,
        )  # fmt: skip


def _adt_messages(catalog: Catalog, landing: Path, truth: list) -> list[dict[str, str]]:
    feed = catalog.feed("adt_events")
    messages = []
    for record in truth:
        if record.feed != "adt_events" or record.resent_of:
            continue
        arrival = record.archive.rsplit("-", 2)[1]
        for _, data in members(feed, (landing / record.archive).read_bytes()):
            for message in filter(None, data.decode().split("\r\n")):
                segments = {s[:3]: s.split("|") for s in message.split("\r")}
                messages.append(
                    {
                        "arrival": arrival.replace("T", ""),
                        "facility": segments["MSH"][3],
                        "event": segments["MSH"][8].split("^")[1],
                        "time": segments["EVN"][2],
                        "mrn": segments["PID"][3],
                        "visit": segments["PV1"][19],
                    }
                )
    return messages


def _identifiers(catalog: Catalog, landing: Path, truth: list) -> dict[str, set[str]]:
    """Message ids, visit numbers and MRNs of the ADT messages of a run."""
    messages = _adt_messages(catalog, landing, truth)
    ids = {"visit": {m["visit"] for m in messages}, "mrn": {m["mrn"] for m in messages}}
    feed = catalog.feed("adt_events")
    ids["message"] = {
        message.split("\r")[0].split("|")[9]
        for record in truth if record.feed == "adt_events" and not record.resent_of
        for _, data in members(feed, (landing / record.archive).read_bytes())
        for message in filter(None, data.decode().split("\r\n"))
    }
    return ids


def test_identifiers_never_repeat_across_runs_seeds_or_start_times(
    catalog: Catalog, tmp_path: Path
) -> None:
    """`make run` lands a backfill and then a live run: their records must never share ids."""
    runs = {
        "backfill": {"seed": 7},
        "other seed": {"seed": 0},
        "later start": {"seed": 7, "start": datetime(2025, 3, 1, 9, tzinfo=UTC)},
        "again": {"seed": 7},
    }
    found = {}
    for name, changes in runs.items():
        _, _, truth = run_simulation(tmp_path / name.replace(" ", "_"), catalog, rate=60,
                                     facilities=2, feeds=("adt_events",), **changes)
        found[name] = _identifiers(catalog, tmp_path / name.replace(" ", "_") / "landing",
                                   truth)
    for kind in ("message", "visit", "mrn"):
        assert found["backfill"][kind] == found["again"][kind]  # a run repeats exactly
        for other in ("other seed", "later start"):
            assert found["backfill"][kind].isdisjoint(found[other][kind]), (kind, other)


def test_patients_stay_consistent_across_feeds_and_over_time(
    catalog: Catalog, tmp_path: Path
) -> None:
    _, _, truth = run_simulation(tmp_path, catalog, facilities=2, rate=160, hours=2)
    landing = tmp_path / "landing"
    messages = _adt_messages(catalog, landing, truth)
    assert {m["event"] for m in messages} == {"A01", "A02", "A03", "A08", "A23"}
    events = defaultdict(list)
    for message in sorted(messages, key=lambda m: m["time"]):
        events[message["visit"]].append(message["event"])
    admitted = [visit for visit, kinds in events.items() if kinds[0] == "A01"]
    assert any("A03" in events[visit] for visit in admitted)
    assert all(events[visit].count("A01") == 1 for visit in admitted)
    assert any(m["time"][:10] < m["arrival"][:10] for m in messages)  # earlier hours arrive late
    newest: dict[str, str] = {}
    out_of_order = 0
    for arrival in sorted({m["arrival"] for m in messages}):
        batch = [m for m in messages if m["arrival"] == arrival]
        out_of_order += sum(m["time"] < newest.get(m["facility"], "") for m in batch)
        for message in batch:
            newest[message["facility"]] = max(newest.get(message["facility"], ""), message["time"])
    assert out_of_order > 0
    adt_mrns = {(m["facility"], m["mrn"]) for m in messages}
    lab = catalog.feed("lab_results")
    lab_mrns = set()
    for record in (r for r in truth if r.feed == "lab_results"):
        for _, data in members(lab, (landing / record.archive).read_bytes()):
            for line in data.decode().splitlines()[1:]:
                fields = line.split(",")
                lab_mrns.add((fields[1], fields[3]))
    assert len(lab_mrns & adt_mrns) > 10


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"rate": -5}, "rate"),
        ({"faults": 1.5}, "faults"),
        ({"facilities": 0}, "facilities"),
        ({"size_scale": 0.0}, "size-scale"),
        ({"hours": 0}, "hours"),
        ({"feeds": ("adt_events", "nope")}, "feeds"),
        ({"fault_kinds": ("gremlins",)}, "fault-kinds"),
        ({"encryption": "rot13"}, "encryption"),
    ],
)
def test_options_out_of_range_are_refused_naming_the_option(
    catalog: Catalog, tmp_path: Path, change: dict, option: str
) -> None:
    options = SimulationOptions(out=str(tmp_path), truth=str(tmp_path / "t.jsonl"), **change)
    with pytest.raises(SimulationOptionError, match=f"^--{option}: ") as caught:
        simulate(catalog, options)
    assert caught.value.option == option
    assert not (tmp_path / "t.jsonl").exists()


def test_live_mode_uses_the_clock_and_stops_cleanly_on_ctrl_c(
    catalog: Catalog, tmp_path: Path
) -> None:
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 4:
            raise KeyboardInterrupt

    options = SimulationOptions(
        out=str(tmp_path / "landing"), truth=str(tmp_path / "truth.jsonl"), facilities=3,
        rate=3600, size_scale=0.02, seed=3, live=True,
    )  # fmt: skip
    summary = simulate(catalog, options, sleep=sleep)
    truth = read_truth(options.truth)
    assert summary.interrupted and summary.archives == len(truth) >= 3
    assert all(0 < nap <= 10 for nap in naps)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert all(f"/{today}/" in record.archive for record in truth)


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Throwaway app holding only the simulate command."""

    return app


def test_cli_simulates_into_landing_root_with_truth_outside_feed_prefixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANDING_ROOT", str(tmp_path / "drop"))
    args = ["simulate", "--facilities", "3", "--rate", "20", "--size-scale", "0.02"]
    result = CliRunner().invoke(_cli(), [*args, "--seed", "4", "--faults", "0.2"])
    assert result.exit_code == 0, result.output
    truth = read_truth(tmp_path / "drop" / "_truth.jsonl")
    assert len(truth) == 20
    assert all((tmp_path / "drop" / record.archive).is_file() for record in truth)
    for name in ("archives", "data files", "bytes", "seconds", "rows lab_results.lab_results"):
        assert name in result.output
    assert "Traceback" not in result.output


def test_cli_quiet_prints_one_line_without_patient_data(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    result = CliRunner().invoke(
        _cli(),
        ["simulate", "--out", str(landing), "--truth", str(tmp_path / "t.jsonl"), "--quiet",
         "--facilities", "2", "--rate", "8", "--size-scale", "0.02", "--seed", "9",
         "--feeds", "lab_results,bed_census", "--encryption", "aes"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"simulated 8 archives, .* \(seed 9\); truth: .*t\.jsonl\s*", result.output)
    assert not re.search(r"\d{10}", result.output)  # no MRNs or other identifiers


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--rate", "-1"], "--rate"),
        (["--faults", "2"], "--faults"),
        (["--facilities", "0"], "--facilities"),
        (["--feeds", "adt_events,nope"], "--feeds"),
        (["--size-scale", "0"], "--size-scale"),
        (["--encryption", "none"], "--encryption"),
        (["--start", "yesterday"], "--start"),
    ],
)
def test_cli_refuses_out_of_range_options_with_exit_code_2(
    tmp_path: Path, args: list[str], option: str
) -> None:
    result = CliRunner().invoke(_cli(), ["simulate", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output
    assert "Traceback" not in result.output
    assert not any(tmp_path.iterdir())
