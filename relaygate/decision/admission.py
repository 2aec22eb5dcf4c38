"""Admission: turn one parsed call into a policy decision and a budget reservation.

Pure policy plumbing with no gRPC in it, so the processor stays a thin
translation layer and the control plane's dry run can reuse the same code.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson

from relaygate.contract.decision import denial
from relaygate.contract import jwtauth
from relaygate.contract import keys as keyfmt
from relaygate.contract.config import ApiKey, Budget, GatewayConfig, Upstream, cost_micros
from relaygate.contract.scope import GATEWAY_CALL, may_call_gateway
from relaygate.decision.ledger import Hold, Ledger, LedgerUnavailable, now_utc, window_bounds
from relaygate.decision.limits import Limits, LimitsUnavailable, TierLimits
from relaygate.decision.policy_engine import PolicyEngine, PolicyError, PolicyUnavailable
from relaygate.decision.policy_sandbox import EMPTY as EMPTY_POLICIES
from relaygate.decision.policy_sandbox import (
    PolicyBusy,
    PolicyEvalError,
    PolicySandbox,
    PolicyTimeout,
    WorkspacePolicies,
    default_sandbox,
)
from relaygate.decision.wire import DIALECT, CallShape

log = logging.getLogger("relaygate.admission")

POLICY_INPUT_VERSION = 1

# budget id -> (window key, window end) of the window the call falls in
Windows = dict[str, tuple[str, datetime]]
# (policy input document, the call's budgets, their windows): what Admission.policy_input returns
PolicyInput = tuple[dict[str, Any], list[Budget], Windows]


@dataclass(frozen=True)
class Refused:
    """A credential the gateway does not accept: the 401's message."""

    message: str


@dataclass
class Verdict:
    allow: bool
    status: int
    code: str
    message: str
    decision: dict[str, Any]
    upstream: Upstream | None = None
    holds: list[Hold] = field(default_factory=list)
    retry_after: int | None = None

    @classmethod
    def deny(
        cls, status: int, code: str, message: str, policies: Iterable[str] = (), retry_after: int | None = None
    ) -> "Verdict":
        return cls(False, status, code, message, denial(status, code, [message], policies), retry_after=retry_after)


