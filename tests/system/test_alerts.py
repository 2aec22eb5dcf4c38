"""prometheus/: the alert rules and the Alertmanager example, checked by the real tools and against the code.

`promtool check rules` and `promtool test rules` (prometheus/alerts_test.yml) must pass, and
`amtool check-config` accept the Alertmanager example; broken copies must fail them (bad PromQL,
a unit test expecting the wrong labels), and so must every alert weakened or disabled one at a
time, so the unit tests are not hollow. Every relaygate_* series the rules name is one relaygate
exports (read from prometheus_client's registry: nothing is started), and every job they name
is one that compose/prometheus.yml and devstack/prometheus.py scrape.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "prometheus"
RULES = PROM / "alerts.yml"
UNIT = PROM / "alerts_test.yml"
AM_EXAMPLE = PROM / "alertmanager.example.yml"
METRIC = re.compile(r"(?<![A-Za-z0-9_:])relaygate_[A-Za-z0-9_]+")


def tool(name: str) -> str:
    exe = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    package = "prometheus-alertmanager" if name == "amtool" else "prometheus"
    assert exe, f"{name} (Debian package {package}) is installed by make test"
    return exe


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=120)


def rules() -> dict:
    return yaml.safe_load(RULES.read_text())


def alerts(doc: dict | None = None) -> dict[str, dict]:
    doc = doc or rules()
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def unit_test(rules_doc: dict, tmp: Path, unit_text: str | None = None) -> subprocess.CompletedProcess:
    """`promtool test rules` on a copy of the unit tests next to ``rules_doc`` written as alerts.yml."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "alerts.yml").write_text(yaml.safe_dump(rules_doc, sort_keys=False))
    (tmp / "alerts_test.yml").write_text(UNIT.read_text() if unit_text is None else unit_text)
    return run(tool("promtool"), "test", "rules", "alerts_test.yml", cwd=tmp)


# -- the tools accept what is shipped, and refuse broken copies -------------------------------


