"""Liveness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relaygate.controlplane.app import Ctx, json


async def liveness(ctx: Ctx):
    return json({"status": "ok"})


async def metrics(ctx: Ctx):
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(ctx: Ctx):
    return json(ctx.services.spec)


HANDLERS = {"liveness": liveness, "metrics": metrics, "getOpenApi": openapi}
