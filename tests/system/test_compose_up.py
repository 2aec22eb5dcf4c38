"""compose/compose.yaml brought up for real with podman-compose, and used end to end.

The whole stack (PostgreSQL, Redis, the control plane, the gateway's sidecar pair, the provider
simulator, Prometheus) is started with ``podman-compose -p <unique project> -f compose/compose.yaml
-f compose/compose.podman-test.yaml up -d``, then:

- every service's own compose healthcheck passes (``podman healthcheck run``), every container
  started once (no crash-and-restart), and podman realised what compose asks for: the policy
  container shares the gateway's network namespace (its admin port is published by ``gateway``),
  relaygate's containers run as 10001 on a read-only root filesystem with secrets as read-only
  files in /run/secrets;
- the control plane's /healthz and the gateway's /ready (Envoy ready, through ``podman exec``: the
  health port is not published) answer;
- a key made through the control plane's API (docs/deploy.md, "Compose") calls
  http://127.0.0.1:8080/v1/acme/chat/completions with the OpenAI SDK: 200 with a receipt header,
  and that receipt reaches the control plane's audit feed; a made-up key gets 401 with a receipt,
  which reaches the feed as a denial;
- Prometheus scrapes the three relaygate jobs (control plane, policy, Envoy) and reports them up;
- ``podman-compose stop`` stops every container with status 0 (relaygate's drain on SIGTERM), and
  ``podman-compose down -v`` leaves no container, pod, volume or network of the project.
The stack is always taken down (fixture finalizer, and stale projects of a killed run are removed
before a new one starts).

What this sandbox needs, and why (also in compose/compose.podman-test.yaml's header):

- No image registry is reachable, so docker.io/library/postgres, docker.io/library/redis and
  docker.io/prom/prometheus cannot be pulled: local stand-ins are built from Debian bookworm's
  packages (``devstack.images.build_standins``: postgresql-15, redis-server, prometheus, from a
  second cached debootstrap root filesystem; deploy/images/devstack-*.Containerfile) and swapped in
  by the override file. The relaygate images are built by ``devstack.images.build`` (cached).
- podman-compose is the pinned one of the test extra (1.6.0), not Debian bookworm's 1.0.3, which
  cannot run this file: it passes ``network_mode: "service:gateway"`` to podman verbatim, beside
  the project network ("Error: invalid option for network service: unknown bridge network option:
  gateway", exit 125: gateway-policy is never created, yet ``up -d`` exits 0), and no override can
  help because it always adds ``--net <project>_default`` (podman: "cannot set multiple networks
  without bridge network mode, selected mode container"); it also mangles exec-form healthchecks
  whose arguments hold spaces (``["CMD", "python3", "-c", "import ..."]`` becomes
  ``/bin/sh -c python3' '-c' ''import ...'``, which always fails: "unhealthy"; 1.2.0 still does),
  and its ``down`` leaves the project network behind. 1.6.0 maps ``service:`` to
  ``--network=container:<name>``, passes healthchecks to podman as JSON, and removes networks
  and pods on ``down``.
- Health checks: podman runs them from systemd timers and there is no systemd here, so the
  override sets ``interval: disable`` and this test runs each service's check itself, as the timer
  would. ``depends_on: {condition: service_healthy}`` needs ``podman wait --condition=healthy``
  (podman 4.6+; podman-compose 1.6.0 says "Ignored ... condition check due to podman 4.3.1"), so
  the test honours the conditions itself: it starts the stack in the order compose.yaml's
  conditions define (``up -d`` of each set of services whose dependencies are healthy; a
  ``network_mode: service:X`` counts as depending on X being started), waiting for each set's
  healthchecks before the next.
- Service names resolve through podman's CNI ``dnsname`` plugin (Debian package
  golang-github-containernetworking-plugin-dnsname); without it the containers cannot find each other.
- podman runs with runc and lowered rlimits through devstack/images.py's containers.conf.

The published ports are compose.yaml's own (127.0.0.1: 8080, 8090, 9464, 9090); the test reads
them from the file and fails at once, naming the port, when one is taken.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import openai
import pytest
import yaml

from devstack import images
from relaygate.contract.envoy import RECEIPT_HEADER

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "compose.yaml"
OVERRIDE = ROOT / "compose" / "compose.podman-test.yaml"
PODMAN_COMPOSE = Path(sys.executable).parent / "podman-compose"
PROJECT_PREFIX = "rgcompose-"
PROJECT_LABEL = "io.podman.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
RELAYGATE_SERVICES = ("controlplane", "gateway", "gateway-policy", "provider-sim")

pytestmark = pytest.mark.slow


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return images.podman(*args, check=check, timeout=timeout)


def wait_until(check, timeout: float, what: str, on_fail=lambda: ""):
    """Poll ``check`` until it returns something true, or fail saying what never happened."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, openai.APIError) as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout}s (last error: {last!r})\n{on_fail()}")


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={**(headers or {})})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Stack:
    """One podman-compose project of compose.yaml (+ the override)."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.doc = yaml.safe_load(COMPOSE.read_text())
        self.services: dict = self.doc["services"]
        self.stages: list[list[str]] = []
        self.containers: dict[str, str] = {}  # service -> container name
        self.up_seconds = 0.0

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(PODMAN_COMPOSE), "-p", self.project, "-f", str(COMPOSE), "-f", str(OVERRIDE), *args]
        r = subprocess.run(
            cmd, env=images.podman_env(), text=True, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd[1:])} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r

    def host_ports(self) -> dict[int, str]:
        """{host port: service} of every published port (compose's "ip:host:container" strings)."""
        out = {}
        for name, s in self.services.items():
            for p in s.get("ports", []):
                ip, host, _ = str(p).split(":")
                assert ip == "127.0.0.1", (name, p)
                out[int(host)] = name
        return out

    def container(self, service: str) -> str:
        if service not in self.containers:
            r = podman(
                "ps", "-a", "--filter", f"label={PROJECT_LABEL}={self.project}",
                "--filter", f"label={SERVICE_LABEL}={service}", "--format", "{{.Names}}",
            )  # fmt: skip
            names = r.stdout.split()
            assert len(names) == 1, (service, names)
            self.containers[service] = names[0]
        return self.containers[service]

    def inspect(self, service: str) -> dict:
        return json.loads(podman("inspect", self.container(service)).stdout)[0]

    def logs(self, *services: str, tail: int = 40) -> str:
        out = []
        for s in services or tuple(self.containers):
            r = podman("logs", "--tail", str(tail), self.container(s), check=False)
            out.append(f"--- {s}:\n{(r.stdout + r.stderr)[-4000:]}")
        return "\n".join(out)

    def _needs(self, service: str) -> tuple[set[str], set[str]]:
        """(services that must be healthy, services that must be started) before ``service`` starts."""
        spec = self.services[service]
        deps = spec.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {} for d in deps}
        healthy = {d for d, c in deps.items() if (c or {}).get("condition") == "service_healthy"}
        started = set(deps) - healthy
        mode = spec.get("network_mode", "")
        if mode.startswith("service:"):
            started.add(mode.split(":", 1)[1])
        return healthy, started

    def wait_healthy(self, service: str) -> None:
        """Run the service's compose healthcheck until it passes, for as long as compose would
        (interval x retries), as podman's systemd timer would; the container must stay up."""
        hc = self.services[service].get("healthcheck") or {}
        interval = float(str(hc.get("interval", "5s")).rstrip("s"))
        budget = interval * int(hc.get("retries", 3)) + 10
        name = self.container(service)

        def passes() -> bool:
            state = self.inspect(service)["State"]
            assert state["Status"] == "running", f"{service} is {state['Status']} (exit {state['ExitCode']})"
            return podman("healthcheck", "run", name, check=False).returncode == 0

        wait_until(passes, budget, f"{service}'s healthcheck", lambda: self.logs(service, tail=80))

    def up(self) -> None:
        """``up -d`` in the order depends_on's conditions define, waiting for health in between."""
        healthy: set[str] = set()
        started: set[str] = set()
        while len(started) < len(self.services):
            batch: set[str] = set()
            grew = True
            while grew:
                grew = False
                for s in self.services:
                    if s in started or s in batch:
                        continue
                    need_healthy, need_started = self._needs(s)
                    if need_healthy <= healthy and need_started <= started | batch:
                        batch.add(s)
                        grew = True
            assert batch, f"depends_on cycle among {set(self.services) - started}"
            self.compose("up", "-d", "--no-build", *sorted(batch))
            started |= batch
            for s in sorted(batch):
                self.wait_healthy(s)
            healthy |= batch
            self.stages.append(sorted(batch))

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label={PROJECT_LABEL}={self.project}"
        return {
            "containers": podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").stdout.split(),
            "pods": podman("pod", "ps", "--filter", f"name=pod_{self.project}", "--format", "{{.Name}}").stdout.split(),
            "volumes": podman("volume", "ls", "--filter", label, "--format", "{{.Name}}").stdout.split(),
            "networks": [
                n for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith(self.project)
            ],
        }


