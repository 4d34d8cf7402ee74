"""Alerts to data owners: incidents, who hears of them, the messages and the channels."""

from lake_assets.alerts.messages import Notice, safe_token
from lake_assets.alerts.router import PAGERDUTY_EVENTS_URL, Delivery, Outcome, Router

__all__ = ["PAGERDUTY_EVENTS_URL", "Delivery", "Notice", "Outcome", "Router", "safe_token"]
