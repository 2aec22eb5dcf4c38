"""A policy snapshot built in-process from the test config (no servers): what the sidecar would run."""

from __future__ import annotations

import os
from pathlib import Path

from relaygate.contract import config as config_mod
from relaygate.decision.admission import Admission
from relaygate.decision.ledger import InMemoryLedger
from relaygate.decision.policy_engine import RegorusEngine
from relaygate.decision.snapshot import local_sources
from tests.conftest import POLICY_DIR, write_config


def build(tmp: Path) -> tuple[Admission, dict[str, str]]:
    """(admission over a fresh in-memory ledger, key tokens by name) for the suite's test config."""
    tokens = write_config(tmp)
    cfg = config_mod.from_documents(*config_mod.read_documents(tmp), environ=os.environ)
    return Admission(cfg, RegorusEngine(sources=local_sources(POLICY_DIR)), InMemoryLedger()), tokens


def headers(
    token: str | None = None,
    workspace: str = "acme",
    endpoint: str = "chat/completions",
    method: str = "POST",
    ctype: str = "application/json",
    **extra: str,
) -> dict[str, str]:
    """Request headers as Envoy hands them to the policy service (lower-case names, pseudo-headers)."""
    h = {
        ":method": method,
        ":path": f"/v1/{workspace}/{endpoint}",
        ":authority": "gateway",
        "content-type": ctype,
        "x-request-id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "x-forwarded-for": "203.0.113.7",
    }
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    h.update({k.replace("_", "-"): v for k, v in extra.items()})
    return h
