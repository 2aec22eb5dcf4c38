"""What every transport does with a verdict before it answers Envoy: the call's draft is spooled
first (so a crash between the decision and the call loses nothing), pre-auth denials are sampled,
and the reply's content is worked out. Transports only put the result on their wire: the ext_proc
servicer as protobuf (processor.py), the ext_authz HTTP check as a status line and headers
(authz_http.py), so both answer every call alike.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from relaygate.contract import sigv4
from relaygate.contract.config import Upstream
from relaygate.contract.envoy import UPSTREAM_HEADER
from relaygate.decision.admission import Verdict
from relaygate.decision.draft import call_draft
from relaygate.decision import gate
from relaygate.decision.gate import Call
from relaygate.decision.wire import CallShape, error_body, provider_path
from relaygate.extproc import metrics
from relaygate.extproc.preauth_sampler import SAMPLED, ReceiptSampler
from relaygate.extproc.spool import Spool
from relaygate.extproc.tracing import DecisionTracer

# Envoy's route lookup needs x-forwarded-proto: removing it here makes the call unroutable
# (envoyproxy/envoy#30358). The route removes exactly these after matching (relaygate/envoy/config.py
# FORWARD_STRIP); every other x-forwarded-* name a client sends is removed here like any header
# off the allow-list (a prefix exemption let X-Forwarded-User and the like reach the provider).
ROUTE_STRIPPED = frozenset({"x-forwarded-for", "x-forwarded-proto"})


@dataclass(slots=True)
class Denied:
    """A denial as the client will see it."""

    status: int
    code: str
    receipt_id: str  # the call's own, or its window's summary receipt when sampled
    body: bytes  # the JSON error body
    preauth: bool  # decided before any key was authenticated: Envoy throttles the address
    sampled: bool  # counted in a summary receipt, no draft of its own
    retry_after: int | None
    aws_error: bool = False  # a Bedrock path: the code also goes out as x-amzn-errortype (boto3 reads it)
    allow: str | None = None  # a 405's Allow header: the methods the path takes


@dataclass(slots=True)
class Routed:
    """An allowed call as Envoy must forward it."""

    upstream: Upstream
    path: str  # the provider's path (no client query string)
    credential: tuple[str, str]  # (header, value) carrying the platform's provider credential
    removes: list[str]  # client headers off the upstream's allow-list
    body: bytes | None  # the rewritten body, when the gateway changed it
    signing: list[tuple[str, str]] = field(default_factory=list)  # Bedrock: SigV4 headers besides Authorization


class Recorder:
    """Spools every decision before the transport replies; one per sidecar process."""

    def __init__(self, spool: Spool, tracer: DecisionTracer | None = None) -> None:
        self.spool = spool
        self.tracer = tracer  # None: tracing off (relaygate/extproc/tracing.py)
        self._sampler: ReceiptSampler | None = None

    def denied(
        self, call: Call, v: Verdict, raw: bytes | None = None, shape: CallShape | None = None, grouped: bool = False
    ) -> Denied:
        status, code = v.status, v.code
        preauth = call.is_preauth(status)
        summary = self._sample(call, code, status) if preauth else None
        rid = summary or call.receipt_id
        aws = call.route is not None and bool(call.route.operation)
        body = error_body(code, v.message, rid, aws)
        if summary is None:
            self._spool(call, v.decision, raw, shape, stream=False, response_body=body, grouped=grouped)
        metrics.DECISIONS.labels("deny", code).inc()
        if call.trace_parent and self.tracer is not None:
            self.tracer.record(call, rid, allow=False, status=status, code=code, shape=shape)
        allow = gate.allowed_methods(call) if status == 405 else None
        return Denied(status, code, rid, body, preauth, summary is not None, v.retry_after, aws, allow)

    def routed(self, call: Call, v: Verdict, shape: CallShape, raw: bytes, grouped: bool = False) -> Routed:
        """``grouped``: the draft joins this loop turn's spool transaction (Spool.add_pending); the
        transport must then answer only after it commits (Spool.after_commit)."""
        up = v.upstream
        assert up is not None and call.route is not None
        price = up.models[shape.model]
        # No client query string: the provider's endpoints take none, and one could act on the
        # platform's account next to its credential like a header off the allow-list.
        path = up.base_path + provider_path(call.route, shape.model)
        signing: list[tuple[str, str]] = []
        try:
            if up.provider == "bedrock":  # SigV4 over the body forwarded, for the upstream's host and region
                signing = _aws_sign(up, path, shape.body)
            self._spool(
                call, v.decision, raw, shape, stream=shape.stream, up=up, holds=v.holds,
                price=(price.input_micros_per_1k, price.output_micros_per_1k),
                worst=(shape.input_token_bound, shape.max_output_tokens), grouped=grouped,
            )  # fmt: skip
        except BaseException:
            call.admission.ledger.settle(v.holds, {})  # nothing forwarded: give the hold back
            raise
        if grouped and v.holds:
            ledger, holds = call.admission.ledger, v.holds
            self.spool.after_commit(None, lambda _e: ledger.settle(holds, {}))  # not committed: not forwarded
        if up.provider == "anthropic":
            cred = ("x-api-key", up.credential)
        elif up.provider == "google":
            cred = ("x-goog-api-key", up.credential)
        elif up.provider == "bedrock":
            cred, signing = signing[0], signing[1:]
        else:
            cred = ("authorization", "Bearer " + up.credential)
        # Only the upstream's allow-list of client headers goes on (relaygate/contract/config.py
        # Upstream.forwards): the rest could act on the platform's provider account.
        own = {":path", UPSTREAM_HEADER, cred[0], *(h for h, _ in signing)}
        removes = [h for h in call.header_names if h not in own and not up.forwards(h) and h not in ROUTE_STRIPPED]
        metrics.DECISIONS.labels("allow", "ok").inc()
        if call.trace_parent and self.tracer is not None:
            self.tracer.record(call, call.receipt_id, allow=True, status=200, code="ok", shape=shape, upstream=up)
        return Routed(up, path, cred, removes, shape.body if shape.rewritten else None, signing)

    def _sample(self, call: Call, code: str, status: int) -> str | None:
        """None: the denial gets its own receipt; else its window's summary receipt id (relaygate/contract/preauth.py)."""
        limits = call.admission.config.preauth
        sampler = self._sampler
        if sampler is None or sampler.limits is not limits:
            if sampler is not None:
                sampler.flush()
            sampler = self._sampler = ReceiptSampler(
                limits, self.spool.add_pending, self.spool.update_pending, SAMPLED, call.admission.revision
            )
        return sampler.admit(call.peer, code, status, "unauthenticated")

    def _spool(
        self, call: Call, decision: dict, raw: bytes | None, shape: CallShape | None, stream: bool,
        up: Upstream | None = None, holds=(), price=None, worst=None, response_body: bytes | None = None,
        grouped: bool = False,
    ) -> None:  # fmt: skip
        """Write the decision durably before Envoy acts on it."""
        key, route = call.key, call.route
        record = {
            **{k: decision.get(k) for k in ("allow", "status", "code", "reasons", "policies")},
            "bundle": call.admission.revision,
        }
        self.spool.add_pending(
            call.receipt_id,
            call_draft(
                ts=call.started, decision=record, path=call.path,
                workspace=route.workspace if route else None, key_id=key.key_id if key else None,
                credential=key.credential if key else "",
                endpoint=route.endpoint if route else None, body=raw,
                model=shape.model if shape else None, alias=shape.alias if shape else None, stream=stream, user=shape.user if shape else None,
                upstream=up, price=price, worst=worst, holds=holds, response_body=response_body,
            ),
            grouped=grouped,
        )  # fmt: skip


