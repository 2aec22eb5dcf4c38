"""relaygate-extproc: the ext_proc + access-log gRPC service and its admin port.

Start-up order matters for durability: receipts left pending by a previous
process are finalized as incomplete first, then budget windows are rebuilt
from the spool, and only then does the service accept calls.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import secrets
import signal
import socket
import time
from pathlib import Path

import grpc
from aiohttp import web
from envoy.service.accesslog.v3 import als_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from relaygate.contract import bundle as bundle_mod
from relaygate.evidence.signing import load_or_create_signer
from relaygate.contract import config as config_mod
from relaygate.contract.envsecret import EnvSecretError, env_secret
from relaygate.extproc import authz_http, tracing
from relaygate.extproc.admin import admin_app
from relaygate.decision.admission import Admission
from relaygate.decision.limits import Limits, RedisTierLimits, TierLimits
from relaygate.decision.ledger import InMemoryLedger, RedisLedger, SqliteLedger, now_utc, window_bounds
from relaygate.decision.policy_engine import PolicyError, RegorusEngine
from relaygate.extproc.processor import Processor
from relaygate.extproc.recorder import Recorder
from relaygate.extproc.settlement import DENIAL_GRACE, AccessLogSink, Finalizer
from relaygate.contract.private_files import private_dir, restrict_umask
from relaygate.extproc.spool import Spool
from relaygate.decision.snapshot import local_sources
from relaygate.extproc.bundle_sync import BundleSync
from relaygate.extproc.cpclient import ControlPlane
from relaygate.extproc.fleet_agent import FleetAgent
from relaygate.extproc.receipt_shipper import ReceiptShipper

log = logging.getLogger("relaygate.extproc")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="relaygate-extproc",
        description="relaygate data plane: Envoy ext_proc policy service and access-log settler.",
    )
    p.add_argument(
        "--config-dir",
        default=os.environ.get("RELAYGATE_CONFIG_DIR", "config"),
        help="directory with workspaces/keys/upstreams/budgets/secrets YAML (default: config)",
    )
    p.add_argument(
        "--policy-dir",
        default=os.environ.get("RELAYGATE_POLICY_DIR", "policies"),
        help="directory with Rego modules and YAML policy data (default: policies)",
    )
    p.add_argument(
        "--data-dir",
        default=os.environ.get("RELAYGATE_DATA_DIR", "var"),
        help="where the receipt spool and signing key live (default: var)",
    )
    p.add_argument(
        "--listen",
        default=os.environ.get("RELAYGATE_EXTPROC_LISTEN", "unix:var/extproc.sock"),
        help="gRPC address: unix:PATH or HOST:PORT (default: unix:var/extproc.sock)",
    )
    p.add_argument(
        "--authz-listen",
        default=os.environ.get("RELAYGATE_AUTHZ_LISTEN", "unix:var/authz.sock"),
        help="answer Envoy's ext_authz HTTP check here too (unix:PATH or HOST:PORT; default "
        "unix:var/authz.sock; '' turns it off): the faster transport (relaygate/extproc/authz_http.py); "
        "the gRPC address serves ext_proc and the access log",
    )
    p.add_argument(
        "--admin-port",
        type=int,
        default=int(os.environ.get("RELAYGATE_ADMIN_PORT", "9464")),
        help="HTTP port for /healthz, /metrics, /receipts (default: 9464; 0 disables)",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=float(os.environ.get("RELAYGATE_DRAIN_SECONDS", "0")),
        help="on SIGTERM, keep deciding and settling while Envoy's access log is still connected, at "
        "most this long (default 0: stop at once). In a pod both containers get SIGTERM together; set "
        "it above relaygate-envoy's --drain-seconds so the calls Envoy finishes are settled here",
    )
    p.add_argument(
        "--socket-mode",
        default=os.environ.get("RELAYGATE_SOCKET_MODE", "0600"),
        help="permissions of the Unix sockets (octal, default 0600: only Envoy's user, the same as "
        "this one, connects); 0660 lets the sockets' group in, e.g. a mesh's proxy running as "
        "another uid in the same pod (fsGroup): docs/deploy.md",
    )
    p.add_argument(
        "--admin-host",
        default=os.environ.get("RELAYGATE_ADMIN_HOST", "127.0.0.1"),
        help="address the admin port binds (default 127.0.0.1; 0.0.0.0 in a pod, so the kubelet's probes "
        "and Prometheus reach it: it serves receipts, so a NetworkPolicy should admit only those)",
    )
    p.add_argument(
        "--sidecar-name",
        default=os.environ.get("RELAYGATE_SIDECAR", socket.gethostname()),
        help="name recorded in every receipt (default: host name)",
    )
    p.add_argument(
        "--pending-grace",
        type=float,
        default=3600.0,
        help="seconds after which a call whose end was never seen gets an incomplete receipt",
    )
    p.add_argument(
        "--spool-synchronous",
        choices=["NORMAL", "FULL"],
        default="NORMAL",
        help="SQLite synchronous mode: NORMAL survives process crashes, FULL also power loss",
    )
    p.add_argument(
        "--ledger",
        choices=["memory", "sqlite", "redis"],
        default="memory",
        help="budget ledger: memory (one process), sqlite (shared by worker processes "
        "using the same --data-dir) or redis (shared by every gateway using the same "
        "Redis; see --ledger-url)",
    )
    p.add_argument(
        "--ledger-url",
        default=os.environ.get("RELAYGATE_LEDGER_URL"),
        help="with --ledger redis: redis://[:PASSWORD@]HOST:PORT/DB (or $RELAYGATE_LEDGER_URL, "
        "which keeps a password off the command line)",
    )
    p.add_argument(
        "--ledger-timeout-ms",
        type=int,
        default=int(os.environ.get("RELAYGATE_LEDGER_TIMEOUT_MS", "500")),
        help="with --ledger redis: a Redis round trip slower than this refuses the call 503 budget.unavailable "
        "(fails closed; default 500). Keep it well below Envoy's check timeout (2 s), which otherwise answers "
        "first (503 gateway.unavailable)",
    )
    p.add_argument(
        "--limits",
        choices=["memory", "redis"],
        default=os.environ.get("RELAYGATE_LIMITS"),
        help="where the workspaces' tier limits (requests/s, tokens/min) are counted: memory (this process; "
        "a fleet-wide limit is then the sum over the gateways) or redis (the --ledger-url Redis, shared by "
        "every gateway: the fleet together admits what one gateway would; unreachable or slower than "
        "--ledger-timeout-ms refuses the call 503 rate.unavailable). Default: redis with --ledger redis, "
        "else memory",
    )
    p.add_argument(
        "--lease-ttl-ms",
        type=int,
        default=int(os.environ.get("RELAYGATE_LEASE_TTL_MS", "10000")),
        help="with --ledger redis: this process's lease in Redis lives this long unrenewed; once it lapses "
        "(the process died) any live sidecar releases the budget holds it had reserved (default 10000)",
    )
    p.add_argument(
        "--lease-interval-ms",
        type=int,
        default=int(os.environ.get("RELAYGATE_LEASE_INTERVAL_MS", "2000")),
        help="with --ledger redis: renew the lease, and reap the holds of lapsed leases, this often (default 2000)",
    )
    p.add_argument(
        "--no-settle",
        dest="settle",
        action="store_false",
        help="do not serve the access log, sweep or recover the spool (extra workers; "
        "exactly one process per data dir settles)",
    )
    p.add_argument(
        "--control-plane",
        default=os.environ.get("RELAYGATE_CONTROL_PLANE"),
        help="control-plane URL (e.g. http://127.0.0.1:8090): take policy and config from its "
        "signed bundles and ship receipts to it, instead of --config-dir/--policy-dir",
    )
    p.add_argument(
        "--control-plane-key",
        default=os.environ.get("RELAYGATE_CONTROL_PLANE_KEY"),
        help="PEM file with the control plane's bundle-signing public key (required with "
        "--control-plane; bundles signed by any other key are refused)",
    )
    p.add_argument(
        "--control-plane-ca",
        default=os.environ.get("RELAYGATE_CONTROL_PLANE_CA"),
        help="CA file that issued the control plane's certificate (an https --control-plane): "
        "pinned, so a server holding a certificate from any other CA is refused and "
        "the sidecar keeps its last good bundle (default: the system trust store)",
    )
    p.add_argument(
        "--control-plane-cert",
        default=os.environ.get("RELAYGATE_CONTROL_PLANE_CERT"),
        help="client certificate (PEM) presented to the control plane's mTLS fleet port",
    )
    p.add_argument(
        "--control-plane-client-key",
        default=os.environ.get("RELAYGATE_CONTROL_PLANE_CLIENT_KEY"),
        help="private key (PEM file) of --control-plane-cert",
    )
    p.add_argument(
        "--tenant",
        default=os.environ.get("RELAYGATE_TENANT", "default"),
        help="fleet tenant this gateway belongs to (selects its bundle; default: default)",
    )
    p.add_argument("--zone", default=os.environ.get("RELAYGATE_ZONE", "local"), help="zone, for fleet posture")
    p.add_argument(
        "--instance-id",
        default=os.environ.get("RELAYGATE_INSTANCE_ID"),
        help="fleet instance id (default: the sidecar name); also Envoy's node id",
    )
    p.add_argument(
        "--policy-engine",
        choices=("regorus", "opa-server"),
        default=os.environ.get("RELAYGATE_POLICY_ENGINE", "regorus"),
        help="who evaluates the platform policy: regorus in this process (default, the fastest), or an OPA "
        "server (--opa-url) for builtins regorus lacks; docs/policy.md",
    )
    p.add_argument(
        "--opa-url",
        default=os.environ.get("RELAYGATE_OPA_URL", "http://127.0.0.1:8181"),
        help="with --policy-engine opa-server: the OPA server, loaded with relaygate's policies",
    )
    p.add_argument(
        "--opa-timeout-ms",
        type=int,
        default=int(os.environ.get("RELAYGATE_OPA_TIMEOUT_MS", "500")),
        help="with --policy-engine opa-server: past this the call is refused 503 (fails closed)",
    )
    p.add_argument(
        "--otlp-endpoint",
        default=None,
        help="send a span per traced call (relaygate.decide) over OTLP/gRPC to HOST:PORT (plaintext) or "
        "https://HOST:PORT; default OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else off",
    )
    p.add_argument("--log-level", default=os.environ.get("RELAYGATE_LOG_LEVEL", "INFO"))
    a = p.parse_args(argv)
    a.instance_id = a.instance_id or a.sidecar_name
    try:
        a.socket_mode = int(a.socket_mode, 8)
    except ValueError:
        p.error(f"--socket-mode: an octal mode such as 0600 or 0660, got {a.socket_mode!r}")
    if a.socket_mode & 0o007 or not a.socket_mode & 0o600 == 0o600:
        p.error("--socket-mode: the owner needs rw and others nothing (0600 or 0660)")
    # The fleet token is a secret: environment only, never the command line (ps shows it);
    # NAME_FILE names a file holding it (container secrets: relaygate/contract/envsecret.py).
    try:
        a.fleet_token = env_secret("RELAYGATE_FLEET_TOKEN")
        if a.ledger_url is None:
            a.ledger_url = env_secret("RELAYGATE_LEDGER_URL")
    except EnvSecretError as e:
        p.error(str(e))
    if a.ledger == "redis" and not a.ledger_url:
        p.error("--ledger redis needs --ledger-url or $RELAYGATE_LEDGER_URL")
    if not 0 < a.lease_interval_ms < a.lease_ttl_ms:
        p.error("--lease-interval-ms must be positive and shorter than --lease-ttl-ms")
    a.limits = a.limits or ("redis" if a.ledger == "redis" else "memory")
    if a.limits not in ("memory", "redis"):  # from $RELAYGATE_LIMITS, which argparse does not check
        p.error(f"--limits / $RELAYGATE_LIMITS: memory or redis, got {a.limits!r}")
    if a.limits == "redis" and not a.ledger_url:
        p.error("--limits redis needs --ledger-url or $RELAYGATE_LEDGER_URL (the Redis it counts in)")
    if a.control_plane and not (a.fleet_token and a.control_plane_key):
        p.error("--control-plane needs $RELAYGATE_FLEET_TOKEN and --control-plane-key")
    if bool(a.control_plane_cert) != bool(a.control_plane_client_key):
        p.error("--control-plane-cert and --control-plane-client-key go together")
    if (a.control_plane_ca or a.control_plane_cert) and not (a.control_plane or "").startswith("https://"):
        p.error("--control-plane-ca/--control-plane-cert need an https:// --control-plane")
    return a


def rebuild_ledger(spool: Spool) -> InMemoryLedger:
    ledger = InMemoryLedger()
    now = now_utc()
    keys = {window_bounds(w, now)[0] for w in ("day", "month")}
    for (budget_id, window_key), amount in spool.window_charges(keys).items():
        ledger.charge(budget_id, window_key, amount)
    return ledger


def _redis_ledger(url: str, timeout: float = 0.5, owner: str | None = None, lease_ttl: float = 10.0) -> RedisLedger:
    import redis

    try:
        return RedisLedger(url, timeout=timeout, owner=owner, lease_ttl=lease_ttl)
    except (redis.RedisError, ValueError) as e:
        where = url.rsplit("@", 1)[-1]  # never print a password from the URL
        raise config_mod.ConfigError(f"budget ledger: Redis at {where} is not usable: {e}") from None


async def serve(args: argparse.Namespace) -> None:
    data_dir = private_dir(Path(args.data_dir))
    spool = Spool(data_dir / "receipts.db", args.spool_synchronous)
    signer = load_or_create_signer(data_dir / "receipt-signing.pem")
    if args.ledger in ("sqlite", "redis"):
        # Persistent and shared: recovery settles this data dir's stale holds inside it.
        ledger = (
            SqliteLedger(data_dir / "ledger.db")
            if args.ledger == "sqlite"
            # Holds are lease-bound to this process (a name of its own: workers share the instance id).
            else _redis_ledger(
                args.ledger_url,
                args.ledger_timeout_ms / 1000,
                owner=f"{args.instance_id}:{secrets.token_hex(6)}",
                lease_ttl=args.lease_ttl_ms / 1000,
            )
        )
        finalizer = Finalizer(spool, ledger, signer, args.sidecar_name)
        if args.settle:
            finalizer.sweep(time.time() + DENIAL_GRACE, grace=-1)
    else:
        # Recover: what a previous process left pending becomes incomplete, then budgets are rebuilt.
        Finalizer(spool, InMemoryLedger(), signer, args.sidecar_name).sweep(
            time.time() + DENIAL_GRACE, grace=-1, settle_ledger=False
        )
        ledger = rebuild_ledger(spool)
        finalizer = Finalizer(spool, ledger, signer, args.sidecar_name)

    limits: Limits = TierLimits()
    if args.limits == "redis":  # the ledger's Redis client when it has one (same Redis, same timeout)
        client = ledger.redis if isinstance(ledger, RedisLedger) else None
        limits = RedisTierLimits(client or _redis_ledger(args.ledger_url, args.ledger_timeout_ms / 1000).redis)

    remote = None
    if args.policy_engine == "opa-server":
        from relaygate.extproc.opa_engine import OpaEngine

        try:
            remote = OpaEngine(args.opa_url, timeout=args.opa_timeout_ms / 1000)
        except ValueError as e:
            raise config_mod.ConfigError(str(e)) from None
        log.info(
            "policy engine: OPA at %s (timeout %d ms; unreachable fails closed)", args.opa_url, args.opa_timeout_ms
        )
    cp = sync = None
    if args.control_plane:
        tls_ctx = None
        if args.control_plane.startswith("https://"):
            from relaygate.contract.tls import client_context

            try:
                tls_ctx = client_context(args.control_plane_ca, args.control_plane_cert, args.control_plane_client_key)
            except (OSError, ValueError) as e:
                raise config_mod.ConfigError(f"control-plane TLS files: {e}") from None
        else:
            log.warning(
                "the control plane is reached over plaintext HTTP (%s): bundles are still verified "
                "by signature, but the fleet token and receipts travel unencrypted",
                args.control_plane,
            )
        cp = ControlPlane(args.control_plane, args.fleet_token, args.instance_id, args.tenant, tls_ctx)
        try:
            verify_key = bundle_mod.load_verify_key(await _control_plane_key(Path(args.control_plane_key)))
        except ValueError as e:
            raise config_mod.ConfigError(f"--control-plane-key {args.control_plane_key}: {e}") from None
        sync = BundleSync(cp, verify_key, data_dir / "bundle.tar.gz", ledger, lambda adm: None, limits, engine=remote)
        admission = await sync.initial()
    else:
        cfg = config_mod.load(args.config_dir)
        engine = remote or RegorusEngine(sources=local_sources(Path(args.policy_dir)))
        admission = Admission(cfg, engine, ledger, limits=limits)
    cfg = admission.config

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", cfg.max_body_bytes + (1 << 20))])
    endpoint = tracing.endpoint_from(args.otlp_endpoint)
    tracer = tracing.DecisionTracer(endpoint) if endpoint else None
    processor = Processor(admission, spool, Recorder(spool, tracer))
    pb_grpc.add_ExternalProcessorServicer_to_server(processor, server)
    sink = None
    if args.settle:
        sink = AccessLogSink(finalizer, lambda: processor.admission.config.preauth)
        als_pb2_grpc.add_AccessLogServiceServicer_to_server(sink, server)
    listen = args.listen
    if listen.startswith("unix:"):
        sock = Path(listen[5:])
        sock.parent.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
    if server.add_insecure_port(listen) == 0 and not listen.startswith("unix:"):
        raise SystemExit(f"cannot listen on {listen}")
    await server.start()
    if listen.startswith("unix:"):
        os.chmod(listen[5:], args.socket_mode)
    authz = None
    if args.authz_listen:
        authz = await authz_http.serve(
            authz_http.AuthzService(lambda: processor.admission, processor.recorder), args.authz_listen
        )
        if args.authz_listen.startswith("unix:"):
            os.chmod(args.authz_listen[5:], args.socket_mode)
    # Everything loaded so far lives for the whole run: keep it out of the
    # collector's generations so full collections stay short on the hot path.
    gc.collect()
    gc.freeze()

    runner = None
    if args.admin_port:
        runner = web.AppRunner(
            admin_app(spool, lambda: finalizer.signer.public_pem(), lambda: processor.admission), access_log=None
        )
        await runner.setup()
        await web.TCPSite(runner, args.admin_host, args.admin_port).start()
    ledger_desc = args.ledger if args.ledger != "redis" else f"redis at {args.ledger_url.rsplit('@', 1)[-1]}"
    log.info(
        "relaygate-extproc ready: grpc %s%s, admin :%s, signing key %s, %d upstreams, %d keys, policy %s, ledger %s"
        ", tier limits in %s",
        listen,
        f", ext_authz http {args.authz_listen}" if authz else "",
        args.admin_port,
        signer.key_id,
        len(cfg.upstreams),
        len(cfg.keys),
        admission.revision if cp else f"from {args.config_dir} and {args.policy_dir}",
        ledger_desc,
        args.limits,
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def sweep():
        while True:
            await asyncio.sleep(1.0)
            try:
                finalizer.sweep(time.time(), args.pending_grace)
            except Exception:
                log.exception("sweeping stale receipts failed")

    async def lease(led: RedisLedger) -> None:
        """Keep this process's lease alive; release the holds of processes whose lease lapsed."""
        while True:
            try:
                await asyncio.to_thread(led.renew)
                released = await asyncio.to_thread(led.reap)
                if released:
                    log.warning("released the budget holds of %d calls of sidecars whose lease lapsed", released)
            except Exception as e:
                log.error("budget lease renewal or reaping failed: %s", e)
            await asyncio.sleep(args.lease_interval_ms / 1000)

    tasks = [asyncio.create_task(sweep())] if args.settle else []
    if isinstance(ledger, RedisLedger):
        tasks.append(asyncio.create_task(lease(ledger)))
    if sync is not None:

        def install(adm: Admission) -> None:
            processor.admission = adm  # one assignment: each call sees the old or the new, whole

        sync.install = install
        tasks.append(asyncio.create_task(sync.run()))
        if args.settle:
            agent = FleetAgent(
                cp, finalizer, data_dir / "receipt-signing.pem", args.zone, listen, spool, sync,
                authz_address=args.authz_listen if authz is not None else "",
            )  # fmt: skip
            shipper = ReceiptShipper(cp, spool)
            tasks.append(asyncio.create_task(agent.run(shipper)))
    await stop.wait()
    if args.drain_seconds > 0 and sink is not None and sink.streams:
        # Envoy drains too (relaygate-envoy): what it still forwards must be decided, and what
        # it finishes settled. Its access-log stream closes when it exits: that is the signal.
        log.info("SIGTERM: serving until Envoy's access log disconnects (at most %.0fs)", args.drain_seconds)
        try:
            await asyncio.wait_for(sink.idle.wait(), args.drain_seconds)
        except asyncio.TimeoutError:
            log.warning("drain time over with Envoy still connected; stopping")
    log.info("shutting down: draining streams")
    for t in tasks:
        t.cancel()
    if authz is not None:
        authz.close()
    await server.stop(grace=5)
    if runner:
        await runner.cleanup()
    if sync is not None:
        await sync.cp.close()
    spool.close()
    if tracer is not None:
        tracer.shutdown()
    if remote is not None:
        await remote.close()


KEY_WAIT_SECONDS = 60.0


async def _control_plane_key(path: Path) -> bytes:
    """The pinned bundle-signing key. A control plane writes it on its first start, to a volume the
    sidecar may mount before that (compose, a pod starting beside a new control plane): wait for
    it a while, then fail with a message that says so."""
    deadline = time.monotonic() + KEY_WAIT_SECONDS
    logged = False
    while True:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise config_mod.ConfigError(
                    f"--control-plane-key {path}: no such file after {KEY_WAIT_SECONDS:.0f}s (the control "
                    "plane writes it on its first start: --bundle-public-key, or <data-dir>/bundle-signing.pub)"
                ) from None
            if not logged:
                log.info("waiting for the control plane's bundle-signing key at %s", path)
                logged = True
            await asyncio.sleep(0.5)
        except OSError as e:
            raise config_mod.ConfigError(f"--control-plane-key {path}: {e.strerror}") from None


def main(argv=None) -> None:
    restrict_umask()  # spool, keys, bundle cache, ledger: owner-only (relaygate/contract/private_files.py)
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args))
    except (config_mod.ConfigError, PolicyError) as e:
        raise SystemExit(f"relaygate-extproc: {e}") from None


if __name__ == "__main__":
    main()
