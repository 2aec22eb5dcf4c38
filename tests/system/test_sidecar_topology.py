"""The sidecar topology, for real, on one machine: Linux network namespaces (devstack/netns.py).

Three namespaces joined by a bridge on a private 10.213.X.0/24 that exists only inside them:

- ``cp``: the control plane on its own address (plaintext HTTP), seeded with the test config;
- ``prov``: the provider simulator on its own address, one port per upstream of the config
  (the config's upstreams name that address), and a UDP listener (test 3);
- ``app``: a pod. Its sidecar pair, relaygate-extproc (policy and config from the control
  plane's signed bundles) and relaygate-envoy (static, with the capture listener
  127.0.0.1:15001 for workspace acme), both run as uid 1337, the sidecar's user (Istio's
  proxy uid). The firewall is what a mesh's init container writes:
      nat    OUTPUT  -m owner --uid-owner 1337 -j RETURN             (the sidecar itself goes out)
      nat    OUTPUT  -p tcp -d <prov> -j REDIRECT --to-ports 15001   (every other TCP to the provider)
      filter OUTPUT  -d <prov> -m owner ! --uid-owner 1337 -j REJECT (anything else to it: UDP, ICMP)
  The app runs as uid 1000 without network capabilities and uses the official openai SDK
  with the provider's real base URL, http://<prov>:<port>/v1, and a relaygate key.

What must hold: the app's call is enforced and receipted without the app knowing a gateway
exists; there is no way around the gateway from the app; and the control plane being
unreachable stops nothing but receipt delivery, which catches up when it is back.

Two things a container has that plain processes do not, given here: the sidecar's processes
get a /dev/shm of their own (Envoy's hot-restart region lives there; see netns.Topology.spawn),
and where this checkout's Python lives under a directory other uids cannot enter (a pyenv
build in /root), the non-root processes keep the one capability dac_read_search to reach it
(netns.interpreter_caps): a file-reading right, no network one, which test 3 checks.
The test process itself never uses an address: every exchange is made from inside a namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml

from devstack import netns
from devstack.processes import ROOT, wait_until
from relaygate.contract import config as config_mod
from relaygate.contract.envoy import RECEIPT_HEADER
from relaygate.evidence.receipts import envelope_receipt
from tests.conftest import POLICY_DIR, write_config

SIDECAR_UID = 1337  # the sidecar's user: its traffic is the only traffic not captured
APP_UID = 1000
CP_PORT = 8090
GATEWAY_PORT, ENVOY_ADMIN_PORT, HEALTH_PORT, CAPTURE_PORT, EXTPROC_ADMIN_PORT = 8080, 9901, 8082, 15001, 9464
UDP_PORT = 5353
ADMIN_TOKEN, FLEET_TOKEN = "rg_admin_topology", "rg_fleet_topology"
PY = sys.executable
# Trust-store variables the test session sets for its own clients (tests/conftest.py) point at
# a private directory; processes of other uids must not see them.
_DROP_ENV = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)

# The app: the official SDK pointed at the provider's real base URL, as any app is configured;
# and, for the bypass attempts, raw sockets. Prints JSON for the test.
APP = r"""
import json, socket, sys
mode, args = sys.argv[1], json.loads(sys.argv[2])
out = []
if mode == "sdk":
    import openai
    for c in args:
        client = openai.OpenAI(api_key=c["key"] or "unused", base_url=c["base_url"], max_retries=0, timeout=20)
        extra = {} if c["key"] else {"Authorization": openai.Omit()}
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": c["marker"]}], max_tokens=5,
                extra_headers=extra,
            )
            resp = raw.http_response
        except openai.APIStatusError as e:
            resp = e.response
        except openai.APIConnectionError as e:
            out.append({"status": 0, "error": repr(e)})
            continue
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        out.append({"status": resp.status_code, "receipt": resp.headers.get(c["receipt_header"]), "body": body})
elif mode == "tcp":
    for c in args:
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": c["marker"]}]}).encode()
        req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {c['host']}:{c['port']}\r\n"
               f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        try:
            with socket.create_connection((c["host"], c["port"]), timeout=10) as s:
                s.sendall(req + body)
                chunks = []
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    chunks.append(b)
            out.append({"reply": b"".join(chunks).decode(errors="replace")})
        except OSError as e:
            out.append({"error": repr(e)})
