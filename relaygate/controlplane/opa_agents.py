"""Stock OPA agents reporting to the control plane: OPA's status API and decision logs.

An OPA agent configured with the control plane as its ``service`` (docs/policy.md) pulls bundles
from ``/v1/fleet/bundles/{tenant}`` and, with the ``status`` and ``decision_logs`` plugins on,
posts to ``/v1/fleet/status`` (one report per change of its state) and ``/v1/fleet/logs`` (batches
of decision events, gzip JSON arrays, sent again when a post fails). This keeps the last report of
each agent (its bundles' active revision, last activation and download, errors) for the fleet
view, and stores each decision as an audit event of kind ``opa.decision``: idempotent on the
agent and the decision id, so a resent batch adds nothing.

The agents authenticate with the fleet token, like sidecars; their reports are their own word
(unsigned), so ``opa.decision`` events are feed entries, not evidence: they are not receipts and
are not in the Merkle log.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from relaygate.controlplane import schema
from relaygate.controlplane.audit import storable
from relaygate.controlplane.db import now_ms

log = logging.getLogger("relaygate.controlplane.opa")

KIND = "opa.decision"
MAX_DETAIL_BYTES = 64 * 1024  # an event's input and result beyond this are dropped (noted in it)
MAX_BUNDLES = 32
_BUNDLE_FIELDS = (
    "active_revision",
    "last_successful_activation",
    "last_successful_download",
    "last_successful_request",
    "last_request",
    "code",
    "message",
)


def timestamp_ms(ts: object) -> int | None:
    """OPA's RFC 3339 timestamps (nanoseconds, ``Z``) in milliseconds; None when absent or unusable."""
    if not isinstance(ts, str) or not ts:
        return None
    text = ts.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # at most microseconds for fromisoformat
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None


def _short(v: object, n: int = 500) -> object:
    return v[:n] if isinstance(v, str) else v


def _bundles(report: dict) -> tuple[dict, list]:
    bundles, errors = {}, []
    for name, b in list((report.get("bundles") or {}).items())[:MAX_BUNDLES]:
        if not isinstance(b, dict):
            continue
        bundles[str(name)[:200]] = {k: _short(b.get(k)) for k in _BUNDLE_FIELDS if b.get(k) not in (None, "")}
        if b.get("code") or b.get("message"):
            errors.append(
                {"bundle": str(name)[:200], "code": _short(b.get("code")), "message": _short(b.get("message"))}
            )
    for name, p in list((report.get("plugins") or {}).items())[:MAX_BUNDLES]:
        if isinstance(p, dict) and p.get("state") not in (None, "OK"):
            errors.append(
                {"plugin": str(name)[:200], "state": _short(p.get("state")), "message": _short(p.get("message"))}
            )
    return bundles, errors


def agent_json(row, served: str | None = None) -> dict:
    """One agent as the fleet view shows it; ``served``: the revision its tenant's bundle is at now."""
    bundles = dict(row["bundles"] or {})
    out = {
        "id": row["id"],
        "version": row["version"],
        "labels": row["labels"],
        "bundles": bundles,
        "errors": row["errors"],
        "first_seen_ms": row["first_seen_ms"],
        "last_report_ms": row["last_report_ms"],
        "decisions": row["decisions"],
    }
    out["current"] = (
        None if served is None else bool(bundles) and all(b.get("active_revision") == served for b in bundles.values())
    )
    return out


