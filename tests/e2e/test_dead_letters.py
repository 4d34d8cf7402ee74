"""A batch whose processing always fails is dead-lettered after N attempts, its owners hear of it
on a real SMTP server, and `lakehouse deadletter replay` loads it once the cause is fixed.

The cause is the feed's zip password secret, removed; sensors are ticked and runs executed on a
real Dagster instance, with real Spark for the replay.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from lake_assets.catalog.loader import load_catalog
from lake_assets.cli import app
from lake_assets.definitions import build_definitions
from lake_assets.factory import recovery
from lake_assets.resources import AlertRouter
from lake_assets.simulate import SimulationOptions, read_truth, simulate
from lake_assets.storage.lake import Lake
from tests.alert_servers import RecordingHttp, RecordingSmtp, serve_http, serve_smtp
from tests.conftest import DEV_SECRETS, EditFn
from tests.e2e.test_bronze_e2e import bronze_counts, execute

pytestmark = [pytest.mark.spark, pytest.mark.slow]

OWNER = "lab-informatics@example.org"


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RecordingSmtp, RecordingHttp]]:
    with serve_smtp() as smtp, serve_http() as http:
        monkeypatch.setenv("LAKE_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("LAKE_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("LAKE_PAGERDUTY_URL", http.url("/pagerduty"))
        yield smtp, http


def test_a_batch_failing_every_attempt_is_dead_lettered_alerted_and_replayed(
    spark, instance: dg.DagsterInstance, metadata_copy: Path, edit_yaml: EditFn, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, servers: tuple[RecordingSmtp, RecordingHttp],
) -> None:
    smtp, _ = servers
    edit_yaml("feeds/lab_results.yaml",
              lambda data: data.update(retry={"max_attempts": 2, "backoff": "1s"}))
    catalog = load_catalog(metadata_copy)
    lake = tmp_path / "lake"
    truth = tmp_path / "truth.jsonl"
    simulate(catalog, SimulationOptions(
        out=str(lake / "landing"), truth=str(truth), facilities=3, hours=1, rate=4, faults=0,
        seed=5, size_scale=0.02, feeds=("lab_results",), start=datetime(2026, 11, 20, 6,
                                                                         tzinfo=UTC)))
    without = tmp_path / "secrets"
    without.write_text("".join(line + "\n" for line in DEV_SECRETS.read_text().splitlines()
                               if not line.startswith("LAB_ZIP_PASSWORD")))
    monkeypatch.setenv("LAKE_SECRETS_FILE", str(without))
    monkeypatch.setattr(recovery, "OUTSTANDING_EVERY_S", 0.0)
    defs = build_definitions(catalog)
    ticks = Ticks(defs, instance)
    ticks.alerts()  # the alert sensor starts before anything fails

    [request] = ticks.feed()
    for attempt in (1, 2):
        assert request.tags["lake/attempt"] == str(attempt)
        assert not ticks.run(request).success
        time.sleep(1.1)
        requests = ticks.feed()
        if attempt == 1:
            [request] = requests
    assert requests == []
    manifest = Lake(root=str(lake)).manifest()
    dead = manifest.outstanding("lab_results").to_pylist()
    paths = sorted(r.archive for r in read_truth(str(truth)))
    assert sorted(r["path"] for r in dead) == paths
    assert {(r["status"], r["attempts"], r["reason"]) for r in dead} == {
        ("dead_letter", 2, "SecretNotFoundError")}

    ticks.alerts()
    [mail] = smtp.to(OWNER)  # the retried failures did not alert; the dead letter did
    body = mail.get_content()
    assert "dead letter" in mail["Subject"] and "lab_results" in body
    assert "SecretNotFoundError" in body and "LAB_ZIP_PASSWORD" in body
    assert paths[0] in body and "lakehouse deadletter replay --feed lab_results" in body

    monkeypatch.setenv("LAKE_SECRETS_FILE", str(DEV_SECRETS))  # the fix
    replayed = CliRunner().invoke(app, ["deadletter", "replay", "--feed", "lab_results"])
    assert replayed.exit_code == 0, replayed.output
    assert f"{len(paths)} archive(s) marked for replay" in replayed.output
    [replay] = ticks.feed()
    assert replay.run_config == request.run_config  # the same batch id and archives
    replayed_run = ticks.run(replay)
    assert replayed_run.success
    [first, *_] = replayed_run.get_asset_materialization_events()
    metadata = first.materialization.metadata
    assert metadata["attempt"].value == 3 and metadata["retried_archives"].value == len(paths)
    assert manifest.outstanding().num_rows == 0
    rows = manifest.rows("lab_results").to_pylist()
    assert sorted(r["path"] for r in rows) == paths
    assert {r["attempts"] for r in rows} == {3}
    expected = sum(r.rows.get("lab_results", 0) for r in read_truth(str(truth)))
    assert bronze_counts(catalog, lake)[("lab_results", "lab_results")] == expected

    ticks.alerts()
    resolved = smtp.to(OWNER)[-1]
    assert "RESOLVED" in resolved["Subject"]


class Ticks:
    """The project's sensors ticked by hand, and runs executed in this process."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance = defs, instance
        self.cursors: dict[str, str | None] = {}
        self.bronze = next(a for a in defs.assets if a.op.name == "bronze__lab_results")

    def _tick(self, name: str, **resources: object) -> dg.SensorResult:
        sensor = next(s for s in self.defs.sensors if s.name == name)
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursors.get(name),
                                          resources=resources or None)
        result = sensor(context)
        self.cursors[name] = result.cursor
        return result

    def feed(self) -> list[dg.RunRequest]:
        return list(self._tick("lab_results_arrivals").run_requests or [])

    def alerts(self) -> None:
        self._tick("lake_alerts", alerts=AlertRouter(attempts=1))

    def run(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return execute(self.defs, self.instance, self.bronze, request, raise_on_error=False)