def test_promtool_checks_the_rules():
    r = run(tool("promtool"), "check", "rules", RULES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_refuses_bad_promql(tmp_path):
    doc = rules()
    a = alerts(doc)["RelaygateCallErrorRate"]
    a["expr"] = a["expr"].replace("> 0.05", "> 0.05)")  # an unbalanced parenthesis
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    r = run(tool("promtool"), "check", "rules", tmp_path / "alerts.yml")
    assert r.returncode != 0
    assert "parse error" in r.stdout + r.stderr


def test_promtool_unit_tests_pass():
    r = run(tool("promtool"), "test", "rules", UNIT.name, cwd=PROM)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_unit_tests_fail_on_wrong_labels(tmp_path):
    text = UNIT.read_text()
    first = re.search(r"alertname: RelaygatePolicySidecarDown\n\s+exp_alerts:\n(.*?)severity: critical", text, re.S)
    assert first, "the unit tests expect RelaygatePolicySidecarDown with severity critical"
    broken = text[: first.end()].removesuffix("critical") + "warning" + text[first.end() :]
    r = unit_test(rules(), tmp_path, broken)
    assert r.returncode != 0
    assert "RelaygatePolicySidecarDown" in r.stdout + r.stderr


def test_every_alert_is_unit_tested():
    text = UNIT.read_text()
    tested = set(re.findall(r"alertname: (\w+)", text))
    assert set(alerts()) <= tested
    # ... each with an expected firing instance (its exp_labels name the alert's severity) ...
    for name, rule in alerts().items():
        firing = re.findall(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels:", text)
        assert firing, f"no unit test expects {name} to fire"
    # ... and every recording rule has a checked value.
    recorded = {r["record"] for g in rules()["groups"] for r in g["rules"] if "record" in r}
    checked = set(re.findall(r"labels: '(relaygate:[a-z0-9_:]+)\{", text))
    assert {"relaygate:calls_5xx_or_unmatched:ratio_rate5m", "relaygate:call_outcomes_5xx:ratio_rate5m"} <= checked
    assert checked <= recorded


def test_every_alert_has_severity_summary_description_and_for():
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert "Runbook" in rule["annotations"]["description"], name
        assert rule.get("for"), name


# Each alert weakened (a guard or threshold loosened, a selector widened): its unit tests must
# catch every one, i.e. they include series that must not fire on the real rule. (old, new) edits
# the alert's expr; (record, old, new) the recording rule it reads.
LOOSENED = {
    "RelaygatePolicySidecarDown": [('up{job="relaygate-policy"}', "up")],
    "RelaygateEnvoyDown": [('up{job="relaygate-envoy"} == 0', 'min_over_time(up{job="relaygate-envoy"}[5m]) == 0')],
    "RelaygateControlPlaneDown": [("== 0", "< 2")],
    "RelaygateFailingClosed": [("> 0.2", "> 0.05"), (">= 10", ">= 0")],
    "RelaygatePolicyCallsFailing": [
        ("> 0.05", "> 0.005"),
        (">= 10", ">= 0"),
        ("relaygate:envoy_policy_call_failures:rate5m", ', envoy_http_conn_manager_prefix="gateway"', ""),
        ("relaygate:envoy_requests:rate5m", '{envoy_http_conn_manager_prefix="gateway"}', ""),
    ],
    "RelaygateCallErrorRate": [("> 0.05", "> 0.01"), (">= 10", ">= 0")],
    "RelaygatePolicyErrors": [('{code="policy.error"}', "")],
    "RelaygateSpoolBacklog": [("> 900", "> 700")],
    "RelaygateSpoolSweepStalled": [("> 3900", "> 900")],
    "RelaygateReceiptsNotShipped": [
        ("and delta(relaygate_receipts_unshipped[30m]) > 0", ""),
        ("and increase(relaygate_receipts_shipped_total[30m]) == 0", ""),
        ("and relaygate_policy_bundle_last_success_timestamp_seconds > 0", ""),
    ],
    "RelaygatePolicyBundleStale": [("and relaygate_policy_bundle_last_success_timestamp_seconds > 0", "")],
    "RelaygatePolicyBundlePollsFailing": [("> 2", "> 0")],
    "RelaygateControlPlaneErrors": [
        ("> 0.05", "> 0.001"),
        (">= 5", ">= 0"),
        ("relaygate:cp_requests_5xx:rate5m", '=~"5.."', '=~"[45].."'),
    ],
    "RelaygateEvidenceEmissionLow": [
        ("< 0.8", "< 0.95"),
        (">= 20", ">= 0"),
        ("and relaygate_policy_bundle_last_success_timestamp_seconds > 0", ""),
    ],
    "RelaygateBudgetNearExhaustion": [("> 0.9", "> 0.5")],
    "RelaygateXdsConfigRejected": [("> 0", ">= 0")],
    "RelaygateReceiptsRejected": [('{result="rejected"}', '{result=~"rejected|deferred"}')],
    "RelaygateCheckpointStale": [
        ("> 900", "> 300"),
        ("and relaygate_cp_merkle_tree_size > relaygate_cp_checkpoint_tree_size", ""),
        (
            "(relaygate_cp_checkpoint_timestamp_seconds > 0 or process_start_time_seconds)",
            "relaygate_cp_checkpoint_timestamp_seconds",
        ),
    ],
    "RelaygateNoLogWriter": [("== 0", "< 2"), ("sum by (job)", "min by (job)")],
    "RelaygateEvidenceJobsFailing": [('{result="failed"}', "")],
    "RelaygateDeploymentRolledBack": [('{result="failed"}', '{result=~"failed|passed"}')],
    "RelaygateDeploymentFailed": [('{status="failed"}', '{status=~"failed|rolled_back"}')],
}


def _mutants() -> list[tuple[str, dict]]:
    out = []
    names = set(alerts())
    assert set(LOOSENED) == names, "every alert needs its weakened variants here"
    for name in sorted(names):
        for kind in ("never fires", "no for:"):
            doc = rules()
            a = alerts(doc)[name]
            if kind == "never fires":
                a["expr"] = "vector(1) > 2"
            else:
                del a["for"]
            out.append((f"{name}: {kind}", doc))
        for edit in LOOSENED[name]:
            doc = rules()
            where, old, new = edit if len(edit) == 3 else (name, *edit)
            (rule,) = [r for g in doc["groups"] for r in g["rules"] if where in (r.get("alert"), r.get("record"))]
            assert old in rule["expr"], f"{where}: {old!r} is not in its expr any more"
            rule["expr"] = rule["expr"].replace(old, new)
            out.append((f"{name}: {'' if where == name else where + ': '}{old!r} -> {new!r}", doc))
    return out


def test_unit_tests_catch_every_weakened_or_disabled_alert(tmp_path):
    mutants = _mutants()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda im: unit_test(im[1][1], tmp_path / str(im[0])), enumerate(mutants)))
    survived = [label for (label, _), r in zip(mutants, results) if r.returncode == 0]
    assert not survived, f"the unit tests pass with these alerts broken: {survived}"
    # The mutants failed on their assertions, not on a rule file promtool could not read.
    assert all("FAILED" in r.stdout + r.stderr for r in results)


