"""The Helm chart (deploy/helm/relaygate), checked with the real tools.

helm (built by devstack.tools at the pinned release) lints and renders it; kubernetes-validate
--strict checks every rendered object against the Kubernetes API schemas of the oldest version the
chart supports and the newest kubernetes-validate knows; ServiceMonitors, a CRD kind it does not
know, are checked against prometheus-operator's own schema (deploy/helm/schemas/). On top of
schema validity, the tests assert what the manifests must mean: non-root read-only containers,
secrets only in Secrets, the pair's shared socket directory, shutdown timings that add up,
NetworkPolicies and selectors that select what they claim, and a README snippet that is exactly
what the templates render.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from devstack.tools import helm_binary

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "relaygate"
SERVICEMONITOR_SCHEMA = ROOT / "deploy" / "helm" / "schemas" / "servicemonitor.json"
KUBERNETES_VALIDATE = str(Path(sys.executable).parent / "kubernetes-validate")
# The oldest Kubernetes the chart claims (Chart.yaml kubeVersion) and the newest kubernetes-validate
# 1.37.0 ships schemas for.
K8S_VERSIONS = ("1.32.0", "1.37.0")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
DB_PASSWORD = "pg-pass-Zq81xK"
REDIS_PASSWORD = "redis-pass-Wm27vB"


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_binary()


@pytest.fixture(scope="module")
def bundle_key(tmp_path_factory) -> Path:
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    path = tmp_path_factory.mktemp("bundle-key") / "bundle-signing.pub"
    path.write_bytes(pem)
    return path


@pytest.fixture(scope="module")
def all_on(tmp_path_factory, bundle_key) -> Path:
    """A values file with every toggle on, PostgreSQL and Redis by URL (with passwords), a PVC."""
    values = {
        "controlPlane": {
            "databaseUrl": f"postgresql://relaygate:{DB_PASSWORD}@postgres.db.svc:5432/relaygate",
            "redisUrl": f"redis://:{REDIS_PASSWORD}@redis.db.svc:6379/0",
            "persistence": {"enabled": True},
        },
        "gateway": {
            "bundleSigningPublicKey": bundle_key.read_text(),
            "ledger": {"type": "redis"},
            "egress": {"providerCidrs": ["203.0.113.0/24"]},
            "demo": {"enabled": True},
        },
        "providerSim": {"enabled": True},
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "networkPolicy": {"enabled": True, "operatorNamespaceSelector": {"matchLabels": {"team": "platform"}}},
        "images": {"pullSecrets": ["regcred"]},
    }
    path = tmp_path_factory.mktemp("values") / "all-on.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def helm_template(helm: str, *args: str, chart: Path = CHART, kube: str = K8S_VERSIONS[-1], ok: bool = True):
    out = subprocess.run(
        [helm, "template", "relaygate", str(chart), "-n", "relaygate", "--kube-version", kube, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if ok:
        assert out.returncode == 0, out.stderr
    return out


def render(helm: str, *args: str, **kw) -> list[dict]:
    return [d for d in yaml.safe_load_all(helm_template(helm, *args, **kw).stdout) if d]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def pod_specs(docs: list[dict]):
    """(workload, pod spec) of every rendered workload."""
    for d in docs:
        assert d["kind"] not in ("CronJob", "Pod"), f"{d['kind']}: its pod spec is elsewhere; extend pod_specs"
        if d["kind"] in WORKLOADS:
            yield d, d["spec"]["template"]["spec"]


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def kubernetes_validate(manifest: str, version: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KUBERNETES_VALIDATE, "--strict", "-k", version, "-"],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_valid(manifest: str, version: str) -> None:
    """Every object passes strict validation; only ServiceMonitors (validated separately) may be
    skipped, and nothing is skipped silently: kubernetes-validate only *warns* about kinds it has
    no schema for and exits 0, so each object must be named in an INFO passed line."""
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    assert docs
    out = kubernetes_validate(manifest, version)
    assert out.returncode == 0, out.stdout + out.stderr
    passed = set(re.findall(r"^INFO - passed for resource (\S+) against version", out.stdout, re.M))
    warned = [line for line in out.stdout.splitlines() if line.startswith("WARN")]
    expected = {f"{d['kind'].lower()}/{d['metadata']['name']}" for d in docs if d["kind"] != "ServiceMonitor"}
    assert passed == expected, (passed ^ expected, out.stdout)
    monitors = sum(d["kind"] == "ServiceMonitor" for d in docs)
    assert len(warned) == monitors and all("ServiceMonitor" in w for w in warned), warned
    assert f"against version {version.rsplit('.', 1)[0]}" in out.stdout


# --- the real tools: helm lint, kubernetes-validate, the ServiceMonitor CRD schema -------------------


def test_helm_lint_strict_passes_with_defaults_and_with_every_toggle_on(helm, all_on):
    for args in ([], ["-f", str(all_on)]):
        out = subprocess.run([helm, "lint", "--strict", str(CHART), *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("toggles", ["defaults", "all-on"])
def test_rendered_manifests_validate_strictly(helm, all_on, toggles, version):
    args = ["-f", str(all_on)] if toggles == "all-on" else []
    manifest = helm_template(helm, *args, kube=version).stdout
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    if toggles == "all-on":
        assert {"ServiceMonitor", "PersistentVolumeClaim"} <= kinds
    assert_valid(manifest, version)


def test_several_control_plane_replicas_on_postgresql_roll_one_by_one_and_share_redis(helm):
    manifest = helm_template(
        helm,
        "--set",
        "controlPlane.replicas=3",
        "--set",
        "controlPlane.databaseUrl=postgresql://relaygate:pw@db:5432/relaygate",
        "--set",
        "controlPlane.redisUrl=redis://:pw@redis:6379/0",
    ).stdout
    assert_valid(manifest, K8S_VERSIONS[-1])
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    cp = one(docs, "Deployment", "relaygate-controlplane")
    assert cp["spec"]["replicas"] == 3 and cp["spec"]["strategy"]["type"] == "RollingUpdate"
    [container] = cp["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RELAYGATE_CP_DATABASE_URL_FILE"] == "/run/secrets/relaygate-db/database-url"
    assert env["RELAYGATE_CP_REDIS_URL_FILE"] == "/run/secrets/relaygate-db/redis-url"
    assert "pw@" not in yaml.safe_dump(cp)  # the URLs' passwords stay in the Secret
    db = next(v for v in cp["spec"]["template"]["spec"]["volumes"] if v["name"] == "database")
    assert {i["key"] for i in db["secret"]["items"]} == {"database-url", "redis-url"}
    data = next(v for v in cp["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert "emptyDir" in data  # nothing a replica keeps on disk matters with PostgreSQL


def test_the_validator_rejects_an_unknown_field(helm, all_on):
    """A control: --strict really rejects what the API server's strict field validation would."""
    docs = render(helm, "-f", str(all_on))
    demo = copy.deepcopy(one(docs, "Deployment", "relaygate-demo"))
    demo["spec"]["template"]["spec"]["containers"][1]["securityContext"]["readOnlyRootFilesytem"] = True
    for version in K8S_VERSIONS:
        out = kubernetes_validate(yaml.safe_dump(demo), version)
        assert out.returncode != 0 and "readOnlyRootFilesytem" in out.stdout, out.stdout


