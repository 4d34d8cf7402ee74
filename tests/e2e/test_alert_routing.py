"""Alert routing end to end: the lake_alerts sensor on a real Dagster instance, sending to a real
SMTP server and a real HTTP server (Slack, PagerDuty, webhook) on loopback.

Assets are stubs built from the project's metadata (no Spark); check results, materializations
and freshness states are reported to the instance the way runs and Dagster's daemon report them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import dagster as dg
import pytest

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog
from lake_assets.errors import AlertCursorError
from lake_assets.factory.alerts import build_alert_sensor
from lake_assets.factory.specs import build_bronze_specs
from lake_assets.resources import AlertRouter
from tests.alert_servers import RecordingHttp, RecordingSmtp, serve_http, serve_smtp
from tests.conftest import DAILY, EditFn

LAB = dg.AssetKey(["bronze", "lab_results", "lab_results"])
ADT = dg.AssetKey(["bronze", "adt_events", "adt_messages"])
CENSUS = dg.AssetKey(["bronze", "bed_census", "bed_census"])
GOLD = dg.AssetKey(["gold", "daily_census"])
CHECK = "lab_results_valid"
DAY = "2026-01-05"
UI = "http://dagster.lake.test:3000"
# Planted where a careless router would pick it up: check metadata, descriptions, errors.
PHI_NAME, PHI_MRN = "Doe, Jane", "MRN88812345"


class Clock:
    """What the sensor believes the time is."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def http_server() -> Iterator[RecordingHttp]:
    with serve_http() as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[RecordingSmtp]:
    with serve_smtp() as server:
        yield server


@pytest.fixture
def catalog(metadata_copy: Path, edit_yaml: EditFn, http_server: RecordingHttp) -> Catalog:
    """Project metadata with bed-management's webhook on the test server, and analytics
    subscribed to lab results only through the gold table downstream of them."""

    def webhook(data: dict) -> None:
        data["teams"]["bed-management"]["webhook_url"] = http_server.url("/bed-management")

    def quality_only(data: dict) -> None:
        data["subscribers"] = ["quality"]

    edit_yaml("owners.yaml", webhook)
    edit_yaml("feeds/lab_results.yaml", quality_only)
    return load_catalog(metadata_copy)


