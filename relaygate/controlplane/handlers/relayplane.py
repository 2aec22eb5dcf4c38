"""The RelayPlane surface (/api): relay, agents, health, request logs and usage.

``POST /api/relay`` sends the payload through the gateway (Envoy), with the
caller's own credential (API key, session token or workspace JWT: the gateway
accepts all three), so every policy applies and every attempt gets a receipt. It
needs the permission the gateway itself demands, ``gateway:call``
(relaygate/contract/scope.py), so a key the gateway refuses is refused here too. When an
attempt fails in a way another model could fix (429, 5xx, unknown model, the
gateway unreachable) it moves along the fallback chain: the request's
``fallback`` list, else the workspace's ``relay.fallbacks[to]``. Policy
refusals (400/401/403/413/451) are final. With ``Accept: text/event-stream``
the final attempt's stream is passed through as it arrives.

Request logs are the workspace's gateway calls (from receipts) joined with the
relay attempts that made them, so a relayed call shows its relay id, fallback
events and custom metadata.
"""

from __future__ import annotations

import csv
import io
import time

import aiohttp
import orjson
import sqlalchemy as sa
from aiohttp import web

from relaygate.controlplane import schema
from relaygate.controlplane.app import Ctx, json, no_content
from relaygate.controlplane.db import is_postgres, now_ms
from relaygate.controlplane.errors import ApiError, not_found
from relaygate.controlplane.util import bounded_json, decode_cursor, encode_cursor, iso, new_id, parse_time

VERSION = "1.0.0"
RETRYABLE = {404, 408, 429, 500, 502, 503, 504}
E, RA, RC = schema.audit_events, schema.relay_attempts, schema.relay_calls


async def _providers(ctx: Ctx, workspace_aliases: dict) -> dict[str, str]:
    """model name -> provider dialect, for every name the gateway resolves: the catalog's models,
    the platform's aliases and the workspace's own (the gateway resolves them again, exactly)."""
    async with ctx.db.connect() as c:
        specs = [
            r[0]
            for r in (
                await c.execute(sa.select(schema.upstreams.c.spec).where(schema.upstreams.c.deleted_ms.is_(None)))
            ).all()
        ]
    out: dict[str, str] = {}
    for spec in specs:
        for model, price in (spec.get("models") or {}).items():
            out.setdefault(model, spec.get("provider", "openai"))
            for alias in (price or {}).get("aliases") or ():
                out.setdefault(alias, spec.get("provider", "openai"))
    for alias, target in (workspace_aliases or {}).items():
        if target in out:
            out[alias] = out[target]
    return out


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def adapt(payload: dict, source: str, target: str, model: str) -> dict:
    """The payload for ``model`` in the target dialect (minimal chat translation)."""
    p = dict(payload)
    p["model"] = model
    if source == target:
        return p
    msgs = [m for m in p.get("messages") or [] if isinstance(m, dict)]
    if target == "anthropic":
        system = "\n".join(_text(m.get("content")) for m in msgs if m.get("role") == "system")
        p["messages"] = [
            {"role": m.get("role"), "content": m.get("content")} for m in msgs if m.get("role") in ("user", "assistant")
        ]
        if system:
            p["system"] = system
        p["max_tokens"] = p.pop("max_completion_tokens", None) or p.get("max_tokens") or 1024
        for k in (
            "n",
            "logprobs",
            "stream_options",
            "user",
            "response_format",
            "presence_penalty",
            "frequency_penalty",
            "seed",
        ):
            p.pop(k, None)
    else:
        out = []
        if p.get("system"):
            out.append({"role": "system", "content": _text(p.pop("system"))})
        out += [{"role": m.get("role"), "content": _text(m.get("content"))} for m in msgs]
        p["messages"] = out
        for k in ("top_k", "stop_sequences", "metadata"):
            p.pop(k, None)
    return p


def _gateway_path(provider: str) -> str:
    return "/messages" if provider == "anthropic" else "/chat/completions"


def _elapsed_ms(t0: float) -> int:
    """Whole milliseconds since ``t0``: the reference's latency_ms is an integer (445)."""
    return round((time.perf_counter() - t0) * 1000)