def strict(schema):
    """The CRD schema as the API server applies it with strict field validation: an object that
    lists its properties admits no others (unless it preserves unknown fields)."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def test_servicemonitors_match_the_prometheus_operator_crd_and_scrape_real_ports(helm, all_on):
    schema = strict(json.loads(SERVICEMONITOR_SCHEMA.read_text()))
    validator = jsonschema.Draft7Validator(schema)
    docs = render(helm, "-f", str(all_on))
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"] for m in monitors} == {"relaygate-controlplane", "relaygate-gateway"}
    for m in monitors:
        errors = [e.message for e in validator.iter_errors(m)]
        assert not errors, (m["metadata"]["name"], errors)
        assert m["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # Controls: the strict schema rejects a misspelt field and a bad enum value.
    bad = copy.deepcopy(monitors[0])
    bad["spec"]["endpoints"][0]["pathh"] = "/metrics"
    assert any("pathh" in e.message for e in validator.iter_errors(bad))
    bad = copy.deepcopy(monitors[0])
    bad["spec"]["endpoints"][0]["scheme"] = "ftp"
    assert list(validator.iter_errors(bad))

    # What is scraped: each endpoint names a port of a Service the monitor selects, and that
    # Service's targetPort is a container port of the pods it selects, serving that path.
    scraped = set()
    services = [d for d in docs if d["kind"] == "Service"]
    pods = [spec | {"labels": d["spec"]["template"]["metadata"]["labels"]} for d, spec in pod_specs(docs)]
    for m in monitors:
        assert m["spec"]["namespaceSelector"] == {"matchNames": ["relaygate"]}
        [svc] = [s for s in services if selects(m["spec"]["selector"], s["metadata"]["labels"])]
        for ep in m["spec"]["endpoints"]:
            [port] = [p for p in svc["spec"]["ports"] if p["name"] == ep["port"]]
            targets = [p for p in pods if selects({"matchLabels": svc["spec"]["selector"]}, p["labels"])]
            assert targets, svc["metadata"]["name"]
            for pod in targets:
                [container] = [
                    c for c in pod["containers"] if port["targetPort"] in {p["name"] for p in c.get("ports", [])}
                ]
                number = next(p["containerPort"] for p in container["ports"] if p["name"] == port["targetPort"])
                scraped.add((container["name"], number, ep["path"]))
    assert scraped == {
        ("controlplane", 8090, "/metrics"),
        ("policy", 9464, "/metrics"),
        ("envoy", 8082, "/stats/prometheus"),
    }


def _relabel(labels: dict[str, str], configs: list[dict]) -> dict[str, str]:
    """Prometheus' `replace` relabeling (the only action the chart uses), with its defaults."""
    out = dict(labels)
    for rc in configs:
        assert rc.get("action", "replace").lower() == "replace", rc
        value = rc.get("separator", ";").join(out.get(s, "") for s in rc.get("sourceLabels", []))
        m = re.fullmatch(rc.get("regex", "(.*)"), value)
        if m:
            out[rc["targetLabel"]] = m.expand(rc.get("replacement", "$1").replace("$", "\\"))
    return out


