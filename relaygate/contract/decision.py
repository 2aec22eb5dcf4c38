"""The decision record as receipts carry it (``decision`` in docs/receipts.md).

Rego's ``gateway.rego`` writes it for the calls it decides; every denial made
outside Rego (the sidecar's request checks, tier limits, the ledger being
down, the settler's drafts of Envoy's own replies, pre-auth sampling) is
written by :func:`denial`, so the shape is spelled once.
"""

from __future__ import annotations

from typing import Any, Iterable


def denial(
    status: int, code: str, reasons: Iterable[str], policies: Iterable[str] = (), **extra: Any
) -> dict[str, Any]:
    return {
        "allow": False,
        "status": status,
        "code": code,
        "reasons": list(reasons),
        "policies": list(policies),
        **extra,
    }