async def relay(ctx: Ctx):
    p = ctx.principal
    if p.kind not in ("key", "session", "jwt") or not p.token:
        raise ApiError(
            403,
            "auth.forbidden",
            "relay calls go through the gateway as the caller: authenticate with an API key, a session token "
            "or a workspace JWT (x-api-key or Authorization: Bearer)",
        )
    b = ctx.body
    async with ctx.db.connect() as c:
        settings = (
            await c.execute(sa.select(schema.workspaces.c.settings).where(schema.workspaces.c.id == ctx.workspace))
        ).scalar() or {}
    chain = list(
        dict.fromkeys(
            [b["to"], *(b.get("fallback") or ((settings.get("relay") or {}).get("fallbacks") or {}).get(b["to"], []))]
        )
    )[:6]
    providers = await _providers(ctx, settings.get("model_aliases") or {})
    source = providers.get(b["to"], "openai")
    streaming = "text/event-stream" in ctx.request.headers.get("Accept", "")
    base = ctx.services.settings.gateway_url.rstrip("/") + f"/v1/{ctx.workspace}"
    timeout = aiohttp.ClientTimeout(total=ctx.services.settings.relay_timeout, sock_connect=5)
    relay_id = new_id("evt_rel_", 16)
    started = time.perf_counter()
    attempts: list[dict] = []
    final = None
    for i, model in enumerate(chain):
        provider = providers.get(model, "openai")
        payload = adapt(b["payload"], source, provider, model)
        if streaming:
            payload["stream"] = True
        t0 = time.perf_counter()
        attempt = {"model": model, "status_code": None, "receipt_id": None, "latency_ms": 0, "error": None}
        try:
            resp = await ctx.services.http.post(
                base + _gateway_path(provider),
                data=orjson.dumps(payload),
                timeout=timeout,
                ssl=ctx.services.settings.gateway_ssl(),
                headers={
                    "Authorization": f"Bearer {p.token}",
                    "Content-Type": "application/json",
                    "Accept": "text/event-stream" if streaming else "application/json",
                },
            )
        except (aiohttp.ClientError, TimeoutError) as e:
            attempt.update(
                error=f"gateway unreachable: {e.__class__.__name__}",
                latency_ms=_elapsed_ms(t0),
            )
            attempts.append(attempt)
            continue
        attempt.update(status_code=resp.status, receipt_id=resp.headers.get("x-relayone-receipt-id"))
        last = i == len(chain) - 1
        if resp.status in RETRYABLE and not last:
            attempt["error"] = (await resp.text())[:500]
            resp.release()
            attempt["latency_ms"] = _elapsed_ms(t0)
            attempts.append(attempt)
            continue
        attempts.append(attempt)
        final = (resp, attempt, t0)
        break
    fallback_used = len(attempts) > 1
    if final is None:
        latency = _elapsed_ms(started)
        await _store(ctx, relay_id, b, 502, latency, fallback_used, attempts)
        return json(
            {
                "relay_id": relay_id,
                "status_code": 502,
                "latency_ms": latency,
                "fallback_used": fallback_used,
                "model": chain[-1],
                "receipt_id": None,
                "attempts": attempts,
                "body": {"error": {"code": "gateway.unreachable", "message": attempts[-1]["error"]}},
            }
        )
    resp, attempt, t0 = final
    if streaming and resp.status < 400 and "text/event-stream" in resp.headers.get("Content-Type", ""):
        return await _stream(ctx, relay_id, b, resp, attempt, attempts, started, fallback_used)
    raw = await resp.read()
    attempt["latency_ms"] = _elapsed_ms(t0)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = raw.decode(errors="replace")
    latency = _elapsed_ms(started)
    await _store(ctx, relay_id, b, resp.status, latency, fallback_used, attempts)
    return json(
        {
            "relay_id": relay_id,
            "status_code": resp.status,
            "latency_ms": latency,
            "body": body,
            "fallback_used": fallback_used,
            "model": attempt["model"],
            "receipt_id": attempt["receipt_id"],
            "attempts": attempts,
        }
    )


async def _stream(ctx, relay_id, b, resp, attempt, attempts, started, fallback_used):
    out = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Relay-Id": relay_id,
            "X-Relay-Model": attempt["model"],
            "X-Relay-Fallback-Used": str(fallback_used).lower(),
            "X-RelayOne-Receipt-Id": attempt["receipt_id"] or "",
        },
    )
    await out.prepare(ctx.request)
    try:
        async for chunk in resp.content.iter_any():
            await out.write(chunk)
    finally:
        resp.release()
        attempt["latency_ms"] = _elapsed_ms(started)
        await _store(ctx, relay_id, b, resp.status, attempt["latency_ms"], fallback_used, attempts)
    await out.write_eof()
    return out


