"""Policy change fan-out across control-plane replicas: from a change's 2xx on replica 0 to every
sidecar holding the new bundle revision.

Starts its own PostgreSQL, then a :class:`devstack.processes.Cluster` of ``--replicas`` control
planes on it, and either

- ``--gateways N``: N real gateways (Envoy + sidecar), gateway j attached to replica j mod R; a
  sidecar "has" the change when a gpt-4o call sent through its Envoy is decided by it (denied
  after the policy is published, allowed again after it is deleted): the time is when that call
  was sent (calls are sent back to back), or
- ``--clients N``: N lightweight sidecars: long polls of the real fleet bundle API
  (``GET /v1/fleet/bundles/{tenant}``, ``If-None-Match``, ``Prefer: wait=30``, the fleet token),
  client i on replica i mod R, each timing when its poll returns the new revision.

Each change alternately publishes and deletes a workspace policy denying gpt-4o (through replica
0, as acme). Prints median and max over the changes of the slowest sidecar, and each sidecar's.
Run by hand: ``.venv/bin/python -m bench.fanout --clients 30 --changes 10``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DENY_4O = """name: fanout-guard
rego: |
  package fanout_guard
  import rego.v1
  deny contains "gpt-4o is not approved" if input.model == "gpt-4o"
"""


def _http(method: str, url: str, token: str, body: bytes | None = None, ctype: str = "") -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method=method, headers={"Authorization": f"Bearer {token}"})
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Changer:
    """Publishes and deletes the deny policy through one replica; remembers when each returned."""

    def __init__(self, cp_url: str, token: str) -> None:
        self.url, self.token, self.policy_id = cp_url, token, None

    def change(self) -> float:
        if self.policy_id is None:
            status, body = _http("POST", f"{self.url}/v1/policies", self.token, DENY_4O.encode(), "application/yaml")
            assert status == 201, body
            self.policy_id = json.loads(body)["id"]
        else:
            status, body = _http("DELETE", f"{self.url}/v1/policies/{self.policy_id}", self.token)
            assert status == 204, body
            self.policy_id = None
        return time.monotonic()

    @property
    def denies(self) -> bool:
        return self.policy_id is not None


# -- simulated sidecars: bundle long polls ------------------------------------------------------


class Pollers:
    def __init__(self, urls: list[str], fleet_token: str, n: int, tenant: str = "default") -> None:
        self.urls, self.token, self.n, self.tenant = urls, fleet_token, n, tenant
        self.revisions: list[str] = [""] * n
        self.changed_at: list[float] = [0.0] * n
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop_flag = False

    def _run(self) -> None:
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        import aiohttp

        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as http:
            await asyncio.gather(*(self._poll(http, i) for i in range(self.n)))

    async def _poll(self, http, i: int) -> None:
        import aiohttp

        url = f"{self.urls[i % len(self.urls)]}/v1/fleet/bundles/{self.tenant}"
        headers = {"Authorization": f"Bearer {self.token}", "X-Relaygate-Instance": f"fanout-{i}"}
        while not self.stop_flag:
            h = dict(headers)
            if self.revisions[i]:
                h.update({"If-None-Match": f'"{self.revisions[i]}"', "Prefer": "wait=30"})
            try:
                async with http.get(url, headers=h, timeout=aiohttp.ClientTimeout(total=40)) as r:
                    await r.read()
                    if r.status == 200:
                        self.revisions[i] = r.headers["ETag"].strip('"')
                        self.changed_at[i] = time.monotonic()
                    elif r.status != 304:
                        await asyncio.sleep(0.05)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                await asyncio.sleep(0.05)
            if all(self.revisions):
                self.ready.set()

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(60):
            raise RuntimeError("the simulated sidecars did not all get a first bundle")

    def wait_all_changed(self, before: list[str], deadline: float) -> list[float]:
        while time.monotonic() < deadline:
            if all(r != b for r, b in zip(self.revisions, before)):
                return list(self.changed_at)
            time.sleep(0.002)
        raise RuntimeError("not every simulated sidecar got the new revision within the deadline")


# -- real gateways: the decision through Envoy -----------------------------------------------------


def gateway_sees(gw, key: str, denied: bool, deadline: float) -> float:
    import requests

    s = requests.Session()
    body = json.dumps({"model": "gpt-4o", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
    want = 403 if denied else 200
    while time.monotonic() < deadline:
        sent = time.monotonic()  # a call is decided by the bundle in force when its headers arrive
        r = s.post(
            f"{gw.gateway}/v1/acme/chat/completions",
            data=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            timeout=10,
        )
        if r.status_code == want:
            return sent
    raise RuntimeError(f"{gw.instance_id} did not decide the change within the deadline")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=3)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--gateways", type=int, help="real gateways (Envoy + sidecar)")
    mode.add_argument("--clients", type=int, help="simulated sidecars (bundle long polls)")
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = ap.parse_args(argv)

    from devstack.postgres import Postgres
    from devstack.processes import Cluster
    from tests.conftest import POLICY_DIR, write_config

    tmp = Path(tempfile.mkdtemp(prefix="relaygate-fanout-"))
    pg = Postgres(tmp / "pg")
    pg.start()
    cluster = None
    try:
        tokens = write_config(tmp / "config")
        n_gw = args.gateways or 0
        cluster = Cluster(
            tmp / "run",
            tmp / "config",
            POLICY_DIR,
            pg.url,
            replicas=args.replicas,
            tenants=["default"] * n_gw,
            tls=False,
        )
        started = time.monotonic()
        cluster.start(gateways=bool(n_gw))
        print(f"{args.replicas} replicas and {n_gw} gateways up in {time.monotonic() - started:.1f}s", flush=True)
        changer = Changer(cluster.cps[0].cp_url, tokens["acme"])
        pollers = None
        if args.clients:
            pollers = Pollers([cp.cp_url for cp in cluster.cps], cluster.cps[0].fleet_token, args.clients)
            pollers.start()
        slowest: list[float] = []
        every: list[float] = []
        for k in range(args.changes):
            if pollers is not None:
                before = list(pollers.revisions)
                t0 = changer.change()
                seen = pollers.wait_all_changed(before, t0 + 30)
                times = [t - t0 for t in seen]
            else:
                t0 = changer.change()
                results: list[float] = [0.0] * n_gw

                def watch(j: int, t0: float = t0) -> None:
                    results[j] = gateway_sees(cluster.gateways[j], tokens["acme"], changer.denies, t0 + 30) - t0

                threads = [threading.Thread(target=watch, args=(j,)) for j in range(n_gw)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                times = results
            slowest.append(max(times))
            every.extend(times)
            print(f"change {k + 1}: every sidecar after {max(times) * 1000:.0f} ms", flush=True)
        if pollers is not None:
            pollers.stop_flag = True
        figures = {
            "replicas": args.replicas,
            "sidecars": n_gw or args.clients,
            "kind": "gateways" if n_gw else "long-poll clients",
            "changes": args.changes,
            "all_sidecars_ms": {"median": statistics.median(slowest) * 1000, "max": max(slowest) * 1000},
            "each_sidecar_ms": {"median": statistics.median(every) * 1000, "max": max(every) * 1000},
            "machine": f"{platform.machine()} {_cpu()}, {_cores()} cores",
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
        }
        print(json.dumps(figures, indent=2))
        if args.out:
            args.out.write_text(json.dumps(figures, indent=2) + "\n")
        return 0
    finally:
        if cluster is not None:
            cluster.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
