"""The sidecar's receipt sampling for calls denied before authentication (or before any decision).

Why and how: relaygate/contract/preauth.py, which also holds the limits this reads.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from prometheus_client import Counter as PromCounter

from relaygate.contract.decision import denial
from relaygate.contract.preauth import PreAuthLimits
from relaygate.decision.draft import CallDraft, call_draft

# The response header the policy service puts on a pre-auth denial (Envoy's guard counts it per
# client address and removes it, relaygate/envoy/preauth_guard.lua) is relaygate.contract.envoy.PREAUTH_HEADER.
# ImmediateResponse details prefix of a denial whose receipt is its window's summary.
SAMPLED_DETAILS = "relaygate_sampled_"
SAMPLED = PromCounter(
    "relaygate_receipts_sampled_total",
    "Calls with no receipt of their own (counted in their window's summary receipt)",
    ["reason"],
)


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

            s = {
                "rid": receipt_id_for(None),
                "count": 0,
                "addrs": Counter(),
                "window": window,
                "code": code,
                "status": status,
                "reason": reason,
            }
            self.summaries[(code, status)] = s
            s["count"], s["addrs"][addr] = 1, 1
            self.write(s["rid"], self._draft(s))
            try:
                asyncio.get_running_loop().call_later(window + 1.05 - now, self.flush_if, window)
            except RuntimeError:  # no loop (unit use): the next admit() flushes
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

    def _draft(self, s: dict) -> CallDraft:
        top = ", ".join(f"{a} x{n}" for a, n in s["addrs"].most_common(10))
        msg = (
            f"sampled: this receipt stands for {s['count']} {s['reason'].replace('_', ' ')} calls "
            f"({s['code']}, HTTP {s['status']}) from {len(s['addrs'])} client addresses in the second "
            f"starting {s['window']} (unix time) that got no receipt of their own; busiest: {top}"
        )
        draft = call_draft(ts=float(s["window"]), decision=denial(s["status"], s["code"], [msg], bundle=self.revision))
        draft["sampled"] = {"count": s["count"], "addresses": len(s["addrs"]), "window": s["window"]}
        return draft
