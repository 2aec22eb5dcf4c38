"""Small helpers shared by the handlers: ids, times, cursors."""
from __future__ import annotations

import base64
import secrets
import string
from datetime import datetime, timezone

from controlplane.errors import ApiError
from evidence.custody import iso_ms

_ALNUM = string.ascii_lowercase + string.digits


def new_id(prefix: str, n: int = 16) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(n))


def iso(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms / 1000)


def parse_time(value: str | None, name: str) -> int | None:
    """ISO 8601 time (or date) to epoch ms; naive times are UTC."""
    if value is None or value == "":
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_request", f"'{name}' must be an ISO 8601 time such as 2026-01-31T12:00:00Z",
                       {"parameter": name, "provided": value[:100], "expected": "date-time"}) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        ms = int(dt.timestamp() * 1000)
        datetime.fromtimestamp(ms / 1000, timezone.utc)   # representable back as a time
        return ms
    except (OverflowError, ValueError, OSError):
        raise ApiError(400, "invalid_request", f"'{name}' is out of range",
                       {"parameter": name, "provided": value[:100], "expected": "date-time"}) from None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw[0] != "s":
            raise ValueError
        return int(raw[1:])
    except (ValueError, IndexError, UnicodeDecodeError):
        raise ApiError(400, "invalid_request", "invalid cursor; pass next_cursor from the previous page",
                       {"parameter": "cursor", "provided": cursor[:100], "expected": "next_cursor"}) from None
