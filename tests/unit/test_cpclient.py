"""The one backoff every sidecar → control plane retry loop uses (relaygate/extproc/cpclient.py)."""

from __future__ import annotations

import asyncio
import time

from relaygate.extproc.cpclient import Backoff


def test_backoff_doubles_to_its_cap_with_jitter_and_resets():
    b = Backoff(first=0.02, cap=0.08)
    waited = []

    async def go():
        for _ in range(5):
            nominal = b.delay
            t = time.monotonic()
            await b.wait()
            waited.append((nominal, time.monotonic() - t))

    asyncio.run(go())
    assert [n for n, _ in waited] == [0.02, 0.04, 0.08, 0.08, 0.08]
    # Each wait is drawn from 0.5-1.5x its nominal delay (a fleet does not retry in lockstep).
    assert all(0.5 * n - 0.002 <= w <= 1.5 * n + 0.05 for n, w in waited), waited
    b.reset()
    assert b.delay == 0.02
