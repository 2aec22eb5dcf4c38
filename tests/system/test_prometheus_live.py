"""A real Prometheus (devstack/prometheus.py) scraping a real stack with prometheus/alerts.yml loaded.

The stack is a gateway driven by a control plane (tests.conftest.start_full_stack); Prometheus
scrapes the sidecar's admin port, the control plane's /metrics over TLS (the stack's CA) and
Envoy's admin /stats/prometheus every second, and evaluates the rules every second. Calls made
through the gateway must show up in Prometheus with their exact counts, every rule must evaluate
without error on the real series and none fire on a healthy stack; a sidecar killed must fire
RelaygatePolicySidecarDown, and the calls Envoy then refuses RelaygatePolicyCallsFailing. A
second gateway with two policy workers (ext_authz transport), one of them killed, must fire
RelaygateFailingClosed from the surviving worker's counts. The rule file loaded is alerts.yml
with only its `for:` durations set to 0s, so the rules tested are the shipped ones without
their waiting.
"""

from __future__ import annotations

import copy
import re
import shutil
import signal
import time

import pytest
import yaml

from devstack.processes import Stack
from devstack.prometheus import JOBS, RULES, PrometheusServer, stack_targets
from tests.conftest import POLICY_DIR, start_full_stack, write_config
from tests.cpclient import eventually
from tests.httpcall import chat_body, curl

CALLS = 3  # allowed chat completions after the first


