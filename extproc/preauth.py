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
  Counting is per Envoy worker (stack/preauth_guard.lua); the rendering is stack/envoy_config.py.
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
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from prometheus_client import Counter as PromCounter

from relaygate.contract.decision import denial

# The response header the policy service puts on a pre-auth denial (Envoy's guard counts it per
# client address and removes it, stack/preauth_guard.lua) is relaygate.contract.envoy.PREAUTH_HEADER.
# ImmediateResponse details prefix of a denial whose receipt is its window's summary.
SAMPLED_DETAILS = "relaygate_sampled_"
SAMPLED = PromCounter("relaygate_receipts_sampled_total",
                      "Calls with no receipt of their own (counted in their window's summary receipt)",
                      ["reason"])

DEFAULTS = {"enabled": True, "strikes_per_second": 20, "requests_per_second": 5, "burst": 10,
            "penalty_seconds": 10, "receipts_per_address_per_second": 10, "receipts_per_second": 100,
            "max_tracked_addresses": 100_000}


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


def parse(doc, where: str = "gateway.yaml: unauthenticated") -> PreAuthLimits:
    """The ``unauthenticated`` mapping of the gateway document; every number a positive integer."""
    from extproc.config import ConfigError   # config imports this module
    if doc is None:
        return PreAuthLimits()
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: must be a mapping")
    unknown = set(doc) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"{where}: unknown settings {sorted(unknown)}")
    out = dict(DEFAULTS)
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


class ReceiptSampler:
    """Decides which pre-decision / pre-auth calls get their own receipt (see module docstring).

    ``write(rid, draft)`` adds a pending summary draft; ``update(rid, draft)`` completes it at the
    end of its window (before the settler's DENIAL_GRACE finalizes it).
    """

    def __init__(self, limits: PreAuthLimits, write, update, metric, revision=None, clock=time.time) -> None:
        self.limits, self.write, self.update, self.metric = limits, write, update, metric
        self.revision, self.clock = revision, clock
        self.window = -1
        self.total = 0
        self.per_addr: Counter = Counter()
        self.summaries: dict[tuple[str, int], dict] = {}

    def admit(self, addr: str, code: str, status: int, reason: str) -> str | None:
        """None: this call gets its own receipt; else the receipt id of its window's summary."""
        now = self.clock()
        window = int(now)
        if window != self.window:
            self.flush()
            self.window, self.total = window, 0
            self.per_addr.clear()
        self.per_addr[addr] += 1
        self.total += 1
        lim = self.limits
        if self.per_addr[addr] <= lim.receipts_per_address_per_second and self.total <= lim.receipts_per_second:
            return None
        self.metric.labels(reason).inc()
        s = self.summaries.get((code, status))
        if s is None:
            from relaygate.contract.envoy import receipt_id_for
            s = {"rid": receipt_id_for(None), "count": 0, "addrs": Counter(), "window": window,
                 "code": code, "status": status, "reason": reason}
            self.summaries[(code, status)] = s
            s["count"], s["addrs"][addr] = 1, 1
            self.write(s["rid"], self._draft(s))
            try:
                asyncio.get_running_loop().call_later(window + 1.05 - now, self.flush_if, window)
            except RuntimeError:   # no loop (unit use): the next admit() flushes
                pass
            return s["rid"]
        s["count"] += 1
        s["addrs"][addr] += 1
        return s["rid"]

    def flush_if(self, window: int) -> None:
        if self.window == window:
            self.flush()

    def flush(self) -> None:
        """Complete the summaries of the window that ended."""
        summaries, self.summaries = self.summaries, {}
        for s in summaries.values():
            if s["count"] > 1:
                self.update(s["rid"], self._draft(s))

    def _draft(self, s: dict) -> dict:
        top = ", ".join(f"{a} x{n}" for a, n in s["addrs"].most_common(10))
        msg = (f"sampled: this receipt stands for {s['count']} {s['reason'].replace('_', ' ')} calls "
               f"({s['code']}, HTTP {s['status']}) from {len(s['addrs'])} client addresses in the second "
               f"starting {s['window']} (unix time) that got no receipt of their own; busiest: {top}")
        return {
            "ts": float(s["window"]), "workspace": None, "key_id": None, "endpoint": None, "path": "",
            "request": {"digest": None, "bytes": None}, "model": None, "stream": False, "user": None,
            "decision": denial(s["status"], s["code"], [msg], bundle=self.revision),
            "upstream": None, "price": None, "worst": None, "holds": [], "response_digest": None,
            "sampled": {"count": s["count"], "addresses": len(s["addrs"]), "window": s["window"]},
        }
