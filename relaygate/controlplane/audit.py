"""The audit feed: gateway calls (from signed receipts) and control-plane actions.

Receipts arrive in batches from sidecars. Ingestion is idempotent on the
receipt id (a resend never duplicates), checks each signature against the
keys the sending sidecar registered, and indexes the fields the feed filters
on (user, key, model, policy, decision, time). Control-plane actions (a
policy published, a key revoked, a deployment wave) are recorded by
:func:`record` in the same feed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from relaygate.controlplane import metrics
from relaygate.controlplane import schema
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.transparency import Fenced
from relaygate.controlplane.util import bounded_json, iso, new_id
from relaygate.evidence import dsse
from relaygate.evidence.receipts import envelope_hash, envelope_receipt, verify_receipt
from relaygate.evidence.signing import load_public_key

log = logging.getLogger("relaygate.controlplane.audit")


async def record(
    conn, kind: str, workspace: str | None, actor: str | None, detail: dict, policies: tuple[str, ...] = ()
) -> str:
    """Add a control-plane event to the feed (in the caller's transaction)."""
    eid = new_id("evt_")
    seq = (
        await conn.execute(
            schema.audit_events.insert()
            .values(id=eid, kind=kind, workspace_id=workspace, occurred_ms=now_ms(), actor=actor, detail=detail)
            .returning(schema.audit_events.c.seq)
        )
    ).scalar()
    for ref in policies:
        pid, _, version = ref.partition("@")
        await conn.execute(schema.audit_event_policies.insert().values(event_seq=seq, policy_id=pid, version=version))
    return eid


def _ms(ts: str | None) -> int:
    if not ts:
        return now_ms()
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def storable(table: sa.Table, row: dict) -> dict:
    """``row`` as the database can hold it: strings without NUL (U+FFFD instead) and cut to their
    column's length.

    A receipt's fields come from callers (``user``, the requested model); PostgreSQL refuses a NUL
    or an over-long VARCHAR, and one refused receipt failed its whole batch again and again,
    stalling every later receipt of the sidecar. These columns are only an index: the signed
    envelope stored with them keeps exactly what was sent.
    """
    out = {}
    for k, v in row.items():
        if isinstance(v, str):
            v = v.replace("\x00", "\ufffd")
            length = getattr(table.c[k].type, "length", None) if k in table.c else None
            if length:
                v = v[:length]
        out[k] = v
    return out


def receipt_row(r: dict) -> dict:
    """The indexed columns of a gateway-call event, from its receipt (made storable)."""
    return storable(schema.audit_events, _receipt_columns(r))


# Each retry of a batch another replica stored part of meanwhile finds that part committed, so n
# replicas ingesting overlapping batches at once need at most n - 1 retries.
STORE_ATTEMPTS = 8
MAX_RECEIPT_ID = 100  # audit_events.id: a longer id would be cut, and two receipts could share one


def _part(r: dict, name: str) -> dict:
    v = r.get(name) or {}
    if not isinstance(v, dict):
        raise ValueError(f"'{name}' is not an object")
    return v


def _text(v, name: str) -> str | None:
    if v is not None and not isinstance(v, str):
        raise ValueError(f"'{name}' is not a string")
    return v


def _count(v, name: str, bits: int = 63) -> int | None:
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not -(2**bits) <= v < 2**bits):
        raise ValueError(f"'{name}' is not an integer")
    return v


def receipt_id(r: dict) -> str:
    """A receipt's id, refused (ValueError) unless a string of 1 to 100 characters."""
    rid = r["id"]
    if not isinstance(rid, str) or not 0 < len(rid) <= MAX_RECEIPT_ID:
        raise ValueError(f"'id' is not a string of 1 to {MAX_RECEIPT_ID} characters")
    return rid