class OpaAgents:
    def __init__(self, engine) -> None:
        self.engine = engine

    async def status(self, report: dict) -> dict:
        labels = report["labels"]
        aid = str(labels["id"])
        bundles, errors = _bundles(report)
        values = {
            "version": str(labels.get("version") or "")[:64],
            "labels": {str(k)[:100]: _short(v, 200) for k, v in list(labels.items())[:32]},
            "bundles": bundles,
            "errors": errors,
            "last_report_ms": now_ms(),
        }
        await self._upsert(aid, values)
        return {"id": aid, "bundles": len(bundles), "errors": len(errors)}

    async def _upsert(self, aid: str, values: dict, decisions: int = 0) -> None:
        t = schema.opa_agents
        for attempt in range(2):  # a concurrent first report of the same agent: the second updates
            try:
                async with self.engine.begin() as c:
                    row = (await c.execute(sa.select(t.c.decisions).where(t.c.id == aid))).first()
                    if row is None:
                        now = now_ms()
                        first = {"version": "", "labels": {}, "bundles": {}, "errors": [], "last_report_ms": now}
                        await c.execute(
                            t.insert().values(id=aid, first_seen_ms=now, decisions=decisions, **{**first, **values})
                        )
                    else:
                        update = dict(values)
                        if decisions:
                            update["decisions"] = t.c.decisions + decisions
                        if update:
                            await c.execute(t.update().where(t.c.id == aid).values(**update))
                return
            except IntegrityError:
                if attempt:
                    raise

    async def decisions(self, events: list[dict]) -> dict:
        """Store a batch of decision events; ``{"accepted": n, "duplicate": m}``."""
        rows: dict[str, dict] = {}
        agent_of: dict[str, str] = {}
        per_agent: dict[str, int] = {}
        for ev in events:
            labels = ev.get("labels") if isinstance(ev.get("labels"), dict) else {}
            aid = str(labels.get("id") or "unknown")[:200]
            did = ev["decision_id"]
            eid = "evt_opa_" + hashlib.sha256(f"{aid}\0{did}".encode()).hexdigest()[:24]
            rows[eid] = self._row(eid, aid, ev)
            agent_of[eid] = aid
            per_agent[aid] = 0
        E = schema.audit_events
        accepted = 0
        for attempt in range(2):  # a concurrent resend of the same batch: look again, insert the rest
            try:
                async with self.engine.begin() as c:
                    have = set((await c.execute(sa.select(E.c.id).where(E.c.id.in_(list(rows))))).scalars().all())
                    new = [eid for eid in rows if eid not in have]
                    if new:
                        await c.execute(E.insert(), [rows[eid] for eid in new])
                        await self._cite(c, {eid: rows[eid] for eid in new})
                    accepted = len(new)
                    for eid in new:
                        per_agent[agent_of[eid]] += 1
                break
            except IntegrityError:
                if attempt:
                    raise
                per_agent = dict.fromkeys(per_agent, 0)
        for aid, n in per_agent.items():
            if n:
                await self._upsert(aid, {}, decisions=n)
        return {"accepted": accepted, "duplicate": len(rows) - accepted}

    @staticmethod
    async def _cite(c, rows: dict[str, dict]) -> None:
        """The policies each decision cites (its result's ``policies``, ``id@version``), so the feed's
        ``policy`` filter finds OPA's decisions as it finds the gateway's."""
        seqs = dict((await c.execute(sa.select(schema.audit_events.c.id, schema.audit_events.c.seq).where(
            schema.audit_events.c.id.in_(list(rows))))).all())  # fmt: skip
        cited = []
        for eid, row in rows.items():
            result = (row.get("detail") or {}).get("result")
            refs = result.get("policies") if isinstance(result, dict) else None
            versions: dict[str, str] = {}  # one version per policy (the key of audit_event_policies)
            for ref in (refs if isinstance(refs, list) else [])[:50]:
                if isinstance(ref, str) and "@" in ref:
                    pid, version = ref.split("@", 1)
                    versions.setdefault(pid, version)
            for pid, version in sorted(versions.items()):
                cited.append(
                    storable(
                        schema.audit_event_policies, {"event_seq": seqs[eid], "policy_id": pid, "version": version}
                    )
                )
        if cited:
            await c.execute(schema.audit_event_policies.insert(), cited)

    @staticmethod
    def _row(eid: str, aid: str, ev: dict) -> dict:
        result, doc = ev.get("result"), ev.get("input")
        inp = doc if isinstance(doc, dict) else {}
        principal = inp.get("principal") if isinstance(inp.get("principal"), dict) else {}
        workspace = inp.get("workspace") if isinstance(inp.get("workspace"), dict) else {}
        ws = workspace.get("id") if isinstance(workspace.get("id"), str) else principal.get("workspace")
        bundles = ev.get("bundles") if isinstance(ev.get("bundles"), dict) else {}
        detail: dict[str, Any] = {
            "agent": aid,
            "decision_id": ev["decision_id"],
            "path": _short(ev.get("path"), 200),
            "query": _short(ev.get("query"), 500),
            "revisions": {
                str(k)[:200]: _short(v.get("revision"), 200)
                for k, v in list(bundles.items())[:MAX_BUNDLES]
                if isinstance(v, dict)
            },
            "timestamp": _short(ev.get("timestamp"), 64),
            "result": result,
            "input": doc,
        }
        for dropped in ("input", "result"):
            if len(json.dumps(detail, default=str)) <= MAX_DETAIL_BYTES:
                break
            detail.pop(dropped)
            detail.setdefault("dropped", []).append(dropped)  # too large to keep
        d = result if isinstance(result, dict) else {}
        allow = d.get("allow")
        return storable(
            schema.audit_events,
            {
                "id": eid,
                "kind": KIND,
                "workspace_id": ws if isinstance(ws, str) else None,
                "occurred_ms": timestamp_ms(ev.get("timestamp")) or now_ms(),
                "actor": f"opa:{aid}",
                "key_id": principal.get("key_id") if isinstance(principal.get("key_id"), str) else None,
                "model": inp.get("model") if isinstance(inp.get("model"), str) else None,
                "endpoint": inp.get("endpoint") if isinstance(inp.get("endpoint"), str) else None,
                "decision": ("allow" if allow else "deny") if isinstance(allow, bool) else None,
                "code": d.get("code") if isinstance(d.get("code"), str) else None,
                "status": d.get("status") if type(d.get("status")) is int and 0 <= d["status"] < 1000 else None,
                "upstream": d.get("upstream") if isinstance(d.get("upstream"), str) else None,
                "detail": detail,
            },
        )

    async def list(self) -> list:
        async with self.engine.connect() as c:
            return list((await c.execute(sa.select(schema.opa_agents).order_by(schema.opa_agents.c.id))).mappings())
