"""relaygate-controlplane: start the REST API and the ADS server on embedded defaults.

Order: settings -> database (migrations) -> seed on first start -> platform
policies -> keys -> resumed background work -> ADS -> HTTP. Stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal

from aiohttp import web

from relaygate.controlplane import services as services_mod
from relaygate.controlplane import settings as settings_mod
from relaygate.controlplane import xds as xds_mod
from relaygate.controlplane.app import build_app
from relaygate.contract.private_files import restrict_umask
from relaygate.controlplane.handlers import (
    audit,
    evidence,
    fleet,
    keys,
    policies,
    relayplane,
    resources,
    service,
    webhooks,
)

log = logging.getLogger("relaygate.controlplane")


def handlers() -> dict:
    out = {}
    for module in (service, resources, keys, policies, audit, evidence, fleet, relayplane, webhooks):
        out.update(module.HANDLERS)
    return out


def fleet_needs_client_cert(settings):
    """With mTLS configured the fleet credential is the token *and* a client certificate: the
    token on a connection that presented no verified certificate (the public API port) is
    refused, so a leaked fleet token alone cannot pull bundles or push receipts."""
    from relaygate.controlplane.errors import ApiError

    token = settings.fleet_token.encode()

    @web.middleware
    async def check(request: web.Request, handler):
        auth = request.headers.get("Authorization", "")
        given = (auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")).strip()
        if (
            given
            and hmac.compare_digest(given.encode(), token)
            and not (request.transport and request.transport.get_extra_info("peercert"))
        ):
            raise ApiError(
                403,
                "auth.client_certificate_required",
                "the fleet token is accepted only with a fleet client certificate "
                "(the control plane's mTLS fleet port)",
            )
        return await handler(request)

    return check


async def serve(settings) -> None:
    svc = await services_mod.start(settings)
    app = build_app(svc, handlers())
    if settings.tls_client_ca:
        app.middlewares.append(fleet_needs_client_cert(settings))
    ssl_ctx = fleet_ctx = None
    if settings.tls_cert:
        from relaygate.contract.tls import server_context

        ssl_ctx = server_context(settings.tls_cert, settings.tls_key)
        if settings.fleet_listen:
            fleet_ctx = server_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    # shutdown_timeout: how long a stop waits for requests still running (long polls return at once).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    # Unfinished deployments and evidence jobs are picked up before the API answers, so a
    # healthy /healthz means the work a previous process left is running again.
    await services_mod.run_background(svc)
    xds_server = None
    if settings.xds_listen:
        xds_server = await xds_mod.serve(
            svc.xds,
            settings.xds_listen,
            cert=settings.tls_cert or None,
            key=settings.tls_key or None,
            client_ca=settings.tls_client_ca or None,
        )
    ops_server = None
    if settings.ops_grpc_listen:
        from relaygate.controlplane import fleet_ops

        ops_server = await fleet_ops.serve(
            svc, settings.ops_grpc_listen, cert=settings.tls_cert or None, key=settings.tls_key or None
        )
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True, ssl_context=ssl_ctx)
    await site.start()
    if fleet_ctx is not None:
        fhost, _, fport = settings.fleet_listen.rpartition(":")
        await web.TCPSite(runner, fhost or "127.0.0.1", int(fport), reuse_address=True, ssl_context=fleet_ctx).start()
        log.info(
            "fleet port (mTLS, client certificates from %s) on https://%s",
            settings.tls_client_ca,
            settings.fleet_listen,
        )
    log.info(
        "relaygate-controlplane ready on %s://%s:%d (database %s, bundle key %s)",
        "https" if ssl_ctx else "http",
        settings.host,
        settings.port,
        settings.database_url.split("@")[-1],
        svc.bundle_signer.key_id,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await svc.bundles.close()  # long polls answer now; the runner's cleanup waits for open requests
    if xds_server is not None:
        await xds_server.stop(grace=1)
    if ops_server is not None:
        await ops_server.stop(grace=1)
    await runner.cleanup()
    await services_mod.stop(svc)


class _MalformedHttp(logging.Filter):
    """aiohttp answers malformed HTTP with 400 itself; log one line, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import BadHttpMessage

        if record.exc_info and isinstance(record.exc_info[1], BadHttpMessage):
            record.msg, record.args, record.exc_info, record.levelno, record.levelname = (
                f"malformed HTTP request refused: {record.exc_info[1].message}",
                (),
                None,
                logging.INFO,
                "INFO",
            )
        return True


def main(argv=None) -> None:
    # Before anything touches the data dir (settings generate token files): owner-only files.
    restrict_umask()
    try:
        settings = settings_mod.load(argv)
    except settings_mod.SettingsError as e:
        raise SystemExit(f"relaygate-controlplane: {e}") from None
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.server").addFilter(_MalformedHttp())
    try:
        asyncio.run(serve(settings))
    except Exception as e:  # configuration-level failures at start: say what, not a traceback
        from relaygate.contract.config import ConfigError

        if isinstance(e, (ConfigError, OSError)):
            raise SystemExit(f"relaygate-controlplane: {e}") from None
        raise


if __name__ == "__main__":
    main()