class Admission:
    """One policy snapshot: config, engine and bundle revision, plus the shared budget ledger."""

    def __init__(
        self,
        config: GatewayConfig,
        engine: PolicyEngine,
        ledger: Ledger,
        revision: str = "local",
        limits: Limits | None = None,
        workspace_policies: WorkspacePolicies = EMPTY_POLICIES,
        sandbox: PolicySandbox | None = None,
    ) -> None:
        self.config, self.engine, self.ledger, self.revision = config, engine, ledger, revision
        self.limits: Limits = limits or TierLimits()
        # Workspace policies never run in ``engine``: each runs alone in the sandbox's workers.
        self.workspace_policies = workspace_policies
        self.sandbox = sandbox
        self._candidates: dict[tuple[str, str], list[Upstream]] = {}
        for u in config.upstreams:
            for model in u.models:
                self._candidates.setdefault((u.provider, model), []).append(u)
        self._upstreams = {u.name: u for u in config.upstreams}

    def authenticate(self, token: str | None) -> ApiKey | None:
        """The principal of an API key or a session token (None: refused). JWTs: :meth:`credential`."""
        got = self.credential(token, jwts=False)
        return got if isinstance(got, ApiKey) else None

    def credential(self, token: str | None, jwts: bool = True) -> ApiKey | Refused | jwtauth.NeedKeys:
        """Who is calling, as the principal the rest of the decision sees (an :class:`ApiKey`):

        - ``ro_live_`` key: the key itself;
        - ``ro_session_`` token: its maker key narrowed to the session's permissions (``id`` the
          key's, so its per-key budgets charge; ``credential`` ``session:<id>``), or, for a
          session a JWT made, a keyless principal;
        - a JWT of a trusted issuer (relaygate/contract/jwtauth.py): a keyless principal named
          ``jwt:<sub>``. :class:`~relaygate.contract.jwtauth.NeedKeys` when its kid is unknown
          and a JWKS refetch is due: :meth:`credential_after_refresh` does it off the event loop.
        """
        if not token:
            return Refused("missing API key")
        if token.startswith(keyfmt.PREFIX):
            return self._key(token) or Refused("invalid or revoked API key")
        if token.startswith(keyfmt.SESSION_PREFIX):
            return self._session(token) or Refused("invalid, expired or ended session token")
        if jwts and self.config.jwt_issuers and jwtauth.looks_like_jwt(token):
            return self._jwt(token, refetch=True)
        return Refused("invalid or revoked API key")

    async def credential_after_refresh(self, token: str, pending: jwtauth.NeedKeys) -> ApiKey | Refused:
        """A JWT whose kid was unknown: refetch its issuer's JWKS in a thread (rate-limited by the
        key set: concurrent callers share one fetch), then verify once more without refetching."""
        await asyncio.to_thread(pending.keyset.refresh)
        got = self._jwt(token, refetch=False)
        assert not isinstance(got, jwtauth.NeedKeys)
        return got

    def _key(self, token: str) -> ApiKey | None:
        parts = keyfmt.split_key(token)
        if parts is None:
            return None
        key = self.config.keys.get(parts[0])
        if key is None or key.revoked or not keyfmt.matches(self.config.pepper, key.salt, key.hash, parts[1]):
            return None
        if key.expires_at is not None and key.expires_at <= time.time():
            return None
        return key

    def _session(self, token: str) -> ApiKey | None:
        """A session shipped in the bundle: alive by this sidecar's own clock, its parents alive,
        its maker key live; its scope the key's, narrowed to the session's permissions."""
        parts = keyfmt.split_key(token, keyfmt.SESSION_PREFIX)
        if parts is None:
            return None
        sid, secret = parts
        cfg, now = self.config, time.time()
        sess = cfg.sessions.get(sid)
        if sess is None or not keyfmt.matches(cfg.pepper, sess.salt, sess.hash, secret) or sess.expires_at <= now:
            return None
        for parent in sess.parents:
            p = cfg.sessions.get(parent)
            if p is None or p.expires_at <= now:
                return None
        may_call = may_call_gateway(sess.kind, sess.permissions)  # read_only: never, whatever it lists
        name = f"session:{sess.id}"
        if sess.key is None:  # made from a JWT: the endpoints and models it allowed, no per-key budget
            return ApiKey(
                id=name, workspace=sess.workspace, name=name, salt="", hash="", endpoints=sess.endpoints,
                models=sess.models, revoked=False, expires_at=sess.expires_at, kind=sess.kind,
                may_call=may_call, credential=name,
            )  # fmt: skip
        key = cfg.keys.get(sess.key)
        if key is None or key.revoked or key.workspace != sess.workspace:
            return None
        if key.expires_at is not None and key.expires_at <= now:
            return None
        return replace(
            key,
            kind=sess.kind if sess.kind == "read_only" else key.kind,
            may_call=may_call and key.may_call,
            expires_at=min(sess.expires_at, key.expires_at or sess.expires_at),
            credential=name,
        )

    def _jwt(self, token: str, refetch: bool) -> ApiKey | Refused | jwtauth.NeedKeys:
        try:
            got = jwtauth.verify(token, self.config.jwt_issuers, refetch=refetch)
        except jwtauth.JwtRejected as e:
            return Refused(f"invalid token: {e}")
        if isinstance(got, jwtauth.NeedKeys):
            return got
        return ApiKey(
            id=got.name, workspace=got.workspace, name=got.name, salt="", hash="", endpoints=got.endpoints,
            models=got.models, revoked=False, expires_at=got.expires_at, kind=got.role,
            may_call=GATEWAY_CALL in got.permissions, credential=got.name,
        )  # fmt: skip

    def policy_input(
        self, key: ApiKey, endpoint: str, shape: CallShape, used: Callable[[str, str], int] | None = None
    ) -> PolicyInput:
        """(policy input document, budgets, their windows) for one call; see docs/policy.md.

        ``used(budget_id, window_key)`` reports current use; the ledger's by default.
        """
        ws = self.config.workspaces[key.workspace]
        provider = DIALECT[endpoint][0]
        candidates = self._candidates.get((provider, shape.model), ())
        now = now_utc()
        budgets = self.config.budgets_for(key.workspace, key)
        windows = {b.id: window_bounds(b.window, now) for b in budgets}
        if used is None:  # one read of the ledger for all the call's budgets (one round trip to Redis)
            pairs = [(b.ledger_id, windows[b.id][0]) for b in budgets]
            current = dict(zip(pairs, self.ledger.used_many(pairs))) if pairs else {}
            used = lambda budget_id, window_key: current[(budget_id, window_key)]  # noqa: E731
        doc = {
            "version": POLICY_INPUT_VERSION,
            "endpoint": endpoint,
            "model": shape.model,
            "stream": shape.stream,
            "user": shape.user,
            "principal": {
                "key_id": key.id,
                "workspace": key.workspace,
                "endpoints": key.endpoints,
                "models": key.models,
            },
            "workspace": {
                "id": ws.id,
                "allowed_jurisdictions": ws.allowed_jurisdictions,
                "allowed_regions": ws.allowed_regions,
            },
            "candidates": [
                {
                    "name": u.name,
                    "provider": u.provider,
                    "region": u.region,
                    "jurisdiction": u.jurisdiction,
                    "cost": {
                        "tokens": shape.input_token_bound + shape.max_output_tokens,
                        "usd_micros": cost_micros(
                            u.models[shape.model], shape.input_token_bound, shape.max_output_tokens
                        ),
                    },
                }
                for u in candidates
            ],
            "budgets": [
                {
                    "id": b.id,
                    "unit": b.unit,
                    "window": b.window,
                    "limit": b.limit,
                    "used": used(b.ledger_id, windows[b.id][0]),
                }
                for b in budgets
            ],
        }
        return doc, budgets, windows

    def has_workspace_policies(self, workspace: str) -> bool:
        return bool(self.workspace_policies.of(workspace))

    @property
    def remote_engine(self) -> bool:
        """Decisions come from another process (an OPA server): every call takes the async path."""
        return bool(getattr(self.engine, "remote", False))

    def needs_async(self, workspace: str) -> bool:
        return self.remote_engine or self.has_workspace_policies(workspace)

    async def workspace_outcome(self, workspace: str, doc: dict[str, Any]) -> dict[str, Any] | Verdict:
        """The calling workspace's own policies, run in the sandbox: their outcome, or a policy.error Verdict.

        Limit exceeded (the policy's fault, retrying will not help): 500. No worker
        free within the queue limit (transient): 503 with Retry-After. Both ``policy.error``.
        """
        entries = self.workspace_policies.of(workspace)
        if not entries:
            return {"denials": [], "cited": []}
        refs = [p.ref for p in entries]
        sandbox = self.sandbox or default_sandbox()
        try:
            return await sandbox.evaluate(self.workspace_policies, workspace, orjson.dumps(doc).decode())
        except PolicyTimeout as e:
            status, msg, retry = 500, f"this workspace's policies {e}; the call was not made", None
        except PolicyBusy as e:
            status, msg, retry = 503, f"{e}; the call was not made", 1
        except PolicyEvalError as e:
            status, msg, retry = 500, f"policy evaluation failed: {e}", None
        log.warning("workspace %s: %s (%s)", workspace, msg, ", ".join(refs))
        return Verdict.deny(status, "policy.error", msg, refs, retry_after=retry)

    def platform_decision(self, doc: dict[str, Any], outcome: dict[str, Any] | None) -> dict[str, Any]:
        """The platform policy's decision record for a policy input and the workspace policies' outcome.

        A policy that fails to evaluate is a 500 ``policy.error`` denial (fails closed). Shared by
        the gateway and the dry run (relaygate/decision/gate.py evaluate).
        """
        try:
            # The outcome of the workspace's own policies (empty without any); never taken from a caller.
            full = dict(doc, workspace_policies=outcome or {"denials": [], "cited": []})
            return self.engine.decide(orjson.dumps(full).decode())
        except PolicyError as e:
            return denial(500, "policy.error", [f"policy evaluation failed: {e}"])

    async def platform_decision_async(self, doc: dict[str, Any], outcome: dict[str, Any] | None) -> dict[str, Any]:
        """:meth:`platform_decision` from a remote engine: unreachable is a 503 ``policy.error``
        (transient; the call was not made), a failed evaluation a 500, as in-process."""
        full = dict(doc, workspace_policies=outcome or {"denials": [], "cited": []})
        try:
            return await self.engine.decide_async(orjson.dumps(full).decode())  # type: ignore[attr-defined, no-any-return]
        except PolicyUnavailable as e:
            log.error("call refused: %s", e)
            return denial(503, "policy.error", [f"the policy engine is unreachable; the call was not made ({e})"])
        except PolicyError as e:
            return denial(500, "policy.error", [f"policy evaluation failed: {e}"])

    def _limited(self, key: ApiKey, shape: CallShape) -> Verdict | None:
        ws = self.config.workspaces[key.workspace]
        try:
            limited = self.limits.check(
                ws.id, ws.requests_per_second, ws.tokens_per_minute, shape.input_token_bound + shape.max_output_tokens
            )
        except LimitsUnavailable as e:  # the fleet's shared limits (Redis) cannot be asked: fail closed
            log.error("call refused: %s", e)
            msg = "the fleet's shared rate limits are unreachable; the call was not made"
            return Verdict.deny(503, "rate.unavailable", msg, retry_after=1)
        if limited is not None:
            retry, which = limited
            msg = f"workspace {ws.id} is over its gateway tier limit ({which}); retry in {retry}s"
            return Verdict.deny(429, "rate.limited", msg, retry_after=retry)
        return None

    @staticmethod
    def _ledger_down(e: LedgerUnavailable) -> Verdict:
        log.error("call refused: %s", e)
        msg = "the budget ledger is unreachable; the call was not made"
        return Verdict.deny(503, "budget.unavailable", msg, retry_after=1)

    def decide(self, key: ApiKey, endpoint: str, shape: CallShape) -> Verdict:
        """Synchronous decision for a workspace without policies of its own, with the in-process
        engine (see :meth:`decide_async`)."""
        if self.needs_async(key.workspace):
            raise RuntimeError("this workspace has policies of its own, or the engine is remote: use decide_async")
        limited = self._limited(key, shape)
        if limited is not None:
            return limited
        try:
            return self._decide(key, endpoint, shape)
        except LedgerUnavailable as e:
            return self._ledger_down(e)

    async def decide_async(self, key: ApiKey, endpoint: str, shape: CallShape) -> Verdict:
        """The decision, with the workspace's own policies evaluated in the sandbox (off this thread)
        and the platform policy by a remote engine when there is one."""
        if not self.needs_async(key.workspace):
            return self.decide(key, endpoint, shape)
        limited = self._limited(key, shape)
        if limited is not None:
            return limited
        try:
            doc, budgets, windows = self.policy_input(key, endpoint, shape)
            outcome = await self.workspace_outcome(key.workspace, doc)
            if isinstance(outcome, Verdict):
                return outcome
            decided = await self.platform_decision_async(doc, outcome) if self.remote_engine else None
            # The budgets the policy saw may have moved while it was asked: the ledger's reservation
            # below is atomic and refuses what no longer fits (429), as for concurrent calls.
            return self._decide(key, endpoint, shape, (doc, budgets, windows), outcome, decided)
        except LedgerUnavailable as e:
            return self._ledger_down(e)

    def _decide(
        self,
        key: ApiKey,
        endpoint: str,
        shape: CallShape,
        prepared: PolicyInput | None = None,
        outcome: dict[str, Any] | None = None,
        decided: dict[str, Any] | None = None,
    ) -> Verdict:
        doc, budgets, windows = prepared or self.policy_input(key, endpoint, shape)
        now = now_utc()
        d = decided if decided is not None else self.platform_decision(doc, outcome)
        if not d["allow"]:
            retry = None
            if d["code"] == "budget.exceeded":
                retry = self._retry_after(d.get("budget_ids") or [], windows, now)
            return Verdict(
                False, int(d["status"]), d["code"], "; ".join(d["reasons"]) or d["code"], d, retry_after=retry
            )
        upstream = self._upstreams[d["upstream"]]
        # The policy names budgets by id (unique within the workspace); the ledger by ledger_id.
        by_id = {b.id: b for b in budgets}
        ref = self.ledger.hold_ref() if d["holds"] else ""  # the call's lease-bound record (Redis), or ""
        holds = [
            Hold(
                by_id[h["budget_id"]].ledger_id,
                windows[h["budget_id"]][0],
                int(h["amount"]),
                by_id[h["budget_id"]].unit,
                ref,
            )
            for h in d["holds"]
        ]
        overflow = self.ledger.reserve(holds, {b.ledger_id: b.limit for b in budgets})
        if overflow is not None:
            overflow = next(
                (b.id for b in budgets if b.ledger_id == overflow), overflow
            )  # lost a race with a concurrent call since the policy looked
            d = dict(
                d,
                allow=False,
                status=429,
                code="budget.exceeded",
                reasons=[f"budget {overflow} would be exceeded"],
                budget_ids=[overflow],
            )
            return Verdict(
                False,
                429,
                "budget.exceeded",
                d["reasons"][0],
                d,
                retry_after=self._retry_after([overflow], windows, now),
            )
        return Verdict(True, 200, "ok", "", d, upstream=upstream, holds=holds)

    @staticmethod
    def _retry_after(budget_ids: list[str], windows: Windows, now: datetime) -> int:
        ends = [windows[b][1] for b in budget_ids if b in windows]
        return max(1, math.ceil((min(ends) - now).total_seconds())) if ends else 60