def _receipt_columns(r: dict) -> dict:
    """The columns, or ValueError naming the field: a signed receipt of the wrong shape (its sidecar
    is broken, or its key is in the wrong hands) is rejected alone; it used to fail its whole batch
    with a 500 (a string where a number is due, an object where a string is), and the sidecar then
    resent that batch forever, every later receipt of it stuck behind."""
    d, resp, usage, up = _part(r, "decision"), _part(r, "response"), _part(r, "usage"), _part(r, "upstream")
    req, model, cost = _part(r, "request"), _part(r, "model"), _part(r, "cost")
    latency = r.get("latency_us")
    policies = d.get("policies") or []
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        raise ValueError("'decision.policies' is not a list of strings")
    credential, key_id = _text(r.get("credential"), "credential"), _text(r.get("key_id"), "key_id")
    return {
        "id": receipt_id(r),
        "kind": "gateway.call",
        "workspace_id": _text(r.get("workspace"), "workspace"),
        "occurred_ms": _ms(_text(r.get("started_at"), "started_at")),
        "actor": credential or (f"key:{key_id}" if key_id else None),
        "key_id": key_id,
        "user_id": _text(req.get("user"), "request.user"),
        "model": _text(model.get("requested"), "model.requested"),
        "endpoint": _text(req.get("endpoint"), "request.endpoint"),
        "decision": "allow" if d.get("allow") else "deny",
        "code": _text(d.get("code"), "decision.code"),
        "status": _count(resp.get("status") or d.get("status"), "status", 31),
        "latency_ms": latency / 1000 if isinstance(latency, (int, float)) else None,
        "input_tokens": _count(usage.get("input_tokens"), "usage.input_tokens"),
        "output_tokens": _count(usage.get("output_tokens"), "usage.output_tokens"),
        "cost_micros": _count(cost.get("usd_micros"), "cost.usd_micros"),
        "upstream": _text(up.get("name"), "upstream.name"),
        "provider": _text(up.get("provider"), "upstream.provider"),
        "sidecar": _text(r.get("sidecar"), "sidecar"),
        "chain_seq": _count(r.get("seq"), "seq"),
        "prev_hash": _text(r.get("prev_hash"), "prev_hash"),
    }


