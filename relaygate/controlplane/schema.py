"""Tables of the control plane (SQLAlchemy Core). Alembic migrations create them.

Times are integer epoch milliseconds (``*_ms``) so SQLite and PostgreSQL sort and
compare them the same way; JSON columns hold documents that are read whole.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

workspaces = sa.Table(
    "workspaces",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("settings", JSON, nullable=False),  # sovereignty, default_max_output_tokens, limits, relay
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("deleted_ms", sa.BigInteger),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("workspace_id", sa.String(64), sa.ForeignKey("workspaces.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("kind", sa.String(16), nullable=False),  # standard | read_only
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(128), nullable=False),
    sa.Column("scope", JSON, nullable=False),  # endpoints, models, permissions
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("expires_ms", sa.BigInteger),
    sa.Column("revoked_ms", sa.BigInteger),
    sa.Column("rotated_to", sa.String(32)),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("workspace_id", sa.String(64), sa.ForeignKey("workspaces.id"), nullable=False, index=True),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(128), nullable=False),
    sa.Column("principal", JSON, nullable=False),  # subject, kind, permissions, key_id
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=False),
    sa.Column("revoked_ms", sa.BigInteger),
)

upstreams = sa.Table(
    "upstreams",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("spec", JSON, nullable=False),  # the upstreams.yaml entry
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("deleted_ms", sa.BigInteger),
)

budgets = sa.Table(  # ids are unique per workspace (migration 0004): one tenant's names never clash with another's
    "budgets",
    metadata,
    sa.Column("id", sa.String(64), nullable=False),
    sa.Column("workspace_id", sa.String(64), sa.ForeignKey("workspaces.id"), nullable=False, index=True),
    sa.Column("key_id", sa.String(32)),
    sa.Column("unit", sa.String(8), nullable=False),
    sa.Column("window", sa.String(8), nullable=False),
    sa.Column("limit_amount", sa.BigInteger, nullable=False),  # tokens, or USD millionths
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("deleted_ms", sa.BigInteger),
    # Key order as migration 0004 builds it (workspace first: every lookup is per workspace).
    sa.PrimaryKeyConstraint("workspace_id", "id", name="budgets_workspace_id_pkey"),
)

secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),  # AES-GCM under the master key
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", JSON, nullable=False),
)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(64), sa.ForeignKey("workspaces.id"), index=True),  # NULL: platform
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("current_version", sa.Integer, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("deleted_ms", sa.BigInteger),
)

policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("policy_id", sa.String(40), sa.ForeignKey("policies.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("label", sa.String(40), nullable=False),  # what receipts cite after '@': the version, or semver
    sa.Column("source", sa.Text, nullable=False),  # the YAML document (platform: the Rego module)
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(100), nullable=False, unique=True),
    sa.Column("kind", sa.String(40), nullable=False),  # gateway.call | policy.created | key.revoked | ...
    sa.Column("workspace_id", sa.String(64), index=True),
    sa.Column("occurred_ms", sa.BigInteger, nullable=False, index=True),
    sa.Column("actor", sa.String(200)),
    sa.Column("key_id", sa.String(32), index=True),
    sa.Column("user_id", sa.String(256), index=True),
    sa.Column("model", sa.String(256), index=True),
    sa.Column("endpoint", sa.String(40)),
    sa.Column("decision", sa.String(8), index=True),  # allow | deny (gateway calls)
    sa.Column("code", sa.String(64)),
    sa.Column("status", sa.Integer),
    sa.Column("latency_ms", sa.Float),
    sa.Column("input_tokens", sa.BigInteger),
    sa.Column("output_tokens", sa.BigInteger),
    sa.Column("cost_micros", sa.BigInteger),
    sa.Column("upstream", sa.String(64)),
    sa.Column("provider", sa.String(32)),
    sa.Column("sidecar", sa.String(200)),
    sa.Column("detail", JSON),  # what happened, for control-plane events
    sa.Column("receipt", JSON),  # the signed receipt envelope, for gateway calls
)
sa.Index("audit_events_ws_seq", audit_events.c.workspace_id, audit_events.c.seq)
sa.Index("audit_events_actor_seq", audit_events.c.actor, audit_events.c.seq)  # the feed filtered by who

audit_event_policies = sa.Table(
    "audit_event_policies",
    metadata,
    sa.Column("event_seq", sa.BigInteger, sa.ForeignKey("audit_events.seq"), primary_key=True),
    sa.Column("policy_id", sa.String(100), primary_key=True),
    sa.Column("version", sa.String(40), nullable=False),
)
sa.Index("audit_event_policies_policy", audit_event_policies.c.policy_id, audit_event_policies.c.event_seq)

relay_calls = sa.Table(
    "relay_calls",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("workspace_id", sa.String(64), sa.ForeignKey("workspaces.id"), nullable=False, index=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("to_model", sa.String(256), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("fallback_used", sa.Boolean, nullable=False),
    sa.Column("attempts", JSON, nullable=False),  # [{model, status_code, receipt_id, latency_ms, error}]
    sa.Column("metadata", JSON, nullable=False),
)

relay_attempts = sa.Table(
    "relay_attempts",
    metadata,
    sa.Column("receipt_id", sa.String(100), primary_key=True),
    sa.Column("relay_id", sa.String(64), sa.ForeignKey("relay_calls.id"), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(64), sa.ForeignKey("workspaces.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("capability", sa.String(100), nullable=False, index=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("endpoint", sa.String(2048), nullable=False),
    sa.Column("protocol", sa.String(16), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False, index=True),
    sa.Column("zone", sa.String(64), nullable=False),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("grpc_address", sa.String(512), nullable=False),
    sa.Column("registered_ms", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("posture", JSON, nullable=False),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False, index=True),  # instance id, or "control-plane"
    sa.Column("purpose", sa.String(32), nullable=False),  # receipts | tree-head
    sa.Column("public_key", sa.Text, nullable=False),
    sa.Column("valid_from_ms", sa.BigInteger, nullable=False),
    sa.Column("retired_ms", sa.BigInteger),
)

# -- evidence (migration 0002) -------------------------------------------------------------
# Where each ingested receipt sits on its sidecar's hash chain (for evidence bundles).
audit_events.append_column(sa.Column("chain_owner", sa.String(200)))
audit_events.append_column(sa.Column("chain_seq", sa.BigInteger))
audit_events.append_column(sa.Column("receipt_hash", sa.String(80)))
audit_events.append_column(sa.Column("prev_hash", sa.String(80)))
sa.Index("audit_events_chain", audit_events.c.chain_owner, audit_events.c.chain_seq)

merkle_leaves = sa.Table(
    "merkle_leaves",
    metadata,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_seq", sa.BigInteger, sa.ForeignKey("audit_events.seq"), nullable=False, unique=True),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
)

# C2SP tlog-tiles of the Merkle log (relaygate/evidence/tiles.py): level, index, the hashes (32 bytes
# apiece, `width` of them; 256 = full). Written with the leaves; proofs and roots read only tiles.
merkle_tiles = sa.Table(
    "merkle_tiles",
    metadata,
    sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("hashes", sa.LargeBinary, nullable=False),
)

# One row (id 1): the log's size (the leaves its tiles cover) and the writer's lease (who appends,
# under which term; an append checks the term, so a replaced writer cannot append).
merkle_writer = sa.Table(
    "merkle_writer",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("term", sa.BigInteger, nullable=False),
    sa.Column("replica_id", sa.String(200)),
    sa.Column("backend_pid", sa.Integer),
    sa.Column("renewed_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=False),
)

# Gateway-call events a replica that is not the writer stored: the writer makes them leaves, in
# event order, and deletes them here in the same transaction.
merkle_queue = sa.Table(
    "merkle_queue",
    metadata,
    sa.Column("event_seq", sa.BigInteger, sa.ForeignKey("audit_events.seq"), primary_key=True, autoincrement=False),
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("size", sa.BigInteger, nullable=False, index=True),
    sa.Column("root", sa.LargeBinary(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False, index=True),
)

custody_events = sa.Table(
    "custody_events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False, index=True),
    sa.Column("key_id", sa.String(64)),
    sa.Column("envelope", JSON, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

evidence_bundles = sa.Table(
    "evidence_bundles",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(64), index=True),  # NULL: the admin's all-workspace bundle
    sa.Column("status", sa.String(16), nullable=False),  # pending | running | done | failed
    sa.Column("progress", sa.Float, nullable=False),
    sa.Column("stage", sa.String(200), nullable=False, server_default=""),
    sa.Column("params", JSON, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("finished_ms", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Column("path", sa.Text),
    sa.Column("sha256", sa.String(64)),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("stats", JSON),
)

key_rotations = sa.Table(
    "key_rotations",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("target", sa.String(200), nullable=False, index=True),  # instance id, credential name
    sa.Column("status", sa.String(16), nullable=False),  # pending | done | failed
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("done_ms", sa.BigInteger),
    sa.Column("detail", JSON, nullable=False),
)

# -- fleet (migration 0003) --------------------------------------------------------------------
audit_events.append_column(sa.Column("ingested_ms", sa.BigInteger))  # for receipts/s per gateway
sa.Index("audit_events_owner_ingested", audit_events.c.chain_owner, audit_events.c.ingested_ms)
instances.append_column(sa.Column("xds", JSON))  # last xDS state seen (ACKs, NACK)

# -- the ext_authz transport over xDS (migration 0005) -----------------------------------------
# Where the sidecar answers Envoy's ext_authz HTTP check; NULL: it only serves ext_proc (a sidecar
# from before 0005, or one started with --authz-listen ''), and its Envoy is told to use that.
instances.append_column(sa.Column("authz_address", sa.String(512)))

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("policy_id", sa.String(40), sa.ForeignKey("policies.id"), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("workspace_id", sa.String(64)),
    sa.Column("tenants", JSON, nullable=False),
    sa.Column("wave_size", sa.Integer, nullable=False),
    sa.Column("pause_seconds", sa.Float, nullable=False),
    sa.Column("gates", JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | succeeded | rolling_back | rolled_back | failed
    sa.Column("current_wave", sa.Integer, nullable=False),
    sa.Column("stage", sa.String(32), nullable=False),  # applying | adopting | observing | done
    sa.Column("waves", JSON, nullable=False),  # [{tenants, status, started_at, ...}]
    sa.Column("previous", JSON, nullable=False),  # tenant -> pinned version before (null: none)
    sa.Column("reason", sa.Text),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("finished_ms", sa.BigInteger),
)

tenant_pins = sa.Table(
    "tenant_pins",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("policy_id", sa.String(40), sa.ForeignKey("policies.id"), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("deployment_id", sa.String(40)),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

# -- OPA agents (migration 0006) ------------------------------------------------------------
# Stock OPA agents pointed at the control plane: the last status report of each (its bundles'
# active revisions, activations and errors). Their decision logs go into audit_events.
opa_agents = sa.Table(
    "opa_agents",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),  # the agent's labels.id
    sa.Column("version", sa.String(64), nullable=False),  # labels.version: OPA's release
    sa.Column("labels", JSON, nullable=False),
    sa.Column("bundles", JSON, nullable=False),  # name -> {active_revision, last_successful_activation, ...}
    sa.Column("errors", JSON, nullable=False),  # the report's bundle and plugin errors (code, message)
    sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("last_report_ms", sa.BigInteger, nullable=False),
    sa.Column("decisions", sa.BigInteger, nullable=False),  # decision log entries stored from it
)

# -- work owned by one replica at a time (migration 0009) ----------------------------------
# A lease on one piece of background work (kind "deployment" or "evidence", id the row's id):
# the replica that holds it (owner NULL: released), its epoch (raised by every claim, so a
# stage write fenced on (owner, epoch) fails once another replica took the work over) and
# when it lapses, on the database's clock.
work_leases = sa.Table(
    "work_leases",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(200)),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=False),
)

# A finished evidence bundle's tar.gz, in the database so any replica serves it.
evidence_blobs = sa.Table(
    "evidence_blobs",
    metadata,
    sa.Column("id", sa.String(40), sa.ForeignKey("evidence_bundles.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

# The counters of each gateway's recent heartbeats (the health rate window), whichever replica
# received them: the newest at or before the window's start and every one since.
heartbeat_samples = sa.Table(
    "heartbeat_samples",
    metadata,
    sa.Column("instance_id", sa.String(200), primary_key=True),
    sa.Column("at_ms", sa.BigInteger, primary_key=True),
    sa.Column("calls", sa.Float, nullable=False),
    sa.Column("errors", sa.Float, nullable=False),
)

# -- control-plane rate limits across replicas (migration 0007) ------------------------------
# PostgreSQL without Redis: one token bucket per rate-limit key (ws:<id>, fleet:<instance>...),
# refilled and charged in one statement on the database's clock (relaygate/controlplane/ratelimit.py).
cp_rate_buckets = sa.Table(
    "cp_rate_buckets",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("level", sa.Float, nullable=False),  # tokens left at `at`
    sa.Column("at", sa.Float, nullable=False),  # seconds since the epoch, the database's clock
    sa.Column("granted", sa.Boolean, nullable=False),  # whether the last charge fit
)

# -- webhooks (migration 0011; relaygate/controlplane/webhooks.py) -------------------------------
webhook_subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(64), sa.ForeignKey("workspaces.id"), nullable=False, index=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("description", sa.String(500)),
    sa.Column("secret_sealed", sa.LargeBinary, nullable=False),  # the signing secret, sealed (master key)
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(200)),
    sa.Column("deleted_ms", sa.BigInteger),
)

# One row per (subscription, event): its signed deliveries' state and the delivery log. ``dedupe``
# (an audit event id, or budget:<id>:<window>:<threshold>) makes enqueueing idempotent.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # the webhook-id header, the same on every retry
    sa.Column("subscription_id", sa.String(40), sa.ForeignKey("webhook_subscriptions.id"), nullable=False),
    sa.Column("workspace_id", sa.String(64), nullable=False),
    sa.Column("dedupe", sa.String(200), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("event_id", sa.String(100)),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | failed | cancelled
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.String(500)),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("delivered_ms", sa.BigInteger),
    sa.UniqueConstraint("subscription_id", "dedupe", name="webhook_deliveries_once"),
)
sa.Index("webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_ms)
sa.Index("webhook_deliveries_log", webhook_deliveries.c.subscription_id, webhook_deliveries.c.created_ms)
