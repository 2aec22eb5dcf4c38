"""Prometheus metrics of the data plane (served on the admin port at /metrics; docs/observability.md
lists every one, and a test keeps the two in step).

The ``gen_ai_*`` histograms follow the OpenTelemetry GenAI semantic conventions (names, attributes
as labels, the conventions' bucket boundaries), so dashboards made for other GenAI gateways read
them. Labels stay bounded: models, providers, upstreams and regions come from the configuration;
no key id or user is ever a label, and the workspace label can be turned off
(``RELAYGATE_METRICS_WORKSPACE=0``: every workspace label is then "").
"""

import os

from prometheus_client import Counter, Gauge, Histogram, Info

WORKSPACE_LABELS = os.environ.get("RELAYGATE_METRICS_WORKSPACE", "1") != "0"


def workspace_label(ws: str | None) -> str:
    return (ws or "") if WORKSPACE_LABELS else ""


DECISIONS = Counter("relaygate_decisions_total", "Policy decisions by outcome and code", ["decision", "code"])
RECEIPTS = Counter("relaygate_receipts_total", "Receipts finalized and signed", ["status"])
UNRECEIPTED = Counter(
    "relaygate_access_log_unmatched_total", "Access-log entries Envoy wrote without a request id (no receipt possible)"
)
# model: the model the call asked for (a configured one: a call is only forwarded for those).
TOKENS = Counter("relaygate_tokens_total", "Tokens settled", ["workspace", "model", "direction"])
COST = Counter("relaygate_cost_usd_micros_total", "Settled cost in USD millionths", ["workspace", "model"])
CALL_DURATION = Histogram(
    "relaygate_call_duration_seconds",
    "End-to-end call duration seen by Envoy",
    ["endpoint", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
PENDING = Gauge("relaygate_spool_pending", "Receipts written at decision time and not yet finalized")
SPOOL_OLDEST = Gauge(
    "relaygate_spool_oldest_pending_age_seconds", "Age of the oldest call whose receipt is not finalized (0: none)"
)
UNSHIPPED = Gauge(
    "relaygate_receipts_unshipped", "Receipts the control plane has not acknowledged yet, pending ones included"
)
BUNDLE_FRESH = Gauge(
    "relaygate_policy_bundle_last_success_timestamp_seconds",
    "When the control plane last answered a bundle poll (0: never; without a control plane, always 0)",
)
BUNDLE_INFO = Info("relaygate_policy_bundle", "Revision of the policy bundle in force")
BUNDLE_SWAPS = Counter("relaygate_policy_bundle_swaps_total", "New policy bundles installed without a restart")
BUNDLE_ERRORS = Counter("relaygate_policy_bundle_errors_total", "Bundle polls that failed", ["reason"])
RECEIPTS_SHIPPED = Counter("relaygate_receipts_shipped_total", "Receipts the control plane acknowledged")
OUTCOMES = Counter("relaygate_call_outcomes_total", "Finished calls by final HTTP status class", ["status_class"])

POLICY_SECONDS = Histogram(
    "relaygate_policy_evaluation_seconds",
    "The policy service's own time deciding a call (checks, Rego, workspace policies, holds), not the provider's",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
BUDGET_LIMIT = Gauge(
    "relaygate_budget_limit",
    "Each budget's cap in its unit (tokens, or USD millionths)",
    ["workspace", "budget", "unit"],
)
BUDGET_USED = Gauge(
    "relaygate_budget_used",
    "Each budget's use in its current window (spent plus reserved for calls in flight), read from the ledger at scrape",
    ["workspace", "budget", "unit", "window"],
)
CALLS = Counter(
    "relaygate_calls_total",
    "Receipted calls by decision code, workspace, upstream and its region (counted at settlement)",
    ["code", "workspace", "upstream", "region"],
)
# OpenTelemetry GenAI semantic conventions (gen_ai.* metrics, attributes as labels).
_GENAI = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model"]
GENAI_TOKENS = Histogram(
    "gen_ai_client_token_usage",
    "Tokens used per call, by type (input, output), from the provider's response",
    [*_GENAI, "gen_ai_token_type"],
    buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864),
)
GENAI_DURATION = Histogram(
    "gen_ai_server_request_duration_seconds",
    "Duration of forwarded calls as Envoy saw them (error_type: the HTTP status when 4xx/5xx, else empty)",
    [*_GENAI, "error_type"],
    buckets=(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92),
)
GENAI_TTFT = Histogram(
    "gen_ai_server_time_to_first_token_seconds",
    "Streams: time from the call's start to the provider's first response byte",
    _GENAI,
    buckets=(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
)
GENAI_TPOT = Histogram(
    "gen_ai_server_time_per_output_token_seconds",
    "Streams: time per output token after the first",
    _GENAI,
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5),
)
# Endpoint -> gen_ai.operation.name (the conventions' values).
OPERATION = {
    "chat.completions": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "bedrock.converse": "chat",
    "bedrock.invoke": "chat",
}


# Series of known label values exist from the start at 0, so rate()/increase() count their first
# event too (a series born at 1 has no increase to see: the first policy error would never alert).
for _d, _c in (("allow", "ok"), ("deny", "policy.error")):
    DECISIONS.labels(_d, _c)
for _s in ("2xx", "3xx", "4xx", "5xx"):
    OUTCOMES.labels(_s)
for _s in ("complete", "incomplete"):
    RECEIPTS.labels(_s)
for _s in ("rejected", "tls", "unreachable"):
    BUNDLE_ERRORS.labels(_s)
