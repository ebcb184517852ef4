"""Budget periods in UTC: the current period's label and the seconds until it ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchyard.gateway.tenancy.config import Period


def current(period: Period, now: datetime | None = None) -> tuple[str, float]:
    """("2026-11" or "2026-11-22", seconds until the next period starts)."""
    now = now or datetime.now(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), (start + timedelta(days=1) - now).total_seconds()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m"), (following - now).total_seconds()