elif mode == "udp":
    for c in args:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        try:
            s.connect((c["host"], c["port"]))
            s.send(c["marker"].encode())
            s.recv(100)  # were it sent and rejected on the way, the ICMP answer raises ECONNREFUSED here
            out.append({"error": None})
        except OSError as e:
            out.append({"error": repr(e)})
        finally:
            s.close()
elif mode == "caps":
    status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
    out = {"uid": status["Uid"].split()[0], "cap_eff": int(status["CapEff"], 16)}
print(json.dumps(out))
"""

# A UDP listener in the provider's namespace: every datagram it gets, one line in its log.
UDP_LISTENER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
while True:
    data, peer = s.recvfrom(65536)
    print(peer[0], data.decode(errors="replace"), flush=True)
"""


def _marker(what: str) -> str:
    return f"topology-{what}-{uuid.uuid4().hex[:12]}"


def _own(path: Path, uid: int) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, uid, uid, follow_symlinks=False)
        os.chmod(p, 0o700 if p.is_dir() else 0o600)


class Pod:
    """The running topology and what the tests ask of it."""

    def __init__(
        self,
        topo: netns.Topology,
        base: Path,
        tokens: dict[str, str],
        sim_ports: list[int],
        dead_port: int,
        procs: dict[str, subprocess.Popen],
    ) -> None:
        self.topo, self.base, self.tokens = topo, base, tokens
        self.sim_ports, self.dead_port, self.procs = sim_ports, dead_port, procs
        self.prov, self.cp = topo.ip("prov"), topo.ip("cp")
        self.app_script = base / "app" / "app.py"
        self.keep = netns.interpreter_caps()
        self.logs = base / "logs"

    # -- the app, uid 1000 in the app namespace ----------------------------------------------
    def app(self, mode: str, args) -> list | dict:
        env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
        env["HOME"] = str(self.base / "app")
        r = self.topo.run(
            "app",
            [PY, "-I", str(self.app_script), mode, json.dumps(args)],
            uid=APP_UID,
            keep=self.keep,
            env=env,
            cwd=self.base / "app",
            check=False,
            timeout=90,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout)

    def sdk_calls(self, calls: list[tuple[str | None, str]]) -> list[dict]:
        """SDK calls from the app to the provider's base URL (upstream openai-us): (key or None, marker) each."""
        base_url = f"http://{self.prov}:{self.sim_ports[0]}/v1"
        return self.app(
            "sdk",
            [{"key": k, "marker": m, "base_url": base_url, "receipt_header": RECEIPT_HEADER} for k, m in calls],
        )

    # -- what the other processes saw ------------------------------------------------------
    def sim_requests(self) -> list[dict]:
        r = self.topo.http("prov", "GET", f"http://{self.prov}:{self.sim_ports[0]}/_sim/requests")
        assert r["status"] == 200, r
        return json.loads(r["body"])

    def sim_saw(self, marker: str) -> list[dict]:
        return [e for e in self.sim_requests() if marker in e["body"]]

    def sidecar_receipt(self, rid: str) -> dict:
        """The finalized receipt from the sidecar's admin port (polled: it is finalized when
        Envoy's access log for the call arrives, just after the answer)."""
        found: dict = {}

        def final() -> bool:
            r = self.topo.http("app", "GET", f"http://127.0.0.1:{EXTPROC_ADMIN_PORT}/receipts/{rid}")
            found["last"] = r
            return r["status"] == 200

        wait_until(final, 15, f"receipt {rid} finalized in the sidecar")
        return envelope_receipt(json.loads(found["last"]["body"]))

    def cp_event(self, rid: str) -> dict:
        """The control plane's audit event for receipt ``rid`` (asked from inside ``cp``)."""
        return self.topo.http(
            "cp",
            "GET",
            f"http://{self.cp}:{CP_PORT}/v1/audit/events/{rid}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )

    def wait_at_cp(self, rids: list[str], timeout: float) -> None:
        wait_until(lambda: all(self.cp_event(r)["status"] == 200 for r in rids), timeout, f"receipts {rids} at cp")


def _start(topo: netns.Topology, base: Path) -> Pod:
    prov, cp = topo.ip("prov"), topo.ip("cp")
    logs = base / "logs"
    logs.mkdir(mode=0o700)

    # The test config, its upstreams at the provider namespace's address.
    cfg_dir = base / "config"
    tokens = write_config(cfg_dir)
    ups = yaml.safe_load((cfg_dir / "upstreams.yaml").read_text())
    for u in ups["upstreams"]:
        u["address"] = f"{prov}:{u['address'].rsplit(':', 1)[1]}"
    (cfg_dir / "upstreams.yaml").write_text(yaml.safe_dump(ups))
    cfg = config_mod.load(cfg_dir)
    assert {u.host for u in cfg.upstreams} == {prov}
    # The dead upstream stays unserved: a port of the provider's address nobody listens on.
    sim_ports = [u.port for u in cfg.upstreams if u.name != "openai-dead"]
    dead_port = next(u.port for u in cfg.upstreams if u.name == "openai-dead")

    # prov: the simulator on every upstream port, and a UDP listener.
    argv = [PY, "-m", "relaygate.providersim.server", "--host", prov]
    for p in sim_ports:
        argv += ["--port", str(p)]
    for cred in sorted({u.credential for u in cfg.upstreams}):
        argv += ["--credential", cred]
    sim = topo.spawn("prov", argv, logs / "provider-sim.log", cwd=ROOT)
    udp = topo.spawn("prov", [PY, "-I", "-c", UDP_LISTENER, prov, str(UDP_PORT)], logs / "udp.log")
    for p in sim_ports:
        wait_until(
            lambda: topo.http("prov", "GET", f"http://{prov}:{p}/_sim/requests", timeout=1)["status"] == 200,
            20,
            f"provider simulator on {prov}:{p}",
            sim,
            logs / "provider-sim.log",
        )
    wait_until(lambda: "listening" in (logs / "udp.log").read_text(), 10, "UDP listener", udp, logs / "udp.log")

    # cp: the control plane, seeded from the test config.
    cp_data = base / "cp"
    cp_data.mkdir(mode=0o700)
    cp_proc = topo.spawn(
        "cp",
        [
            PY,
            "-m",
            "relaygate.controlplane.server",
            "--listen",
            f"{cp}:{CP_PORT}",
            "--data-dir",
            str(cp_data),
            "--seed-config-dir",
            str(cfg_dir),
            "--seed-policy-dir",
            str(POLICY_DIR),
        ],
        logs / "controlplane.log",
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in _DROP_ENV},
            "RELAYGATE_ADMIN_TOKEN": ADMIN_TOKEN,
            "RELAYGATE_FLEET_TOKEN": FLEET_TOKEN,
        },
    )
    wait_until(
        lambda: topo.http("cp", "GET", f"http://{cp}:{CP_PORT}/healthz", timeout=1)["status"] == 200,
        60,
        "relaygate-controlplane",
        cp_proc,
        logs / "controlplane.log",
    )

    # app: the pod's firewall first (an init container runs before the pod's containers).
    for rule in (
        ["-t", "nat", "-A", "OUTPUT", "-m", "owner", "--uid-owner", str(SIDECAR_UID), "-j", "RETURN"],
        ["-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", prov, "-j", "REDIRECT", "--to-ports", str(CAPTURE_PORT)],
        ["-A", "OUTPUT", "-d", prov, "-m", "owner", "!", "--uid-owner", str(SIDECAR_UID), "-j", "REJECT"],
    ):
        topo.run("app", ["iptables", "-w", *rule])

    # The sidecar's files: its own uid's, owner-only (the volumes of a pod).
    side = base / "sidecar"
    for d in ("data", "run", "envoy", "home"):
        (side / d).mkdir(parents=True)
    shutil.copytree(cfg_dir, side / "config")  # the static Envoy renders its clusters from it
    shutil.copy(cp_data / "bundle-signing.pub", side / "bundle-signing.pub")
    _own(side, SIDECAR_UID)
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env["HOME"] = str(side / "home")
    keep = netns.interpreter_caps()
    extproc = topo.spawn(
        "app",
        [
            PY,
            "-m",
            "relaygate.extproc.server",
            "--data-dir",
            str(side / "data"),
            "--listen",
            f"unix:{side / 'run' / 'extproc.sock'}",
            "--authz-listen",
            f"unix:{side / 'run' / 'authz.sock'}",
            "--admin-port",
            str(EXTPROC_ADMIN_PORT),
            "--sidecar-name",
            "topology-sidecar",
            "--control-plane",
            f"http://{cp}:{CP_PORT}",
            "--control-plane-key",
            str(side / "bundle-signing.pub"),
            "--tenant",
            "default",
            "--instance-id",
            "topology-sidecar",
        ],
        logs / "extproc.log",
        uid=SIDECAR_UID,
        keep=keep,
        own_shm=True,
        cwd=side,
        env={**env, "RELAYGATE_FLEET_TOKEN": FLEET_TOKEN},
    )
    wait_until(
        lambda: topo.http("app", "GET", f"http://127.0.0.1:{EXTPROC_ADMIN_PORT}/healthz", timeout=1)["status"] == 200
        and (side / "run" / "authz.sock").exists(),
        30,
        "relaygate-extproc",
        extproc,
        logs / "extproc.log",
    )
    envoy = topo.spawn(
        "app",
        [
            str(Path(PY).parent / "relaygate-envoy"),
            "--config-dir",
            str(side / "config"),
            "--authz",
            f"unix:{side / 'run' / 'authz.sock'}",
            "--extproc",
            f"unix:{side / 'run' / 'extproc.sock'}",
            "--listen-port",
            str(GATEWAY_PORT),
            "--admin-port",
            str(ENVOY_ADMIN_PORT),
            "--health-port",
            str(HEALTH_PORT),
            "--health-host",
            "127.0.0.1",
            "--capture-port",
            str(CAPTURE_PORT),
            "--capture-workspace",
            "acme",
            "--drain-seconds",
            "1",
            "--out",
            str(side / "envoy" / "bootstrap.json"),
        ],
        logs / "relaygate-envoy.log",
        uid=SIDECAR_UID,
        keep=keep,
        own_shm=True,
        cwd=side,
        env=env,
    )
    wait_until(
        lambda: topo.http("app", "GET", f"http://127.0.0.1:{HEALTH_PORT}/ready", timeout=1)["status"] == 200,
        30,
        "relaygate-envoy",
        envoy,
        logs / "relaygate-envoy.log",
    )

    # The app's files: its own uid's.
    (base / "app").mkdir()
    (base / "app" / "app.py").write_text(APP)
    _own(base / "app", APP_UID)
    procs = {"sim": sim, "udp": udp, "cp": cp_proc, "extproc": extproc, "envoy": envoy}
    return Pod(topo, base, tokens, sim_ports, dead_port, procs)