async def _store(ctx, relay_id, b, status, latency, fallback_used, attempts) -> None:
    async with ctx.db.begin() as c:
        await c.execute(
            RC.insert().values(
                id=relay_id,
                workspace_id=ctx.workspace,
                created_ms=now_ms(),
                to_model=b["to"],
                status_code=status,
                latency_ms=latency,
                fallback_used=fallback_used,
                attempts=attempts,
                metadata=b.get("metadata") or {},
            )
        )
        for i, a in enumerate(attempts):
            if a.get("receipt_id"):
                await c.execute(RA.insert().values(receipt_id=a["receipt_id"], relay_id=relay_id, attempt=i))


# -- agents ------------------------------------------------------------------------------


def agent_json(r) -> dict:
    return {
        "id": r["id"],
        "name": r["name"],
        "capability": r["capability"],
        "description": r["description"],
        "endpoint": r["endpoint"],
        "protocol": r["protocol"],
        "created_at": iso(r["created_ms"]),
    }


async def discover(ctx: Ctx):
    A = schema.agents
    where = [A.c.workspace_id == ctx.workspace]
    if ctx.params.get("capability"):
        where.append(A.c.capability == ctx.params["capability"])
    limit, offset = ctx.params["limit"], ctx.params["offset"]
    async with ctx.db.connect() as c:
        total = (await c.execute(sa.select(sa.func.count()).select_from(A).where(*where))).scalar()
        rows = (
            (await c.execute(sa.select(A).where(*where).order_by(A.c.created_ms, A.c.id).limit(limit).offset(offset)))
            .mappings()
            .all()
        )
    return json({"agents": [agent_json(r) for r in rows], "total": total, "limit": limit, "offset": offset})


async def register(ctx: Ctx):
    b = ctx.body
    row = {
        "id": new_id("agent_", 12),
        "workspace_id": ctx.workspace,
        "name": b["name"],
        "capability": b["capability"],
        "description": b.get("description", ""),
        "endpoint": b["endpoint"],
        "protocol": b.get("protocol", "http"),
        "created_ms": now_ms(),
    }
    async with ctx.db.begin() as c:
        await c.execute(schema.agents.insert().values(**row))
    return json(agent_json(row))  # 200, as the reference's table says


def _own_agent(ctx: Ctx):
    """The agent of the path, in the caller's workspace only (another workspace's is a 404)."""
    A = schema.agents
    return sa.and_(A.c.id == ctx.params["agent_id"], A.c.workspace_id == ctx.workspace)


async def update_agent(ctx: Ctx):
    A = schema.agents
    async with ctx.db.begin() as c:
        done = await c.execute(A.update().where(_own_agent(ctx)).values(**ctx.body))
        if not done.rowcount:
            raise not_found("agent", ctx.params["agent_id"])
        row = (await c.execute(sa.select(A).where(_own_agent(ctx)))).mappings().one()
    return json(agent_json(row))


async def delete_agent(ctx: Ctx):
    async with ctx.db.begin() as c:
        done = await c.execute(schema.agents.delete().where(_own_agent(ctx)))
    if not done.rowcount:
        raise not_found("agent", ctx.params["agent_id"])
    return no_content()


# -- health --------------------------------------------------------------------------------


async def health(ctx: Ctx):
    services = {}
    try:
        async with ctx.db.connect() as c:
            await c.execute(sa.text("SELECT 1"))
        services["database"] = "healthy"
    except Exception:
        services["database"] = "unhealthy"
    services["cache"] = "healthy"  # in-process: bundles, rate limits
    if ctx.services.feed is not None:  # several replicas: this one hears the others' changes
        services["change_feed"] = "healthy" if ctx.services.feed.connected.is_set() else "reconnecting"
    try:
        async with ctx.services.http.get(
            ctx.services.settings.gateway_url,
            timeout=aiohttp.ClientTimeout(total=2),
            ssl=ctx.services.settings.gateway_ssl(),
        ):
            services["gateway"] = "healthy"
    except (aiohttp.ClientError, TimeoutError):
        services["gateway"] = "unreachable"
    since = now_ms() - 300_000
    if services["database"] == "healthy":
        async with ctx.db.connect() as c:
            total, failed = (
                await c.execute(
                    sa.select(sa.func.count(), sa.func.sum(sa.case((E.c.status >= 500, 1), else_=0))).where(
                        E.c.workspace_id == ctx.workspace,
                        E.c.kind == "gateway.call",
                        E.c.decision == "allow",
                        E.c.occurred_ms >= since,
                    )
                )
            ).one()
        services["ai_providers"] = "unknown" if not total else ("degraded" if (failed or 0) * 2 > total else "healthy")
    else:
        services["ai_providers"] = "unknown"
    ok = services["database"] == "healthy"
    return json(
        {
            "status": "ok" if ok else "degraded",
            "timestamp": iso(now_ms()),
            "version": VERSION,
            "uptime": int(time.time() - ctx.services.started),
            "services": services,
        }
    )


