"""The control plane's OpenAPI 3.1 document, declared here and written to relaygate/controlplane/openapi.yaml.

Declaring operations in code gives every one of them the same error
responses and security, and keeps the auth/permission annotations next to
the schemas. The committed YAML is what the service serves and validates
against; a test fails when it differs from this declaration:

    python -m relaygate.controlplane.openapi > relaygate/controlplane/openapi.yaml
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import yaml

from relaygate.contract import config as config_mod
from relaygate.contract import scope as scope_mod

VERSION = "1.0.0"

ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
TIME = {"type": "string", "format": "date-time", "description": "ISO 8601 / RFC 3339, UTC"}


def forward_headers_schema() -> dict:
    """A fresh copy each use (a shared dict would become a YAML anchor in openapi.yaml)."""
    return {
        "type": ["array", "null"],
        "maxItems": 100,
        "items": {"type": "string", "pattern": "^[A-Za-z0-9!#$%&'+.^_`|~-]{1,99}\\*?$"},
        "description": "client request headers forwarded to this upstream (a trailing '*' matches a "
        "prefix); every other client header is removed. Absent or null: the provider's "
        "default list. Credentials and the gateway's and Envoy's own headers are never "
        "forwarded.",
    }


NTIME = {"type": ["string", "null"], "format": "date-time"}
# A sidecar's ext_authz address as Envoy will dial it: an absolute Unix socket path (Envoy's working
# directory is not the sidecar's) or host:port.
AUTHZ_ADDRESS = r"^(unix:/[^\x00-\x1f]{1,500}|[A-Za-z0-9.\-]{1,253}:[0-9]{1,5})$"
# Integers are bounded by the columns that hold them, so a value the database cannot bind is a
# 400 from validation, never a driver error (policy versions are INTEGER, 32-bit on PostgreSQL).
POLICY_VERSION = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
INT64_MAX = 2**63 - 1
STRS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 256}, "maxItems": 200}
MODEL_NAME = {"type": "string", "minLength": 1, "maxLength": 256}
MODEL_ALIASES = {
    "type": "object",
    "maxProperties": 200,
    "propertyNames": {"minLength": 1, "maxLength": 256},
    "additionalProperties": MODEL_NAME,
    "description": "the workspace's own model names: alias -> a catalog model or a platform alias "
    "(they win over the platform's aliases for this workspace's calls)",
}
ENDPOINTS = list(scope_mod.ENDPOINTS)


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict, required=(), extra=False, **kw) -> dict:
    out = {"type": "object", "properties": props, "additionalProperties": extra, **kw}
    if required:
        out["required"] = list(required)
    return out


PERMISSIONS = [
    "policies:read",
    "policies:write",
    "keys:read",
    "keys:write",
    "budgets:read",
    "budgets:write",
    "logs:read",
    "usage:read",
    "health:read",
    "gateway:call",
    "relay",
    "agents:read",
    "agents:write",
    "evidence:read",
    "evidence:write",
    "workspace:read",
    "sessions:write",
    "*",
]

SCHEMAS = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                    "receipt_id": {"type": "string"},
                },
                ["code", "message"],
                extra=True,
            ),
            "request_id": {"type": "string"},
        },
        ["error", "request_id"],
    ),
    "Sovereignty": obj({"allowed_jurisdictions": STRS, "allowed_regions": STRS}),
    "WorkspaceLimits": obj(
        {
            "requests_per_second": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": 1e6,
                "description": "gateway calls per second (hot path)",
            },
            "tokens_per_minute": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": 10**12,
                "description": "worst-case tokens per minute (hot path)",
            },
            "control_plane_rps": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": 1e5,
                "description": "control-plane API calls per second",
            },
        }
    ),
    "RelaySettings": obj(
        {
            "fallbacks": {
                "type": "object",
                "maxProperties": 200,
                "additionalProperties": STRS,
                "description": "model -> models to try next, in order",
            }
        }
    ),
    "WorkspaceInput": obj(
        {
            "plan": {
                "type": ["string", "null"],
                "maxLength": 40,
                "description": "a plan's name (GET /v1/plans); admin only",
            },
            "id": ID,
            "display_name": {"type": "string", "maxLength": 200},
            "sovereignty": ref("Sovereignty"),
            "default_max_output_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": 10**7},
            "limits": ref("WorkspaceLimits"),
            "relay": ref("RelaySettings"),
            "model_aliases": MODEL_ALIASES,
        },
        ["id"],
    ),
    "WorkspaceUpdate": obj(
        {
            "plan": {
                "type": ["string", "null"],
                "maxLength": 40,
                "description": "a plan's name (GET /v1/plans); admin only",
            },
            "display_name": {"type": "string", "maxLength": 200},
            "sovereignty": ref("Sovereignty"),
            "default_max_output_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": 10**7},
            "limits": ref("WorkspaceLimits"),
            "relay": ref("RelaySettings"),
            "model_aliases": MODEL_ALIASES,
        }
    ),
    "Workspace": obj(
        {
            "plan": {
                "type": ["string", "null"],
                "maxLength": 40,
                "description": "a plan's name (GET /v1/plans); admin only",
            },
            "id": {"type": "string"},
            "display_name": {"type": "string"},
            "sovereignty": ref("Sovereignty"),
            "default_max_output_tokens": {"type": ["integer", "null"]},
            "limits": ref("WorkspaceLimits"),
            "relay": ref("RelaySettings"),
            "model_aliases": MODEL_ALIASES,
            "created_at": TIME,
            "updated_at": TIME,
        },
        ["id", "display_name", "sovereignty", "limits", "relay", "model_aliases", "created_at", "updated_at"],
    ),
    "PlanLimits": obj(
        {
            "control_plane_rps": {"type": ["number", "null"], "description": "control-plane API calls per second"},
            "requests_per_second": {"type": ["number", "null"], "description": "gateway calls per second (hot path)"},
            "tokens_per_minute": {
                "type": ["integer", "null"],
                "description": "worst-case tokens per minute (hot path)",
            },
            "log_retention_days": {
                "type": ["integer", "null"],
                "description": "request logs and audit events kept this many days (null: kept); receipts in the "
                "Merkle log stay provable",
            },
            "webhook_subscriptions": {"type": ["integer", "null"], "description": "webhook subscriptions allowed"},
        }
    ),
    "PlanList": obj(
        {
            "plans": {
                "type": "array",
                "items": obj({"name": {"type": "string"}, "limits": ref("PlanLimits")}, ["name", "limits"]),
            }
        },
        ["plans"],
    ),
    "EffectiveLimits": obj(
        {
            "workspace": {"type": "string"},
            "plan": {"type": ["string", "null"]},
            "limits": ref("PlanLimits"),
            "sources": {
                "type": "object",
                "additionalProperties": {"type": "string", "enum": ["workspace", "plan", "default"]},
                "description": "where each limit comes from: the workspace's own (a contract), its plan, the default",
            },
        },
        ["workspace", "plan", "limits", "sources"],
    ),
    "WorkspaceList": obj({"workspaces": {"type": "array", "items": ref("Workspace")}}, ["workspaces"]),
    "ModelPrice": obj(
        {
            "input_per_1k": {"type": "number", "minimum": 0, "maximum": 1e6},
            "output_per_1k": {"type": "number", "minimum": 0, "maximum": 1e6},
            "max_output_tokens": {"type": "integer", "minimum": 1, "maximum": 10**7},
            "aliases": {
                "type": "array",
                "maxItems": 100,
                "uniqueItems": True,
                "items": MODEL_NAME,
                "description": "other names callers may use for this model (e.g. the RelayPlane reference's "
                "claude-3-sonnet); the gateway resolves them before scope, policy and price see the call",
            },
        }
    ),
    "UpstreamInput": obj(
        {
            "name": ID,
            "provider": {"type": "string", "enum": list(config_mod.PROVIDERS)},
            "address": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,253}:[0-9]{1,5}$"},
            "tls": {"type": "boolean"},
            "base_path": {"type": "string", "pattern": "^(/[A-Za-z0-9._~-]+)*/?$", "maxLength": 200},
            "region": {"type": "string", "minLength": 1, "maxLength": 64},
            "jurisdiction": {"type": "string", "minLength": 1, "maxLength": 64},
            "credential": {
                "type": "string",
                "pattern": "^[A-Za-z0-9_-]{1,64}$",
                "description": "name of a provider credential (see /v1/fleet/credentials/rotate)",
            },
            "models": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 500,
                "additionalProperties": ref("ModelPrice"),
                "propertyNames": {"minLength": 1, "maxLength": 256},
            },
            "envoy_cluster_overrides": {
                "type": "object",
                "description": "advanced: fields merged into the Envoy cluster (Envoy validates them)",
            },
            "forward_headers": forward_headers_schema(),
            "ca_file": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1024,
                "pattern": "^[^\\r\\n]+$",
                "description": "with tls: the CA file (PEM, a path on the gateways' hosts) the provider's "
                "certificate must chain to; default the system CA bundle. The certificate "
                "must name the address's host either way.",
            },
        },
        ["name", "provider", "address", "region", "jurisdiction", "credential", "models"],
    ),
    "Upstream": obj(
        {
            "name": {"type": "string"},
            "provider": {"type": "string"},
            "address": {"type": "string"},
            "tls": {"type": "boolean"},
            "base_path": {"type": "string"},
            "region": {"type": "string"},
            "jurisdiction": {"type": "string"},
            "credential": {"type": "string"},
            "models": {"type": "object", "additionalProperties": ref("ModelPrice")},
            "envoy_cluster_overrides": {"type": "object"},
            "forward_headers": forward_headers_schema(),
            "ca_file": {"type": "string"},
            "created_at": TIME,
            "updated_at": TIME,
        },
        ["name", "provider", "address", "region", "jurisdiction", "credential", "models"],
    ),
    "UpstreamList": obj({"upstreams": {"type": "array", "items": ref("Upstream")}}, ["upstreams"]),
    "CatalogModel": obj(
        {
            "id": MODEL_NAME,
            "provider": {"type": "string"},
            "aliases": {"type": "array", "items": MODEL_NAME, "description": "the platform's other names for it"},
            "upstreams": {
                "type": "array",
                "items": obj(
                    {
                        "name": {"type": "string"},
                        "region": {"type": "string"},
                        "jurisdiction": {"type": "string"},
                        "input_per_1k": {"type": "number"},
                        "output_per_1k": {"type": "number"},
                        "max_output_tokens": {"type": "integer"},
                    },
                    ["name", "region", "jurisdiction", "input_per_1k", "output_per_1k", "max_output_tokens"],
                ),
                "description": "who serves it, in routing preference order, with its USD prices there",
            },
        },
        ["id", "provider", "aliases", "upstreams"],
    ),
    "ModelCatalog": obj(
        {
            "models": {"type": "array", "items": ref("CatalogModel")},
            "workspace_aliases": MODEL_ALIASES,
        },
        ["models", "workspace_aliases"],
    ),
    "BudgetInput": obj(
        {
            "id": ID,
            "key_id": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9]{12}$"},
            "unit": {"type": "string", "enum": ["tokens", "usd"]},
            "window": {"type": "string", "enum": ["day", "month"]},
            "limit": {
                "type": "number",
                "minimum": 0,
                "maximum": 1e12,
                "description": "tokens, or US dollars for unit usd",
            },
        },
        ["id", "unit", "window", "limit"],
    ),
    "BudgetUpdate": obj({"limit": {"type": "number", "minimum": 0, "maximum": 1e12}}, ["limit"]),
    "Budget": obj(
        {
            "id": {"type": "string"},
            "workspace": {"type": "string"},
            "key_id": {"type": ["string", "null"]},
            "unit": {"type": "string"},
            "window": {"type": "string"},
            "limit": {"type": "number"},
            "created_at": TIME,
            "updated_at": TIME,
        },
        ["id", "workspace", "key_id", "unit", "window", "limit"],
    ),
    "BudgetList": obj({"budgets": {"type": "array", "items": ref("Budget")}}, ["budgets"]),
    "KeyScope": obj(
        {
            "endpoints": {
                "type": "array",
                "items": {"type": "string", "enum": ENDPOINTS},
                "minItems": 1,
                "maxItems": len(ENDPOINTS),
            },
            "models": {
                **STRS,
                "minItems": 1,
                "description": "model names, or globs such as 'gpt-4o*' ('*' never matches a '.')",
            },
            "permissions": {
                "type": "array",
                "items": {"type": "string", "enum": PERMISSIONS},
                "minItems": 1,
                "maxItems": 20,
                "description": "gateway:call is needed to call the gateway or /api/relay; 'relay' is its old name",
            },
        }
    ),
    "KeyInput": obj(
        {
            "name": {"type": "string", "maxLength": 200},
            "kind": {
                "type": "string",
                "enum": ["standard", "read_only"],
                "description": "default: the caller's kind; read_only keys cannot call the gateway",
            },
            "scope": ref("KeyScope"),
            "expires_in": {
                "type": ["integer", "null"],
                "minimum": 60,
                "maximum": 10 * 365 * 86400,
                "description": "seconds until the key stops working; default (or null): when the "
                "caller's key expires (never, if it does not)",
            },
        },
        description="A new key is within the caller on every dimension (kind, permissions, endpoints, "
        "models, expiry), else 403; each omitted field is the caller's own, never '*'. "
        "The admin token may mint any key; its default is a full standard key.",
    ),
    "Key": obj(
        {
            "id": {"type": "string"},
            "workspace": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "scope": ref("KeyScope"),
            "created_at": TIME,
            "created_by": {"type": "string"},
            "expires_at": NTIME,
            "revoked_at": NTIME,
            "rotated_to": {"type": ["string", "null"]},
        },
        ["id", "workspace", "name", "kind", "scope", "created_at"],
    ),
    "KeyCreated": obj(
        {"key": ref("Key"), "secret": {"type": "string", "description": "shown once: ro_live_<id>_<secret>"}},
        ["key", "secret"],
    ),
    "KeyList": obj({"keys": {"type": "array", "items": ref("Key")}}, ["keys"]),
    "AwsCredentials": obj(
        {
            "key_id": {"type": "string"},
            "access_key_id": {"type": "string", "description": "RGK + the key id"},
            "secret_access_key": {
                "type": "string",
                "description": "derived from the key (never stored); changes when the key is rotated, ends when it is revoked",
            },
            "signing_service": {"type": "string", "enum": ["bedrock"]},
            "endpoint_path": {"type": "string", "description": "boto3's endpoint_url path: /v1/{workspace}/bedrock"},
        },
        ["key_id", "access_key_id", "secret_access_key", "signing_service", "endpoint_path"],
    ),
    "RotateInput": obj(
        {
            "grace_seconds": {
                "type": "integer",
                "minimum": 0,
                "maximum": 30 * 86400,
                "default": 0,
                "description": "how long the old key keeps working (its sessions end at once)",
            }
        }
    ),
    "SessionInput": obj(
        {
            "ttl_seconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": 86400,
                "description": "capped by the session_max_ttl setting and by the "
                "expiry of the key (or session, JWT) making it",
            },
            "permissions": {
                "type": "array",
                "items": {"type": "string"},
                "maxItems": 64,
                "description": "narrow the session to these of its maker's permissions (default: all of "
                "them); without gateway:call the session cannot call the gateway",
            },
        },
        description="A session holds its maker's permissions (or those it is narrowed to) and ends as "
        "soon as its key is revoked, rotated (grace or not) or expires.",
    ),
    "Session": obj(
        {
            "token": {"type": "string"},
            "expires_at": TIME,
            "workspace": {"type": "string"},
            "role": {"type": "string"},
            "permissions": STRS,
        },
        ["token", "expires_at", "workspace"],
    ),
    "WebhookInput": obj(
        {
            "url": {"type": "string", "maxLength": 2048, "description": "https; a public address"},
            "events": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "items": {
                    "type": "string",
                    "maxLength": 40,
                    "description": "gateway.denied, budget.threshold, policy.*, deployment.*, evidence.* "
                    "(or one kind under a prefix, e.g. policy.created)",
                },
            },
            "description": {"type": "string", "maxLength": 500},
        },
        ["url", "events"],
    ),
    "Webhook": obj(
        {
            "id": {"type": "string"},
            "workspace": {"type": "string"},
            "url": {"type": "string"},
            "events": STRS,
            "description": {"type": ["string", "null"]},
            "created_at": TIME,
            "created_by": {"type": ["string", "null"]},
            "secret": {
                "type": "string",
                "description": "whsec_…: the Standard Webhooks signing secret, in the creation response only",
            },
        },
        ["id", "workspace", "url", "events", "created_at"],
    ),
    "WebhookList": obj({"webhooks": {"type": "array", "items": ref("Webhook")}}, ["webhooks"]),
    "WebhookDelivery": obj(
        {
            "id": {"type": "string", "description": "the webhook-id header, the same on every retry"},
            "subscription": {"type": "string"},
            "type": {"type": "string"},
            "event_id": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["pending", "delivered", "failed", "cancelled"]},
            "attempts": {"type": "integer"},
            "last_status_code": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
            "created_at": TIME,
            "next_attempt_at": NTIME,
            "delivered_at": NTIME,
        },
        ["id", "subscription", "type", "status", "attempts", "created_at"],
    ),
    "WebhookDeliveryPage": obj(
        {"deliveries": {"type": "array", "items": ref("WebhookDelivery")}, "next_cursor": {"type": ["string", "null"]}},
        ["deliveries", "next_cursor"],
    ),
    "Effect": obj(
        {"status": {"type": ["integer", "null"]}, "code": {"type": ["string", "null"]}},
        description="status and code of a denial (null for platform policies)",
    ),
    "Policy": obj(
        {
            "id": {"type": "string"},
            "workspace": {"type": ["string", "null"]},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "current_version": {"type": "integer"},
            "effect": {"anyOf": [ref("Effect"), {"type": "null"}]},
            "source": {"type": "string"},
            "digest": {"type": "string"},
            "created_at": TIME,
            "updated_at": TIME,
            "deleted_at": NTIME,
            "platform": {"type": "boolean"},
            "label": {"type": "string", "description": "what receipts cite after '@'"},
        },
        ["id", "name", "current_version", "source", "created_at", "updated_at"],
    ),
    "PolicyList": obj({"policies": {"type": "array", "items": ref("Policy")}}, ["policies"]),
    "PolicyVersion": obj(
        {
            "policy_id": {"type": "string"},
            "version": {"type": "integer"},
            "label": {"type": "string"},
            "source": {"type": "string"},
            "digest": {"type": "string"},
            "created_at": TIME,
            "created_by": {"type": "string"},
        },
        ["policy_id", "version", "source", "digest"],
    ),
    "PolicyVersionList": obj({"versions": {"type": "array", "items": ref("PolicyVersion")}}, ["versions"]),
    "DryRunInput": obj(
        {
            "version": POLICY_VERSION,
            "input": {"type": "object", "description": "a complete policy input document (docs/policy.md)"},
            "request": obj(
                {
                    "endpoint": {"type": "string", "enum": ENDPOINTS},
                    "body": {"type": "object"},
                    "key_id": {"type": "string", "pattern": "^[A-Za-z0-9]{12}$"},
                    "model": {
                        "type": "string",
                        "pattern": "^[A-Za-z0-9._:-]{1,256}$",
                        "description": "Bedrock endpoints: the model id (the gateway takes it from the path)",
                    },
                },
                ["endpoint", "body"],
            ),
        }
    ),
    "DryRunResult": obj(
        {
            "policy": obj({"id": {"type": "string"}, "version": {"type": "integer"}}, extra=True),
            "decision": {"type": "object"},
            "input": {"type": "object"},
            "bundle_revision": {"type": "string"},
            "enforced": {"type": "boolean"},
        },
        ["policy", "decision", "input", "enforced"],
    ),
    "AuditEvent": obj(
        {
            "id": {"type": "string"},
            "kind": {"type": "string"},
            "workspace": {"type": ["string", "null"]},
            "occurred_at": TIME,
            "actor": {"type": ["string", "null"]},
            "key_id": {"type": ["string", "null"]},
            "user": {"type": ["string", "null"]},
            "model": {"type": ["string", "null"]},
            "endpoint": {"type": ["string", "null"]},
            "decision": {"type": ["string", "null"]},
            "code": {"type": ["string", "null"]},
            "status": {"type": ["integer", "null"]},
            "latency_ms": {"type": ["number", "null"]},
            "tokens": {"type": ["object", "null"]},
            "cost_usd": {"type": ["number", "null"]},
            "upstream": {"type": ["string", "null"]},
            "provider": {"type": ["string", "null"]},
            "sidecar": {"type": ["string", "null"]},
            "policies": STRS,
            "detail": {"type": ["object", "null"]},
        },
        ["id", "kind", "occurred_at"],
        extra=True,
    ),
    "AuditEventFull": {
        "allOf": [
            ref("AuditEvent"),
            obj({"receipt": {"type": ["object", "null"]}, "inclusion_proof": {"type": ["object", "null"]}}, extra=True),
        ]
    },
    "AuditPage": obj(
        {"events": {"type": "array", "items": ref("AuditEvent")}, "next_cursor": {"type": ["string", "null"]}},
        ["events", "next_cursor"],
    ),
    "ReceiptBatch": obj(
        {
            "instance_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "receipts": {"type": "array", "maxItems": 5000, "items": {"type": "object"}},
        },
        ["instance_id", "receipts"],
    ),
    "IngestResult": obj(
        {
            "accepted": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "rejected": {
                "type": "array",
                "items": obj({"id": {"type": ["string", "null"]}, "reason": {"type": "string"}}),
            },
            "deferred": {
                "type": "array",
                "description": "signed by a key not known yet: send again",
                "items": obj({"id": {"type": ["string", "null"]}, "reason": {"type": "string"}}),
            },
        },
        ["accepted", "duplicates", "rejected", "deferred"],
    ),
    "SigningKeyInput": obj(
        {
            "key_id": {"type": "string", "maxLength": 64},
            "public_key": {"type": "string", "maxLength": 4096},
            "proof": {"type": "object", "description": "key.registered custody event (DSSE) signed by this key"},
        },
        ["key_id", "public_key", "proof"],
    ),
    "InstanceRegistration": obj(
        {
            "instance_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,200}$"},
            "tenant": ID,
            "zone": {"type": "string", "maxLength": 64},
            "version": {"type": "string", "maxLength": 40},
            "grpc_address": {"type": "string", "maxLength": 512},
            "authz_address": {
                "type": "string",
                "pattern": AUTHZ_ADDRESS,
                "description": "where the sidecar answers Envoy's ext_authz HTTP check (unix:/absolute/path or "
                "host:port); its gateway is then configured for that transport, else for ext_proc",
            },
            "signing_key": ref("SigningKeyInput"),
        },
        ["instance_id", "tenant", "grpc_address", "signing_key"],
    ),
    "Instance": obj(
        {
            "id": {"type": "string"},
            "tenant": {"type": "string"},
            "zone": {"type": "string"},
            "version": {"type": "string"},
            "grpc_address": {"type": "string"},
            "authz_address": {"type": ["string", "null"]},
            "registered_at": TIME,
            "last_seen_at": TIME,
            "stale": {"type": "boolean"},
            "staleness_seconds": {"type": "number"},
            "posture": {"type": "object"},
        },
        ["id", "tenant", "posture"],
        extra=True,
    ),
    "HeartbeatResult": obj(
        {"ok": {"type": "boolean"}, "commands": {"type": "array", "items": {"type": "object"}}}, ["ok"], extra=True
    ),
    "RelayInput": obj(
        {
            "to": {"type": "string", "minLength": 1, "maxLength": 256, "description": "target model"},
            "payload": {"type": "object", "description": "the provider-shaped request body"},
            "metadata": {
                "type": "object",
                "maxProperties": 50,
                "x-relaygate-max-bytes": 16384,
                "description": "custom tracking data, kept in logs (at most 16 KiB as JSON)",
            },
            "fallback": {**STRS, "maxItems": 10, "description": "models to try next (default: the workspace's chain)"},
        },
        ["to", "payload"],
    ),
    "RelayAttempt": obj(
        {
            "model": {"type": "string"},
            "status_code": {"type": ["integer", "null"]},
            "receipt_id": {"type": ["string", "null"]},
            "latency_ms": {"type": "integer"},
            "error": {"type": ["string", "null"]},
        },
        ["model", "latency_ms"],
    ),
    "RelayResult": obj(
        {
            "relay_id": {"type": "string"},
            "status_code": {"type": "integer"},
            "latency_ms": {"type": "integer"},
            "body": {},
            "fallback_used": {"type": "boolean"},
            "model": {"type": "string"},
            "receipt_id": {"type": ["string", "null"]},
            "attempts": {"type": "array", "items": ref("RelayAttempt")},
        },
        ["relay_id", "status_code", "latency_ms", "body", "fallback_used"],
    ),
    # OpenAPI 3.1 describes a text/event-stream response by each event's schema.
    "RelayEvent": obj(
        {
            "event": {"type": "string", "description": "the provider's event name (Anthropic names them)"},
            "data": {"type": "string", "description": "the provider's chunk (JSON), or OpenAI's closing [DONE]"},
            "id": {"type": "string"},
        },
        ["data"],
        extra=True,
        description="one server-sent event of the final attempt's stream, passed through as the provider sent it",
    ),
    "AgentInput": obj(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "capability": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$"},
            "description": {"type": "string", "maxLength": 2000},
            "endpoint": {"type": "string", "pattern": "^https?://[^\\s]{1,2000}$"},
            "protocol": {"type": "string", "enum": ["http", "https", "grpc", "websocket"], "default": "http"},
        },
        ["name", "capability", "endpoint"],
    ),
    "AgentPatch": obj(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "capability": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$"},
            "description": {"type": "string", "maxLength": 2000},
            "endpoint": {"type": "string", "pattern": "^https?://[^\\s]{1,2000}$"},
            "protocol": {"type": "string", "enum": ["http", "https", "grpc", "websocket"]},
        },
        minProperties=1,
    ),
    "Agent": obj(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "capability": {"type": "string"},
            "description": {"type": "string"},
            "endpoint": {"type": "string"},
            "protocol": {"type": "string"},
            "created_at": TIME,
        },
        ["id", "name", "capability", "description", "endpoint", "protocol", "created_at"],
    ),
    "AgentList": obj(
        {
            "agents": {"type": "array", "items": ref("Agent")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
        ["agents", "total", "limit", "offset"],
    ),
    "Health": obj(
        {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "timestamp": TIME,
            "version": {"type": "string"},
            "uptime": {"type": "integer"},
            "services": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        ["status", "timestamp", "version", "uptime", "services"],
    ),
    "LogEntry": obj(
        {
            "request_id": {"type": "string"},
            "timestamp": TIME,
            "latency_ms": {"type": ["number", "null"]},
            "model": {"type": ["string", "null"]},
            "endpoint": {"type": ["string", "null"]},
            "status": {"type": ["integer", "null"]},
            "decision": {"type": ["string", "null"]},
            "code": {"type": ["string", "null"]},
            "provider": {"type": ["string", "null"]},
            "upstream": {"type": ["string", "null"]},
            "user": {"type": ["string", "null"]},
            "tokens": obj({"input": {"type": ["integer", "null"]}, "output": {"type": ["integer", "null"]}}),
            "estimated_cost_usd": {"type": ["number", "null"]},
            "fallback": {"type": ["object", "null"]},
            "metadata": {"type": ["object", "null"]},
        },
        ["request_id", "timestamp"],
        extra=True,
    ),
    "LogPage": obj(
        {"logs": {"type": "array", "items": ref("LogEntry")}, "next_cursor": {"type": ["string", "null"]}},
        ["logs", "next_cursor"],
    ),
    "UsageRow": obj(
        {
            "requests": {"type": "integer"},
            "successes": {"type": "integer"},
            "success_rate": {"type": ["number", "null"]},
            "avg_latency_ms": {"type": ["number", "null"]},
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "estimated_cost_usd": {"type": "number"},
        },
        extra=True,
    ),
    "Usage": obj(
        {
            "from": NTIME,
            "to": NTIME,
            "total": ref("UsageRow"),
            "by_model": {"type": "array", "items": ref("UsageRow")},
            "by_endpoint": {"type": "array", "items": ref("UsageRow")},
            "by_provider": {"type": "array", "items": ref("UsageRow")},
            "by_month": {"type": "array", "items": ref("UsageRow")},
        },
        ["total", "by_model", "by_endpoint", "by_provider"],
    ),
    "BundleKey": obj(
        {
            "key_id": {"type": "string"},
            "algorithm": {
                "type": "string",
                "enum": ["ES256", "EdDSA"],
                "description": "the JWS algorithm of the bundle signature (an OPA agent's keys.<name>.algorithm)",
            },
            "public_key": {"type": "string"},
        },
        ["key_id", "algorithm", "public_key"],
    ),
    "Checkpoint": obj(
        {
            "size": {"type": "integer"},
            "root_hash": {"type": "string"},
            "key_id": {"type": "string"},
            "signed_at": TIME,
            "checkpoint": {"type": "string", "description": "C2SP signed note"},
        },
        ["size", "root_hash", "key_id", "signed_at", "checkpoint"],
    ),
    "CheckpointList": obj({"checkpoints": {"type": "array", "items": ref("Checkpoint")}}, ["checkpoints"]),
    "InclusionProof": obj(
        {
            "event_id": {"type": "string"},
            "leaf_index": {"type": "integer"},
            "tree_size": {"type": "integer"},
            "hashes": {"type": "array", "items": {"type": "string"}},
            "checkpoint": {"type": ["string", "null"]},
        },
        ["leaf_index", "tree_size", "hashes"],
    ),
    "ConsistencyProof": obj(
        {
            "first": {"type": "integer"},
            "second": {"type": "integer"},
            "hashes": {"type": "array", "items": {"type": "string"}},
        },
        ["first", "second", "hashes"],
    ),
    "LogKeys": obj(
        {
            "origin": {"type": "string"},
            "root_key_id": {"type": "string"},
            "root_public_key": {"type": "string"},
            "current_key_id": {"type": "string"},
            "current_public_key": {"type": "string"},
        },
        ["root_key_id", "root_public_key"],
    ),
    "EvidenceRequest": obj(
        {
            "from": {"type": ["string", "null"], "format": "date-time", "maxLength": 40},
            "to": {"type": ["string", "null"], "format": "date-time", "maxLength": 40},
            "components": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {
                    "type": "string",
                    "enum": ["receipts", "policies", "key_custody", "deployments", "fleet_posture"],
                },
            },
            "consistency_from": {
                "type": "array",
                "maxItems": 16,
                "uniqueItems": True,
                "items": {"type": "integer", "minimum": 0, "maximum": 2**53 - 1},
                "description": "tree sizes of checkpoints you already hold: the bundle carries a "
                "consistency proof from each to its tree head (relaygate verify "
                "--after-checkpoint)",
            },
        }
    ),
    "EvidenceJob": obj(
        {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "running", "done", "failed"]},
            "progress": {"type": "number"},
            "stage": {"type": "string"},
            "workspace": {"type": ["string", "null"]},
            "created_at": TIME,
            "created_by": {"type": "string"},
            "finished_at": NTIME,
            "error": {"type": ["string", "null"]},
            "sha256": {"type": ["string", "null"]},
            "size_bytes": {"type": ["integer", "null"]},
            "stats": {"type": ["object", "null"]},
            "params": {"type": "object"},
        },
        ["id", "status", "progress", "stage"],
    ),
    "EvidenceJobList": obj({"bundles": {"type": "array", "items": ref("EvidenceJob")}}, ["bundles"]),
    "VerifyReport": obj(
        {
            "bundle_id": {"type": "string"},
            "ok": {"type": "boolean"},
            "trust": {"type": "string"},
            "stats": {"type": "object"},
            "failures": {"type": "array", "items": {"type": "object"}},
            "checks": {"type": "array", "items": {"type": "object"}},
        },
        ["ok", "failures", "checks"],
    ),
    "CredentialRotateInput": obj(
        {
            "kind": {"type": "string", "enum": ["receipt_signing", "tree_head", "provider"]},
            "instance_id": {"type": "string", "maxLength": 200},
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": "provider credential name"},
            "secret": {"type": "string", "minLength": 1, "maxLength": 8192, "writeOnly": True},
        },
        ["kind"],
    ),
    "RotateResult": obj({"kind": {"type": "string"}, "status": {"type": "string"}}, ["kind", "status"], extra=True),
    "Rotation": obj(
        {
            "rotation_id": {"type": "string"},
            "kind": {"type": "string"},
            "target": {"type": "string"},
            "status": {"type": "string"},
            "created_at": TIME,
            "done_at": NTIME,
            "detail": {"type": "object"},
        },
        ["rotation_id", "kind", "status"],
    ),
    "KeyIntroduction": obj(
        {
            "rotation_id": {"type": ["string", "null"], "maxLength": 40},
            "event": {"type": "object", "description": "key.introduced custody event (DSSE)"},
        },
        ["event"],
    ),
    "CustodyList": obj({"events": {"type": "array", "items": {"type": "object"}}}, ["events"]),
    "InstanceList": obj({"instances": {"type": "array", "items": ref("Instance")}}, ["instances"]),
    # OPA's status and decision-log APIs, as a stock OPA agent posts them (extra fields allowed:
    # OPA adds to both between releases).
    "OpaStatusReport": obj(
        {
            "labels": obj(
                {"id": {"type": "string", "minLength": 1, "maxLength": 200}, "version": {"type": "string"}},
                ["id"],
                extra=True,
            ),
            "bundles": {"type": "object", "maxProperties": 32},
            "plugins": {"type": "object"},
        },
        ["labels"],
        extra=True,
    ),
    "OpaDecisionLogBatch": {
        "type": "array",
        "maxItems": 1000,
        "items": obj(
            {
                "decision_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,100}$"},
                "labels": obj({"id": {"type": "string", "maxLength": 200}}, extra=True),
                "path": {"type": "string"},
                "timestamp": {"type": "string"},
                "bundles": {"type": "object"},
            },
            ["decision_id"],
            extra=True,
        ),
    },
    "OpaIngestResult": obj(
        {"accepted": {"type": "integer"}, "duplicate": {"type": "integer"}}, ["accepted", "duplicate"]
    ),
    "OpaStatusResult": obj(
        {"id": {"type": "string"}, "bundles": {"type": "integer"}, "errors": {"type": "integer"}},
        ["id", "bundles", "errors"],
    ),
    "OpaAgentList": obj(
        {
            "agents": {
                "type": "array",
                "items": obj(
                    {
                        "id": {"type": "string"},
                        "version": {"type": "string"},
                        "labels": {"type": "object"},
                        "bundles": {
                            "type": "object",
                            "description": "name -> active_revision, last_successful_activation, "
                            "last_successful_download, code, message (OPA's bundle status)",
                        },
                        "errors": {"type": "array", "items": {"type": "object"}},
                        "first_seen_ms": {"type": "integer"},
                        "last_report_ms": {"type": "integer"},
                        "decisions": {"type": "integer"},
                        "current": {
                            "type": ["boolean", "null"],
                            "description": "every bundle at the revision the control plane serves the agent's "
                            "tenant (labels.tenant, default 'default') now",
                        },
                    },
                    [
                        "id",
                        "version",
                        "labels",
                        "bundles",
                        "errors",
                        "first_seen_ms",
                        "last_report_ms",
                        "decisions",
                        "current",
                    ],
                ),
            }
        },
        ["agents"],
    ),
    "FleetHealth": obj(
        {
            "tenants": {
                "type": "array",
                "items": obj(
                    {
                        "tenant": {"type": "string"},
                        "status": {"type": "string", "enum": ["healthy", "degraded", "down"]},
                        "instances": {"type": "integer"},
                        "live": {"type": "integer"},
                        "stale": STRS,
                        "bundle_revisions": STRS,
                        "calls_per_s": {"type": "number"},
                        "errors_per_s": {"type": "number"},
                        "error_rate": {"type": ["number", "null"]},
                        "receipts_per_s": {"type": "number"},
                        "evidence_emission": {"type": ["number", "null"]},
                        "receipts_backlog": {"type": "integer"},
                        "nacking": {
                            **STRS,
                            "description": "gateways whose last xDS NACK is not yet superseded by an accepted version",
                        },
                    },
                    ["tenant", "status", "instances", "live"],
                    extra=True,
                ),
            },
            "generated_at": TIME,
        },
        ["tenants"],
    ),
    "Gates": obj(
        {
            "max_error_rate": {"type": "number", "minimum": 0, "maximum": 1},
            "min_evidence_ratio": {"type": "number", "minimum": 0, "maximum": 1},
            "max_nacks": {"type": "integer", "minimum": 0, "maximum": 1000},
            "adoption_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
            "stale_grace": {"type": "number", "minimum": 0, "maximum": 3600},
            "evidence_grace": {"type": "number", "minimum": 0, "maximum": 60},
        }
    ),
    "DeploymentInput": obj(
        {
            "policy_id": {"type": "string", "pattern": "^pol_[a-z0-9]{1,40}$"},
            "version": POLICY_VERSION,
            "tenants": {
                "type": "array",
                "minItems": 1,
                "maxItems": 500,
                "items": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            },
            "wave_size": {"type": "integer", "minimum": 1, "maximum": 500, "default": 1},
            "pause_seconds": {"type": "number", "minimum": 0, "maximum": 86400, "default": 30},
            "gates": ref("Gates"),
        },
        ["policy_id", "version", "tenants"],
    ),
    "Deployment": obj(
        {
            "id": {"type": "string"},
            "policy_id": {"type": "string"},
            "version": {"type": "integer"},
            "tenants": STRS,
            "wave_size": {"type": "integer"},
            "pause_seconds": {"type": "number"},
            "gates": {"type": "object"},
            "status": {"type": "string", "enum": ["running", "succeeded", "rolling_back", "rolled_back", "failed"]},
            "current_wave": {"type": "integer"},
            "stage": {"type": "string"},
            "waves": {"type": "array", "items": {"type": "object"}},
            "reason": {"type": ["string", "null"]},
            "created_by": {"type": "string"},
            "created_at": TIME,
            "updated_at": TIME,
            "finished_at": NTIME,
        },
        ["id", "policy_id", "version", "status", "waves"],
    ),
    "DeploymentList": obj({"deployments": {"type": "array", "items": ref("Deployment")}}, ["deployments"]),
}

ERRORS = {
    "400": "invalid request: malformed JSON or parameters (details names the parameter)",
    "401": "missing, malformed, forged, revoked or expired credentials",
    "403": "the credential lacks the permission, or the key is read-only",
    "404": "no such resource in the caller's workspace",
    "405": "the path does not take this method; Allow lists the methods it does",
    "413": "request body too large",
    "415": "wrong content type",
    "429": "rate limited; see Retry-After",
    "500": "internal error (logged); quote the request_id when reporting it",
    "503": "rate.unavailable: the rate limits shared by the replicas (Redis or PostgreSQL) cannot be reached; "
    "see Retry-After",
}
# The operations that answer 409, and with which codes (every ApiError(409, ...) in the control
# plane; tests/system/test_openapi.py checks each code is listed here).
CONFLICTS = {
    "createWorkspace": "workspace.exists: the id is taken (ids are never reused, even after a delete)",
    "createUpstream": "upstream.exists: an upstream of that name exists",
    "deleteUpstream": "upstream.last: a gateway needs at least one upstream",
    "createBudget": "budget.exists: the budget id exists in this workspace",
    "rotateKey": "key.inactive: the key is already revoked or rotated",
    "createPolicy": "policy.exists: a policy of that name exists in this workspace (update it with PUT)",
    "downloadEvidenceBundle": "evidence.failed: the bundle could not be assembled; evidence.gone: the bundle is no longer stored",
    "verifyEvidenceBundle": "evidence.not_ready: the bundle is still being assembled",
    "createDeployment": "deployment.in_progress: a deployment of this policy is still running",
    "rollbackDeployment": "deployment.finished: the deployment already failed or was rolled back",
    "registerInstance": "key.conflict: the signing key belongs to another instance",
    "introduceKey": "key.conflict: the key belongs to another instance, or is not the instance's current key",
    "createWebhook": "webhook.quota_exceeded: the workspace has as many subscriptions as it may",
}
# Response headers the app sets (relaygate/controlplane/app.py, errors.py).
HEADERS = {
    "X-Request-Id": {
        "description": "this request's id (also the error body's request_id); on every response",
        "required": True,
        "schema": {"type": "string", "pattern": "^req_[0-9a-f]+$"},
    },
    "Retry-After": {"description": "seconds to wait before retrying", "required": True, "schema": {"type": "string"}},
}
REQUEST_ID = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}

PARAMS = {
    "limit": {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
    },
    "offset": {
        "name": "offset",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0},
    },
    "cursor": {
        "name": "cursor",
        "in": "query",
        "schema": {"type": "string", "maxLength": 200},
        "description": "next_cursor of the previous page",
    },
    "from": {
        "name": "from",
        "in": "query",
        "schema": {"type": "string", "format": "date-time", "maxLength": 40},
        "description": "ISO 8601 time, inclusive",
    },
    "to": {
        "name": "to",
        "in": "query",
        "schema": {"type": "string", "format": "date-time", "maxLength": 40},
        "description": "ISO 8601 time, exclusive",
    },
    "workspace": {
        "name": "X-Relaygate-Workspace",
        "in": "header",
        "schema": ID,
        "description": "admin token only: the workspace to act in",
    },
}


def path_param(name: str, schema=None) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema or ID}


def q(name: str, schema: dict, description: str = "") -> dict:
    p = {"name": name, "in": "query", "schema": schema}
    if description:
        p["description"] = description
    return p


OPERATIONS: list[dict] = []


@dataclass(frozen=True)
class Deprecated:
    """A deprecated operation (the lifecycle promise: /v1 stays compatible, a deprecation is
    announced in CHANGELOG.md at least 12 months before the sunset). The document marks it
    ``deprecated: true`` with ``x-sunset`` (the convention oasdiff's breaking-change check reads:
    removing the operation before that date is an error); every response carries the
    ``Deprecation`` (RFC 9745), ``Sunset`` (RFC 8594) and successor ``Link`` headers."""

    since: str  # YYYY-MM-DD: when it was deprecated
    sunset: str  # YYYY-MM-DD: when it may be removed (at least 12 months later)
    successor: str  # "METHOD /path" to use instead


def op(
    method: str,
    path: str,
    operation_id: str,
    summary: str,
    *,
    tag: str,
    auth: str = "workspace",
    permission: str | None = None,
    params=(),
    body: str | dict | None = None,
    body_types=("application/json",),
    ok: tuple[int, object] = (200, None),
    extra: dict | None = None,
    errors=None,
    deprecated: Deprecated | None = None,
) -> None:
    OPERATIONS.append(
        dict(
            method=method,
            path=path,
            operation_id=operation_id,
            summary=summary,
            tag=tag,
            auth=auth,
            permission=permission,
            params=list(params),
            body=body,
            body_types=body_types,
            ok=ok,
            extra=extra or {},
            errors=errors,
            deprecated=deprecated,
        )
    )


DEPRECATION_HEADERS = {
    "Deprecation": {
        "description": "RFC 9745: when this operation was deprecated (@epoch-seconds)",
        "schema": {"type": "string"},
    },
    "Sunset": {
        "description": "RFC 8594: from when it may be gone (an HTTP date)",
        "schema": {"type": "string"},
    },
    "Link": {"description": 'the operation to use instead (rel="successor-version")', "schema": {"type": "string"}},
}
LIST = [PARAMS["limit"], PARAMS["cursor"]]
WS = [PARAMS["workspace"]]
JSON_OK = {"content": {"application/json": {}}}

# -- service --------------------------------------------------------------------
op(
    "get",
    "/healthz",
    "liveness",
    "Liveness probe",
    tag="service",
    auth="public",
    ok=(200, obj({"status": {"type": "string"}}, ["status"])),
)
op("get", "/metrics", "metrics", "Prometheus metrics", tag="service", auth="public", ok=(200, "text"))
op("get", "/v1/openapi.json", "getOpenApi", "This document", tag="service", auth="public", ok=(200, {"type": "object"}))
op(
    "post",
    "/v1/sessions",
    "createSession",
    "Start a short-lived session (ro_session_*)",
    tag="auth",
    permission="sessions:write",
    params=WS,
    body="SessionInput",
    ok=(201, "Session"),
)
op(
    "delete",
    "/v1/sessions/current",
    "endSession",
    "End the session whose token authenticates this call",
    tag="auth",
    ok=(204, None),
)

# -- workspaces, upstreams, budgets, keys -----------------------------------------
op(
    "get",
    "/v1/workspaces",
    "listWorkspaces",
    "Workspaces (admin: all; others: their own)",
    tag="workspaces",
    auth="any",
    ok=(200, "WorkspaceList"),
)
op(
    "post",
    "/v1/workspaces",
    "createWorkspace",
    "Create a workspace",
    tag="workspaces",
    auth="admin",
    body="WorkspaceInput",
    ok=(201, "Workspace"),
)
op(
    "get",
    "/v1/workspaces/{workspace_id}",
    "getWorkspace",
    "One workspace",
    tag="workspaces",
    auth="any",
    params=[path_param("workspace_id")],
    ok=(200, "Workspace"),
)
op(
    "get",
    "/v1/workspaces/{workspace_id}/limits",
    "getWorkspaceLimits",
    "Every limit of the workspace (its plan's, its own, the defaults) and where each comes from",
    tag="workspaces",
    auth="any",
    params=[path_param("workspace_id")],
    ok=(200, "EffectiveLimits"),
)
op(
    "get",
    "/v1/plans",
    "listPlans",
    "The plans a workspace can be on, with their limits",
    tag="workspaces",
    auth="any",
    ok=(200, "PlanList"),
)
op(
    "put",
    "/v1/workspaces/{workspace_id}",
    "updateWorkspace",
    "Change a workspace's settings",
    tag="workspaces",
    auth="admin",
    params=[path_param("workspace_id")],
    body="WorkspaceUpdate",
    ok=(200, "Workspace"),
)
op(
    "delete",
    "/v1/workspaces/{workspace_id}",
    "deleteWorkspace",
    "Soft-delete a workspace (its keys stop working)",
    tag="workspaces",
    auth="admin",
    params=[path_param("workspace_id")],
    ok=(204, None),
)

op(
    "get",
    "/v1/upstreams",
    "listUpstreams",
    "Provider upstreams",
    tag="upstreams",
    auth="admin",
    ok=(200, "UpstreamList"),
)
op(
    "get",
    "/v1/models",
    "listModels",
    "The model catalog: every model an upstream serves, its aliases and who serves it (the "
    "caller's workspace aliases too); GET /v1/{workspace}/models at the gateway lists what one key "
    "may call",
    tag="upstreams",
    auth="any",
    ok=(200, "ModelCatalog"),
)
op(
    "post",
    "/v1/upstreams",
    "createUpstream",
    "Add an upstream (reaches Envoy over xDS)",
    tag="upstreams",
    auth="admin",
    body="UpstreamInput",
    ok=(201, "Upstream"),
)
op(
    "get",
    "/v1/upstreams/{name}",
    "getUpstream",
    "One upstream",
    tag="upstreams",
    auth="admin",
    params=[path_param("name")],
    ok=(200, "Upstream"),
)
op(
    "put",
    "/v1/upstreams/{name}",
    "updateUpstream",
    "Replace an upstream",
    tag="upstreams",
    auth="admin",
    params=[path_param("name")],
    body="UpstreamInput",
    ok=(200, "Upstream"),
)
op(
    "delete",
    "/v1/upstreams/{name}",
    "deleteUpstream",
    "Remove an upstream",
    tag="upstreams",
    auth="admin",
    params=[path_param("name")],
    ok=(204, None),
)

op(
    "get",
    "/v1/budgets",
    "listBudgets",
    "Budgets of the workspace",
    tag="budgets",
    permission="budgets:read",
    params=WS,
    ok=(200, "BudgetList"),
)
op(
    "post",
    "/v1/budgets",
    "createBudget",
    "Add a budget (workspace-wide or per key)",
    tag="budgets",
    permission="budgets:write",
    params=WS,
    body="BudgetInput",
    ok=(201, "Budget"),
)
op(
    "get",
    "/v1/budgets/{budget_id}",
    "getBudget",
    "One budget",
    tag="budgets",
    permission="budgets:read",
    params=[path_param("budget_id"), *WS],
    ok=(200, "Budget"),
)
op(
    "put",
    "/v1/budgets/{budget_id}",
    "updateBudget",
    "Change a budget's limit",
    tag="budgets",
    permission="budgets:write",
    params=[path_param("budget_id"), *WS],
    body="BudgetUpdate",
    ok=(200, "Budget"),
)
op(
    "delete",
    "/v1/budgets/{budget_id}",
    "deleteBudget",
    "Remove a budget",
    tag="budgets",
    permission="budgets:write",
    params=[path_param("budget_id"), *WS],
    ok=(204, None),
)

KEY_ID = {"type": "string", "pattern": "^[A-Za-z0-9]{12}$"}
op(
    "get",
    "/v1/keys",
    "listKeys",
    "API keys of the workspace (never their secrets)",
    tag="keys",
    permission="keys:read",
    params=WS,
    ok=(200, "KeyList"),
)
op(
    "post",
    "/v1/keys",
    "createKey",
    "Create a key; the secret is shown once",
    tag="keys",
    permission="keys:write",
    params=WS,
    body="KeyInput",
    ok=(201, "KeyCreated"),
)
op(
    "get",
    "/v1/keys/self/aws-credentials",
    "getOwnAwsCredentials",
    "The AWS SigV4 access key pair of the key authenticating this call, for Bedrock clients",
    tag="keys",
    permission="gateway:call",
    ok=(200, "AwsCredentials"),
)
op(
    "get",
    "/v1/keys/{key_id}",
    "getKey",
    "One key",
    tag="keys",
    permission="keys:read",
    params=[path_param("key_id", KEY_ID), *WS],
    ok=(200, "Key"),
)
op(
    "delete",
    "/v1/keys/{key_id}",
    "deleteKey",
    "Revoke a key (same as POST .../revoke)",
    tag="keys",
    permission="keys:write",
    params=[path_param("key_id", KEY_ID), *WS],
    ok=(200, "Key"),
    # Two spellings of one action: the revoke endpoint says what happens (the key is kept, revoked).
    deprecated=Deprecated("2026-12-03", "2027-12-03", "POST /v1/keys/{key_id}/revoke"),
)
op(
    "post",
    "/v1/keys/{key_id}/revoke",
    "revokeKey",
    "Revoke a key; gateways refuse it within seconds",
    tag="keys",
    permission="keys:write",
    params=[path_param("key_id", KEY_ID), *WS],
    ok=(200, "Key"),
)
op(
    "post",
    "/v1/keys/{key_id}/rotate",
    "rotateKey",
    "Replace a key by a new one with the same scope",
    tag="keys",
    permission="keys:write",
    params=[path_param("key_id", KEY_ID), *WS],
    body="RotateInput",
    ok=(201, "KeyCreated"),
)

# -- policies -----------------------------------------------------------------------
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
# A YAML document travels as raw bytes (UTF-8 text): "binary" is how client generators
# (openapi-python-client, openapi-typescript, oapi-codegen) know to send it as given.
YAML_BODY = {"type": "string", "format": "binary", "description": "the policy as a YAML document (UTF-8)"}
POLICY_ID = {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,64}$"}
op(
    "get",
    "/v1/policies",
    "listPolicies",
    "Active policies of the workspace (and the platform's)",
    tag="policies",
    permission="policies:read",
    params=[*WS, q("include_deleted", {"type": "boolean", "default": False})],
    ok=(200, "PolicyList"),
)
op(
    "post",
    "/v1/policies",
    "createPolicy",
    "Create a policy from a YAML document",
    tag="policies",
    permission="policies:write",
    params=WS,
    body=dict(YAML_BODY),
    body_types=YAML_TYPES,
    ok=(201, "Policy"),
)
op(
    "get",
    "/v1/policies/{policy_id}",
    "getPolicy",
    "One policy at its current version",
    tag="policies",
    permission="policies:read",
    params=[path_param("policy_id", POLICY_ID), *WS],
    ok=(200, "Policy"),
)
op(
    "put",
    "/v1/policies/{policy_id}",
    "updatePolicy",
    "Publish a new version atomically (old versions stay readable)",
    tag="policies",
    permission="policies:write",
    params=[
        path_param("policy_id", POLICY_ID),
        *WS,
        q(
            "activate",
            {"type": "boolean", "default": True},
            "false: store the version without making it current (roll it out with a deployment)",
        ),
    ],
    body=dict(YAML_BODY),
    body_types=YAML_TYPES,
    ok=(200, "Policy"),
)
op(
    "delete",
    "/v1/policies/{policy_id}",
    "deletePolicy",
    "Soft-delete; receipts keep pointing at its versions",
    tag="policies",
    permission="policies:write",
    params=[path_param("policy_id", POLICY_ID), *WS],
    ok=(204, None),
)
op(
    "get",
    "/v1/policies/{policy_id}/versions",
    "listPolicyVersions",
    "Every version of a policy",
    tag="policies",
    permission="policies:read",
    params=[path_param("policy_id", POLICY_ID), *WS],
    ok=(200, "PolicyVersionList"),
)
op(
    "get",
    "/v1/policies/{policy_id}/versions/{version}",
    "getPolicyVersion",
    "One version",
    tag="policies",
    permission="policies:read",
    params=[path_param("policy_id", POLICY_ID), path_param("version", POLICY_VERSION), *WS],
    ok=(200, "PolicyVersion"),
)
op(
    "post",
    "/v1/policies/{policy_id}/dryrun",
    "dryRunPolicy",
    "Evaluate against an example with the data plane's engine; nothing is enforced",
    tag="policies",
    permission="policies:read",
    params=[path_param("policy_id", POLICY_ID), *WS],
    body="DryRunInput",
    ok=(200, "DryRunResult"),
)

# -- audit --------------------------------------------------------------------------
op(
    "get",
    "/v1/audit/events",
    "listAuditEvents",
    "The audit feed, newest first, with a stable cursor "
    "(admin: every workspace unless X-Relaygate-Workspace names one)",
    tag="audit",
    auth="any",
    permission="logs:read",
    params=[
        *WS,
        *LIST,
        PARAMS["from"],
        PARAMS["to"],
        q("user", {"type": "string", "maxLength": 256}),
        q("key_id", {"type": "string", "maxLength": 32}),
        q("model", {"type": "string", "maxLength": 256}),
        q("policy", {"type": "string", "maxLength": 100}, "policy id, or id@version"),
        q("decision", {"type": "string", "enum": ["allow", "deny"]}),
        q("kind", {"type": "string", "maxLength": 40}, "gateway.call, policy.created, …; 'deployment.*' for a prefix"),
        q(
            "actor",
            {"type": "string", "maxLength": 200},
            "who made a control-plane change: key:<key id>, session:<session id>, jwt:<subject>, admin",
        ),
        q(
            "actor_kind",
            {"type": "string", "enum": ["key", "session", "jwt", "admin", "fleet"]},
            "changes made by any credential of that kind",
        ),
    ],
    ok=(200, "AuditPage"),
)
op(
    "get",
    "/v1/audit/events/{event_id}",
    "getAuditEvent",
    "One event with its signed receipt",
    tag="audit",
    auth="any",
    permission="logs:read",
    params=[path_param("event_id", {"type": "string", "maxLength": 100}), *WS],
    ok=(200, "AuditEventFull"),
)

# -- the audit log: tree heads and proofs -------------------------------------------------
op(
    "get",
    "/v1/audit/checkpoints",
    "listCheckpoints",
    "Signed tree heads, newest first",
    tag="audit",
    auth="any",
    permission="logs:read",
    params=[*WS, PARAMS["limit"], q("max_size", {"type": "integer", "minimum": 0, "maximum": INT64_MAX})],
    ok=(200, "CheckpointList"),
)
op(
    "get",
    "/v1/audit/checkpoints/latest",
    "latestCheckpoint",
    "The newest signed tree head",
    tag="audit",
    auth="any",
    permission="logs:read",
    params=WS,
    ok=(200, "Checkpoint"),
)
op(
    "post",
    "/v1/audit/checkpoints",
    "signCheckpoint",
    "Sign the current tree head now",
    tag="audit",
    auth="any",
    permission="logs:read",
    params=WS,
    ok=(201, "Checkpoint"),
)
op(
    "get",
    "/v1/audit/proofs/inclusion",
    "inclusionProof",
    "Inclusion proof of one of your receipts",
    tag="audit",
    auth="any",
    permission="logs:read",
    params=[
        *WS,
        {"name": "event_id", "in": "query", "required": True, "schema": {"type": "string", "maxLength": 100}},
        q("tree_size", {"type": "integer", "minimum": 1, "maximum": INT64_MAX}, "a signed size (default: the latest)"),
    ],
    ok=(200, "InclusionProof"),
)
op(
    "get",
    "/v1/audit/proofs/consistency",
    "consistencyProof",
    "Consistency proof between two tree sizes",
    tag="audit",
    auth="any",
    permission="logs:read",
    params=[
        *WS,
        {
            "name": "first",
            "in": "query",
            "required": True,
            "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
        },
        {
            "name": "second",
            "in": "query",
            "required": True,
            "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
        },
    ],
    ok=(200, "ConsistencyProof"),
)
op(
    "get",
    "/v1/audit/tiles/{level}/{index}",
    "logTile",
    "One C2SP tlog tile of the log (raw hashes, 32 bytes each: full, or the partial right edge)",
    tag="audit",
    auth="any",
    permission="logs:read",
    params=[
        *WS,
        path_param("level", {"type": "integer", "minimum": 0, "maximum": 7}),
        path_param("index", {"type": "integer", "minimum": 0, "maximum": INT64_MAX}),
        q("width", {"type": "integer", "minimum": 1, "maximum": 256}, "the first width hashes (a partial tile)"),
    ],
    ok=(200, "tile"),
)
op(
    "get",
    "/v1/audit/keys",
    "logKeys",
    "The control plane's tree-head keys (pin the root one)",
    tag="audit",
    auth="public",
    ok=(200, "LogKeys"),
)

# -- webhooks -----------------------------------------------------------------------------
WEBHOOK_ID = {"type": "string", "pattern": "^whk_[a-z0-9]{16}$"}
op(
    "post",
    "/v1/webhooks",
    "createWebhook",
    "Subscribe a URL to the workspace's events; deliveries are signed (Standard Webhooks)",
    tag="webhooks",
    permission="keys:write",
    params=WS,
    body="WebhookInput",
    ok=(201, "Webhook"),
)
op(
    "get",
    "/v1/webhooks",
    "listWebhooks",
    "The workspace's webhook subscriptions (never their secrets)",
    tag="webhooks",
    permission="keys:read",
    params=WS,
    ok=(200, "WebhookList"),
)
op(
    "get",
    "/v1/webhooks/{webhook_id}",
    "getWebhook",
    "One subscription",
    tag="webhooks",
    permission="keys:read",
    params=[path_param("webhook_id", WEBHOOK_ID), *WS],
    ok=(200, "Webhook"),
)
op(
    "delete",
    "/v1/webhooks/{webhook_id}",
    "deleteWebhook",
    "Unsubscribe (pending deliveries are cancelled)",
    tag="webhooks",
    permission="keys:write",
    params=[path_param("webhook_id", WEBHOOK_ID), *WS],
    ok=(204, None),
)
op(
    "get",
    "/v1/webhooks/{webhook_id}/deliveries",
    "listWebhookDeliveries",
    "The delivery log, newest first: status, attempts, the last answer",
    tag="webhooks",
    permission="keys:read",
    params=[
        path_param("webhook_id", WEBHOOK_ID),
        *WS,
        *LIST,
        q("status", {"type": "string", "enum": ["pending", "delivered", "failed", "cancelled"]}),
    ],
    ok=(200, "WebhookDeliveryPage"),
)
# -- evidence -----------------------------------------------------------------------------
BUNDLE_ID = {"type": "string", "pattern": "^evb_[a-z0-9]{16}$"}
op(
    "post",
    "/v1/evidence/bundles",
    "createEvidenceBundle",
    "Assemble an evidence bundle (a job)",
    tag="evidence",
    auth="any",
    permission="evidence:write",
    params=WS,
    body="EvidenceRequest",
    ok=(202, "EvidenceJob"),
)
op(
    "get",
    "/v1/evidence/bundles",
    "listEvidenceBundles",
    "Evidence bundle jobs",
    tag="evidence",
    auth="any",
    permission="evidence:read",
    params=[*WS, PARAMS["limit"]],
    ok=(200, "EvidenceJobList"),
)
op(
    "get",
    "/v1/evidence/bundles/{bundle_id}",
    "downloadEvidenceBundle",
    "The bundle (tar.gz) once assembled; 202 with progress until then",
    tag="evidence",
    auth="any",
    permission="evidence:read",
    params=[path_param("bundle_id", BUNDLE_ID), *WS],
    ok=(200, "gzip"),
    extra={
        "202": {
            "description": "still assembling",
            "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
            "content": {"application/json": {"schema": ref("EvidenceJob")}},
        }
    },
)
op(
    "get",
    "/v1/evidence/bundles/{bundle_id}/status",
    "getEvidenceBundleStatus",
    "A bundle job's progress",
    tag="evidence",
    auth="any",
    permission="evidence:read",
    params=[path_param("bundle_id", BUNDLE_ID), *WS],
    ok=(200, "EvidenceJob"),
)
op(
    "get",
    "/v1/evidence/bundles/{bundle_id}/verify",
    "verifyEvidenceBundle",
    "Verify the stored bundle on the server (the offline verifier's checks)",
    tag="evidence",
    auth="any",
    permission="evidence:read",
    params=[path_param("bundle_id", BUNDLE_ID), *WS],
    ok=(200, "VerifyReport"),
)

# -- fleet (sidecars) ------------------------------------------------------------------
op(
    "post",
    "/v1/fleet/receipts",
    "ingestReceipts",
    "Receipts from a sidecar's spool (idempotent)",
    tag="fleet",
    auth="fleet",
    body="ReceiptBatch",
    ok=(200, "IngestResult"),
)
op(
    "post",
    "/v1/fleet/instances",
    "registerInstance",
    "A sidecar registers with its signing key",
    tag="fleet",
    auth="fleet",
    body="InstanceRegistration",
    ok=(200, "Instance"),
)
op(
    "post",
    "/v1/fleet/instances/{instance_id}/heartbeat",
    "heartbeat",
    "A sidecar reports its posture",
    tag="fleet",
    auth="fleet",
    params=[path_param("instance_id", {"type": "string", "maxLength": 200})],
    body={"type": "object"},
    ok=(200, "HeartbeatResult"),
)
op(
    "get",
    "/v1/fleet/bundles/{tenant}",
    "getBundle",
    "The tenant's signed policy bundle (OPA bundle API: ETag, If-None-Match, Prefer: wait=N)",
    tag="fleet",
    auth="fleet",
    params=[
        path_param("tenant"),
        {"name": "If-None-Match", "in": "header", "schema": {"type": "string", "maxLength": 200}},
        {"name": "Prefer", "in": "header", "schema": {"type": "string", "maxLength": 100}},
    ],
    ok=(200, "bundle"),
    extra={"304": {"description": "unchanged since If-None-Match"}},
)
op(
    "get",
    "/v1/fleet/bundle-key",
    "getBundleKey",
    "The public key bundles are signed with",
    tag="fleet",
    auth="public",
    ok=(200, "BundleKey"),
)
op(
    "post",
    "/v1/fleet/keys",
    "introduceKey",
    "A sidecar's rotated receipt key, introduced by its previous key",
    tag="fleet",
    auth="fleet",
    body="KeyIntroduction",
    ok=(200, {"type": "object"}),
)
op(
    "post",
    "/v1/fleet/credentials/rotate",
    "rotateCredential",
    "Rotate a sidecar's receipt-signing key, the tree-head key, or a provider credential",
    tag="fleet",
    auth="admin",
    body="CredentialRotateInput",
    ok=(200, "RotateResult"),
    extra={
        "202": {
            "description": "started (a sidecar key rotates at its next heartbeat)",
            "content": {"application/json": {"schema": ref("RotateResult")}},
        }
    },
)
op(
    "get",
    "/v1/fleet/credentials/rotations/{rotation_id}",
    "getRotation",
    "A rotation's status",
    tag="fleet",
    auth="admin",
    params=[path_param("rotation_id", {"type": "string", "pattern": "^rot_[a-z0-9]{12}$"})],
    ok=(200, "Rotation"),
)
op(
    "post",
    "/v1/fleet/status",
    "opaStatus",
    "An OPA agent's status report (OPA's status API; its service URL is /v1/fleet)",
    tag="fleet",
    auth="fleet",
    body="OpaStatusReport",
    ok=(200, "OpaStatusResult"),
)
op(
    "post",
    "/v1/fleet/logs",
    "opaDecisionLogs",
    "An OPA agent's decision log batch (gzip JSON array); idempotent on agent and decision id",
    tag="fleet",
    auth="fleet",
    body="OpaDecisionLogBatch",
    ok=(200, "OpaIngestResult"),
)
op(
    "get",
    "/v1/fleet/opa-agents",
    "listOpaAgents",
    "OPA agents on the control plane's bundles: active revision, last activation, errors",
    tag="fleet",
    auth="admin",
    ok=(200, "OpaAgentList"),
)
DEP_ID = {"type": "string", "pattern": "^dep_[a-z0-9]{12}$"}
op(
    "get",
    "/v1/fleet/instances",
    "listInstances",
    "Gateway instances with posture and staleness",
    tag="fleet",
    auth="admin",
    params=[q("tenant", ID)],
    ok=(200, "InstanceList"),
)
op(
    "get",
    "/v1/fleet/health",
    "fleetHealth",
    "Per-tenant health and evidence-emission rate",
    tag="fleet",
    auth="admin",
    ok=(200, "FleetHealth"),
)
op(
    "post",
    "/v1/fleet/deployments",
    "createDeployment",
    "Roll a policy version across tenants in waves, gated on health; rolls back on a failing gate",
    tag="fleet",
    auth="any",
    permission="policies:write",
    params=WS,
    body="DeploymentInput",
    ok=(202, "Deployment"),
)
op(
    "get",
    "/v1/fleet/deployments",
    "listDeployments",
    "Deployments and their history",
    tag="fleet",
    auth="any",
    permission="policies:read",
    params=[
        *WS,
        PARAMS["limit"],
        q("status", {"type": "string", "enum": ["running", "succeeded", "rolling_back", "rolled_back", "failed"]}),
    ],
    ok=(200, "DeploymentList"),
)
op(
    "get",
    "/v1/fleet/deployments/{deployment_id}",
    "getDeployment",
    "One deployment: waves, gates, state",
    tag="fleet",
    auth="any",
    permission="policies:read",
    params=[path_param("deployment_id", DEP_ID), *WS],
    ok=(200, "Deployment"),
)
op(
    "post",
    "/v1/fleet/deployments/{deployment_id}/rollback",
    "rollbackDeployment",
    "Stop a deployment and restore the tenants it changed",
    tag="fleet",
    auth="any",
    permission="policies:write",
    params=[path_param("deployment_id", DEP_ID), *WS],
    ok=(202, "Deployment"),
)
op(
    "get",
    "/v1/fleet/custody",
    "listCustodyEvents",
    "Every key-custody event, in order",
    tag="fleet",
    auth="admin",
    ok=(200, "CustodyList"),
)

# -- RelayPlane ---------------------------------------------------------------------
op(
    "post",
    "/api/relay",
    "relay",
    "Route a request to a model through the gateway, with fallback",
    tag="relayplane",
    permission="gateway:call",
    params=WS,
    body="RelayInput",
    ok=(200, "RelayResult"),
    extra={
        "200": {
            "description": "the relay's result; with Accept: text/event-stream, when the final attempt answers with"
            " a stream, that stream as it arrives (the relay's facts in the X-Relay-* headers)",
            "headers": {
                "X-Relay-Id": {"description": "the relay id (streams only)", "schema": {"type": "string"}},
                "X-Relay-Model": {
                    "description": "the model that answered (streams only)",
                    "schema": {"type": "string"},
                },
                "X-Relay-Fallback-Used": {"description": "streams only", "schema": {"enum": ["true", "false"]}},
                "X-RelayOne-Receipt-Id": {
                    "description": "the final attempt's receipt (streams only)",
                    "schema": {"type": "string"},
                },
            },
            "content": {
                "application/json": {"schema": ref("RelayResult")},
                "text/event-stream": {"schema": ref("RelayEvent")},
            },
        }
    },
)
op(
    "get",
    "/api/discover",
    "discoverAgents",
    "Agents by capability",
    tag="relayplane",
    permission="agents:read",
    params=[*WS, q("capability", {"type": "string", "maxLength": 100}), PARAMS["limit"], PARAMS["offset"]],
    ok=(200, "AgentList"),
)
op(
    "post",
    "/api/register",
    "registerAgent",
    "Register an agent",
    tag="relayplane",
    permission="agents:write",
    params=WS,
    body="AgentInput",
    ok=(200, "Agent"),
)
AGENT_ID = path_param("agent_id", {"type": "string", "pattern": "^agent_[a-z0-9]{12}$"})
op(
    "patch",
    "/api/agents/{agent_id}",
    "updateAgent",
    "Change a registered agent (the fields given)",
    tag="relayplane",
    permission="agents:write",
    params=[*WS, AGENT_ID],
    body="AgentPatch",
    ok=(200, "Agent"),
)
op(
    "delete",
    "/api/agents/{agent_id}",
    "deleteAgent",
    "Remove a registered agent",
    tag="relayplane",
    permission="agents:write",
    params=[*WS, AGENT_ID],
    ok=(204, None),
)
op(
    "get",
    "/api/health",
    "apiHealth",
    "Health of the API and its dependencies",
    tag="relayplane",
    permission="health:read",
    params=WS,
    ok=(200, "Health"),
)
LOG_FILTERS = [
    PARAMS["from"],
    PARAMS["to"],
    q("model", {"type": "string", "maxLength": 256}),
    q("status", {"type": "integer", "minimum": 100, "maximum": 599}),
    q("endpoint", {"type": "string", "enum": ENDPOINTS}),
]
op(
    "get",
    "/api/logs",
    "listLogs",
    "Request logs: latency, tokens, cost, fallback, metadata",
    tag="relayplane",
    permission="logs:read",
    params=[*WS, *LIST, *LOG_FILTERS],
    ok=(200, "LogPage"),
)
op(
    "get",
    "/api/logs/export",
    "exportLogs",
    "Request logs as CSV or JSON",
    tag="relayplane",
    permission="logs:read",
    params=[
        *WS,
        q("format", {"type": "string", "enum": ["csv", "json"], "default": "json"}),
        q("limit", {"type": "integer", "minimum": 1, "maximum": 100000, "default": 10000}),
        *LOG_FILTERS,
    ],
    ok=(200, "export"),
)
op(
    "get",
    "/api/usage",
    "getUsage",
    "Usage by model, endpoint and provider",
    tag="relayplane",
    permission="usage:read",
    params=[*WS, PARAMS["from"], PARAMS["to"]],
    ok=(200, "Usage"),
)


def _response(kind) -> dict:
    if kind is None:
        return {"description": "done"}
    if kind == "text":
        return {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}}
    if kind == "bundle":
        return {
            "description": "bundle",
            "headers": {"ETag": {"schema": {"type": "string"}}},
            "content": {"application/vnd.openpolicyagent.bundles": {"schema": {"type": "string", "format": "binary"}}},
        }
    if kind == "tile":
        return {
            "description": "the tile's hashes, concatenated",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    if kind == "gzip":
        return {
            "description": "the evidence bundle",
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        }
    if kind == "export":
        return {
            "description": "export",
            "content": {
                "application/json": {"schema": {"type": "array", "items": ref("LogEntry")}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    schema = ref(kind) if isinstance(kind, str) else kind
    return {"description": "ok", "content": {"application/json": {"schema": schema}}}


def build() -> dict:
    paths: dict = {}
    for o in OPERATIONS:
        responses = {str(o["ok"][0]): _response(o["ok"][1])}
        responses.update(o["extra"])
        # 404 on every authenticated call: the admin may name a workspace that does not exist.
        codes = (
            ["400", "405", "429", "500"]
            if o["auth"] == "public"
            else ["400", "401", "403", "404", "405", "429", "500", "503"]
        )
        if "{" in o["path"]:
            codes.append("404")
        if o["body"] is not None:
            codes += ["413", "415"]
        if o["operation_id"] in CONFLICTS:
            responses["409"] = {
                "description": "conflict: " + CONFLICTS[o["operation_id"]],
                "headers": REQUEST_ID,
                "content": {"application/json": {"schema": ref("Error")}},
            }
        for c in sorted(set(codes)):
            responses.setdefault(c, {"$ref": f"#/components/responses/E{c}"})
        for r in responses.values():
            if "$ref" not in r:
                r["headers"] = {**REQUEST_ID, **r.get("headers", {})}
        entry = {
            "operationId": o["operation_id"],
            "summary": o["summary"],
            "tags": [o["tag"]],
            "x-relaygate-auth": o["auth"],
            "responses": responses,
        }
        if o["permission"]:
            entry["x-relaygate-permission"] = o["permission"]
        dep = o["deprecated"]
        if dep is not None:
            entry["deprecated"] = True
            entry["x-sunset"] = dep.sunset
            entry["x-relaygate-deprecated"] = {"since": dep.since, "sunset": dep.sunset, "successor": dep.successor}
            entry["summary"] += f" (deprecated since {dep.since}, sunset {dep.sunset}: use {dep.successor})"
            for r in responses.values():
                if "$ref" not in r:
                    r["headers"] = {**r["headers"], **DEPRECATION_HEADERS}
        if o["auth"] == "public":
            entry["security"] = []
        if o["params"]:
            entry["parameters"] = o["params"]
        if o["body"] is not None:
            schema = ref(o["body"]) if isinstance(o["body"], str) else o["body"]
            entry["requestBody"] = {"required": True, "content": {t: {"schema": schema} for t in o["body_types"]}}
        paths.setdefault(o["path"], {})[o["method"]] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "relaygate control plane",
            "version": VERSION,
            "description": "The RelayOne control-plane API (/v1) and the RelayPlane API (/api). Errors are "
            '{"error": {"code", "message", "details"}, "request_id"}; every response carries '
            "X-Request-Id. Control-plane calls are limited per workspace (429 with Retry-After).",
        },
        "servers": [{"url": "http://127.0.0.1:8090"}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "tags": [{"name": t} for t in dict.fromkeys(o["tag"] for o in OPERATIONS)],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ro_live_* key, ro_session_* token, workspace JWT, admin or fleet token",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": SCHEMAS,
            "headers": HEADERS,
            "responses": {
                f"E{c}": {
                    "description": d,
                    "headers": {
                        **REQUEST_ID,
                        **(
                            {"Retry-After": {"$ref": "#/components/headers/Retry-After"}} if c in ("429", "503") else {}
                        ),
                        **({"Allow": {"required": True, "schema": {"type": "string"}}} if c == "405" else {}),
                    },
                    "content": {"application/json": {"schema": ref("Error")}},
                }
                for c, d in ERRORS.items()
            },
        },
    }


def dump() -> str:
    return yaml.safe_dump(build(), sort_keys=False, width=110, allow_unicode=True)


if __name__ == "__main__":
    sys.stdout.write(dump())
