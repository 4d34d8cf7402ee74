"""The reconciler inside the feed sensors, on a real Dagster instance and a real manifest, with
runs recorded the way the daemon and run workers record them (no Spark): failed batches are
requested again with the same id and archives after a backoff, lost requests are requested
again, data errors and exhausted retries become dead letters, and replays are requested."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import EngineEventData  # what a run worker logs at start
from dagster._core.test_utils import create_run_for_test

from lake_assets.catalog.loader import load_catalog
from lake_assets.catalog.models import Feed, RetryPolicy
from lake_assets.errors import MetadataError, SecretNotFoundError
from lake_assets.factory import recovery
from lake_assets.factory.batching import SETTLED, FeedCursor
from lake_assets.factory.bronze import build_bronze_assets
from lake_assets.factory.failures import run_fault
from lake_assets.factory.run_health import fail_dead_runs, is_alive
from lake_assets.factory.run_tags import ATTEMPT_TAG, BATCH_TAG, FEED_TAG
from lake_assets.factory.sensors import build_feed_sensor
from lake_assets.storage.landing import LandedArchive
from lake_assets.storage.manifest import Manifest
from tests.conftest import DAILY, METADATA, EditFn, project_instance

CATALOG = load_catalog(METADATA)
QUICK = RetryPolicy(max_attempts=3, backoff=timedelta(milliseconds=1))
LAB = CATALOG.feed("lab_results").model_copy(update={"retry": QUICK})
PATHS = ["lab_results/2026-11-20/08/FAC00001/a.zip", "lab_results/2026-11-20/08/FAC00002/b.zip"]


class Feeds:
    """A feed sensor over a landing zone with two archives, ticked by hand."""

    def __init__(self, root: Path, instance: dg.DagsterInstance, feed: Feed = LAB) -> None:
        for path in PATHS:
            (root / "landing" / path).parent.mkdir(parents=True, exist_ok=True)
            (root / "landing" / path).write_bytes(b"x" * 10)
        self.manifest = Manifest(str(root / "manifest"))
        bronze = build_bronze_assets(feed, source_file="lab_results.yaml", daily=DAILY)
        self.sensor = build_feed_sensor(feed, bronze, lambda: self.manifest)
        self.instance = instance
        self.cursor: str | None = None

    def tick(self) -> dg.SensorResult:
        result = self.sensor(dg.build_sensor_context(instance=self.instance, cursor=self.cursor))
        self.cursor = result.cursor
        return result

    def fail(self, request: dg.RunRequest) -> dg.DagsterRun:
        """A run of `request` whose worker was killed and that was then marked failed."""
        run = create_run_for_test(self.instance, tags=request.tags, run_config=request.run_config,
                                  status=dg.DagsterRunStatus.STARTED)
        self.instance.report_run_failed(run, message="the run's process (pid 1) is gone")
        return run


@pytest.fixture
def feeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Feeds:
    monkeypatch.setenv("LANDING_ROOT", str(tmp_path / "landing"))
    monkeypatch.setattr(recovery, "OUTSTANDING_EVERY_S", 0.0)
    with project_instance() as instance:
        yield Feeds(tmp_path, instance)


def archives_of(request: dg.RunRequest) -> tuple[str, list[str]]:
    config = request.run_config["ops"]["bronze__lab_results"]["config"]
    return config["batch_id"], config["archives"]


def test_a_failed_batch_is_retried_with_its_id_and_archives_then_dead_lettered(
    feeds: Feeds,
) -> None:
    [first] = feeds.tick().run_requests
    batch_id, archives = archives_of(first)
    assert archives == PATHS and first.tags[ATTEMPT_TAG] == "1"
    assert first.tags["dagster/max_retries"] == "0"  # the sensor retries bronze, not Dagster
    retry = first
    for attempt in (2, 3):
        feeds.fail(retry)
        time.sleep(0.01)
        result = feeds.tick()
        [retry] = result.run_requests
        assert archives_of(retry) == (batch_id, PATHS)
        assert retry.tags[ATTEMPT_TAG] == str(attempt)
        assert retry.run_key == f"lab_results:{batch_id}:{attempt}"
        assert FeedCursor.parse(feeds.cursor).backlog["archives_retrying"] == 2
    feeds.fail(retry)
    time.sleep(0.01)
    result = feeds.tick()
    assert not result.run_requests
    dead = feeds.manifest.outstanding("lab_results").to_pylist()
    assert sorted(r["path"] for r in dead) == PATHS
    assert {(r["status"], r["attempts"], r["reason"]) for r in dead} == {
        ("dead_letter", 3, "RunFailure")}
    assert "pid 1" in dead[0]["message"]
    [observed, *_] = result.asset_events  # on every bronze asset of the feed, when it changes
    assert observed.metadata["archives_dead_lettered"].value == 2
    assert observed.metadata["archives_pending"].value == 0
    assert not feeds.tick().run_requests  # settled: nothing pending any more

    assert feeds.manifest.request_replay("lab_results") == 2
    [replay] = feeds.tick().run_requests
    assert archives_of(replay) == (batch_id, PATHS)
    assert replay.run_key.startswith(f"lab_results:{batch_id}:replay-")
    assert replay.tags[ATTEMPT_TAG] == "4"


def test_a_backoff_waits_before_the_next_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANDING_ROOT", str(tmp_path / "landing"))
    hour = timedelta(hours=1)
    slow = LAB.model_copy(update={"retry": RetryPolicy(backoff=hour, max_backoff=hour)})
    with project_instance() as instance:
        feeds = Feeds(tmp_path, instance, slow)
        [first] = feeds.tick().run_requests
        feeds.fail(first)
        waiting = feeds.tick()
    assert not waiting.run_requests
    assert waiting.asset_events[0].metadata["archives_pending"].value == 2


def test_a_request_lost_with_the_daemon_is_requested_again(feeds: Feeds) -> None:
    [first] = feeds.tick().run_requests  # the daemon stopped before it created the run
    [again] = feeds.tick().run_requests
    assert archives_of(again) == archives_of(first)
    assert again.run_key == f"{first.run_key}:1"


def test_a_live_run_holds_its_batch_and_a_loaded_batch_settles(feeds: Feeds) -> None:
    [first] = feeds.tick().run_requests
    create_run_for_test(feeds.instance, tags=first.tags, run_config=first.run_config,
                        status=dg.DagsterRunStatus.STARTED)
    assert not feeds.tick().run_requests
    batch_id, _ = archives_of(first)
    rows = [recovery.dead_letter_rows(LAB, batch_id, [_landed(p)], run_fault_stub(),
                                      attempts=1, now=time.time())[0] for p in PATHS]
    loaded = [r.__class__(**{**r.__dict__, "status": "loaded"}) for r in rows]
    feeds.manifest.record("lab_results", batch_id, loaded)
    for run in feeds.instance.get_runs():
        feeds.instance.report_run_failed(run)  # even a failed run: the manifest has it all
    result = feeds.tick()
    assert not result.run_requests
    assert FeedCursor.parse(feeds.cursor).unsettled() == {}


def run_fault_stub() -> recovery.RunFault:
    return recovery.RunFault("infrastructure", "RunLost", "-")


def _landed(path: str) -> LandedArchive:
    _, date, hour, facility, _ = path.split("/")
    return LandedArchive(path, 10, facility, date, hour)


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (dg.Failure("feed lab_results batch x: rows broke rules whose action is fail"), "data",
         "feed lab_results batch x: rows broke rules whose action is fail"),
        (SecretNotFoundError("secret LAB_ZIP_PASSWORD is not set"), "infrastructure",
         "secret LAB_ZIP_PASSWORD is not set"),
        (ValueError("patient MRN88812345 is bad"), "infrastructure",
         "ValueError (its message is withheld: it may quote record values)"),
    ],
)
def test_a_run_fault_is_data_or_infrastructure_and_keeps_only_our_messages(
    error: Exception, kind: str, message: str
) -> None:
    @dg.asset
    def broken() -> None:
        raise error

    with project_instance() as instance:
        result = dg.materialize([broken], instance=instance, raise_on_error=False,
                                tags={FEED_TAG: "lab_results", BATCH_TAG: "b"})
        fault = run_fault(instance, result.dagster_run)
    assert (fault.kind, fault.error, fault.message) == (kind, type(error).__name__, message)
    assert "MRN88812345" not in fault.message


def test_a_data_error_is_dead_lettered_at_once(feeds: Feeds) -> None:
    [first] = feeds.tick().run_requests

    @dg.asset
    def bronze__lab_results() -> None:
        raise dg.Failure("feed lab_results batch: rows broke rules whose action is fail")

    dg.materialize([bronze__lab_results], instance=feeds.instance, raise_on_error=False,
                   tags=first.tags)
    assert not feeds.tick().run_requests
    [reason] = set(feeds.manifest.outstanding().column("reason").to_pylist())
    assert reason == "Failure"


def test_the_cursor_keeps_hours_with_unsettled_batches_open() -> None:
    cursor = FeedCursor.parse('{"open": {"2026-11-20/08": ["aaaaaaaaaaaa"]}, "next_batch": 3}')
    assert cursor.open_hours == {"2026-11-20/08": {SETTLED: {"aaaaaaaaaaaa"}}}
    archive = _landed(PATHS[0])
    cursor.mark([archive], "20261120-0000003")
    assert cursor.batch_of(archive) == "20261120-0000003"
    later = datetime_at("2026-11-21T00:00")
    cursor.seal(later, incomplete=set())
    assert cursor.sealed_before == "2026-11-20/08"  # its batch is not in the manifest yet
    cursor.mark([archive], SETTLED)
    cursor.seal(later, incomplete=set())
    assert cursor.sealed_before == "2026-11-20/22" and cursor.open_hours == {}


def datetime_at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_retry_policy_doubles_its_backoff_up_to_a_cap() -> None:
    policy = RetryPolicy(backoff="30s", max_backoff="2m")
    assert [policy.wait(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 120]
    with pytest.raises(ValueError, match="max_backoff must not be shorter"):
        RetryPolicy(backoff="5m", max_backoff="1m")
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_runs_whose_process_died_are_failed_and_live_ones_kept() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with project_instance() as instance:
        dead = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED)
        live = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED)
        for run, pid in ((dead, sleeper.pid), (live, os.getpid())):
            instance.report_engine_event(f"Started process for run (pid: {pid}).", run,
                                         EngineEventData.in_process(pid))
        sleeper.kill()
        sleeper.wait()
        failed = fail_dead_runs(instance)
        assert [run_id for run_id, _ in failed] == [dead.run_id]
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
        assert run_fault(instance, instance.get_run_by_id(dead.run_id)).retryable
    # A pid that now belongs to a process started after the run's event is not the worker.
    assert not is_alive(os.getpid(), logged_at=0.0)


def test_retry_settings_are_checked_at_load_naming_the_file(
    metadata_copy: Path, edit_yaml: EditFn
) -> None:
    edit_yaml("feeds/lab_results.yaml", lambda data: data.update(retry={"max_attempts": 0}))
    with pytest.raises(MetadataError, match=r"lab_results\.yaml: retry\.max_attempts"):
        load_catalog(metadata_copy)