class Ingestor:
    """Verifies and stores receipt batches, appending each new one to the Merkle log.

    A receipt signed by a key the control plane does not know (yet) is
    *deferred*: the sidecar keeps it and sends it again, so a registration or
    key rotation racing with shipping never loses a receipt. One signed by a
    retired key after its retirement, or whose signature fails, is *rejected*.
    """

    def __init__(self, engine, log=None) -> None:
        self.engine, self.log = engine, log
        self._keys: dict[str, tuple] = {}
        self._lock = asyncio.Lock()

    async def _key(self, conn, key_id: str):
        if key_id not in self._keys:
            row = (
                (await conn.execute(sa.select(schema.signing_keys).where(schema.signing_keys.c.key_id == key_id)))
                .mappings()
                .first()
            )
            if row is None:
                return None
            self._keys[key_id] = (row["owner"], load_public_key(row["public_key"].encode()), row["retired_ms"])
        return self._keys[key_id]

    def forget_keys(self) -> None:
        """Drop the cached signing keys (after a registration, rotation or retirement changed them)."""
        self._keys.clear()

    async def ingest(self, instance: str, envelopes: list) -> dict:
        rejected, deferred, checked = [], [], []
        async with self.engine.connect() as c:
            for env in envelopes:
                try:
                    r = envelope_receipt(env)
                    r["id"]  # noqa: B018 (a receipt without an id is no receipt)
                    key_id = dsse.keyids(env)[0]
                    if key_id is None:  # a signature naming no key (or not as a string)
                        raise ValueError("no key id")
                except (KeyError, TypeError, IndexError, ValueError, AttributeError, dsse.EnvelopeError):
                    rejected.append({"id": None, "reason": "not a signed receipt envelope"})
                    continue
                try:
                    rid = receipt_id(r)
                except ValueError as e:
                    rejected.append({"id": None, "reason": f"receipt fields unreadable: {e}"})
                    continue
                key = await self._key(c, key_id)
                if key is None:
                    deferred.append(
                        {"id": rid, "reason": f"signed by {key_id}, which the control plane does not know yet"}
                    )
                    continue
                owner, public, retired = key
                if owner != instance:
                    rejected.append({"id": rid, "reason": f"signed by {key_id}, a key of {owner}, not of {instance}"})
                    continue
                try:
                    issued = _ms(_text(r.get("issued_at"), "issued_at"))
                except (ValueError, OverflowError):
                    rejected.append({"id": rid, "reason": "issued_at is not a time"})
                    continue
                if retired is not None and issued > retired:
                    rejected.append({"id": rid, "reason": f"signed by {key_id} after its retirement"})
                    continue
                checked.append((env, r, public))
        valid = await asyncio.to_thread(lambda: [verify_receipt(env, key) for env, _, key in checked])
        good = []
        for (env, r, _), ok in zip(checked, valid):
            if ok:
                good.append((env, r))
            else:
                rejected.append({"id": r.get("id"), "reason": "signature does not verify"})
        rows = []
        for env, r in good:
            try:
                row = receipt_row(r)
            except (KeyError, TypeError, ValueError, OverflowError) as e:
                rejected.append({"id": r.get("id"), "reason": f"receipt fields unreadable: {e}"})
                continue
            row.update(
                chain_owner=instance,
                receipt_hash=envelope_hash(env),
                ingested_ms=now_ms(),
                receipt=env,
            )
            rows.append((row, env, r))
        # One writer at a time: the Merkle log appends in the order receipts are accepted (on the
        # log's writer replica; another replica queues them for the writer).
        async with self._lock:
            for attempt in range(STORE_ATTEMPTS):
                try:
                    accepted, duplicates, issued = await self._store_batch(rows)
                    break
                except IntegrityError:
                    # Another replica stored some of these receipts in the same instant (a sidecar's
                    # retry reached it while this one was still answering): the lock above is this
                    # replica's only. The batch rolled back whole; read the ids again, and the
                    # receipts the other replica stored are duplicates now.
                    if attempt == STORE_ATTEMPTS - 1:
                        raise
                    log.info("instance %s: receipts stored meanwhile by another replica; storing the rest", instance)
        stored = now_ms()
        for ms in issued:  # signing to stored, for the receipts this batch added (clock skew: 0)
            metrics.INGEST_LAG.observe(max(stored - ms, 0) / 1000)
        if rejected:
            log.warning("instance %s: %d receipts rejected (first: %s)", instance, len(rejected), rejected[0])
        for result, n in (
            ("accepted", accepted),
            ("duplicate", duplicates),
            ("rejected", len(rejected)),
            ("deferred", len(deferred)),
        ):
            metrics.INGESTED.labels(result).inc(n)
        return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected, "deferred": deferred}

    async def _store_batch(self, rows: list) -> tuple[int, int, list[int]]:
        """:meth:`_store` in one transaction: the log's (appended on the writer, queued elsewhere)."""
        if self.log is None:
            async with self.engine.begin() as c:
                return await self._store(c, rows)
        try:
            async with self.log.transaction() as c:
                return await self._store(c, rows)
        except Fenced:  # this replica stopped being the writer meanwhile: queue them instead
            async with self.log.transaction() as c:
                return await self._store(c, rows)

    async def _store(self, c, rows: list) -> tuple[int, int, list[int]]:
        """Insert the receipts not stored yet, their policy citations and Merkle leaves, a statement
                per table for the whole batch (a statement per receipt cost ~2 ms of control-plane CPU each
                and could not keep up with one busy sidecar). Receipt ids are checked first under the
                ingestor's lock, so the inserts meet no conflict from this replica (another replica's insert of
        the same ids is an IntegrityError, retried by the caller); ``seq`` comes back in batch order.

                Returns (accepted, duplicates, the issued_at of each accepted receipt that has one, in ms)."""
        events = schema.audit_events
        ids = [row["id"] for row, _, _ in rows]
        known: set[str] = set()
        for i in range(0, len(ids), 500):
            known.update((await c.execute(sa.select(events.c.id).where(events.c.id.in_(ids[i : i + 500])))).scalars())
        fresh = []
        for row, env, r in rows:
            if row["id"] not in known:
                known.add(row["id"])
                fresh.append((row, env, r))
        if not fresh:
            return 0, len(rows), []
        seqs = (
            (
                await c.execute(
                    events.insert().returning(events.c.seq, sort_by_parameter_order=True), [row for row, _, _ in fresh]
                )
            )
            .scalars()
            .all()
        )
        cited = [
            storable(schema.audit_event_policies, {"event_seq": seq, "policy_id": pid, "version": version})
            for seq, (_, _, r) in zip(seqs, fresh)
            for pid, _, version in (
                ref.partition("@") for ref in dict.fromkeys((r.get("decision") or {}).get("policies") or [])
            )
        ]
        first: dict = {}  # a receipt citing one policy id twice (two versions) keeps the first
        for x in cited:
            first.setdefault((x["event_seq"], x["policy_id"]), x)
        cited = list(first.values())
        if cited:
            await c.execute(schema.audit_event_policies.insert(), cited)
        if self.log is not None:
            await self.log.stage(c, [(seq, env) for seq, (_, env, _) in zip(seqs, fresh)])
        issued = [_ms(r["issued_at"]) for _, _, r in fresh if r.get("issued_at")]
        return len(fresh), len(rows) - len(fresh), issued


