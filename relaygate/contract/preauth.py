"""Calls denied before authentication: the per-address throttle's settings and receipt sampling.

A peer without a key can send junk as fast as its link allows. Two mechanisms keep that from
costing real callers latency and the spool unbounded space:

- **Throttle (Envoy).** Envoy counts, per client address, replies the policy service marks as
  decided before any key was authenticated (401, and 404/405 for paths and methods). An address
  with more than ``strikes_per_second`` of them in one second is *suspect* for
  ``penalty_seconds`` (every further such reply restarts the penalty); while suspect, all its
  calls pass Envoy's local rate limit at ``requests_per_second`` (bucket ``burst``) per address,
  the rest get 429 ``rate.limited`` from Envoy without reaching the policy service. Addresses that
  never send junk are never limited, so authenticated traffic from a busy address is untouched.
  Counting is per Envoy worker (relaygate/envoy/preauth_guard.lua); the rendering is relaygate/envoy/config.py.
- **Receipt sampling (here).** Receipts for such calls (pre-auth denials in the policy service,
  and Envoy's own replies made before any decision: 429, 413, 504, ...) are capped at
  ``receipts_per_address_per_second`` per client address and ``receipts_per_second`` in total.
  Calls over the cap get no receipt of their own: each one-second window has one *summary*
  receipt per (code, status), written at the first call over the cap and completed when the
  window ends, whose reasons say how many calls it stands for, from how many addresses, the
  busiest addresses and their counts. A policy-service denial over the cap answers with the
  summary's receipt id (so every 401 id resolves); an Envoy reply over the cap keeps the id Envoy
  gave it, which then resolves to nothing. What is dropped: the per-call request path, size and
  response digest of the calls over the cap. Counted in ``relaygate_receipts_sampled_total``.

This module holds the settings (``unauthenticated`` in gateway.yaml), shared by the sidecar
and the Envoy resources; the sampler is relaygate/extproc/preauth_sampler.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


DEFAULTS = {
    "enabled": True,
    "strikes_per_second": 20,
    "requests_per_second": 5,
    "burst": 10,
    "penalty_seconds": 10,
    "receipts_per_address_per_second": 10,
    "receipts_per_second": 100,
    "max_tracked_addresses": 100_000,
}


@dataclass(frozen=True)
class PreAuthLimits:
    enabled: bool = True
    strikes_per_second: int = 20
    requests_per_second: int = 5
    burst: int = 10
    penalty_seconds: int = 10
    receipts_per_address_per_second: int = 10
    receipts_per_second: int = 100
    max_tracked_addresses: int = 100_000


def parse(doc: object, where: str = "gateway.yaml: unauthenticated") -> PreAuthLimits:
    """The ``unauthenticated`` mapping of the gateway document; every number a positive integer."""
    from relaygate.contract.config import ConfigError  # config imports this module

    if doc is None:
        return PreAuthLimits()
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: must be a mapping")
    unknown = set(doc) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"{where}: unknown settings {sorted(unknown)}")
    out: dict[str, Any] = dict(DEFAULTS)  # checked below: enabled a bool, the rest ints
    for k, v in doc.items():
        if k == "enabled":
            if not isinstance(v, bool):
                raise ConfigError(f"{where}: enabled must be true or false")
        elif not isinstance(v, int) or isinstance(v, bool) or not 0 < v <= 10_000_000:
            raise ConfigError(f"{where}: {k} must be a positive integer")
        out[k] = v
    if out["burst"] < out["requests_per_second"]:
        raise ConfigError(f"{where}: burst must be at least requests_per_second")
    return PreAuthLimits(**out)