def remove_project(project: str) -> None:
    """Everything of a project, by label and name, whatever state it is in (the safety net)."""
    label = f"label={PROJECT_LABEL}={project}"
    for c in podman("ps", "-a", "--filter", label, "--format", "{{.Names}}", check=False).stdout.split():
        podman("rm", "-f", "-t", "0", c, check=False)
    podman("pod", "rm", "-f", f"pod_{project}", check=False)
    for v in podman("volume", "ls", "--filter", label, "--format", "{{.Name}}", check=False).stdout.split():
        podman("volume", "rm", "-f", v, check=False)
    for n in podman("network", "ls", "--format", "{{.Name}}", check=False).stdout.split():
        if n.startswith(project + "_"):
            podman("network", "rm", "-f", n, check=False)


def remove_stale_projects() -> None:
    """Projects of an earlier run that was killed before its finalizer ran (they hold the ports)."""
    r = podman("ps", "-a", "--filter", f"label={PROJECT_LABEL}", "--format", "{{json .Labels}}", check=False)
    stale = set()
    for line in r.stdout.splitlines():
        project = (json.loads(line) or {}).get(PROJECT_LABEL, "")
        if project.startswith(PROJECT_PREFIX):
            stale.add(project)
    r = podman("volume", "ls", "--format", "{{.Name}}", check=False)
    stale |= {v.split("_")[0] for v in r.stdout.split() if v.startswith(PROJECT_PREFIX)}
    for project in stale:
        remove_project(project)


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def stack():
    assert PODMAN_COMPOSE.exists(), f"{PODMAN_COMPOSE} missing: podman-compose is pinned in pyproject.toml's test extra"
    if images.podman("info", "--format", "{{.Host.NetworkBackend}}").stdout.strip() == "cni":
        assert shutil.which("dnsmasq") and Path("/usr/lib/cni/dnsname").exists(), (
            "podman's CNI networks resolve service names only with the dnsname plugin: "
            "apt-get install golang-github-containernetworking-plugin-dnsname"
        )
    t0 = time.monotonic()
    images.build()
    images.build_standins()
    subprocess.run([sys.executable, str(ROOT / "compose" / "init-secrets")], check=True, capture_output=True)
    print(f"images and secrets ready in {time.monotonic() - t0:.1f} s")
    remove_stale_projects()
    s = Stack(f"{PROJECT_PREFIX}{uuid.uuid4().hex[:8]}")
    taken = {p: svc for p, svc in s.host_ports().items() if _port_taken(p)}
    assert not taken, f"compose.yaml publishes these ports on 127.0.0.1 and something else holds them: {taken}"
    try:
        t0 = time.monotonic()
        s.up()
        s.up_seconds = time.monotonic() - t0
        print(f"stack up in {s.up_seconds:.1f} s, stages {s.stages}")
        yield s
    finally:
        s.compose("down", "-v", "-t", "30", check=False, timeout=180)
        remove_project(s.project)