def test_servicemonitors_set_the_job_names_the_alert_rules_and_compose_use(helm, all_on):
    """Prometheus Operator sets `job` to the Service's name before an endpoint's relabelings run;
    the chart's relabelings must turn each endpoint into the job prometheus/alerts.yml selects (the
    `up` alerts), which are also compose/prometheus.yml's jobs."""
    docs = render(helm, "-f", str(all_on))
    services = [d for d in docs if d["kind"] == "Service"]
    jobs: dict[str, str] = {}
    bare: dict[str, str] = {}  # what the operator alone would set
    for m in (d for d in docs if d["kind"] == "ServiceMonitor"):
        [svc] = [s for s in services if selects(m["spec"]["selector"], s["metadata"]["labels"])]
        for ep in m["spec"]["endpoints"]:
            operator = {"job": svc["metadata"]["name"], "__tmp_prometheus_job_name": m["metadata"]["name"]}
            jobs[ep["port"]] = _relabel(operator, ep.get("relabelings", []))["job"]
            bare[ep["port"]] = operator["job"]
    assert jobs == {
        "api": "relaygate-controlplane",
        "policy-metrics": "relaygate-policy",
        "envoy-stats": "relaygate-envoy",
    }
    rules = (ROOT / "prometheus" / "alerts.yml").read_text()
    named = set(re.findall(r'job="([^"]+)"', rules))
    compose = yaml.safe_load((ROOT / "compose" / "prometheus.yml").read_text())
    assert named and named <= set(jobs.values())
    assert set(jobs.values()) == {j["job_name"] for j in compose["scrape_configs"]}
    # Control: without the relabelings the policy container and Envoy share their Service's name.
    assert bare["policy-metrics"] == bare["envoy-stats"] and not named <= set(bare.values())


# --- what the manifests must mean ---------------------------------------------------------------------