@pytest.fixture(scope="module")
def pod():
    base = Path(tempfile.mkdtemp(prefix="rg-topology-"))
    os.chmod(base, 0o711)  # other uids traverse to their own (0700) directories, nothing more
    try:
        with netns.Topology(["cp", "prov", "app"]) as topo:
            p = _start(topo, base)
            yield p
            for name, proc in p.procs.items():  # nothing died under the tests
                assert proc.poll() is None, f"{name} exited with {proc.returncode}"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_apps_sdk_call_to_the_providers_base_url_is_enforced_and_receipted(pod):
    marker = _marker("allowed")
    [res] = pod.sdk_calls([(pod.tokens["acme"], marker)])
    assert res["status"] == 200, res
    assert res["body"]["choices"][0]["message"]["content"]
    rid = res["receipt"]
    assert rid, res
    # Decided and signed in the sidecar, in the capture's workspace.
    receipt = pod.sidecar_receipt(rid)
    assert receipt["id"] == rid and receipt["workspace"] == "acme", receipt
    assert receipt["status"] == "complete" and receipt["decision"]["allow"] is True, receipt
    assert receipt["request"]["path"] == "/v1/acme/v1/chat/completions", receipt  # through the capture
    # The provider got it once, at its address, with the provider's credential, never the relaygate key.
    [seen] = pod.sim_saw(marker)
    upstream = next(u for u in config_mod.load(pod.base / "config").upstreams if u.name == receipt["upstream"]["name"])
    assert seen["port"] == upstream.port and upstream.host == pod.prov
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["authorization"] == f"Bearer {upstream.credential}", headers
    assert pod.tokens["acme"] not in json.dumps(seen)
    # And the receipt reached the control plane (shipped across the bridge).
    pod.wait_at_cp([rid], 30)
    event = json.loads(pod.cp_event(rid)["body"])
    assert (event["id"], event["workspace"], event["decision"]) == (rid, "acme", "allow"), event


