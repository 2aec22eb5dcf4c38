"""A policy snapshot (config, compiled Rego, workspace policies) from a bundle or a policy directory.

What the sidecar installs when a bundle arrives and what the control plane's
dry run evaluates: one function for both, so a dry run decides exactly as the
gateway would. Kept apart from the sidecar's control-plane client
(relaygate/extproc/bundle_sync.py, cpclient.py) so the control plane needs no client code to build one.
"""

from __future__ import annotations

import os

from pathlib import Path
from typing import Any

from relaygate.contract import bundle as bundle_mod
from relaygate.contract import config as config_mod
from relaygate.decision.admission import Admission
from relaygate.decision.ledger import Ledger
from relaygate.decision.limits import Limits
from relaygate.decision.policy_engine import PolicyEngine, RegorusEngine, load_policy_sources
from relaygate.decision.policy_sandbox import PolicySandbox
from relaygate.decision.workspace_policy import policy_modules, split_bundle


def local_sources(policy_dir: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """A policy directory as a bundle would carry it (no workspace policies)."""
    modules, data = load_policy_sources(policy_dir)
    generated, _ = policy_modules([])
    return {**generated, **modules}, data


def admission_from_bundle(
    b: bundle_mod.Bundle,
    ledger: Ledger,
    limits: Limits | None = None,
    sandbox: PolicySandbox | None = None,
    engine: PolicyEngine | None = None,
) -> Admission:
    """Parse a bundle into a ready policy snapshot (raises ConfigError / PolicyError).

    The gateway's engine gets the platform modules and data only (always the
    fast RVM); the workspace policies are split off and run one by one in the
    policy sandbox, each with only its own data and under a deadline
    (relaygate/decision/policy_sandbox.py), where a rule conflict errors (fails closed)
    instead of the RVM silently picking a value. ``engine``: another engine for the platform
    policy (an OPA server, relaygate/extproc/opa_engine.py, which loads the same bundle itself).
    """
    cfg = config_mod.from_documents(b.config, b.secrets, environ=os.environ)
    platform, pdata, workspace_policies = split_bundle(b.modules, b.data)
    if engine is None:
        engine = RegorusEngine(sources=(platform, pdata))
    return Admission(cfg, engine, ledger, b.revision, limits, workspace_policies=workspace_policies, sandbox=sandbox)