def _aws_sign(up: Upstream, path: str, body: bytes) -> list[tuple[str, str]]:
    """Authorization first, then the other SigV4 headers and the content type the signature covers."""
    aws = sigv4.Credential.parse(up.credential)
    if aws is None:  # checked where the upstream is made (API, file config); a failure here is a 500, holds released
        raise ValueError(f"upstream {up.name}: its credential is not ACCESS_KEY_ID:SECRET_ACCESS_KEY")
    return [*sigv4.sign(aws, "POST", up.authority, path, body, up.region), ("content-type", "application/json")]


def timed_decide(call: Call, shape: CallShape) -> "Verdict | Awaitable[Verdict]":
    """gate.decide, timed into relaygate_policy_evaluation_seconds: the policy service's own work on
    a call (checks, Rego, workspace policies, holds), apart from the provider's time. Both
    transports decide through here."""
    t0 = time.perf_counter()
    v = gate.decide(call, shape)
    if isinstance(v, Verdict):
        metrics.POLICY_SECONDS.observe(time.perf_counter() - t0)
        return v
    return _timed(v, t0)


async def _timed(pending: "Awaitable[Verdict]", t0: float) -> Verdict:
    try:
        return await pending
    finally:
        metrics.POLICY_SECONDS.observe(time.perf_counter() - t0)
