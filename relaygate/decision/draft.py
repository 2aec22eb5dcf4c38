"""The call draft: what the gateway knows of a call when it decides, before Envoy acts on it.

Written to the spool before the decision is returned (so a crash between the decision and the
call loses nothing), read back by settlement to write the signed receipt (docs/receipts.md). One
typed shape, built by :func:`call_draft` for every writer: the servicer's decisions, Envoy's own
replies seen in the access log, and the summary receipts of sampled pre-auth denials.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NotRequired, TypedDict

from relaygate.evidence.receipts import digest


class RequestFacts(TypedDict):
    digest: str | None  # SHA-256 of the body as received (None when no body was read)
    bytes: int | None


class UpstreamFacts(TypedDict):
    name: str
    provider: str
    region: str
    jurisdiction: str


class CallDraft(TypedDict):
    ts: float  # when the call arrived (unix seconds)
    workspace: str | None
    key_id: str | None
    endpoint: str | None
    path: str  # as sent, at most 512 characters
    request: RequestFacts
    model: str | None  # the catalog model (an alias the client used is resolved)
    alias: NotRequired[str]  # the name the client used, when it was an alias of ``model``
    stream: bool
    user: str | None
    decision: dict[str, Any]  # the decision record (relaygate/contract/decision.py)
    upstream: UpstreamFacts | None  # None: nothing was forwarded
    price: tuple[int, int] | list[int] | None  # (input, output) micro-USD per 1k tokens of the upstream
    worst: tuple[int, int] | list[int] | None  # (input token bound, output cap): what holds assumed
    holds: list[list[Any]]  # [budget ledger id, window key, amount, unit(, lease record ref)]
    response_digest: str | None  # known at once for a denial (its error body)
    sampled: NotRequired[dict[str, int]]  # summary receipts only: how many calls it stands for
    credential: NotRequired[str]  # a session token's or JWT's name (session:<id>, jwt:<sub>); absent for a key


def call_draft(
    *,
    ts: float,
    decision: dict[str, Any],
    path: str = "",
    workspace: str | None = None,
    key_id: str | None = None,
    endpoint: str | None = None,
    body: bytes | None = None,
    body_bytes: int | None = None,
    model: str | None = None,
    alias: str | None = None,
    stream: bool = False,
    user: str | None = None,
    upstream: Any = None,
    price: tuple[int, int] | None = None,
    worst: tuple[int, int] | None = None,
    holds: Iterable[Any] = (),
    response_body: bytes | None = None,
    credential: str = "",
) -> CallDraft:
    """The one constructor. ``body``: the request body read (its digest and size are kept, never
    the body); ``body_bytes``: the size alone when only that is known (Envoy's replies);
    ``upstream``: the chosen :class:`~relaygate.contract.config.Upstream`; ``holds``: the
    ledger :class:`~relaygate.decision.ledger.Hold` s reserved; ``credential``: how the caller
    authenticated when not with the key ``key_id`` itself (relaygate/contract/config.py ApiKey);
    ``alias``: the name the client gave the model when it was an alias of ``model``."""
    draft: CallDraft = {
        "ts": ts,
        "workspace": workspace,
        "key_id": key_id,
        "endpoint": endpoint,
        "path": path[:512],
        "request": {
            "digest": digest(body) if body is not None else None,
            "bytes": len(body) if body is not None else body_bytes,
        },
        "model": model,
        "stream": stream,
        "user": user,
        "decision": decision,
        "upstream": None
        if upstream is None
        else {
            "name": upstream.name,
            "provider": upstream.provider,
            "region": upstream.region,
            "jurisdiction": upstream.jurisdiction,
        },
        "price": price,
        "worst": worst,
        # a lease-bound hold (Redis ledger) carries its record's ref as a fifth item
        "holds": [[h.budget_id, h.window_key, h.amount, h.unit, *([h.ref] if h.ref else [])] for h in holds],
        "response_digest": digest(response_body) if response_body is not None else None,
    }
    if alias:
        draft["alias"] = alias
    if credential:
        draft["credential"] = credential
    return draft