def test_the_gateway_refuses_what_policy_forbids_and_the_provider_never_sees_it(pod):
    calls = [
        (pod.tokens["euro"], _marker("other-workspace"), 403, "scope.denied"),
        (pod.tokens["revoked"], _marker("revoked"), 401, "auth.unauthenticated"),
        (None, _marker("no-key"), 401, "auth.unauthenticated"),
    ]
    results = pod.sdk_calls([(key, marker) for key, marker, _, _ in calls])
    for (_, marker, status, code), res in zip(calls, results):
        assert res["status"] == status, (marker, res)
        assert res["body"]["error"]["code"] == code, (marker, res)
        assert res["receipt"] and res["body"]["error"]["receipt_id"] == res["receipt"], (marker, res)
        assert pod.sim_saw(marker) == [], marker
    # The refusals are on record too.
    for res in results:
        receipt = pod.sidecar_receipt(res["receipt"])
        assert receipt["decision"]["allow"] is False, receipt


def test_there_is_no_way_around_the_gateway_from_the_app(pod):
    # The app runs without a network capability: it cannot undo the firewall.
    caps = pod.app("caps", {})
    assert caps["uid"] == str(APP_UID)
    net_caps = (1 << 12) | (1 << 13)  # CAP_NET_ADMIN, CAP_NET_RAW
    assert caps["cap_eff"] & net_caps == 0, caps
    # Plain HTTP with no key, straight at the simulator's port and at a port nobody serves:
    # both answered by the gateway (its 401 and a receipt), never by the simulator.
    m_sim, m_other = _marker("raw-sim-port"), _marker("raw-other-port")
    replies = pod.app(
        "tcp",
        [
            {"host": pod.prov, "port": pod.sim_ports[0], "marker": m_sim},
            {"host": pod.prov, "port": pod.dead_port, "marker": m_other},
        ],
    )
    for r in replies:
        assert "reply" in r, r
        head, _, body = r["reply"].partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 401"), r["reply"][:500]
        assert f"{RECEIPT_HEADER}:" in head.lower(), head
        assert json.loads(body)["error"], body
    # The same bytes from the control plane's namespace (no capture there) do reach the simulator
    # at that address: the answers above were the capture's doing, not an absent simulator.
    control = _marker("uncaptured-control")
    direct = pod.topo.http(
        "cp",
        "POST",
        f"http://{pod.prov}:{pod.sim_ports[0]}/v1/chat/completions",
        headers={"content-type": "application/json"},
        body=json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": control}]}),
    )
    assert direct["status"] == 401 and RECEIPT_HEADER not in direct["headers"], direct
    assert len(pod.sim_saw(control)) == 1
    assert pod.sim_saw(m_sim) == [] and pod.sim_saw(m_other) == []
    # UDP to the provider's address is rejected by the pod's firewall; the listener there gets
    # a datagram from the control plane's namespace (so it works) but never the app's.
    m_udp = _marker("udp")
    [udp] = pod.app("udp", [{"host": pod.prov, "port": UDP_PORT, "marker": m_udp}])
    # The firewall's REJECT fails the send itself (EPERM); were the datagram sent, the ICMP
    # answer would surface as ECONNREFUSED. Either way it must fail, and nothing may arrive.
    assert udp["error"] and ("not permitted" in udp["error"] or "refused" in udp["error"].lower()), udp
    probe = _marker("udp-control")
    pod.topo.run(
        "cp",
        [
            PY,
            "-I",
            "-c",
            "import socket,sys; socket.socket(2,2).sendto(sys.argv[1].encode(),(sys.argv[2],int(sys.argv[3])))",
        ]
        + [probe, pod.prov, str(UDP_PORT)],
    )
    udp_log = pod.logs / "udp.log"
    wait_until(lambda: probe in udp_log.read_text(), 10, "the control datagram at the UDP listener")
    assert m_udp not in udp_log.read_text()
    assert pod.topo.ip("app") not in udp_log.read_text()