def test_every_container_runs_non_root_with_a_read_only_root_filesystem(helm, all_on):
    docs = render(helm, "-f", str(all_on))
    seen = []
    for d, spec in pod_specs(docs):
        pod_sc = spec.get("securityContext", {})
        assert spec["automountServiceAccountToken"] is False, d["metadata"]["name"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            where = f"{d['metadata']['name']}/{c['name']}"
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            assert sc.get("runAsUser", pod_sc.get("runAsUser")) == 10001, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc["capabilities"].get("add"), where
            assert sc.get("seccompProfile", pod_sc.get("seccompProfile")) == {"type": "RuntimeDefault"}, where
            seen.append(where)
    assert sorted(seen) == [
        "relaygate-controlplane/controlplane",
        "relaygate-demo/app",
        "relaygate-demo/envoy",
        "relaygate-demo/policy",
        "relaygate-provider-sim/provider-sim",
    ]


def secret_values(docs: list[dict]) -> dict[str, str]:
    values = {}
    for d in docs:
        if d["kind"] == "Secret":
            assert "stringData" not in d
            for k, v in d["data"].items():
                values[f"{d['metadata']['name']}/{k}"] = base64.b64decode(v).decode()
    return values


def test_secret_values_appear_only_in_secrets(helm, all_on):
    out = helm_template(helm, "-f", str(all_on)).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    secrets = secret_values(docs)
    assert set(secrets) == {
        "relaygate-connections/database-url",
        "relaygate-connections/redis-url",
        "relaygate-credentials/admin-token",
        "relaygate-credentials/fleet-token",
        "relaygate-credentials/master-key",
        "relaygate-provider-sim/credential",
    }
    assert DB_PASSWORD in secrets["relaygate-connections/database-url"]
    assert len(base64.b64decode(secrets["relaygate-credentials/master-key"])) == 32
    # Also the passwords alone, in case a template split a URL.
    needles = [*secrets.values(), DB_PASSWORD, REDIS_PASSWORD]
    configmaps = [d for d in docs if d["kind"] == "ConfigMap"]
    assert configmaps
    for cm in configmaps:
        for key, value in cm["data"].items():
            assert not any(n in value or n in key for n in needles), f"ConfigMap {cm['metadata']['name']}/{key}"
    # Nor anywhere else outside a Secret: env values, args, annotations, comments.
    for text in out.split("\n---\n"):
        doc = yaml.safe_load(text)
        if doc and doc["kind"] != "Secret":
            assert not any(n in text for n in needles), f"{doc['kind']}/{doc['metadata']['name']}"
    # Secrets reach containers as files, not env values; the gateway pair mounts only the fleet
    # token, never the admin token or the master key.
    for d, spec in pod_specs(docs):
        for c in spec["containers"]:
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                assert not ref or c["name"] == "provider-sim", f"{d['metadata']['name']}/{c['name']} {e['name']}"
    demo = one(docs, "Deployment", "relaygate-demo")["spec"]["template"]["spec"]
    secret_items = {
        (v["secret"]["secretName"], i["key"]) for v in demo["volumes"] if "secret" in v for i in v["secret"]["items"]
    }
    assert secret_items == {("relaygate-credentials", "fleet-token"), ("relaygate-connections", "redis-url")}


def test_generated_credentials_have_no_fixed_default_and_existing_secrets_replace_them(helm, all_on):
    """Two renders without a cluster generate different tokens (nothing is a constant in the chart);
    with existing Secrets named, the chart renders no Secret at all and mounts the named ones."""
    first = secret_values(render(helm))
    second = secret_values(render(helm))
    for key in ("relaygate-credentials/admin-token", "relaygate-credentials/fleet-token"):
        assert first[key] != second[key] and len(first[key]) >= 50
    assert first["relaygate-credentials/admin-token"].startswith("rg_admin_")
    assert first["relaygate-credentials/master-key"] != second["relaygate-credentials/master-key"]
    assert not any(v in (CHART / "values.yaml").read_text() for v in first.values())

    docs = render(
        helm,
        "-f",
        str(all_on),
        "--set",
        "controlPlane.credentials.existingSecret=my-credentials",
        "--set",
        "controlPlane.existingSecret=my-connections",
        "--set",
        "providerSim.existingSecret=my-sim",
    )
    assert [d for d in docs if d["kind"] == "Secret"] == []
    cp = one(docs, "Deployment", "relaygate-controlplane")["spec"]["template"]["spec"]
    mounted = {v["name"]: v["secret"]["secretName"] for v in cp["volumes"] if "secret" in v}
    assert mounted == {"credentials": "my-credentials", "database": "my-connections"}
    [cp_container] = cp["containers"]
    assert env_of(cp_container)["RELAYGATE_CP_DATABASE_URL_FILE"] == "/run/secrets/relaygate-db/database-url"
    demo = one(docs, "Deployment", "relaygate-demo")["spec"]["template"]["spec"]
    assert {v["secret"]["secretName"] for v in demo["volumes"] if "secret" in v} == {"my-credentials", "my-connections"}


def test_the_gateway_pods_two_containers_share_the_socket_directory(helm, all_on):
    docs = render(helm, "-f", str(all_on))
    spec = one(docs, "Deployment", "relaygate-demo")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    containers = {c["name"]: c for c in spec["containers"]}
    mounts = {name: {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])} for name, c in containers.items()}
    shared = mounts["envoy"]["/run/relaygate"]
    assert shared == mounts["policy"]["/run/relaygate"]
    assert "emptyDir" in volumes[shared]
    assert "/run/relaygate" not in mounts["app"]
    policy_env = env_of(containers["policy"])
    assert policy_env["RELAYGATE_EXTPROC_LISTEN"] == "unix:/run/relaygate/extproc.sock"
    assert policy_env["RELAYGATE_AUTHZ_LISTEN"] == "unix:/run/relaygate/authz.sock"
    # Every path a container writes is a volume (the root filesystem is read-only) ...
    assert set(mounts["envoy"]) == {"/run/relaygate", "/tmp"}
    assert {"/run/relaygate", "/tmp", "/var/lib/relaygate"} <= set(mounts["policy"])
    assert policy_env["RELAYGATE_DATA_DIR"] == "/var/lib/relaygate"
    # ... and what the policy container reads as files is mounted where the env says.
    for var, path in [
        ("RELAYGATE_CONTROL_PLANE_KEY", "/etc/relaygate/control-plane/bundle-signing.pub"),
        ("RELAYGATE_FLEET_TOKEN_FILE", "/run/secrets/relaygate/fleet-token"),
        ("RELAYGATE_LEDGER_URL_FILE", "/run/secrets/relaygate-ledger/redis-url"),
    ]:
        assert policy_env[var] == path
        directory, _, filename = path.rpartition("/")
        volume = volumes[mounts["policy"][directory]]
        source = volume.get("secret") or volume.get("configMap")
        assert [i["path"] for i in source["items"]] == [filename], var
    cm = one(docs, "ConfigMap", "relaygate-bundle-key")
    assert cm["data"]["bundle-signing.pub"].startswith("-----BEGIN PUBLIC KEY-----")
    assert containers["policy"]["args"] == ["--ledger", "redis"]


