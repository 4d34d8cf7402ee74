"""Alert delivery: notices rendered for each channel, and the router resource that sends them."""

from resources.alerts.messages import Notice, safe_token
from resources.alerts.router import PAGERDUTY_EVENTS_URL, AlertRouter, Delivery, Outcome

__all__ = ["PAGERDUTY_EVENTS_URL", "AlertRouter", "Delivery", "Notice", "Outcome", "safe_token"]