# -- request logs and usage ---------------------------------------------------------------


def _log_filters(ctx: Ctx) -> list:
    p = ctx.params
    where = [E.c.workspace_id == ctx.workspace, E.c.kind == "gateway.call"]
    start, end = parse_time(p.get("from"), "from"), parse_time(p.get("to"), "to")
    if start is not None:
        where.append(E.c.occurred_ms >= start)
    if end is not None:
        where.append(E.c.occurred_ms < end)
    for name, col in (("model", E.c.model), ("status", E.c.status), ("endpoint", E.c.endpoint)):
        if p.get(name) is not None:
            where.append(col == p[name])
    return where


def _log_query(where: list):
    return (
        sa.select(
            E.c.seq,
            E.c.id,
            E.c.occurred_ms,
            E.c.latency_ms,
            E.c.model,
            E.c.endpoint,
            E.c.status,
            E.c.decision,
            E.c.code,
            E.c.provider,
            E.c.upstream,
            E.c.user_id,
            E.c.input_tokens,
            E.c.output_tokens,
            E.c.cost_micros,
            RA.c.relay_id,
            RA.c.attempt,
            RC.c.fallback_used,
            RC.c.attempts,
            RC.c.metadata,
        )
        .select_from(E.outerjoin(RA, RA.c.receipt_id == E.c.id).outerjoin(RC, RC.c.id == RA.c.relay_id))
        .where(*where)
    )


def log_json(r) -> dict:
    fallback = None
    if r["relay_id"]:
        earlier = (r["attempts"] or [])[: r["attempt"]]
        fallback = {
            "relay_id": r["relay_id"],
            "attempt": r["attempt"],
            "fallback_used": bool(r["fallback_used"]),
            "failed_attempts": [
                {"model": a.get("model"), "status_code": a.get("status_code"), "error": (a.get("error") or "")[:200]}
                for a in earlier
            ],
        }
    return {
        "request_id": r["id"],
        "timestamp": iso(r["occurred_ms"]),
        "latency_ms": r["latency_ms"],
        "model": r["model"],
        "endpoint": r["endpoint"],
        "status": r["status"],
        "decision": r["decision"],
        "code": r["code"],
        "provider": r["provider"],
        "upstream": r["upstream"],
        "user": r["user_id"],
        "tokens": {"input": r["input_tokens"], "output": r["output_tokens"]},
        "estimated_cost_usd": r["cost_micros"] / 1_000_000 if r["cost_micros"] is not None else None,
        "fallback": fallback,
        "metadata": bounded_json(r["metadata"]) if r["relay_id"] else None,
    }


async def logs(ctx: Ctx):
    where = _log_filters(ctx)
    after = decode_cursor(ctx.params.get("cursor"))
    if after is not None:
        where.append(E.c.seq < after)
    limit = ctx.params["limit"]
    async with ctx.db.connect() as c:
        rows = (await c.execute(_log_query(where).order_by(E.c.seq.desc()).limit(limit + 1))).mappings().all()
    page = rows[:limit]
    return json(
        {
            "logs": [log_json(r) for r in page],
            "next_cursor": encode_cursor(page[-1]["seq"]) if len(rows) > limit else None,
        }
    )


CSV_FIELDS = [
    "request_id",
    "timestamp",
    "latency_ms",
    "model",
    "endpoint",
    "status",
    "decision",
    "code",
    "provider",
    "upstream",
    "user",
    "input_tokens",
    "output_tokens",
    "estimated_cost_usd",
    "relay_id",
    "attempt",
    "fallback_used",
    "metadata",
]


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A CSV cell a spreadsheet will not run: text starting with = + - @ TAB or CR (OWASP's list
    of formula triggers) gets a leading single quote. Callers choose user ids, models and more."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