def fast_rules() -> tuple[dict, dict]:
    """(alerts.yml, the same with every `for:` set to 0s)."""
    real = yaml.safe_load(RULES.read_text())
    fast = copy.deepcopy(real)
    for group in fast["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    return real, fast


def without_for(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    return doc


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "prom")
    stack.tokens = tokens
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def prom(stack, tmp_path_factory):
    base = tmp_path_factory.mktemp("prometheus")
    real, fast = fast_rules()
    assert without_for(fast) == without_for(real)  # only the waiting differs
    rules = base / "alerts-for-0s.yml"
    rules.write_text(yaml.safe_dump(fast, sort_keys=False))
    server = PrometheusServer(base / "server")
    server.rules = [rules]
    try:
        server.start(stack_targets(stack), server.rules, interval=1)
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def workers_stack(tmp_path_factory):
    """A standalone gateway with two policy workers behind Envoy's ext_proc cluster (the full
    stack's Envoy, configured over xDS, uses ext_authz: between them, both transports)."""
    tmp = tmp_path_factory.mktemp("prom-workers")
    tokens = write_config(tmp / "config")
    stack = Stack(
        tmp / "run",
        config_dir=tmp / "config",
        policy_dir=POLICY_DIR,
        unreachable={"openai-dead"},
        workers=2,
        transport="extproc",
    )
    stack.tokens = tokens
    stack.start()
    yield stack
    stack.stop()


def value(prom: PrometheusServer, promql: str) -> float | None:
    """The single sample of an instant query (None: no sample)."""
    result = prom.query(promql)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def firing(prom: PrometheusServer, name: str | None = None) -> list[dict]:
    alerts = [a for a in prom.api("alerts")["alerts"] if a["state"] == "firing"]
    return [a for a in alerts if a["labels"]["alertname"] == name] if name else alerts


def chat(stack, key: str, model: str = "gpt-4o-mini"):
    headers = {"content-type": "application/json", "authorization": f"Bearer {stack.tokens[key]}"}
    return curl(f"{stack.gateway}/v1/acme/chat/completions", chat_body(model), headers)


def test_prometheus_scrapes_the_stack_and_evaluates_the_rules(stack, prom):
    started = time.monotonic()
    # Every job scraped and up (Prometheus hands targets to its scrapers ~5 s after start).
    up = lambda: {r["metric"]["job"]: r["value"][1] for r in prom.query("up")}  # noqa: E731
    eventually(lambda: up() == {job: "1" for job in JOBS}, 30, "the three jobs up")

    # One call first: its decision creates the series, which Prometheus then sees from 1 on (a
    # series created by its first increment has no earlier sample, so increase() starts there).
    sidecar = f'job="relaygate-policy", instance="127.0.0.1:{stack.extproc_admin_port}"'
    allowed = f'relaygate_decisions_total{{{sidecar}, decision="allow", code="ok"}}'
    assert chat(stack, "acme").status == 200
    eventually(lambda: value(prom, allowed) == 1, 15, "the first decision scraped")
    for _ in range(CALLS):
        assert chat(stack, "acme").status == 200
    denied = chat(stack, "acme-4o")  # a key scoped to gpt-4o asking for gpt-4o-mini
    assert denied.status == 403
    code = denied.json()["error"]["code"]

    expected = {
        allowed: CALLS + 1,
        f'relaygate_decisions_total{{{sidecar}, decision="deny", code="{code}"}}': 1,
        f'sum(relaygate_decisions_total{{{sidecar}, decision="deny"}})': 1,
        f'relaygate_call_outcomes_total{{{sidecar}, status_class="2xx"}}': CALLS + 1,
        f'relaygate_call_outcomes_total{{{sidecar}, status_class="4xx"}}': 1,
        f'relaygate_receipts_total{{{sidecar}, status="complete"}}': CALLS + 2,
        # Shipped to the control plane (the spool empty of unacknowledged receipts).
        f"relaygate_receipts_shipped_total{{{sidecar}}}": CALLS + 2,
        f"relaygate_receipts_unshipped{{{sidecar}}}": 0,
        f"relaygate_spool_pending{{{sidecar}}}": 0,
        f"relaygate_spool_oldest_pending_age_seconds{{{sidecar}}}": 0,
    }
    at_least = {
        f"increase({allowed}[1m])": CALLS,
        f'sum(relaygate_tokens_total{{{sidecar}, workspace="acme", direction="output"}})': 1,
        f'sum(relaygate_call_duration_seconds_count{{{sidecar}, endpoint="chat.completions"}})': CALLS + 2,
        # The control plane, scraped over TLS: the sidecar's bundle polls and receipt batches.
        'sum(relaygate_cp_requests_total{job="relaygate-controlplane", operation="getBundle", status=~"2..|304"})': 1,
        'sum(relaygate_cp_requests_total{job="relaygate-controlplane", operation="ingestReceipts", status="200"})': 1,
        # Envoy's own statistics.
        'envoy_server_live{job="relaygate-envoy"}': 1,
        # The recording rules, evaluated on the real series.
        f"relaygate:call_outcomes:rate5m{{{sidecar}}}": 0.001,
        f"relaygate:calls_5xx_or_unmatched:rate5m{{{sidecar}}}": 0,
    }

    def seen() -> dict:
        got = {q: value(prom, q) for q in [*expected, *at_least]}
        wrong = {q: v for q, v in got.items() if v is None or v != expected.get(q, v) or v < at_least.get(q, v)}
        return {} if not wrong else wrong

    last: dict = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        last = seen()
        if not last:
            break
        time.sleep(0.2)
    assert not last, f"series not as expected after 30s (query: value): {last}"

    # The bundle is fresh: polled within the last minute.
    age = value(prom, f"time() - relaygate_policy_bundle_last_success_timestamp_seconds{{{sidecar}}}")
    assert age is not None and 0 <= age < 60
    assert value(prom, f"relaygate_policy_bundle_last_success_timestamp_seconds{{{sidecar}}}") > 0

    # Every rule of alerts.yml is loaded and evaluates without error on the real series ...
    groups = prom.api("rules")["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    real = yaml.safe_load(RULES.read_text())
    names = {r.get("alert") or r["record"] for g in real["groups"] for r in g["rules"]}
    assert set(loaded) == names
    assert {n: r["health"] for n, r in loaded.items() if r["health"] != "ok"} == {}
    # ... and on a healthy stack none fires, even with for: 0s.
    assert firing(prom) == []
    print(f"scraped and checked in {time.monotonic() - started:.1f}s")


def test_a_killed_sidecar_fires_the_sidecar_down_alert(stack, prom):
    instance = f"127.0.0.1:{stack.extproc_admin_port}"
    eventually(lambda: value(prom, f'up{{job="relaygate-policy", instance="{instance}"}}') == 1, 30, "sidecar up")
    assert firing(prom) == []
    killed = time.monotonic()
    stack.stop_one("extproc", signal.SIGKILL)

    (alert,) = eventually(lambda: firing(prom, "RelaygatePolicySidecarDown"), 20, "RelaygatePolicySidecarDown firing")
    took = time.monotonic() - killed
    assert alert["labels"] == {
        "alertname": "RelaygatePolicySidecarDown",
        "job": "relaygate-policy",
        "instance": instance,
        "severity": "critical",
    }
    assert alert["annotations"]["summary"] == f"relaygate policy sidecar {instance} is down"
    assert instance in alert["annotations"]["description"]
    # Envoy and the control plane are still up: their alerts stay quiet.
    names = {a["labels"]["alertname"] for a in firing(prom)}
    assert not names & {"RelaygateEnvoyDown", "RelaygateControlPlaneDown"}, names
    print(f"RelaygatePolicySidecarDown firing {took:.1f}s after the kill")

    # Envoy fails closed on every call now; it counts the failed ext_proc streams itself.
    replies = [chat(stack, "acme").status for _ in range(15)]
    assert set(replies) == {503}, replies
    envoy = f"127.0.0.1:{stack.envoy_admin_port}"
    (alert,) = eventually(lambda: firing(prom, "RelaygatePolicyCallsFailing"), 20, "RelaygatePolicyCallsFailing")
    assert alert["labels"] == {
        "alertname": "RelaygatePolicyCallsFailing",
        "job": "relaygate-envoy",
        "instance": envoy,
        "severity": "critical",
    }
    assert alert["annotations"]["summary"].startswith(f"Envoy {envoy} cannot get policy decisions for ")


def test_a_dead_policy_worker_fires_failing_closed(stack, workers_stack, prom):
    """One of two workers killed: Envoy answers the calls it sends there 503, the other counts them."""
    gw = workers_stack
    prom.start(stack_targets(gw), prom.rules, interval=1)  # now scraping this gateway (a reload)
    sidecar = f'job="relaygate-policy", instance="127.0.0.1:{gw.extproc_admin_port}"'
    envoy = f'job="relaygate-envoy", instance="127.0.0.1:{gw.envoy_admin_port}"'
    eventually(lambda: value(prom, f"up{{{sidecar}}}") == 1 and value(prom, f"up{{{envoy}}}") == 1, 30, "scraped")
    gw.stop_one("extproc-1", signal.SIGKILL)
    # A first failure creates the 5xx series; once Prometheus has it, every later one counts.
    statuses = []
    five = f'relaygate_call_outcomes_total{{{sidecar}, status_class="5xx"}}'
    while value(prom, five) is None:
        statuses.append(chat(gw, "acme").status)
        assert len(statuses) < 200, "no 5xx outcome counted"
        time.sleep(0.1)
    for _ in range(30):  # paced: Envoy's replies past 10 a second per client are sampled
        statuses.append(chat(gw, "acme").status)
        time.sleep(0.1)
    assert set(statuses) == {200, 503}, statuses
    (alert,) = eventually(lambda: firing(prom, "RelaygateFailingClosed"), 20, "RelaygateFailingClosed firing")
    assert alert["labels"] == {
        "alertname": "RelaygateFailingClosed",
        "job": "relaygate-policy",
        "instance": f"127.0.0.1:{gw.extproc_admin_port}",
        "severity": "critical",
    }
    assert float(alert["value"]) > 0.2
    # (The first gateway's Envoy may still be firing it from the series of before the reload.)
    here = f"127.0.0.1:{gw.envoy_admin_port}"
    eventually(
        lambda: [a for a in firing(prom, "RelaygatePolicyCallsFailing") if a["labels"]["instance"] == here],
        20,
        "RelaygatePolicyCallsFailing firing for this gateway's Envoy",
    )
    # The Envoy series the rules read exist (ext_authz on the first gateway, ext_proc on this one).
    names = set(prom.api("label/__name__/values"))
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    # (series names: followed by a selector, a range, or inside a __name__ regex; not label names)
    used = {n for e in exprs for n in re.findall(r"(?<![\w:])envoy_[a-z_]+(?=[{\[|\"])", e)}
    assert {"envoy_http_ext_authz_error", "envoy_http_ext_proc_streams_failed"} <= used
    assert used <= names, used - names
