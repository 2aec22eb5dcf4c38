"""relaygate-controlplane: start the REST API and the ADS server on embedded defaults.

Order: settings -> database (migrations) -> seed on first start -> platform
policies -> keys -> resumed background work -> ADS -> HTTP. Stops cleanly on SIGTERM/SIGINT.
"""
from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from controlplane import services as services_mod
from controlplane import settings as settings_mod
from controlplane import xds as xds_mod
from controlplane.app import build_app
from extproc.private_files import restrict_umask
from controlplane.handlers import audit, evidence, fleet, keys, policies, relayplane, resources, service

log = logging.getLogger("relaygate.controlplane")


def handlers() -> dict:
    out = {}
    for module in (service, resources, keys, policies, audit, evidence, fleet, relayplane):
        out.update(module.HANDLERS)
    return out


async def serve(settings) -> None:
    svc = await services_mod.start(settings)
    app = build_app(svc, handlers())
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # Unfinished deployments and evidence jobs are picked up before the API answers, so a
    # healthy /healthz means the work a previous process left is running again.
    await services_mod.run_background(svc)
    xds_server = None
    if settings.xds_listen:
        xds_server = await xds_mod.serve(svc.xds, settings.xds_listen)
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    await site.start()
    log.info("relaygate-controlplane ready on http://%s:%d (database %s, bundle key %s)", settings.host,
             settings.port, settings.database_url.split("@")[-1], svc.bundle_signer.key_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    if xds_server is not None:
        await xds_server.stop(grace=1)
    await runner.cleanup()
    await services_mod.stop(svc)


class _MalformedHttp(logging.Filter):
    """aiohttp answers malformed HTTP with 400 itself; log one line, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import BadHttpMessage
        if record.exc_info and isinstance(record.exc_info[1], BadHttpMessage):
            record.msg, record.args, record.exc_info, record.levelno, record.levelname = \
                f"malformed HTTP request refused: {record.exc_info[1].message}", (), None, logging.INFO, "INFO"
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
    except Exception as e:   # configuration-level failures at start: say what, not a traceback
        from extproc.config import ConfigError
        if isinstance(e, (ConfigError, OSError)):
            raise SystemExit(f"relaygate-controlplane: {e}") from None
        raise


if __name__ == "__main__":
    main()
