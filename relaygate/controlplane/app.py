"""The aiohttp application: request ids, JSON errors, and per-operation dispatch.

Every call goes: request id -> authentication -> who may call the operation
(``x-relaygate-auth``) -> workspace selection -> permission -> rate limit ->
parameter and body validation (from the OpenAPI document) -> handler.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from relaygate.controlplane.metrics import LATENCY, REQUESTS
from relaygate.controlplane import plans, schema
from relaygate.controlplane.apispec import Operation, Router
from relaygate.controlplane.auth import Principal
from relaygate.controlplane.errors import ApiError, error_response
from relaygate.controlplane.ratelimit import RateLimitUnavailable, buckets_for

log = logging.getLogger("relaygate.controlplane")
MAX_BODY = 8 * 1024 * 1024


@dataclass
class Ctx:
    """What a handler gets: the request, who called, for which workspace, validated input."""

    request: web.Request
    services: Any
    principal: Principal | None
    workspace: str | None
    params: dict
    body: Any
    op: Operation
    extra: dict = field(default_factory=dict)

    @property
    def db(self):
        return self.services.engine

    @property
    def request_id(self) -> str:
        return self.request["request_id"]


def json(doc: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.json_response(doc, status=status, headers=headers, dumps=_dumps)


def _dumps(obj) -> str:
    import orjson

    return orjson.dumps(obj).decode()


def no_content() -> web.Response:
    return web.Response(status=204)


@web.middleware
async def request_id_and_errors(request: web.Request, handler):
    rid = "req_" + secrets.token_hex(12)
    request["request_id"] = rid
    started = time.perf_counter()
    try:
        resp = await handler(request)
    except ApiError as e:
        resp = error_response(rid, e.status, e.code, e.message, e.details, e.headers)
    except web.HTTPRequestEntityTooLarge:
        resp = error_response(rid, 413, "request.too_large", f"request body exceeds {MAX_BODY} bytes")
    except web.HTTPNotFound:
        resp = error_response(rid, 404, "route.not_found", f"no endpoint {request.path}")
    except web.HTTPMethodNotAllowed as e:
        resp = error_response(
            rid,
            405,
            "method_not_allowed",
            f"{request.method} is not allowed here",
            headers={"Allow": ",".join(sorted(e.allowed_methods))},
        )
    except web.HTTPException as e:
        resp = error_response(rid, e.status, "http_error", e.reason or "error")
    except Exception:
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path, rid)
        resp = error_response(rid, 500, "internal_error", "internal error; quote the request_id when reporting it")
    resp.headers["X-Request-Id"] = rid
    op = request.get("operation", "unmatched")
    REQUESTS.labels(op, str(resp.status)).inc()
    LATENCY.labels(op).observe(time.perf_counter() - started)
    return resp


async def _request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """X-Request-Id on responses a handler streams itself (SSE relay, log export): the middleware
    sets it on the response a handler returns, after such a response's headers were already sent.
    A deprecated operation's Deprecation/Sunset/Link headers go on every answer here, errors too."""
    rid = request.get("request_id")
    if rid and "X-Request-Id" not in response.headers:
        response.headers["X-Request-Id"] = rid
    for name, value in (request.get("deprecation_headers") or {}).items():
        response.headers.setdefault(name, value)


