"""Prometheus metrics of the control plane (served at /metrics; docs/observability.md lists every
one). Counters and gauges are moved where the work happens, never computed by querying the
database at scrape time, so a scrape costs the control plane nothing. The two series that depend
on the clock or on connections (gateways live or stale by the age of their last heartbeat, gateways
whose Envoy refuses its configuration) are computed at scrape by :class:`FleetCollector` from what
the fleet service keeps in memory. Counters with known label values exist at 0 from the start, so
``rate()``/``increase()`` see their first event."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

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
INGEST_LAG = Histogram(
    "relaygate_cp_receipt_ingest_lag_seconds",
    "From a receipt's signing (its issued_at) to the control plane storing it, for each receipt accepted",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
TREE_SIZE = Gauge("relaygate_cp_merkle_tree_size", "Leaves in the Merkle log (audit events)")
CHECKPOINT_TS = Gauge(
    "relaygate_cp_checkpoint_timestamp_seconds", "When the newest signed tree head was made (0: none yet)"
)
CHECKPOINT_SIZE = Gauge("relaygate_cp_checkpoint_tree_size", "Leaves the newest signed tree head covers (0: none yet)")
LOG_WRITER = Gauge(
    "relaygate_cp_log_writer", "1 while this replica is the Merkle log's writer (one replica at a time), else 0"
)
MERKLE_QUEUE = Gauge(
    "relaygate_cp_merkle_queue", "Receipts stored and waiting for the log writer to make them leaves (shared; capped)"
)

DEPLOYMENT_STATUSES = ("running", "rolling_back", "succeeded", "rolled_back", "failed")
DEPLOYMENTS = Gauge(
    "relaygate_cp_deployments",
    "Policy deployments by status (counted from the database at start, moved on each transition)",
    ["status"],
)
DEPLOYMENT_WAVES = Counter(
    "relaygate_cp_deployment_waves_total",
    "Deployment waves applied, and passed or failed at their health gates",
    ["result"],
)
DEPLOYMENTS_FINISHED = Counter(
    "relaygate_cp_deployments_finished_total",
    "Policy deployments that ended, by how (succeeded, rolled_back, failed)",
    ["status"],
)

EVIDENCE_JOBS = Counter("relaygate_cp_evidence_jobs_total", "Evidence bundle jobs that ended, by result", ["result"])
EVIDENCE_JOBS_ACTIVE = Gauge(
    "relaygate_cp_evidence_jobs_active", "Evidence bundle jobs queued or being assembled in this process"
)
EVIDENCE_JOB_SECONDS = Histogram(
    "relaygate_cp_evidence_job_seconds",
    "Time to assemble an evidence bundle, by result",
    ["result"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
)

FLEET_STATES = ("live", "stale")


class FleetSource(Protocol):
    def instance_states(self) -> dict[str, int]: ...

    def nacking_instances(self) -> int: ...


class FleetCollector(Collector):
    """``relaygate_cp_fleet_instances{state}`` and ``relaygate_cp_xds_nacking_instances``, computed
    at scrape from the fleet service's memory (heartbeat times, the ADS server's sessions); 0 until
    the control plane has started its fleet service."""

    def __init__(self) -> None:
        self.source: FleetSource | None = None

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "relaygate_cp_fleet_instances",
                "Registered gateway instances by state (stale: no heartbeat for 10 s)",
                labels=["state"],
            ),
            GaugeMetricFamily(
                "relaygate_cp_xds_nacking_instances",
                "Connected gateways whose Envoy rejected the latest configuration of some type and accepted none since",
            ),
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        instances, nacking = self._families()
        src = self.source
        states = src.instance_states() if src is not None else {}
        for state in FLEET_STATES:
            instances.add_metric([state], states.get(state, 0))
        nacking.add_metric([], src.nacking_instances() if src is not None else 0)
        return instances, nacking


FLEET = FleetCollector()
REGISTRY.register(FLEET)

# Series of known label values exist from the start at 0 (see the module docstring).
for _t in ("lds", "rds", "cds", "eds"):
    XDS_NACKS.labels(_t)
for _r in ("built", "failed"):
    BUNDLE_BUILDS.labels(_r)
for _r in ("accepted", "duplicate", "rejected", "deferred"):
    INGESTED.labels(_r)
for _s in DEPLOYMENT_STATUSES:
    DEPLOYMENTS.labels(_s)
for _r in ("applied", "passed", "failed"):
    DEPLOYMENT_WAVES.labels(_r)
for _s in ("succeeded", "rolled_back", "failed"):
    DEPLOYMENTS_FINISHED.labels(_s)
for _r in ("done", "failed"):
    EVIDENCE_JOBS.labels(_r)
    EVIDENCE_JOB_SECONDS.labels(_r)
