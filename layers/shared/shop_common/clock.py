"""Time and identifiers, in the one format the whole system uses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now in UTC, truncated to milliseconds: the precision MongoDB stores, so a value
    read back equals the value written."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_id() -> str:
    return str(uuid.uuid4())


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, e.g. 2026-11-23T05:47:06.123Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
