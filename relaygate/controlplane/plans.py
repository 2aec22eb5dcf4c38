"""Plans: named sets of limits a workspace is given (RelayPlane: "rate limits apply based on your
plan"; RelayOne: hot-path limits by workspace tier, raised by contract).

A plan sets the control-plane API rate, the gateways' tier limits (requests per second, tokens
per minute, fleet-wide with Redis), the log retention (retention.py) and the webhook quota. The platform admin
sets a workspace's ``plan``; a limit the admin sets on the workspace itself (``limits``: an
enterprise contract) wins over its plan's. A workspace without a plan keeps the control plane's
defaults (``--rate-limit-rps``, no tier limits, logs kept, the webhook maximum). The plans are
built in and may be redefined or extended in the control plane's ``--config`` file (``plans:``).

:func:`effective` is the one place these are resolved: the API rate limiter, the bundles the
gateways enforce, the webhook quota, the retention job and ``GET /v1/workspaces/{id}/limits``
all read it, so what is reported is what is enforced.
"""

from __future__ import annotations

from typing import Any

FIELDS = (
    "control_plane_rps",
    "requests_per_second",
    "tokens_per_minute",
    "log_retention_days",
    "webhook_subscriptions",
)
DEFAULT_PLANS: dict[str, dict[str, Any]] = {
    "free": {
        "control_plane_rps": 10,
        "requests_per_second": 5,
        "tokens_per_minute": 50_000,
        "log_retention_days": 7,
        "webhook_subscriptions": 2,
    },
    "team": {
        "control_plane_rps": 60,
        "requests_per_second": 50,
        "tokens_per_minute": 1_000_000,
        "log_retention_days": 30,
        "webhook_subscriptions": 10,
    },
    "enterprise": {
        "control_plane_rps": 300,
        "requests_per_second": 1000,
        "tokens_per_minute": 50_000_000,
        "log_retention_days": 90,
        "webhook_subscriptions": 20,
    },
}
MAX_WEBHOOKS = 20  # without a plan
WORKSPACE_OVERRIDES = ("control_plane_rps", "requests_per_second", "tokens_per_minute")  # settable per workspace


class PlanError(ValueError):
    pass


def parse(doc: Any) -> dict[str, dict[str, Any]]:
    """The built-in plans, redefined or extended by a config document's ``plans:`` mapping."""
    out = {k: dict(v) for k, v in DEFAULT_PLANS.items()}
    if doc is None:
        return out
    if not isinstance(doc, dict):
        raise PlanError("plans must be a mapping of plan name to its limits")
    for name, limits in doc.items():
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum() or len(name) > 40:
            raise PlanError(f"plan name {name!r}: letters, digits, - and _ only")
        if not isinstance(limits, dict):
            raise PlanError(f"plan {name}: must be a mapping of limits")
        unknown = set(limits) - set(FIELDS)
        if unknown:
            raise PlanError(f"plan {name}: unknown limits {sorted(unknown)} (known: {list(FIELDS)})")
        for k, v in limits.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
                raise PlanError(f"plan {name}: {k} must be a positive number or null (no limit)")
        out[name] = {f: limits.get(f, out.get(name, {}).get(f)) for f in FIELDS}
    return out


def effective(ws_settings: dict | None, plans: dict[str, dict[str, Any]], cp_default_rps: float) -> dict[str, Any]:
    """What a workspace's limits are, and where each comes from ("workspace", "plan" or "default")."""
    s = ws_settings or {}
    plan_name = s.get("plan")
    plan = plans.get(plan_name or "") or {}
    own = s.get("limits") or {}
    defaults = {
        "control_plane_rps": cp_default_rps,
        "requests_per_second": None,
        "tokens_per_minute": None,
        "log_retention_days": None,
        "webhook_subscriptions": MAX_WEBHOOKS,
    }
    values, sources = {}, {}
    for f in FIELDS:
        if f in WORKSPACE_OVERRIDES and own.get(f) is not None:
            values[f], sources[f] = own[f], "workspace"
        elif plan.get(f) is not None:
            values[f], sources[f] = plan[f], "plan"
        else:
            values[f], sources[f] = defaults[f], "default"
    return {"plan": plan_name if plan_name in plans else None, "limits": values, "sources": sources}