# -- Alertmanager ------------------------------------------------------------------------------


def test_amtool_checks_the_alertmanager_example():
    r = run(tool("amtool"), "check-config", AM_EXAMPLE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_amtool_refuses_a_broken_alertmanager_config(tmp_path):
    doc = yaml.safe_load(AM_EXAMPLE.read_text())
    doc["route"]["routes"][0]["receiver"] = "nobody"  # a receiver that is not defined
    (tmp_path / "am.yml").write_text(yaml.safe_dump(doc))
    r = run(tool("amtool"), "check-config", tmp_path / "am.yml")
    assert r.returncode != 0
    assert "nobody" in r.stdout + r.stderr


@pytest.mark.parametrize(
    "severity, receiver", [("critical", "relaygate-pager"), ("warning", "relaygate-tickets"), ("", "relaygate-tickets")]
)
def test_alertmanager_example_routes_by_severity(severity, receiver):
    labels = ["alertname=RelaygatePolicySidecarDown"] + ([f"severity={severity}"] if severity else [])
    r = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={AM_EXAMPLE}",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_alertmanager_example_names_real_alerts_and_severities():
    doc = yaml.safe_load(AM_EXAMPLE.read_text())
    names, severities = set(alerts()), {a["labels"]["severity"] for a in alerts().values()}
    matchers = [m for rule in doc["inhibit_rules"] for m in rule["source_matchers"] + rule["target_matchers"]]
    matchers += [m for route in doc["route"]["routes"] for m in route["matchers"]]
    for m in matchers:
        label, value = re.fullmatch(r'(\w+)=~?"(.*)"', m).groups()
        for v in value.split("|"):
            assert v in (names if label == "alertname" else severities), m
    # The sidecar being down inhibits the error-rate alerts of the same target.
    down = [r for r in doc["inhibit_rules"] if r["source_matchers"] == ['alertname="RelaygatePolicySidecarDown"']]
    assert down and {"job", "instance"} <= set(down[0]["equal"])
    assert {"RelaygateFailingClosed", "RelaygateCallErrorRate"} <= set(
        re.fullmatch(r'alertname=~"(.*)"', down[0]["target_matchers"][0]).group(1).split("|")
    )


# -- the rules name what relaygate exports, and the jobs Prometheus scrapes ---------------------


def exported_names() -> set[str]:
    """Every series name relaygate's processes expose, from prometheus_client's registry."""
    import prometheus_client

    import relaygate.controlplane.app  # noqa: F401
    import relaygate.extproc.metrics  # noqa: F401
    import relaygate.extproc.preauth_sampler  # noqa: F401

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
        "stateset": ("",),
        "enum": ("",),
    }
    return {m.name + s for m in prometheus_client.REGISTRY.collect() for s in suffixes.get(m.type, ("",))}


def test_rules_use_only_metrics_relaygate_exports():
    doc = rules()
    used = set()
    for group in doc["groups"]:
        for rule in group["rules"]:
            used |= set(METRIC.findall(rule["expr"]))
            for text in rule.get("annotations", {}).values():  # the runbook hints name series too
                used |= set(METRIC.findall(text))
    exported = exported_names()
    assert {"relaygate_call_outcomes_total", "relaygate_cp_requests_total"} <= used  # the parse found them
    assert used - exported == set(), f"not exported by relaygate: {sorted(used - exported)}"


def test_rules_name_the_jobs_prometheus_scrapes():
    from devstack.prometheus import JOBS

    named = {j for g in rules()["groups"] for r in g["rules"] for j in re.findall(r'job="([^"]+)"', r["expr"])}
    compose = yaml.safe_load((ROOT / "compose" / "prometheus.yml").read_text())
    assert named == set(JOBS) == {job["job_name"] for job in compose["scrape_configs"]}