# -- the tests, in order: the last one takes the stack down ----------------------------------------


def test_the_stack_comes_up_in_dependency_order_as_compose_describes_it(stack):
    # postgres, redis (and the two without dependencies) first; the control plane once PostgreSQL
    # is healthy; the gateway pair once the control plane (and Redis) are.
    assert stack.stages[0] == ["postgres", "prometheus", "provider-sim", "redis"], stack.stages
    assert stack.stages[1:] == [["controlplane"], ["gateway", "gateway-policy"]], stack.stages
    for service in stack.services:
        info = stack.inspect(service)
        assert info["State"]["Status"] == "running", (service, info["State"])
        assert info["RestartCount"] == 0, (service, info["RestartCount"], stack.logs(service))
        assert podman("healthcheck", "run", stack.container(service), check=False).returncode == 0, service
    # The sidecar pair: one network namespace (network_mode: service:gateway), one socket volume.
    gateway, policy = stack.inspect("gateway"), stack.inspect("gateway-policy")
    assert policy["HostConfig"]["NetworkMode"] == f"container:{gateway['Id']}"
    sockets = lambda i: {m["Destination"]: m["Name"] for m in i["Mounts"] if m["Type"] == "volume"}  # noqa: E731
    assert sockets(policy)["/run/relaygate"] == sockets(gateway)["/run/relaygate"] == f"{stack.project}_sockets"
    for service in RELAYGATE_SERVICES:
        info = stack.inspect(service)
        assert info["Config"]["User"] == "10001:10001", service
        assert info["HostConfig"]["ReadonlyRootfs"] is True, service
        assert info["HostConfig"]["CapDrop"], service
        secrets = [m for m in info["Mounts"] if m["Destination"].startswith("/run/secrets/")]
        assert all(m["Type"] == "bind" and not m["RW"] for m in secrets), (service, secrets)
        assert {m["Destination"] for m in secrets} == {
            f"/run/secrets/{name}" for name in stack.services[service].get("secrets", [])
        }, service