def test_enforcement_goes_on_while_the_control_plane_is_unreachable(pod):
    pod.topo.unplug("cp")
    try:
        gone = pod.topo.http("app", "GET", f"http://{pod.cp}:{CP_PORT}/healthz", timeout=2)
        assert gone["status"] == 0, gone  # no answer from the control plane
        allowed, forbidden = _marker("outage-allowed"), _marker("outage-forbidden")
        ok, refused = pod.sdk_calls([(pod.tokens["acme"], allowed), (pod.tokens["euro"], forbidden)])
        assert ok["status"] == 200 and ok["receipt"], ok
        assert refused["status"] == 403 and refused["receipt"], refused
        assert len(pod.sim_saw(allowed)) == 1 and pod.sim_saw(forbidden) == []
        rids = [ok["receipt"], refused["receipt"]]
        for rid in rids:
            assert pod.sidecar_receipt(rid)["id"] == rid
        # Nothing can have been delivered while the link is down.
        assert all(pod.cp_event(rid)["status"] == 404 for rid in rids)
    finally:
        pod.topo.plug("cp")
    # Back: the receipts made meanwhile reach the control plane.
    pod.wait_at_cp(rids, 60)


def test_closing_a_topology_deletes_its_namespaces_even_with_processes_left_inside():
    with netns.Topology(["a", "b"]) as topo:
        names = [topo.ns("a"), topo.ns("b"), topo.bridge_ns]
        assert set(names) <= set(netns._namespaces())
        # A process the topology did not spawn, still running inside when it closes.
        stray = subprocess.Popen(["ip", "netns", "exec", topo.ns("a"), "sleep", "300"])
        wait_until(
            lambda: str(stray.pid)
            in subprocess.run(["ip", "netns", "pids", topo.ns("a")], capture_output=True, text=True).stdout,
            5,
            "the stray process inside",
        )
    assert stray.wait(5) == -9
    assert not set(names) & set(netns._namespaces())
    # A namespace left by a run that no longer exists is swept.
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{netns.PREFIX}{dead.pid}-0-left"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        assert stale in netns.sweep_stale()
        assert stale not in netns._namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)