GAP_WAIT_S = 2.0
TAIL_POLL_S = 0.25
TAIL_BATCH = 500


def kind_matches(kind: str, wanted: str) -> bool:
    """``wanted`` is an event kind, or a prefix ending in ``.*`` ("deployment.*")."""
    return kind.startswith(wanted[:-1]) if wanted.endswith(".*") else kind == wanted


async def tail_events(engine, after: int, *, follow: bool):
    """Every audit event after ``after`` in ``seq`` order, as ``(row, policies)``; with ``follow``
    it keeps polling for new ones and never ends.

    Sequence numbers are taken when a transaction inserts and become visible when it commits, so
    on PostgreSQL (several writers, several replicas) a lower one can appear after a higher one.
    Events are yielded only in unbroken order: a missing number is waited for up to GAP_WAIT_S (a
    transaction still committing), then passed (one that rolled back never appears). Every gap of
    a batch ages from the same poll, so a history with many old gaps costs one wait, not one each.
    A reader that resumes after the last seq it got therefore misses none and sees none twice."""
    E = schema.audit_events
    gaps: dict[tuple[int, int], float] = {}  # (last seq before, seq after) -> when first seen
    while True:
        async with engine.connect() as c:
            rows = (
                (await c.execute(sa.select(E).where(E.c.seq > after).order_by(E.c.seq).limit(TAIL_BATCH)))
                .mappings()
                .all()
            )
            pols = await policies_of(c, [r["seq"] for r in rows]) if rows else {}
        now, prev = time.monotonic(), after
        for r in rows:
            if r["seq"] != prev + 1:
                gaps.setdefault((prev, r["seq"]), now)
            prev = r["seq"]
        waiting = False
        for r in rows:
            if r["seq"] != after + 1 and now - gaps[(after, r["seq"])] < GAP_WAIT_S:
                waiting = True  # a lower number may still commit: wait for it
                break
            after = r["seq"]
            yield r, pols.get(r["seq"], [])
        for g in [g for g in gaps if g[1] <= after]:
            del gaps[g]
        if waiting:
            await asyncio.sleep(TAIL_POLL_S / 5)
        elif len(rows) == TAIL_BATCH:
            continue  # more to read at once
        elif not follow:
            return
        else:
            await asyncio.sleep(TAIL_POLL_S)


async def policies_of(c, seqs: list[int]) -> dict[int, list[str]]:
    """The policy versions each event cites (``id@version``), by event seq."""
    out: dict[int, list[str]] = {s: [] for s in seqs}
    if seqs:
        for seq, pid, version in (
            await c.execute(
                sa.select(
                    schema.audit_event_policies.c.event_seq,
                    schema.audit_event_policies.c.policy_id,
                    schema.audit_event_policies.c.version,
                ).where(schema.audit_event_policies.c.event_seq.in_(seqs))
            )
        ).all():
            out[seq].append(f"{pid}@{version}")
    return out


def event_json(row, policies: list[str]) -> dict:
    tokens = None
    if row["input_tokens"] is not None or row["output_tokens"] is not None:
        tokens = {"input": row["input_tokens"], "output": row["output_tokens"]}
    return {
        "id": row["id"],
        "kind": row["kind"],
        "workspace": row["workspace_id"],
        "occurred_at": iso(row["occurred_ms"]),
        "actor": row["actor"],
        "key_id": row["key_id"],
        "user": row["user_id"],
        "model": row["model"],
        "endpoint": row["endpoint"],
        "decision": row["decision"],
        "code": row["code"],
        "status": row["status"],
        "latency_ms": row["latency_ms"],
        "tokens": tokens,
        "cost_usd": row["cost_micros"] / 1_000_000 if row["cost_micros"] is not None else None,
        "upstream": row["upstream"],
        "provider": row["provider"],
        "sidecar": row["sidecar"],
        "policies": policies,
        "detail": bounded_json(row["detail"]),
    }