def test_the_demo_runs_exactly_envoy_and_policy_next_to_the_app_with_consistent_shutdown(helm, bundle_key):
    docs = render(
        helm,
        "--set",
        "gateway.demo.enabled=true",
        "--set-file",
        f"gateway.bundleSigningPublicKey={bundle_key}",
        "--set",
        "gateway.drainSeconds=45",
        "--set",
        "gateway.preStopDelaySeconds=7",
    )
    deployment = one(docs, "Deployment", "relaygate-demo")
    spec = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["app", "envoy", "policy"]
    assert "initContainers" not in spec
    c = {x["name"]: x for x in spec["containers"]}
    assert c["envoy"]["image"] == c["policy"]["image"] == "relaygate/gateway:0.1.0"
    assert c["envoy"]["command"] == ["relaygate-envoy"] and c["policy"]["command"] == ["relaygate-extproc"]
    args = c["envoy"]["args"]
    flags = {}
    for i, a in enumerate(args):
        if a.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            flags[a] = args[i + 1]
    assert "--xds" in args and "--plaintext" in args
    assert flags["--ads"] == "relaygate-controlplane.relaygate.svc:18000"
    assert flags["--health-port"] == "8082" and flags["--listen-port"] == "8080"
    assert flags["--drain-seconds"] == "45"
    assert flags["--node-id"] == "$(RELAYGATE_INSTANCE_ID)"
    assert env_of(c["envoy"])["RELAYGATE_INSTANCE_ID"] == env_of(c["policy"])["RELAYGATE_INSTANCE_ID"]
    ports = {p["name"]: p["containerPort"] for x in spec["containers"] for p in x.get("ports", [])}

    def probe(container, kind):
        get = c[container][kind]["httpGet"]
        return get["path"], ports[get["port"]]

    assert probe("envoy", "readinessProbe") == ("/ready", 8082)
    assert probe("envoy", "livenessProbe") == ("/healthz", 8082)
    assert probe("policy", "readinessProbe") == probe("policy", "livenessProbe") == ("/healthz", 9464)
    assert env_of(c["policy"])["RELAYGATE_ADMIN_PORT"] == "9464"
    assert env_of(c["policy"])["RELAYGATE_ADMIN_HOST"] == "0.0.0.0"
    # Shutdown adds up: Envoy serves for its preStop, then drains; the policy container outlives
    # the drain; the grace period outlives both, with time for the policy container to stop.
    envoy_pre = int(c["envoy"]["lifecycle"]["preStop"]["exec"]["command"][1])
    policy_pre = int(c["policy"]["lifecycle"]["preStop"]["exec"]["command"][1])
    grace = spec["terminationGracePeriodSeconds"]
    assert envoy_pre == 7
    assert policy_pre >= envoy_pre + 45
    assert grace >= policy_pre + 5
    assert grace == 7 + 45 + 15
    # The pod carries the label the gateway NetworkPolicy and the metrics Service select.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["relaygate.io/gateway"] == "relaygate"
    assert selects(deployment["spec"]["selector"], labels)


