"""Prometheus metrics of the control plane (served at /metrics; docs/observability.md lists every
one). Counters and gauges are moved where the work happens, never computed by querying the
database at scrape time, so a scrape costs the control plane nothing."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("relaygate_cp_requests_total", "Control-plane API requests", ["operation", "status"])
LATENCY = Histogram(
    "relaygate_cp_request_seconds",
    "Control-plane API latency",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
XDS_NACKS = Counter("relaygate_cp_xds_nacks_total", "xDS responses a gateway's Envoy rejected", ["type"])
XDS_STREAMS = Gauge("relaygate_cp_xds_streams", "Envoys connected over ADS")
BUNDLE_BUILDS = Counter("relaygate_cp_bundle_builds_total", "Tenant bundles built, by result", ["result"])
INGESTED = Counter(
    "relaygate_cp_receipts_ingested_total",
    "Receipts sidecars shipped, by result (accepted, duplicate, rejected, deferred)",
    ["result"],
)
TREE_SIZE = Gauge("relaygate_cp_merkle_tree_size", "Leaves in the Merkle log (audit events)")
CHECKPOINT_TS = Gauge(
    "relaygate_cp_checkpoint_timestamp_seconds", "When the newest signed tree head was made (0: none yet)"
)
