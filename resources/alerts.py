"""`AlertRouter`: the alert `Router` as a Dagster resource, configured in the UI or by env."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dagster as dg
from pydantic import Field

from lake_assets.alerts.router import Delivery, Outcome, Router


class AlertRouter(dg.ConfigurableResource):
    """Sends alert notices to teams; see `lake_assets.alerts.router.Router`.

    Settings left unset fall back to LAKE_SMTP_HOST, LAKE_SMTP_PORT, LAKE_SMTP_FROM and
    LAKE_PAGERDUTY_URL, read when sending. Nothing connects when definitions load.
    """

    smtp_host: str | None = Field(default=None, description="SMTP server; else $LAKE_SMTP_HOST")
    smtp_port: int | None = Field(default=None, description="else $LAKE_SMTP_PORT, else 25")
    smtp_from: str | None = Field(default=None, description="else $LAKE_SMTP_FROM")
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password_secret: str | None = Field(default=None, description="secret name, not value")
    pagerduty_url: str | None = Field(default=None, description="else $LAKE_PAGERDUTY_URL")
    attempts: int = Field(default=3, ge=1, le=10)
    backoff_seconds: float = Field(default=0.5, ge=0, le=30)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_workers: int = Field(default=8, ge=1, le=64)

    def send(
        self, deliveries: Sequence[Delivery], *, log: logging.Logger | None = None
    ) -> list[Outcome]:
        """Deliver every notice on every channel of its team; returns one outcome per channel."""
        router = Router(**self.model_dump())
        return router.send(deliveries, log=log or dg.get_dagster_logger("lake.alerts"))
