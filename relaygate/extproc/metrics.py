"""Prometheus metrics of the data plane (served on the admin port at /metrics)."""

from prometheus_client import Counter, Gauge, Histogram, Info

DECISIONS = Counter("relaygate_decisions_total", "Policy decisions by outcome and code", ["decision", "code"])
RECEIPTS = Counter("relaygate_receipts_total", "Receipts finalized and signed", ["status"])
UNRECEIPTED = Counter(
    "relaygate_access_log_unmatched_total", "Access-log entries with no receipt of ours (e.g. policy service down)"
)
TOKENS = Counter("relaygate_tokens_total", "Tokens settled", ["workspace", "direction"])
COST = Counter("relaygate_cost_usd_micros_total", "Settled cost in USD millionths", ["workspace"])
CALL_DURATION = Histogram(
    "relaygate_call_duration_seconds",
    "End-to-end call duration seen by Envoy",
    ["endpoint", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
PENDING = Gauge("relaygate_spool_pending", "Receipts written at decision time and not yet finalized")
BUNDLE_INFO = Info("relaygate_policy_bundle", "Revision of the policy bundle in force")
BUNDLE_SWAPS = Counter("relaygate_policy_bundle_swaps_total", "New policy bundles installed without a restart")
BUNDLE_ERRORS = Counter("relaygate_policy_bundle_errors_total", "Bundle polls that failed", ["reason"])
RECEIPTS_SHIPPED = Counter("relaygate_receipts_shipped_total", "Receipts the control plane acknowledged")
OUTCOMES = Counter("relaygate_call_outcomes_total", "Finished calls by final HTTP status class", ["status_class"])