class Dispatcher:
    def __init__(self, services, router: Router, handlers: dict) -> None:
        self.services, self.router, self.handlers = services, router, handlers
        self.limits = buckets_for(services.settings, services.engine)

    def route(self, op: Operation):
        handler = self.handlers[op.operation_id]

        async def handle(request: web.Request) -> web.StreamResponse:
            request["operation"] = op.operation_id
            if op.deprecated:
                request["deprecation_headers"] = op.deprecation_headers(request.match_info)
            principal = workspace = None
            if op.auth != "public":
                principal = await self.services.auth.resolve(request.headers)
                workspace = await self._authorize(op, principal, request)
                await self._rate_limit(principal, workspace)
            params = self.router.params(op, request)
            body = await self.router.body(op, request)
            return await handler(Ctx(request, self.services, principal, workspace, params, body, op))

        return handle

    async def _authorize(self, op: Operation, p: Principal, request) -> str | None:
        if op.auth == "fleet":
            if p.kind != "fleet":
                raise ApiError(403, "auth.forbidden", "this endpoint is for gateway sidecars (fleet token)")
            return None
        if p.kind == "fleet":
            raise ApiError(403, "auth.forbidden", "the fleet token only reaches /v1/fleet sidecar endpoints")
        if op.auth == "admin":
            if p.role != "admin":
                raise ApiError(403, "auth.forbidden", "this endpoint needs the platform admin token")
            return None
        asked = request.headers.get("X-Relaygate-Workspace")
        if p.role == "admin":
            if op.auth == "any":
                if asked:
                    await self._existing_workspace(asked, not_found=True)
                return asked
            if not asked:
                raise ApiError(
                    400,
                    "invalid_request",
                    "the admin token acts in a workspace named by the X-Relaygate-Workspace header",
                    {"parameter": "X-Relaygate-Workspace", "provided": None, "expected": "workspace id"},
                )
            await self._existing_workspace(asked, not_found=True)
            return asked
        if asked and asked != p.workspace:
            raise ApiError(403, "auth.forbidden", "credentials of one workspace cannot act in another")
        await self._existing_workspace(p.workspace, not_found=False)
        if op.permission and not p.can(op.permission):
            if p.role == "read_only":
                raise ApiError(403, "auth.forbidden", "read-only credentials reach health, usage and logs only")
            raise ApiError(403, "auth.forbidden", f"credentials lack the '{op.permission}' permission")
        return p.workspace

    async def _existing_workspace(self, ws: str | None, not_found: bool) -> None:
        cache = self.services.workspace_cache
        hit = cache.get(ws)
        if hit is not None and hit > time.monotonic():
            return
        async with self.services.engine.connect() as c:
            row = (
                await c.execute(
                    sa.select(schema.workspaces.c.settings).where(
                        schema.workspaces.c.id == ws, schema.workspaces.c.deleted_ms.is_(None)
                    )
                )
            ).first()
        if row is None:
            if not_found:
                raise ApiError(404, "workspace.not_found", f"no workspace '{ws}'")
            raise ApiError(401, "auth.unauthenticated", f"credentials name workspace '{ws}', which does not exist")
        cache[ws] = time.monotonic() + 2.0
        s = self.services.settings
        self.services.workspace_rps[ws] = plans.effective(row[0], s.plans, s.rate_limit_rps)["limits"][
            "control_plane_rps"
        ]

    async def _rate_limit(self, p: Principal, workspace: str | None) -> None:
        if p.kind == "fleet":
            key, rate = f"fleet:{p.subject}", max(self.limits.rate, 200.0)
        elif workspace:
            key, rate = f"ws:{workspace}", self.services.workspace_rps.get(workspace)
        else:
            key, rate = f"{p.kind}:{p.subject}", None
        try:
            wait = await self.limits.charge(key, rate)
        except RateLimitUnavailable as e:
            log.error("control-plane rate limits unreachable (%s); refusing %s", e, key)
            raise ApiError(
                503,
                "rate.unavailable",
                "the shared rate limits cannot be reached; retry shortly",
                {"retry_after": 1},
                headers={"Retry-After": "1"},
            ) from None
        if wait:
            ra = self.limits.retry_after(wait)
            raise ApiError(
                429,
                "rate_limited",
                f"too many control-plane requests for {key.split(':', 1)[1]}; retry in {ra}s",
                {"retry_after": ra},
                headers={"Retry-After": str(ra)},
            )


def build_app(services, handlers: dict) -> web.Application:
    app = web.Application(middlewares=[request_id_and_errors], client_max_size=MAX_BODY)
    app.on_response_prepare.append(_request_id_header)
    router = Router(services.spec)
    dispatcher = Dispatcher(services, router, handlers)
    missing = [op.operation_id for op in router.operations if op.operation_id not in handlers]
    if missing:
        raise RuntimeError(f"operations without a handler: {missing}")
    for op in router.operations:
        app.router.add_route(op.method, op.path, dispatcher.route(op))
    app["services"] = services

    async def _close_limits(_app: web.Application) -> None:
        await dispatcher.limits.close()

    app.on_cleanup.append(_close_limits)
    return app
