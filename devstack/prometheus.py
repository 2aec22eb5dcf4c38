"""A throwaway Prometheus on loopback that scrapes a local stack, for the alert tests and `make run`.

Uses Debian's ``prometheus`` (which `make` installs when missing). It scrapes the three jobs
prometheus/alerts.yml expects (relaygate-policy: the sidecar's admin port; relaygate-controlplane:
the control plane's /metrics, over TLS with the stack's CA; relaygate-envoy: Envoy's admin
/stats/prometheus) and loads the rule files it is given. Its data lives in DIR/data and goes
when DIR does.

    python -m devstack.prometheus start .run/prometheus     # scrapes `make run`'s stack; prints the URL
    python -m devstack.prometheus stop .run/prometheus

`start` takes the stack's addresses when they are not `make run`'s defaults: --policy,
--controlplane ('' for none), --envoy, --ca (the control plane's CA; default .run/tls/ca.pem),
--plaintext (a control plane without TLS), --rules (default prometheus/alerts.yml), --interval.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from devstack.processes import ROOT, free_port, wait_until

RULES = ROOT / "prometheus" / "alerts.yml"
JOBS = ("relaygate-policy", "relaygate-controlplane", "relaygate-envoy")


@dataclass(frozen=True)
class Target:
    """One scrape job of one target."""

    job: str
    address: str  # host:port
    metrics_path: str = "/metrics"
    scheme: str = "http"
    ca_file: str | None = None  # https: the CA the target's certificate is checked against


def stack_targets(stack) -> list[Target]:
    """The scrape targets of a devstack.processes.Stack (its control plane only when it runs one)."""
    out = [Target("relaygate-policy", f"127.0.0.1:{stack.extproc_admin_port}")]
    if stack.controlplane:
        ca = str(Path(stack.ca).resolve()) if stack.tls else None
        out.append(Target("relaygate-controlplane", f"127.0.0.1:{stack.cp_port}", scheme=stack.scheme, ca_file=ca))
    out.append(Target("relaygate-envoy", f"127.0.0.1:{stack.envoy_admin_port}", metrics_path="/stats/prometheus"))
    return out


def config(targets: list[Target], rule_files=(RULES,), interval: float = 15.0) -> dict:
    """Prometheus's configuration: one scrape job per job name (its targets scraped alike), each
    rule file by absolute path."""
    every = f"{interval:g}s"
    jobs: dict[str, dict] = {}
    for t in targets:
        job = {"job_name": t.job, "metrics_path": t.metrics_path, "scheme": t.scheme}
        if t.ca_file:
            job["tls_config"] = {"ca_file": t.ca_file}
        have = jobs.setdefault(t.job, {**job, "static_configs": [{"targets": []}]})
        if {k: v for k, v in have.items() if k != "static_configs"} != job:
            raise ValueError(f"targets of job {t.job} scraped differently: {have} and {t}")
        have["static_configs"][0]["targets"].append(t.address)
    return {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "rule_files": [str(Path(f).resolve()) for f in rule_files],
        "scrape_configs": list(jobs.values()),
    }


class PrometheusServer:
    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = Path(base).resolve()
        port_file = self.base / "port"
        self.port = port or (int(port_file.read_text()) if port_file.exists() else free_port())
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.base / "prometheus.log"

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def start(self, targets: list[Target], rule_files=(RULES,), interval: float = 15.0) -> str:
        """Write the configuration and start Prometheus (or, already running, reload it)."""
        binary = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
        if binary is None:
            raise RuntimeError("prometheus not found: apt-get install prometheus (make test does this)")
        self.base.mkdir(parents=True, exist_ok=True)
        cfg = self.base / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config(targets, rule_files, interval), sort_keys=False))
        if self._ready():
            self.reload()
            return self.url
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={self.base / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",  # POST /-/reload after the rule files change
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        fh.close()
        (self.base / "prometheus.pid").write_text(str(self.proc.pid))
        (self.base / "port").write_text(str(self.port))
        wait_until(self._ready, 30, "prometheus", self.proc, self.log)
        return self.url

    def reload(self) -> None:
        """Re-read the configuration and rule files (a broken one keeps the old: see the log)."""
        req = urllib.request.Request(self.url + "/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def api(self, path: str, **params) -> dict | list:
        """``data`` of a Prometheus HTTP API answer (``/api/v1/<path>``)."""
        url = f"{self.url}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
        if doc.get("status") != "success":
            raise RuntimeError(f"{url}: {doc}")
        return doc["data"]

    def query(self, promql: str) -> list[dict]:
        """An instant query's samples: ``[{"metric": {...}, "value": [ts, "v"]}, ...]``."""
        return self.api("query", query=promql)["result"]

    def stop(self) -> None:
        if self.proc is not None:  # ours: terminate and reap it
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
            return
        pid_file = self.base / "prometheus.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        try:  # only the Prometheus of this directory, never whatever reused its pid
            if str(self.base) not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                return
            os.kill(pid, signal.SIGTERM)
        except (FileNotFoundError, ProcessLookupError):
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m devstack.prometheus", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=("start", "stop"))
    p.add_argument("dir", type=Path)
    p.add_argument("--policy", default="127.0.0.1:9464", help="the sidecar's admin port (make run: 9464)")
    p.add_argument("--controlplane", default="127.0.0.1:8090", help="the control plane's API port; '' for none")
    p.add_argument("--envoy", default="127.0.0.1:9901", help="Envoy's admin port (make run: 9901)")
    p.add_argument("--ca", default=str(ROOT / ".run" / "tls" / "ca.pem"), help="CA of the control plane's TLS")
    p.add_argument(
        "--plaintext", action="store_true", help="the control plane serves plain HTTP (make run --plaintext)"
    )
    p.add_argument("--rules", type=Path, action="append", help=f"rule file (repeatable; default {RULES})")
    p.add_argument("--interval", type=float, default=5.0, help="scrape and rule evaluation interval, seconds")
    p.add_argument("--port", type=int, default=None, help="Prometheus's own port (default: a free one)")
    a = p.parse_args(argv)
    server = PrometheusServer(a.dir, a.port)
    if a.action == "stop":
        server.stop()
        return
    targets = [Target("relaygate-policy", a.policy)]
    if a.controlplane:
        tls = not a.plaintext
        if tls and not Path(a.ca).exists():
            raise SystemExit(f"no CA at {a.ca}: start the stack first (make run), or pass --ca or --plaintext")
        targets.append(
            Target(
                "relaygate-controlplane",
                a.controlplane,
                scheme="https" if tls else "http",
                ca_file=str(Path(a.ca).resolve()) if tls else None,
            )
        )
    targets.append(Target("relaygate-envoy", a.envoy, metrics_path="/stats/prometheus"))
    print(server.start(targets, a.rules or [RULES], a.interval))


if __name__ == "__main__":
    main()