def test_a_grace_period_too_short_for_the_drain_fails_the_render(helm, bundle_key):
    out = helm_template(
        helm,
        "--set",
        "gateway.demo.enabled=true",
        "--set-file",
        f"gateway.bundleSigningPublicKey={bundle_key}",
        "--set",
        "gateway.terminationGracePeriodSeconds=20",
        ok=False,
    )
    assert out.returncode != 0 and "terminationGracePeriodSeconds 20 is too short" in out.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set-string", "controlPlane.replicas=two"], "at '/controlPlane/replicas': got string, want integer"),
        (["--set", "controlPlane.replicas=-1"], "/controlPlane/replicas"),
        (["--set", "gateway.drainSeconds=soon"], "/gateway/drainSeconds"),
        (["--set", "gateway.ledger.type=etcd"], "/gateway/ledger/type"),
        (["--set", "gateway.egress.providerCidrs={203.0.113.0}"], "/gateway/egress/providerCidrs/0"),
        (["--set", "controlPlane.databaseUrl=mysql://x"], "/controlPlane/databaseUrl"),
        (["--set", "gateway.bundleSigningPublicKey=not-a-pem"], "/gateway/bundleSigningPublicKey"),
        (["--set", "networkPolicy.enable=false"], "additional properties 'enable' not allowed"),
        (["--set", "controlPlane.replicas=2"], "controlPlane.replicas > 1 needs PostgreSQL"),
        (
            [
                "--set",
                "controlPlane.replicas=2",
                "--set",
                "controlPlane.databaseUrl=postgresql://u:p@db/relaygate",
                "--set",
                "controlPlane.persistence.enabled=true",
            ],
            "set controlPlane.persistence.enabled=false",
        ),
        (["--set", "gateway.demo.enabled=true"], "kubectl -n relaygate exec deploy/relaygate-controlplane"),
        (
            ["--set", "gateway.ledger.type=redis", "--set", "gateway.demo.enabled=true", "--set-file", "KEY"],
            "gateway.ledger.type redis needs a Redis URL",
        ),
    ],
)
def test_bad_values_fail_the_render(helm, bundle_key, args, message):
    args = [f"gateway.bundleSigningPublicKey={bundle_key}" if a == "KEY" else a for a in args]
    out = helm_template(helm, *args, ok=False)
    assert out.returncode != 0, out.stdout[:500]
    assert message in out.stderr, out.stderr