async def export(ctx: Ctx):
    fmt, limit = ctx.params["format"], ctx.params["limit"]
    where = _log_filters(ctx)
    ctype = "text/csv" if fmt == "csv" else "application/json"
    out = web.StreamResponse(
        headers={
            "Content-Type": f"{ctype}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="relaygate-logs-{ctx.workspace}.{fmt}"',
        }
    )
    await out.prepare(ctx.request)
    sent, after, first = 0, None, True
    if fmt == "json":
        await out.write(b"[")
    else:
        buf = io.StringIO()
        csv.writer(buf).writerow(CSV_FIELDS)
        await out.write(buf.getvalue().encode())
    while sent < limit:
        page_where = where + ([E.c.seq < after] if after is not None else [])
        async with ctx.db.connect() as c:
            rows = (
                (await c.execute(_log_query(page_where).order_by(E.c.seq.desc()).limit(min(1000, limit - sent))))
                .mappings()
                .all()
            )
        if not rows:
            break
        chunk = io.StringIO()
        writer = csv.writer(chunk)
        for r in rows:
            entry = log_json(r)
            if fmt == "json":
                chunk.write(("" if first else ",") + orjson.dumps(entry).decode())
                first = False
            else:
                fb = entry["fallback"] or {}
                writer.writerow(
                    [
                        csv_cell(v)
                        for v in (
                            entry["request_id"],
                            entry["timestamp"],
                            entry["latency_ms"],
                            entry["model"],
                            entry["endpoint"],
                            entry["status"],
                            entry["decision"],
                            entry["code"],
                            entry["provider"],
                            entry["upstream"],
                            entry["user"],
                            entry["tokens"]["input"],
                            entry["tokens"]["output"],
                            entry["estimated_cost_usd"],
                            fb.get("relay_id"),
                            fb.get("attempt"),
                            fb.get("fallback_used"),
                            orjson.dumps(entry["metadata"]).decode() if entry["metadata"] else "",
                        )
                    ]
                )
        await out.write(chunk.getvalue().encode())
        sent += len(rows)
        after = rows[-1]["seq"]
    if fmt == "json":
        await out.write(b"]")
    await out.write_eof()
    return out


def _usage_row(key: dict, r) -> dict:
    requests, successes = r["requests"] or 0, r["successes"] or 0
    return {
        **key,
        "requests": requests,
        "successes": successes,
        "success_rate": round(successes / requests, 4) if requests else None,
        "avg_latency_ms": round(r["avg_latency"], 3) if r["avg_latency"] is not None else None,
        "input_tokens": int(r["input_tokens"] or 0),
        "output_tokens": int(r["output_tokens"] or 0),
        "estimated_cost_usd": (r["cost"] or 0) / 1_000_000,
    }


async def usage(ctx: Ctx):
    start, end = parse_time(ctx.params.get("from"), "from"), parse_time(ctx.params.get("to"), "to")
    where = [E.c.workspace_id == ctx.workspace, E.c.kind == "gateway.call"]
    if start is not None:
        where.append(E.c.occurred_ms >= start)
    if end is not None:
        where.append(E.c.occurred_ms < end)
    ok = sa.case((sa.and_(E.c.decision == "allow", E.c.status < 400), 1), else_=0)
    measures = [
        sa.func.count().label("requests"),
        sa.func.sum(ok).label("successes"),
        sa.func.avg(E.c.latency_ms).label("avg_latency"),
        sa.func.sum(E.c.input_tokens).label("input_tokens"),
        sa.func.sum(E.c.output_tokens).label("output_tokens"),
        sa.func.sum(E.c.cost_micros).label("cost"),
    ]
    if is_postgres(ctx.db):
        month = sa.func.to_char(sa.func.to_timestamp(E.c.occurred_ms / 1000.0).op("AT TIME ZONE")("UTC"), "YYYY-MM")
    else:
        month = sa.func.strftime("%Y-%m", E.c.occurred_ms / 1000, "unixepoch")
    out = {"from": iso(start), "to": iso(end)}
    async with ctx.db.connect() as c:
        out["total"] = _usage_row({}, (await c.execute(sa.select(*measures).where(*where))).mappings().one())
        for name, col in (
            ("by_model", E.c.model),
            ("by_endpoint", E.c.endpoint),
            ("by_provider", E.c.provider),
            ("by_month", month),
        ):
            label = name[3:]
            rows = (
                (
                    await c.execute(
                        sa.select(col.label("k"), *measures)
                        .where(*where)
                        .group_by(col)
                        .order_by(sa.func.count().desc())
                    )
                )
                .mappings()
                .all()
            )
            out[name] = [_usage_row({label: r["k"]}, r) for r in rows]
    return json(out)


HANDLERS = {
    "relay": relay,
    "discoverAgents": discover,
    "registerAgent": register,
    "updateAgent": update_agent,
    "deleteAgent": delete_agent,
    "apiHealth": health,
    "listLogs": logs,
    "exportLogs": export,
    "getUsage": usage,
}
