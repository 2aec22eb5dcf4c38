"""The sidecar's /metrics after real calls: the OpenTelemetry GenAI histograms and the receipted
calls by workspace, upstream and region carry exactly what the calls did (own gateway, so the
counts are this module's alone)."""

from __future__ import annotations

import time
import urllib.request

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_full_stack, start_gateway
from tests.cpclient import CP


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    g = start_gateway(tmp_path_factory.mktemp("metrics"), transport="authz-http")
    yield g
    g.stack.stop()


def _samples(gw) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"{gw.stack.extproc_admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _value(samples, name: str, **labels) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


def _client(gw):
    http = openai.DefaultHttpxClient(verify=gw.stack.client_ssl(), trust_env=False)
    return openai.OpenAI(api_key=gw.tokens["acme"], base_url=gw.base("acme"), http_client=http, max_retries=0)


def test_genai_metrics_and_calls_by_upstream_follow_the_calls(gw):
    before = _samples(gw)
    client = _client(gw)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "metrics"}], max_tokens=20
    )
    plain = gw.receipt_doc(raw.headers["x-relayone-receipt-id"])
    stream = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "metrics stream"}],
        stream=True,
        extra_headers={"x-sim-chunk-delay-ms": "20"},
    )
    rid = stream.headers["x-relayone-receipt-id"]
    list(stream.parse())
    streamed = gw.receipt_doc(rid)
    with pytest.raises(openai.APIStatusError):  # a denial: counted by code, no GenAI sample
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}], max_tokens=5)
    deadline = time.monotonic() + 10
    while True:  # the denial's receipt is settled from the decision after a short grace
        after = _samples(gw)
        if (
            _value(after, "relaygate_calls_total", code="model.not_found")
            - _value(before, "relaygate_calls_total", code="model.not_found")
            >= 1
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.1)

    def delta(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    genai = dict(
        gen_ai_operation_name="chat",
        gen_ai_provider_name="openai",
        gen_ai_request_model="gpt-4o-mini",
        gen_ai_response_model="gpt-4o-mini",
    )
    assert delta("gen_ai_server_request_duration_seconds_count", **genai, error_type="") == 2
    assert delta("gen_ai_client_token_usage_count", **genai, gen_ai_token_type="output") == 2
    assert delta("gen_ai_client_token_usage_sum", **genai, gen_ai_token_type="output") == (
        plain["usage"]["output_tokens"] + streamed["usage"]["output_tokens"]
    )
    assert delta("gen_ai_client_token_usage_sum", **genai, gen_ai_token_type="input") == (
        plain["usage"]["input_tokens"] + streamed["usage"]["input_tokens"]
    )
    # time to first token and per output token: the stream only
    assert delta("gen_ai_server_time_to_first_token_seconds_count", **genai) == 1
    assert delta("gen_ai_server_time_per_output_token_seconds_count", **genai) == 1
    # receipted calls by code, workspace, upstream and region: the two allowed, the one denial
    for r in (plain, streamed):
        assert r["upstream"]["region"]
    ups = {(r["upstream"]["name"], r["upstream"]["region"]) for r in (plain, streamed)}
    assert (
        sum(delta("relaygate_calls_total", code="ok", workspace="acme", upstream=u, region=reg) for u, reg in ups) == 2
    )
    assert delta("relaygate_calls_total", code="model.not_found", workspace="acme", upstream="", region="") == 1
    # our own overhead: every call that reached the policy (the two allowed and the unknown model)
    assert delta("relaygate_policy_evaluation_seconds_count") == 3
    assert 0 < delta("relaygate_policy_evaluation_seconds_sum") < 1
    # budgets at scrape: the tiny workspace's 50-token daily budget is unused; the outage workspace's
    # USD budget holds exactly what its one call cost once settled
    assert _value(after, "relaygate_budget_limit", workspace="tiny", budget="tiny-daily", unit="tokens") == 50
    assert _value(after, "relaygate_budget_used", workspace="tiny", budget="tiny-daily") == 0
    http = openai.DefaultHttpxClient(verify=gw.stack.client_ssl(), trust_env=False)
    outage = openai.OpenAI(api_key=gw.tokens["outage"], base_url=gw.base("outage"), http_client=http, max_retries=0)
    raw = outage.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "budget"}], max_tokens=5
    )
    cost = gw.receipt_doc(raw.headers["x-relayone-receipt-id"])["cost"]["usd_micros"]
    assert cost > 0
    used = _value(_samples(gw), "relaygate_budget_used", workspace="outage", budget="outage-daily", unit="usd")
    assert used == cost
    assert _value(_samples(gw), "relaygate_budget_limit", workspace="outage", budget="outage-daily") == 1_000_000
    # no key id or user is ever a label
    for (name, labels), _ in after.items():
        for k, v in labels:
            assert not v.startswith("ro_live_") and k not in ("key_id", "user"), (name, labels)


