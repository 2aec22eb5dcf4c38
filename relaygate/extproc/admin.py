"""The data plane's admin HTTP port: health, Prometheus metrics, receipts, signing key."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relaygate.decision.ledger import LedgerUnavailable, now_utc, window_bounds
from relaygate.extproc import metrics
from relaygate.extproc.spool import Spool


def admin_app(spool: Spool, public_pem, admission=None) -> web.Application:
    """``public_pem()`` returns the current receipt-signing public key (it changes on rotation);
    ``admission()`` the Admission in force, whose budgets and ledger /metrics reports."""

    def budget_series() -> None:
        adm = admission() if admission is not None else None
        if adm is None:
            return
        now = now_utc()
        metrics.BUDGET_LIMIT.clear()
        metrics.BUDGET_USED.clear()
        configured = adm.config.budgets
        pairs = [(b.ledger_id, window_bounds(b.window, now)[0]) for b in configured]
        try:
            used = adm.ledger.used_many(pairs) if pairs else []
        except LedgerUnavailable:
            return  # the series go missing: the budget alerts say "no data", never a wrong figure
        for b, (_, window), u in zip(configured, pairs, used):
            # the workspace stays a label here even with RELAYGATE_METRICS_WORKSPACE=0: budget ids are
            # unique per workspace only, and these series are as many as the configured budgets
            metrics.BUDGET_LIMIT.labels(b.workspace, b.id, b.unit).set(b.limit)
            metrics.BUDGET_USED.labels(b.workspace, b.id, b.unit, window).set(u)

    async def healthz(_):
        return web.json_response({"status": "ok"})

    async def prom(_):
        metrics.PENDING.set(spool.counts().get("pending", 0))
        oldest = spool.oldest_pending()
        metrics.SPOOL_OLDEST.set(max(0.0, time.time() - oldest) if oldest else 0.0)
        metrics.UNSHIPPED.set(spool.backlog())
        budget_series()
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def receipt(request):
        env = spool.envelope(request.match_info["id"])
        if env is None:
            found = spool.draft(request.match_info["id"])
            if found is None:
                return web.json_response(
                    {"error": {"code": "receipt.not_found", "message": "no such receipt"}}, status=404
                )
            return web.json_response({"state": found[0], "draft": found[1]}, status=202)
        return web.json_response(env)

    async def receipts(request):
        try:
            after = int(request.query.get("after", "0"))
            limit = min(max(int(request.query.get("limit", "100")), 1), 1000)
        except ValueError:
            return web.json_response(
                {"error": {"code": "request.invalid", "message": "after and limit must be integers"}}, status=400
            )
        return web.json_response({"receipts": spool.envelopes(after, limit), "counts": spool.counts()})

    async def key(_):
        return web.Response(body=public_pem(), content_type="application/x-pem-file")

    app = web.Application()
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/metrics", prom),
            web.get("/receipts", receipts),
            web.get("/receipts/{id}", receipt),
            web.get("/signing-key", key),
        ]
    )
    return app
