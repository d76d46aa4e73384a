"""Metrics, and later the dashboard, alerts and KPIs."""

from mailpulse.observe.metrics import Metrics

__all__ = ["Metrics"]
