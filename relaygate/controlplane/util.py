"""Small helpers shared by the handlers: ids, times, cursors."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
from datetime import datetime, timezone
from typing import Any

from relaygate.controlplane.errors import ApiError
from relaygate.evidence.custody import iso_ms

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
        raise ApiError(
            400,
            "invalid_request",
            f"'{name}' must be an ISO 8601 time such as 2026-01-31T12:00:00Z",
            {"parameter": name, "provided": value[:100], "expected": "date-time"},
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        ms = int(dt.timestamp() * 1000)
        datetime.fromtimestamp(ms / 1000, timezone.utc)  # representable back as a time
        return ms
    except (OverflowError, ValueError, OSError):
        raise ApiError(
            400,
            "invalid_request",
            f"'{name}' is out of range",
            {"parameter": name, "provided": value[:100], "expected": "date-time"},
        ) from None


# A cursor is base64url (unpadded) of "s" and a sequence number: decimal, no sign, no leading
# zeros, within a signed 64-bit integer (the column is BIGINT on PostgreSQL, INTEGER on SQLite,
# both 64-bit). Anything else is a 400 here, before a number the database cannot bind reaches it.
_CURSOR = re.compile(r"s(0|[1-9][0-9]{0,18})")
_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]{1,40}")
MAX_SEQ = 2**63 - 1


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        if not _CURSOR_TEXT.fullmatch(cursor):
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        m = _CURSOR.fullmatch(raw)
        if m is None or int(m[1]) > MAX_SEQ:
            raise ValueError
        return int(m[1])
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ApiError(
            400,
            "invalid_request",
            "invalid cursor; pass next_cursor from the previous page",
            {"parameter": "cursor", "provided": cursor[:100], "expected": "next_cursor"},
        ) from None


MAX_STORED_DEPTH = 64


def bounded_json(value: Any, max_depth: int = MAX_STORED_DEPTH) -> Any:
    """A stored free-form document as it may be served: itself, or a marker if it is nested too deep.

    Ingestion refuses such documents (relaygate/controlplane/apispec.py); this keeps rows written before
    that (or by another path) from making every read of a feed fail to encode (a 500 forever).
    """
    from relaygate.controlplane.apispec import json_depth_over

    if json_depth_over(value, max_depth) is None:
        return value
    return {"truncated": f"stored document nested deeper than {max_depth} levels; not shown"}