def test_the_control_plane_and_the_gateway_answer_their_health_endpoints(stack):
    status, _, body = http("GET", "http://127.0.0.1:8090/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok", body
    # 9464 is published by `gateway` and served by `gateway-policy`: the shared network namespace.
    status, _, body = http("GET", "http://127.0.0.1:9464/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok", body
    ready = podman(
        "exec", stack.container("gateway"), "python3", "-c",
        "import urllib.request as u; r = u.urlopen('http://127.0.0.1:8082/ready', timeout=5); print(r.status)",
        check=False,
    )  # fmt: skip
    assert ready.returncode == 0 and ready.stdout.strip() == "200", (ready.stdout, ready.stderr)


def _admin() -> dict[str, str]:
    return {"Authorization": "Bearer " + (ROOT / "compose" / "secrets" / "admin-token").read_text().strip()}


def _audit_event(stack, receipt: str) -> dict:
    """The control plane's audit event of ``receipt`` (the sidecar ships receipts in the background)."""

    def fetch():
        status, _, body = http("GET", f"http://127.0.0.1:8090/v1/audit/events/{receipt}", headers=_admin())
        return json.loads(body) if status == 200 else None

    return wait_until(fetch, 60, f"receipt {receipt} in the audit feed", lambda: stack.logs("gateway-policy"))


def test_a_key_made_through_the_api_calls_the_gateway_and_its_receipt_reaches_the_audit_feed(stack):
    status, _, body = http(
        "POST", "http://127.0.0.1:8090/v1/keys",
        {"name": "compose-up", "kind": "standard", "scope": {"permissions": ["gateway:call"]}},
        {**_admin(), "X-Relaygate-Workspace": "acme"},
    )  # fmt: skip
    assert status in (200, 201), body
    made = json.loads(body)
    secret, key_id = made["secret"], made["key"]["id"]
    assert secret.startswith("ro_live_")
    client = openai.OpenAI(base_url="http://127.0.0.1:8080/v1/acme", api_key=secret, max_retries=0, timeout=30)

    def call():
        # The new key reaches the sidecar with the control plane's next signed bundle: 401 until then.
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello from compose"}], max_tokens=8
        )
        return raw

    raw = wait_until(call, 60, "a 200 with the new key", lambda: stack.logs("controlplane", "gateway-policy"))
    assert raw.status_code == 200
    receipt = raw.headers[RECEIPT_HEADER]
    assert receipt.startswith("rcpt_")
    assert raw.parse().choices[0].message.content
    event = _audit_event(stack, receipt)
    assert event["id"] == receipt and event["workspace"] == "acme" and event["key_id"] == key_id, event
    assert (event["decision"], event["status"], event["upstream"]) == ("allow", 200, "openai-us"), event
    assert event["sidecar"] == "gateway-1" and event["receipt"]["payload"], event


def test_a_made_up_key_is_refused_with_a_receipt(stack):
    status, headers, body = http(
        "POST", "http://127.0.0.1:8080/v1/acme/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        {"Authorization": "Bearer ro_live_madeup0000_" + uuid.uuid4().hex},
    )  # fmt: skip
    assert status == 401, body
    receipt = {k.lower(): v for k, v in headers.items()}[RECEIPT_HEADER]
    assert json.loads(body)["error"]["receipt_id"] == receipt
    event = _audit_event(stack, receipt)
    assert (event["decision"], event["status"], event["key_id"]) == ("deny", 401, None), event


def test_prometheus_scrapes_the_three_relaygate_jobs(stack):
    want = {"relaygate-controlplane", "relaygate-policy", "relaygate-envoy"}
    last: dict = {}

    def all_up():
        status, _, body = http("GET", "http://127.0.0.1:9090/api/v1/targets")
        targets = json.loads(body)["data"]["activeTargets"] if status == 200 else []
        last.clear()
        last.update({t["labels"]["job"]: (t["health"], t["lastError"], t["scrapeUrl"]) for t in targets})
        return set(last) == want and all(h == "up" for h, _, _ in last.values())

    # scrape_interval is 15 s: a target first scraped before its service was up needs one more round.
    wait_until(all_up, 75, "Prometheus reporting the relaygate jobs up", lambda: json.dumps(last, indent=1))


def test_stop_ends_every_container_cleanly_and_down_leaves_nothing(stack):
    ports = stack.host_ports()
    r = stack.compose("stop", timeout=180)
    for service in stack.services:
        state = stack.inspect(service)["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 0, (service, state, r.stderr[-2000:])
    stack.compose("down", "-v", timeout=180)
    assert stack.leftovers() == {"containers": [], "pods": [], "volumes": [], "networks": []}
    assert not [p for p in ports if _port_taken(p)]