def _until(read, done, what: str, timeout: float = 15):
    """``read()`` again until ``done(value)``; the last value (asserts it got there in time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.2)


def test_the_control_plane_counts_what_its_fleet_sends_and_what_it_signs(tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "cpmetrics")
    try:
        admin = CP(stack.cp_url, stack.admin_token)
        admin.session.verify = str(stack.ca)

        def cp_metrics():
            text = admin.get("/metrics").text
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(text)
                for s in fam.samples
            }

        # The stack's sidecar registered and sends heartbeats: one live instance, none stale.
        m = _until(
            cp_metrics, lambda m: _value(m, "relaygate_cp_fleet_instances", state="live") == 1, "the instance live"
        )
        assert _value(m, "relaygate_cp_fleet_instances", state="stale") == 0
        assert _value(m, "relaygate_cp_xds_nacking_instances") == 0
        lag_before = _value(m, "relaygate_cp_receipt_ingest_lag_seconds_count")
        accepted_before = _value(m, "relaygate_cp_receipts_ingested_total", result="accepted")

        http = openai.DefaultHttpxClient(verify=stack.client_ssl(), trust_env=False)
        client = openai.OpenAI(
            api_key=tokens["acme"], base_url=f"{stack.gateway}/v1/acme", http_client=http, max_retries=0
        )
        rid = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "cp metrics"}], max_tokens=5
        ).headers["x-relayone-receipt-id"]
        deadline = time.monotonic() + 30
        while admin.get(f"/v1/audit/events/{rid}").status != 200:
            assert time.monotonic() < deadline, "the receipt never reached the control plane"
            time.sleep(0.1)

        deadline = time.monotonic() + 15  # the next signed tree head covers the new leaf
        while True:
            m = cp_metrics()
            if _value(m, "relaygate_cp_checkpoint_timestamp_seconds") > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        accepted = _value(m, "relaygate_cp_receipts_ingested_total", result="accepted") - accepted_before
        assert accepted >= 1
        assert _value(m, "relaygate_cp_receipts_ingested_total", result="rejected") == 0
        # One lag observation per receipt accepted, each from its signing a moment ago.
        lags = _value(m, "relaygate_cp_receipt_ingest_lag_seconds_count") - lag_before
        assert lags == accepted
        assert 0 <= _value(m, "relaygate_cp_receipt_ingest_lag_seconds_sum") < 30 * lags
        assert _value(m, "relaygate_cp_receipt_ingest_lag_seconds_bucket", le="+Inf") == _value(
            m, "relaygate_cp_receipt_ingest_lag_seconds_count"
        )
        assert _value(m, "relaygate_cp_merkle_tree_size") >= 1
        assert abs(_value(m, "relaygate_cp_checkpoint_timestamp_seconds") - time.time()) < 60
        # A checkpoint covers the leaf (the next one, if more receipts arrived in between).
        m = _until(
            cp_metrics,
            lambda m: _value(m, "relaygate_cp_checkpoint_tree_size") == _value(m, "relaygate_cp_merkle_tree_size"),
            "a checkpoint covering the whole log",
        )
        assert _value(m, "relaygate_cp_checkpoint_tree_size") >= 1
        assert _value(m, "relaygate_cp_xds_streams") == 1  # this stack's Envoy, over ADS
        assert _value(m, "relaygate_cp_bundle_builds_total", result="built") >= 1
        assert _value(m, "relaygate_cp_xds_nacks_total") == 0
        # the acme workspace's spend reached its USD budget's series on the sidecar
        with urllib.request.urlopen(f"{stack.extproc_admin}/metrics", timeout=5) as r:
            sidecar = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(r.read().decode())
                for s in fam.samples
            }
        limited = {k: v for k, v in sidecar.items() if k[0] == "relaygate_budget_used"}
        assert limited, "no budget series on the sidecar"

        # An evidence bundle job: counted once it ends, timed, and no longer active.
        before = cp_metrics()
        assert _value(before, "relaygate_cp_evidence_jobs_total", result="done") == 0
        assert _value(before, "relaygate_cp_evidence_jobs_active") == 0
        acme = CP(stack.cp_url, tokens["acme"])
        acme.session.verify = str(stack.ca)
        job = acme.post("/v1/evidence/bundles", {"components": ["receipts"]})
        assert job.status == 202, job.text
        status = _until(
            lambda: acme.get(f"/v1/evidence/bundles/{job.json()['id']}/status").json(),
            lambda st: st["status"] in ("done", "failed"),
            "the evidence job",
            60,
        )
        assert status["status"] == "done", status
        m = _until(
            cp_metrics,
            lambda m: _value(m, "relaygate_cp_evidence_jobs_total", result="done") == 1,
            "the evidence job counted",
        )
        assert _value(m, "relaygate_cp_evidence_jobs_total", result="failed") == 0
        assert _value(m, "relaygate_cp_evidence_job_seconds_count", result="done") == 1
        assert 0 < _value(m, "relaygate_cp_evidence_job_seconds_sum", result="done") < 60
        assert _value(m, "relaygate_cp_evidence_jobs_active") == 0
        # The stack has no deployment: every status at 0, and none finished.
        assert _value(m, "relaygate_cp_deployments") == 0
        assert _value(m, "relaygate_cp_deployments_finished_total") == 0

        # The sidecar stopped: its instance turns stale after 10 s without a heartbeat.
        stack.stop_one("extproc")
        m = _until(
            cp_metrics,
            lambda m: _value(m, "relaygate_cp_fleet_instances", state="stale") == 1,
            "the stopped sidecar's instance stale",
            30,
        )
        assert _value(m, "relaygate_cp_fleet_instances", state="live") == 0
    finally:
        stack.stop()
