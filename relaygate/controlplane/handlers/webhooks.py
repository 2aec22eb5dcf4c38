"""Webhook subscriptions and their delivery log (the domain is relaygate/controlplane/webhooks.py)."""

from __future__ import annotations

import base64

import sqlalchemy as sa

from relaygate.controlplane import schema
from relaygate.controlplane.app import Ctx, json, no_content
from relaygate.controlplane.audit import record
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.errors import ApiError, not_found
from relaygate.controlplane.webhooks import delivery_json, subscription_json

S, D = schema.webhook_subscriptions, schema.webhook_deliveries


async def _subscription(c, ctx: Ctx):
    row = (
        (
            await c.execute(
                sa.select(S).where(
                    S.c.id == ctx.params["webhook_id"], S.c.workspace_id == ctx.workspace, S.c.deleted_ms.is_(None)
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:  # another workspace's subscription is as absent as a made-up id
        raise not_found("webhook", ctx.params["webhook_id"])
    return row


async def create_webhook(ctx: Ctx):
    doc = await ctx.services.webhooks.create(ctx.workspace, ctx.body, ctx.principal.actor)
    return json(doc, 201, {"Location": f"/v1/webhooks/{doc['id']}"})


async def list_webhooks(ctx: Ctx):
    async with ctx.db.connect() as c:
        rows = await ctx.services.webhooks.subscriptions(c, ctx.workspace)
    return json({"webhooks": [subscription_json(r) for r in rows]})


async def get_webhook(ctx: Ctx):
    async with ctx.db.connect() as c:
        return json(subscription_json(await _subscription(c, ctx)))


async def delete_webhook(ctx: Ctx):
    async with ctx.db.begin() as c:
        row = await _subscription(c, ctx)
        await c.execute(S.update().where(S.c.id == row["id"]).values(deleted_ms=now_ms()))
        await record(c, "webhook.deleted", ctx.workspace, ctx.principal.actor, {"webhook": row["id"]})
    return no_content()


async def list_deliveries(ctx: Ctx):
    """Newest first, with a cursor; ``status`` filters (pending, delivered, failed, cancelled)."""
    p = ctx.params
    async with ctx.db.connect() as c:
        sub = await _subscription(c, ctx)
        q = sa.select(D).where(D.c.subscription_id == sub["id"])
        if p.get("status"):
            q = q.where(D.c.status == p["status"])
        if p.get("cursor"):
            at, did = _cursor(p["cursor"])
            q = q.where(sa.or_(D.c.created_ms < at, sa.and_(D.c.created_ms == at, D.c.id < did)))
        order = (D.c.created_ms.desc(), D.c.id.desc())
        rows = (await c.execute(q.order_by(*order).limit(p["limit"] + 1))).mappings().all()
    page = rows[: p["limit"]]
    nxt = None
    if len(rows) > p["limit"]:
        nxt = base64.urlsafe_b64encode(f"{page[-1]['created_ms']}:{page[-1]['id']}".encode()).decode().rstrip("=")
    return json({"deliveries": [delivery_json(r) for r in page], "next_cursor": nxt})


def _cursor(cursor: str) -> tuple[int, str]:
    try:
        at, _, did = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii").partition(":")
        if not did.startswith("msg_") or len(did) > 40:
            raise ValueError
        return int(at), did
    except (ValueError, UnicodeDecodeError):
        raise ApiError(
            400, "invalid_request", "cursor is not one this API issued", {"parameter": "cursor", "provided": cursor}
        ) from None


HANDLERS = {
    "createWebhook": create_webhook,
    "listWebhooks": list_webhooks,
    "getWebhook": get_webhook,
    "deleteWebhook": delete_webhook,
    "listWebhookDeliveries": list_deliveries,
}
