"""Webhooks: a workspace's subscriptions to what happens in it, delivered signed, retried, logged.

What can be subscribed to (``events`` of a subscription, a type or a ``prefix.*``):

- ``gateway.denied``: a call the gateway refused (from its signed receipt);
- ``budget.threshold``: a budget's use in its current window crossed 50, 80 or 100 % (computed
  from the receipts, once per budget, window and threshold; a call the gateway refuses for want
  of that budget once it is past 50 % reaches every threshold, ``exhausted``: calls reserve their
  worst case first, so use alone rarely lands on the limit exactly);
- ``policy.*`` (created, updated, deleted), ``deployment.*`` (every stage of a rolling
  deployment), ``evidence.*`` (an evidence job completed or failed).

Nothing here is on the gateway's path: the dispatcher follows the audit feed in the database
(:func:`relaygate.controlplane.audit.tail_events`, gap-aware, from a cursor stored with the
deliveries it enqueues, so each event is enqueued once even across a crash) and the deliverer
POSTs from the control plane. One replica does both at a time (a lease, leases.py); another takes
over after ``lease_ttl`` if it dies.

Deliveries follow the Standard Webhooks specification (the ``standardwebhooks`` library signs):
``webhook-id`` (the delivery id, the same on every retry: receivers drop repeats),
``webhook-timestamp`` and ``webhook-signature`` (``v1,`` HMAC-SHA256 over id, timestamp and body
with the subscription's secret, shown once at creation, kept sealed with the master key). A
receiver verifies with any Standard Webhooks library and refuses timestamps older than five
minutes, so a captured delivery cannot be replayed later. A delivery that does not get a 2xx is
retried with exponential backoff (``retry_base`` doubling, at most an hour apart) up to
``MAX_ATTEMPTS`` times; every attempt is in the delivery log.

Targets must be https and resolve to public addresses unless ``allow_private`` (tests, a lab):
the address is checked where the connection is made, so a name that resolves differently later
(DNS rebinding) is caught too.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import logging
import re
import secrets
import socket
from urllib.parse import urlsplit

import aiohttp
import orjson
import sqlalchemy as sa
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from standardwebhooks import Webhook

from relaygate.controlplane import plans, schema
from relaygate.controlplane.audit import event_json, kind_matches, tail_events
from relaygate.controlplane.db import insert_ignore, now_ms
from relaygate.controlplane.errors import ApiError
from relaygate.controlplane.util import iso, new_id
from relaygate.decision.ledger import window_bounds
from relaygate.evidence.receipts import envelope_receipt

log = logging.getLogger("relaygate.controlplane.webhooks")
S, D = schema.webhook_subscriptions, schema.webhook_deliveries
EVENT_TYPES = ("gateway.denied", "budget.threshold", "policy.*", "deployment.*", "evidence.*")
THRESHOLDS = (50, 80, 100)
REFUSED = re.compile(r"budget (\S+) would be exceeded")  # the platform policy's reason (gateway.rego)
MAX_ATTEMPTS = 8
CURSOR_SETTING = "webhooks.cursor"
SECRET_PREFIX = "whsec_"


def validate_subscription(body: dict, allow_private: bool) -> tuple[str, list[str]]:
    url = str(body.get("url") or "")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ApiError(400, "invalid_request", "url must be an absolute https URL", {"parameter": "url"})
    if parts.scheme == "http" and not allow_private:
        raise ApiError(400, "invalid_request", "url must be https", {"parameter": "url", "provided": url})
    if not allow_private and _literal_private(parts.hostname):
        raise ApiError(
            400,
            "webhook.target_refused",
            "webhook targets must be public addresses (this one is private, loopback or link-local)",
            {"parameter": "url", "provided": url},
        )
    events = body.get("events") or []
    for e in events:
        if not any(e == t or (t.endswith(".*") and e.startswith(t[:-1])) for t in EVENT_TYPES):
            raise ApiError(
                400,
                "invalid_request",
                f"unknown event type '{e}'",
                {"parameter": "events", "provided": e, "expected": list(EVENT_TYPES)},
            )
    return url, list(events)


def _literal_private(host: str) -> bool:
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_global
    except ValueError:
        return host.lower() in ("localhost",) or host.lower().endswith(".localhost")


class PublicOnlyResolver(AbstractResolver):
    """Resolves as usual, then refuses any address that is not global (private, loopback,
    link-local, the cloud metadata address): where the connection is made, so DNS rebinding does
    not get around the check done at subscription time."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        found = await self._inner.resolve(host, port, family)
        public = [a for a in found if ipaddress.ip_address(a["host"]).is_global]
        if not public:
            raise OSError(f"webhook target {host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


def new_secret() -> str:
    """whsec_ and 32 random bytes in standard base64: the Standard Webhooks secret format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def subscription_json(row, secret: str | None = None) -> dict:
    out = {
        "id": row["id"],
        "workspace": row["workspace_id"],
        "url": row["url"],
        "events": row["events"],
        "description": row["description"],
        "created_at": iso(row["created_ms"]),
        "created_by": row["created_by"],
    }
    if secret is not None:
        out["secret"] = secret  # once, at creation
    return out


def delivery_json(row) -> dict:
    return {
        "id": row["id"],
        "subscription": row["subscription_id"],
        "type": row["type"],
        "event_id": row["event_id"],
        "status": row["status"],
        "attempts": row["attempts"],
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "created_at": iso(row["created_ms"]),
        "next_attempt_at": iso(row["next_attempt_ms"]) if row["status"] == "pending" else None,
        "delivered_at": iso(row["delivered_ms"]),
    }


def event_type(row) -> str | None:
    """The webhook type of an audit event (None: not one webhooks carry)."""
    kind = row["kind"]
    if kind == "gateway.call":
        return "gateway.denied" if row["decision"] == "deny" else None
    if kind.startswith(("policy.", "deployment.", "evidence.")):
        return kind
    return None


def wants(events: list[str], typ: str) -> bool:
    return any(kind_matches(typ, e) for e in events)


class BudgetUse:
    """Each budget's use in its current window, as of the audit-feed position the dispatcher reached.

    Summed from the receipts once, the first time a budget's window is needed, then moved by every
    ``gateway.call`` event the dispatcher passes (:meth:`passed`, called in feed order before the
    event's crossings): a busy workspace costs one SUM per budget and window, not one per call
    over the whole window's receipts. The sum stops at the event being dispatched (``seq``), so
    the total is the same figure a SUM at that event would give over the events before it.
    """

    def __init__(self) -> None:
        # workspace -> (budget id, unit, key id, window key, start ms, end ms) -> use
        self._use: dict[str, dict[tuple[str, str, str | None, str, int, int], int]] = {}

    def passed(self, row) -> None:
        """The dispatcher reached ``row``: add a gateway call to the windows it falls in."""
        mine = self._use.get(row["workspace_id"])
        if not mine or row["kind"] != "gateway.call":
            return
        for k in mine:
            _, unit, key_id, _, start, end = k
            if start <= row["occurred_ms"] < end and (key_id is None or key_id == row["key_id"]):
                mine[k] += _amount(row, unit)

    async def _summed(self, c, row, k: tuple[str, str, str | None, str, int, int]) -> int:
        E = schema.audit_events
        _, unit, key_id, _, start, end = k
        used_expr = (
            sa.func.coalesce(sa.func.sum(E.c.cost_micros), 0)
            if unit == "usd"
            else sa.func.coalesce(sa.func.sum(E.c.input_tokens), 0)
            + sa.func.coalesce(sa.func.sum(E.c.output_tokens), 0)
        )
        q = sa.select(used_expr).where(
            E.c.workspace_id == row["workspace_id"],
            E.c.kind == "gateway.call",
            E.c.occurred_ms >= start,
            E.c.occurred_ms < end,
            E.c.seq <= row["seq"],
        )
        if key_id:
            q = q.where(E.c.key_id == key_id)
        return int((await c.execute(q)).scalar() or 0)

    async def crossings(self, c, row) -> list[dict]:
        """Thresholds this call's workspace budgets have reached in their current windows; each is
        delivered once (its dedupe key names budget, window and threshold)."""
        budgets = (
            (
                await c.execute(
                    sa.select(schema.budgets).where(
                        schema.budgets.c.workspace_id == row["workspace_id"], schema.budgets.c.deleted_ms.is_(None)
                    )
                )
            )
            .mappings()
            .all()
        )
        out = []
        now = dt.datetime.now(dt.timezone.utc)
        refused_for = set()  # budgets a refused call named: "budget <id> would be exceeded"
        if row["code"] == "budget.exceeded" and row["receipt"]:
            reasons = (envelope_receipt(row["receipt"]).get("decision") or {}).get("reasons") or []
            refused_for = {m[1] for r in reasons if isinstance(r, str) and (m := REFUSED.fullmatch(r))}
        known = self._use.get(row["workspace_id"], {})
        current: dict[tuple[str, str, str | None, str, int, int], int] = {}
        for b in budgets:
            if b["key_id"] and b["key_id"] != row["key_id"]:
                continue
            key, end = window_bounds(b["window"], now)
            start = dt.datetime.strptime(key, "%Y-%m-%d" if b["window"] == "day" else "%Y-%m").replace(
                tzinfo=dt.timezone.utc
            )
            k = (
                b["id"],
                b["unit"],
                b["key_id"] or None,
                key,
                int(start.timestamp() * 1000),
                int(end.timestamp() * 1000),
            )
            used = current[k] = known[k] if k in known else await self._summed(c, row, k)
            limit = int(b["limit_amount"])
            # The gateway never lets use pass the limit (calls reserve their worst case first), so
            # use rarely lands on 100 % exactly: a call refused for want of this budget once it is
            # past the first threshold means it is spent for calls, every threshold reached
            # (``exhausted`` says so; ``used`` stays the real figure).
            exhausted = b["id"] in refused_for and used * 100 >= limit * THRESHOLDS[0]
            for t in THRESHOLDS:
                if limit > 0 and (used * 100 >= limit * t or exhausted):
                    scale = 1_000_000 if b["unit"] == "usd" else 1
                    out.append(
                        {
                            "dedupe": f"budget:{b['id']}:{key}:{t}",
                            "data": {
                                "budget": b["id"],
                                "key_id": b["key_id"],
                                "unit": b["unit"],
                                "window": key,
                                "threshold_percent": t,
                                "used": used / scale,
                                "exhausted": exhausted,
                                "limit": limit / scale,
                            },
                        }
                    )
        # Windows of other keys' budgets stay (a later call of that key reads them); ended windows
        # and deleted or changed budgets go.
        shapes = {(b["id"], b["unit"], b["key_id"] or None) for b in budgets}
        keep = {k: v for k, v in known.items() if k[:3] in shapes and k[5] > int(now.timestamp() * 1000)}
        self._use[row["workspace_id"]] = {**keep, **current}
        return out


def _amount(row, unit: str) -> int:
    if unit == "usd":
        return int(row["cost_micros"] or 0)
    return int(row["input_tokens"] or 0) + int(row["output_tokens"] or 0)


class Webhooks:
    def __init__(self, services) -> None:
        self.services = services
        s = services.settings
        self.allow_private, self.retry_base = s.webhook_allow_private, s.webhook_retry_base
        self._wake = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self.budget_use = BudgetUse()

    @property
    def engine(self):
        return self.services.engine

    def _sealer(self):
        return self.services.secrets.sealer

    # -- subscriptions ---------------------------------------------------------------------
    async def create(self, workspace: str, body: dict, actor: str) -> dict:
        from relaygate.controlplane.audit import record

        url, events = validate_subscription(body, self.allow_private)
        secret = new_secret()
        sid = new_id("whk_")
        now = now_ms()
        async with self.engine.begin() as c:
            live = (
                await c.execute(
                    sa.select(sa.func.count()).where(S.c.workspace_id == workspace, S.c.deleted_ms.is_(None))
                )
            ).scalar()
            ws_settings = (
                await c.execute(sa.select(schema.workspaces.c.settings).where(schema.workspaces.c.id == workspace))
            ).scalar()
            s = self.services.settings
            quota = plans.effective(ws_settings, s.plans, s.rate_limit_rps)["limits"]["webhook_subscriptions"]
            if quota is not None and live >= quota:
                raise ApiError(
                    409,
                    "webhook.quota_exceeded",
                    f"this workspace's plan allows {int(quota)} webhook subscriptions; delete one first",
                    {"limit": int(quota)},
                )
            await c.execute(
                S.insert().values(
                    id=sid,
                    workspace_id=workspace,
                    url=url,
                    events=events,
                    description=str(body.get("description") or "")[:500],
                    secret_sealed=self._sealer().seal(f"webhook:{sid}", secret.encode()),
                    created_ms=now,
                    created_by=actor,
                )
            )
            await record(c, "webhook.created", workspace, actor, {"webhook": sid, "url": url, "events": events})
            row = (await c.execute(sa.select(S).where(S.c.id == sid))).mappings().one()
        return subscription_json(row, secret)

    async def subscriptions(self, c, workspace: str | None = None):
        q = sa.select(S).where(S.c.deleted_ms.is_(None))
        if workspace is not None:
            q = q.where(S.c.workspace_id == workspace)
        return (await c.execute(q.order_by(S.c.created_ms))).mappings().all()

    # -- following the audit feed: what to deliver ------------------------------------------
    async def _cursor(self) -> int:
        async with self.engine.connect() as c:
            v = (
                await c.execute(sa.select(schema.settings.c.value).where(schema.settings.c.name == CURSOR_SETTING))
            ).scalar()
            if v is None:  # first start: from now on (history is not replayed to new subscribers)
                return (await c.execute(sa.select(sa.func.max(schema.audit_events.c.seq)))).scalar() or 0
        return int(v["seq"])

    async def _save_cursor(self, c, seq: int) -> None:
        n = (
            await c.execute(
                schema.settings.update().where(schema.settings.c.name == CURSOR_SETTING).values(value={"seq": seq})
            )
        ).rowcount
        if not n:
            await c.execute(schema.settings.insert().values(name=CURSOR_SETTING, value={"seq": seq}))

    async def dispatch_forever(self) -> None:
        after = await self._cursor()
        self.budget_use = BudgetUse()  # (again) from the receipts: another replica may have dispatched meanwhile
        async for row, pols in tail_events(self.engine, after, follow=True):
            self.budget_use.passed(row)
            async with self.engine.begin() as c:
                subs = await self.subscriptions(c, row["workspace_id"]) if row["workspace_id"] else []
                if subs:
                    await self._enqueue(c, row, pols, subs)
                await self._save_cursor(c, row["seq"])
            self._wake.set()

    async def _enqueue(self, c, row, pols, subs) -> None:
        typ = event_type(row)
        payloads: list[tuple[str, str, dict]] = []  # (type, dedupe key, data)
        if typ is not None:
            payloads.append((typ, row["id"], event_json(row, pols)))
        if row["kind"] == "gateway.call" and any(wants(s["events"], "budget.threshold") for s in subs):
            for crossing in await self.budget_use.crossings(c, row):
                payloads.append(("budget.threshold", crossing["dedupe"], crossing["data"]))
        now = now_ms()
        for typ, dedupe, data in payloads:
            for s in subs:
                if not wants(s["events"], typ):
                    continue
                body = {"type": typ, "timestamp": iso(now), "workspace": row["workspace_id"], "data": data}
                await c.execute(
                    insert_ignore(self.engine, D).values(
                        id=new_id("msg_"),
                        subscription_id=s["id"],
                        workspace_id=row["workspace_id"],
                        dedupe=dedupe,
                        type=typ,
                        event_id=row["id"],
                        payload=body,
                        status="pending",
                        attempts=0,
                        next_attempt_ms=now,
                        created_ms=now,
                    )
                )

    # -- delivering ---------------------------------------------------------------------------
    async def deliver_forever(self) -> None:
        connector = aiohttp.TCPConnector(resolver=None if self.allow_private else PublicOnlyResolver(), limit=20)
        self._http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10))
        try:
            while True:
                sent = await self.deliver_due()
                if not sent:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout=min(1.0, self.retry_base))
                    except asyncio.TimeoutError:
                        pass
        finally:
            await self._http.close()

    async def deliver_due(self) -> int:
        async with self.engine.connect() as c:
            due = (
                (
                    await c.execute(
                        sa.select(D, S.c.url, S.c.secret_sealed, S.c.deleted_ms.label("sub_deleted"))
                        .join(S, S.c.id == D.c.subscription_id)
                        .where(D.c.status == "pending", D.c.next_attempt_ms <= now_ms())
                        .order_by(D.c.next_attempt_ms)
                        .limit(50)
                    )
                )
                .mappings()
                .all()
            )
        await asyncio.gather(*(self._attempt_logged(r) for r in due))
        return len(due)

    async def _attempt_logged(self, r) -> None:
        try:
            await self._attempt(r)
        except asyncio.CancelledError:
            raise
        except Exception:  # one delivery's trouble (say, a secret that no longer unseals) stops no other
            log.exception("webhook delivery %s failed unexpectedly; it stays pending", r["id"])

    async def _attempt(self, r) -> None:
        if r["sub_deleted"] is not None:
            await self._finish(r, "cancelled", None, "subscription deleted")
            return
        secret = self._sealer().open(f"webhook:{r['subscription_id']}", bytes(r["secret_sealed"])).decode()
        body = orjson.dumps(r["payload"])
        ts = dt.datetime.now(dt.timezone.utc)
        headers = {
            "content-type": "application/json",
            "user-agent": "relaygate-webhooks/1",
            "webhook-id": r["id"],
            "webhook-timestamp": str(int(ts.timestamp())),
            "webhook-signature": Webhook(secret).sign(r["id"], ts, body),
        }
        code, error = None, None
        try:
            assert self._http is not None
            async with self._http.post(r["url"], data=body, headers=headers, allow_redirects=False) as resp:
                code = resp.status
                await resp.read()
        except Exception as e:  # unreachable, refused address, timeout: retried like a 5xx
            error = f"{type(e).__name__}: {e}"[:500]
        if code is not None and 200 <= code < 300:
            await self._finish(r, "delivered", code, None)
            return
        attempts = r["attempts"] + 1
        if attempts >= MAX_ATTEMPTS:
            await self._finish(r, "failed", code, error or f"HTTP {code}")
            return
        delay = min(self.retry_base * 2 ** (attempts - 1), 3600.0)
        async with self.engine.begin() as c:
            await c.execute(
                D.update()
                .where(D.c.id == r["id"])
                .values(
                    attempts=attempts,
                    last_status_code=code,
                    last_error=error or f"HTTP {code}",
                    next_attempt_ms=now_ms() + int(delay * 1000),
                )
            )

    async def _finish(self, r, status: str, code: int | None, error: str | None) -> None:
        async with self.engine.begin() as c:
            await c.execute(
                D.update()
                .where(D.c.id == r["id"])
                .values(
                    status=status,
                    attempts=r["attempts"] + (0 if status == "cancelled" else 1),
                    last_status_code=code,
                    last_error=error,
                    delivered_ms=now_ms() if status == "delivered" else None,
                )
            )

    # -- one replica runs it ----------------------------------------------------------------
    async def run(self) -> None:
        """Dispatch and deliver on the one replica holding the webhooks lease (another takes over
        when it is lost or its holder dies)."""

        async def both() -> None:
            await asyncio.gather(self.dispatch_forever(), self.deliver_forever())

        await self.services.leases.run_as_one("webhooks", "dispatcher", both)