@pytest.fixture(autouse=True)
def _channels(
    monkeypatch: pytest.MonkeyPatch, http_server: RecordingHttp, smtp_server: RecordingSmtp
) -> None:
    monkeypatch.setenv("LAKE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LAKE_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("LAKE_PAGERDUTY_URL", http_server.url("/pagerduty"))
    monkeypatch.setenv("LAKE_SECRET_PAGERDUTY_LAB", "lab-routing-key")
    monkeypatch.setenv("LAKE_SECRET_SLACK_CLINICAL_DATA", http_server.url("/slack"))
    monkeypatch.setenv("LAKE_UI_URL", UI)


def feed_stub(catalog: Catalog, feed_name: str, *, plan: dict[str, int]) -> dg.AssetsDefinition:
    """The feed's bronze multi-asset with its real specs and no Spark.

    It fails while `plan["fail"]` is set; lab results carry a check failing `plan["failing"]` rows.
    """
    feed = catalog.feed(feed_name)
    specs = build_bronze_specs(feed, source_file=catalog.file_of("feed", feed_name),
                               daily=DAILY)
    checks = [dg.AssetCheckSpec(CHECK, asset=LAB)] if feed_name == "lab_results" else []

    @dg.multi_asset(
        name=f"bronze__{feed_name}",
        specs=specs,
        check_specs=checks,
        partitions_def=specs[0].partitions_def,
    )
    def _stub() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        if plan.get("fail"):
            raise ValueError(f"row 12: patient {PHI_NAME} {PHI_MRN} has no visit")
        for spec in specs:
            yield dg.MaterializeResult(asset_key=spec.key)
        for check in checks:
            failing = plan.get("failing", 0)
            yield dg.AssetCheckResult(
                asset_key=check.asset_key,
                check_name=check.name,
                passed=failing == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"first bad row: {PHI_NAME}",
                metadata={
                    "failing_rows": failing,
                    "total_rows": 250,
                    "facility": "FAC00003",
                    "sample": f"{PHI_NAME} {PHI_MRN}",
                    "first_bad_value": PHI_MRN,
                },
            )

    return _stub


def definitions(catalog: Catalog, clock: Clock, plan: dict[str, int]) -> dg.Definitions:
    names = ("lab_results", "adt_events", "bed_census")
    feeds = [feed_stub(catalog, name, plan=plan) for name in names]
    gold = dg.AssetSpec(
        GOLD,
        deps=[LAB],
        owners=["team:bed-management"],
        tags={"lake/projection": "daily_census"},
        partitions_def=DAILY,
    )
    sensor = build_alert_sensor(catalog, [*feeds, gold], clock=clock)
    router = AlertRouter(attempts=3, backoff_seconds=0.01, timeout_seconds=2)
    return dg.Definitions(assets=[*feeds, gold], sensors=[sensor], resources={"alerts": router})


class Ticks:
    """Evaluates the alert sensor and carries its cursor from tick to tick."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance, self.cursor = defs, instance, None

    def __call__(self) -> str:
        sensor = self.defs.resolve_sensor_def("lake_alerts")
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            definitions=self.defs,
            resources=self.defs.resources,
        )
        result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor
        return str(result.skip_reason)


def assert_no_phi(smtp_server: RecordingSmtp, http_server: RecordingHttp) -> None:
    for text in (smtp_server.raw(), http_server.raw()):
        assert PHI_NAME not in text and PHI_MRN not in text and "Jane" not in text


def test_failed_check_reaches_owners_and_downstream_subscribers_once_then_recovers(
    catalog: Catalog,
    instance: dg.DagsterInstance,
    smtp_server: RecordingSmtp,
    http_server: RecordingHttp,
) -> None:
    plan = {"failing": 7}
    defs = definitions(catalog, Clock(), plan)
    tick = Ticks(defs, instance)
    tick()
    load_lab = partial(
        dg.materialize, [defs.get_assets_def(LAB)], instance=instance, partition_key=DAY
    )
    load_lab()

    tick()

    [owner_mail] = smtp_server.to("lab-informatics@example.org")
    body = owner_mail.get_content()
    assert owner_mail["Subject"] == (
        f"[lake ERROR] check {CHECK} failing on bronze/lab_results/lab_results [{DAY}]"
    )
    for expected in (
        f"Partition:  {DAY}",
        "Facility:   FAC00003",
        "failing_rows=7, total_rows=250 (2.8% failing)",
        "Owners:     lab-informatics",
        "your team owns this asset",
        f"Asset page: {UI}/assets/bronze/lab_results/lab_results",
    ):
        assert expected in body
    [quality] = smtp_server.to("quality@example.org")
    assert "your team subscribes to this asset" in quality.get_content()
    [analytics] = smtp_server.to("analytics@example.org")
    assert "subscribes to gold/daily_census, which is built from it" in analytics.get_content()
    assert http_server.bodies("/bed-management") == []  # owns gold, does not subscribe
    [page] = http_server.bodies("/pagerduty")
    assert (page["routing_key"], page["event_action"]) == ("lab-routing-key", "trigger")
    assert page["payload"]["custom_details"]["counts"].startswith("failing_rows=7")

    # Still failing, now reported with its partition by a check outside a run: no new message.
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=LAB,
            check_name=CHECK,
            passed=False,
            partition=DAY,
            metadata={"failing_rows": 9, "total_rows": 250, "sample": PHI_NAME},
        )
    )
    tick()
    assert len(smtp_server.messages) == 3 and len(http_server.bodies("/pagerduty")) == 1

    plan["failing"] = 0
    load_lab()
    tick()
    [_, recovered] = smtp_server.to("lab-informatics@example.org")
    assert recovered["Subject"].startswith(f"[lake RESOLVED] check {CHECK} recovered")
    resolve = http_server.bodies("/pagerduty")[-1]
    assert resolve == {
        "routing_key": "lab-routing-key",
        "event_action": "resolve",
        "dedup_key": page["dedup_key"],
    }
    assert_no_phi(smtp_server, http_server)


def test_failed_run_alerts_despite_a_failing_channel_and_clears_on_materialization(
    catalog: Catalog,
    instance: dg.DagsterInstance,
    smtp_server: RecordingSmtp,
    http_server: RecordingHttp,
    capfd: pytest.CaptureFixture[str],
) -> None:
    plan = {"fail": 1}
    defs = definitions(catalog, Clock(), plan)
    adt = defs.get_assets_def(ADT)
    tick = Ticks(defs, instance)
    tick()
    http_server.status["/slack"] = 500
    failed = dg.materialize([adt], instance=instance, partition_key=DAY, raise_on_error=False)
    assert not failed.success

    summary = tick()

    mails = smtp_server.to("clinical-data@example.org")
    assert len(mails) == 3  # one per table of the feed
    body = next(m for m in mails if "adt_messages" in m["Subject"]).get_content()
    assert "Rule:       run run_failed" in body and f"Partition:  {DAY}" in body
    assert f"Run:        {UI}/runs/{failed.run_id}" in body
    assert len(smtp_server.to("analytics@example.org")) == 3
    assert len(http_server.bodies("/slack")) == 3  # three attempts, then the rest skipped
    assert "3 failed" in summary
    logged = capfd.readouterr().err  # the sensor's log, which the UI shows with the tick
    assert (
        "via slack not delivered, after 3 attempt(s): slack of team clinical-data: HTTP 500"
        in logged
    )

    http_server.status["/slack"] = 200
    plan["fail"] = 0
    dg.materialize([adt], instance=instance, partition_key=DAY)
    tick()
    resolved = [
        m for m in smtp_server.to("clinical-data@example.org") if "RESOLVED" in m["Subject"]
    ]
    assert len(resolved) == 3
    assert "recovered" in json.dumps(http_server.bodies("/slack")[-1])
    assert_no_phi(smtp_server, http_server)


def record_freshness(instance: dg.DagsterInstance, key: dg.AssetKey, state: str) -> None:
    """Play Dagster's freshness daemon: record a state change event in its stored form.

    Dagster exports no constructor for this event, so it is read from its serialized form.
    """
    stored = {
        "__class__": "FreshnessStateChange",
        "key": {"__class__": "AssetKey", "path": list(key.path)},
        "new_state": {"__enum__": f"FreshnessState.{state}"},
        "previous_state": {"__enum__": "FreshnessState.PASS"},
        "state_change_timestamp": time.time(),
    }
    instance.report_runless_asset_event(dg.deserialize_value(json.dumps(stored)))


def test_stale_asset_warns_escalates_recovers_and_follows_dagsters_recorded_state(
    catalog: Catalog,
    instance: dg.DagsterInstance,
    http_server: RecordingHttp,
    smtp_server: RecordingSmtp,
) -> None:
    clock = Clock()
    tick = Ticks(definitions(catalog, clock, {}), instance)
    instance.report_runless_asset_event(dg.AssetMaterialization(CENSUS, partition=f"{DAY}|FAC1"))
    loaded = clock.now = time.time()
    tick()
    assert http_server.bodies("/bed-management") == []

    clock.now = loaded + 100 * 60  # past the 90m warn window
    tick()
    clock.now = loaded + 200 * 60  # past the 3h fail window
    tick()
    tick()

    warn, fail = http_server.bodies("/bed-management")
    assert (warn["status"], warn["severity"], warn["rule"]) == ("triggered", "warn", "freshness")
    assert warn["detail"].startswith("last materialized 1h 40m ago; warn after 1h 30m")
    assert (fail["status"], fail["severity"]) == ("escalated", "error")
    assert warn["dedup_key"] == fail["dedup_key"]

    instance.report_runless_asset_event(dg.AssetMaterialization(CENSUS, partition=f"{DAY}|FAC1"))
    clock.now = time.time() + 60
    tick()
    recovered = http_server.bodies("/bed-management")[-1]
    assert recovered["status"] == "resolved"
    assert recovered["detail"].startswith("last materialized 1m ago")
    assert len(smtp_server.to("bed-management@example.org")) == 3

    # Once Dagster's freshness daemon has judged the asset, its state is the one that counts.
    record_freshness(instance, CENSUS, "FAIL")
    tick()
    record_freshness(instance, CENSUS, "PASS")
    tick()
    later = [(b["status"], b["severity"]) for b in http_server.bodies("/bed-management")[3:]]
    assert later == [("triggered", "error"), ("resolved", "error")]


def test_a_cursor_the_sensor_did_not_write_is_an_error(catalog: Catalog) -> None:
    tick = Ticks(definitions(catalog, Clock(), {}), dg.DagsterInstance.ephemeral())
    tick.cursor = '{"v": 99}'

    with pytest.raises(AlertCursorError, match="reset it in the UI"):
        tick()