def test_network_policies_admit_only_what_they_claim(helm, all_on):
    docs = render(helm, "-f", str(all_on))
    labels = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d, _ in pod_specs(docs)}
    cp_np = one(docs, "NetworkPolicy", "relaygate-controlplane")["spec"]
    gw_np = one(docs, "NetworkPolicy", "relaygate-gateway")["spec"]
    sim_np = one(docs, "NetworkPolicy", "relaygate-provider-sim")["spec"]

    def selected(np):
        return {name for name, lab in labels.items() if selects(np["podSelector"], lab)}

    assert selected(cp_np) == {"relaygate-controlplane"}
    assert selected(gw_np) == {"relaygate-demo"}
    assert selected(sim_np) == {"relaygate-provider-sim"}

    # Control plane: gateway pods on API + xDS; the operator and monitoring namespaces on the API.
    assert cp_np["policyTypes"] == ["Ingress"]
    rules = [
        ([json.dumps(p, sort_keys=True) for p in r["from"]], sorted(p["port"] for p in r["ports"]))
        for r in cp_np["ingress"]
    ]
    gateway_peer = json.dumps({"podSelector": {"matchLabels": {"relaygate.io/gateway": "relaygate"}}}, sort_keys=True)
    assert rules == [
        ([gateway_peer], ["api", "xds"]),
        ([json.dumps({"namespaceSelector": {"matchLabels": {"team": "platform"}}}, sort_keys=True)], ["api"]),
        (
            [
                json.dumps(
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
                    sort_keys=True,
                )
            ],
            ["api"],
        ),
    ]
    assert [p for p in labels if selects(cp_np["ingress"][0]["from"][0]["podSelector"], labels[p])] == [
        "relaygate-demo"
    ]

    # Gateway pods: in, only monitoring on the two metrics ports; out, DNS, the control plane,
    # the provider range and the simulator, nothing else.
    assert gw_np["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = gw_np["ingress"]
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert sorted(p["port"] for p in ingress["ports"]) == [8082, 9464]
    egress = gw_np["egress"]
    assert len(egress) == 4
    dns, cp, providers, sim = egress
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    assert [p for p in labels if selects(cp["to"][0]["podSelector"], labels[p])] == ["relaygate-controlplane"]
    assert sorted(p["port"] for p in cp["ports"]) == [8090, 18000]
    assert providers["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
    assert [p["port"] for p in providers["ports"]] == [443]
    assert [p for p in labels if selects(sim["to"][0]["podSelector"], labels[p])] == ["relaygate-provider-sim"]

    # The simulator answers gateway pods only and reaches nothing.
    assert sim_np["policyTypes"] == ["Ingress", "Egress"] and "egress" not in sim_np
    [sim_in] = sim_np["ingress"]
    assert [p for p in labels if selects(sim_in["from"][0]["podSelector"], labels[p])] == ["relaygate-demo"]

    # Off means off.
    off = render(helm, "-f", str(all_on), "--set", "networkPolicy.enabled=false")
    assert not [d for d in off if d["kind"] == "NetworkPolicy"]


def test_selectors_of_services_and_disruption_budgets_match_their_pods(helm, all_on):
    docs = render(helm, "-f", str(all_on))
    labels = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d, _ in pod_specs(docs)}

    def targets(selector):
        return sorted(name for name, lab in labels.items() if selects(selector, lab))

    assert targets(one(docs, "PodDisruptionBudget", "relaygate-controlplane")["spec"]["selector"]) == [
        "relaygate-controlplane"
    ]
    demo_pdb = one(docs, "PodDisruptionBudget", "relaygate-demo")["spec"]
    assert targets(demo_pdb["selector"]) == ["relaygate-demo"] and demo_pdb["minAvailable"] == 1
    for svc, expected in [
        ("relaygate-controlplane", ["relaygate-controlplane"]),
        ("relaygate-gateway-metrics", ["relaygate-demo"]),
        ("relaygate-provider-sim", ["relaygate-provider-sim"]),
    ]:
        assert targets({"matchLabels": one(docs, "Service", svc)["spec"]["selector"]}) == expected, svc
    cp = one(docs, "Deployment", "relaygate-controlplane")
    assert cp["spec"]["replicas"] == 1 and cp["spec"]["strategy"] == {"type": "Recreate"}
    [container] = cp["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "api"}
    claim = one(docs, "PersistentVolumeClaim", "relaygate-controlplane-data")
    data = next(v for v in cp["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_notes_warn_about_an_emptydir_data_directory(helm, tmp_path):
    """NOTES.txt, rendered by a client-only dry run (no cluster): the emptyDir warning appears
    exactly when the data directory is not persistent."""

    def notes(*args):
        out = subprocess.run(
            [helm, "install", "relaygate", str(CHART), "-n", "relaygate", "--dry-run=client", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split("NOTES:", 1)[1]

    default = notes()
    assert "WARNING: the control plane's data directory is an emptyDir" in default
    assert "SQLite database lives there too" in default
    assert "exec deploy/relaygate-controlplane -c controlplane -- cat /var/lib/relaygate-cp/bundle-signing.pub" in (
        default
    )
    assert "emptyDir" not in notes("--set", "controlPlane.persistence.enabled=true")


# --- the sidecar pair from another chart, and the README's plain-YAML snippet --------------------------


def readme_snippet() -> dict:
    text = (CHART / "README.md").read_text()
    block = re.search(
        r"<!-- sidecar-pair-snippet: begin -->\n```yaml\n(.*?)```\n<!-- sidecar-pair-snippet: end -->", text, re.S
    )
    assert block, "README.md lost its sidecar-pair snippet markers"
    return yaml.safe_load(block.group(1))


def test_another_chart_includes_the_pair_exactly_as_the_readme_snippet_shows(helm, tmp_path):
    parent = tmp_path / "myapp"
    (parent / "templates").mkdir(parents=True)
    shutil.copytree(CHART, parent / "charts" / "relaygate")
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: myapp\nversion: 1.0.0\ndependencies:\n  - name: relaygate\n    version: 0.1.0\n"
    )
    (parent / "values.yaml").write_text(
        yaml.safe_dump(
            {
                "relaygate": {
                    "serviceAccount": {"create": False},
                    "controlPlane": {"enabled": False},
                    "gateway": {
                        "controlPlaneUrl": "http://relaygate-controlplane.relaygate.svc:8090",
                        "xdsAddress": "relaygate-controlplane.relaygate.svc:18000",
                        "fleetTokenSecret": {"name": "relaygate-fleet-token"},
                        "bundleSigningPublicKeyConfigMap": "relaygate-bundle-key",
                    },
                }
            }
        )
    )
    # The pod template as README.md tells another chart to write it.
    (parent / "templates" / "deployment.yaml").write_text(
        """apiVersion: apps/v1
kind: Deployment
metadata:
  name: myapp
spec:
  selector:
    matchLabels:
      app: myapp
  template:
    metadata:
      labels:
        app: myapp
        {{- include "relaygate.gateway.podLabels" .Subcharts.relaygate | nindent 8 }}
    spec:
      terminationGracePeriodSeconds: {{ include "relaygate.gateway.terminationGracePeriodSeconds" .Subcharts.relaygate }}
      containers:
        - name: app
          image: example/app:1
        {{- include "relaygate.gateway.containers" .Subcharts.relaygate | nindent 8 }}
      volumes:
        {{- include "relaygate.gateway.volumes" .Subcharts.relaygate | nindent 8 }}
"""
    )
    for version in K8S_VERSIONS:
        out = subprocess.run(
            [helm, "template", "relaygate", str(parent), "-n", "apps", "--kube-version", version],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert_valid(out.stdout, version)
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    # The subchart with controlPlane.enabled false renders no control plane and no credentials.
    assert not [d for d in docs if d["kind"] == "Secret" or "controlplane" in d["metadata"]["name"]]
    rendered = one(docs, "Deployment", "myapp")["spec"]["template"]

    snippet = readme_snippet()
    for version in K8S_VERSIONS:
        assert_valid(yaml.safe_dump(snippet), version)
    documented = snippet["spec"]["template"]
    assert documented["metadata"]["labels"] == rendered["metadata"]["labels"]
    for key in ("terminationGracePeriodSeconds", "volumes"):
        assert documented["spec"][key] == rendered["spec"][key], key
    assert [c["name"] for c in documented["spec"]["containers"]] == ["app", "envoy", "policy"]
    assert documented["spec"]["containers"][1:] == rendered["spec"]["containers"][1:]


# --- values.yaml, values.schema.json and README.md agree ---------------------------------------------------


def schema_paths(schema: dict, node: dict, prefix: str = ""):
    """Dotted paths of the values: inline objects are descended, anything else (a $ref to a
    shared definition such as an image, resources or a label selector, a scalar, a list) is one
    documented value."""
    for key, sub in node["properties"].items():
        path = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub and "$ref" not in sub:
            yield from schema_paths(schema, sub, path + ".")
        else:
            yield path


def test_values_schema_and_readme_describe_the_same_values():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(values)]
    assert not errors
    paths = [p for p in schema_paths(schema, schema) if p != "global"]
    for path in paths:  # every value has a default in values.yaml ...
        node = values
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, f"{path} missing from values.yaml"
            node = node[part]
    readme = (CHART / "README.md").read_text()
    table = {m for m in re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, re.M)}
    assert set(paths) == table, {"undocumented": set(paths) - table, "not values": table - set(paths)}
