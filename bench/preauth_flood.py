"""A bad-key flood from one loopback address against a real caller on another (issue 11, item 12).

Starts a gateway (tests' config, TLS as the test suite runs it) twice: with the pre-auth throttle
and receipt sampling off (today's behaviour before the fix: every junk call reaches the policy
service and gets a receipt), then with the defaults. Each run measures the real caller's latency
(sequential calls from 127.0.0.2) alone, then during a flood of forged-key calls from 127.0.0.3,
and the receipts the flood added.

    .venv/bin/python -m bench.preauth_flood [--flood 3000] [--conns 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from devstack.processes import Stack
from tests.conftest import POLICY_DIR, Gateway, write_config
from tests.httpcall import chat_body

OFF = "unauthenticated: {enabled: false, receipts_per_address_per_second: 10000000, receipts_per_second: 10000000}\n"


async def caller(gw: Gateway, stop: asyncio.Event, out: list[float], addr: str = "127.0.0.2") -> None:
    h = {"content-type": "application/json", "authorization": f"Bearer {gw.tokens['acme']}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(addr, 0), limit=1)) as s:
        while not stop.is_set():
            t0 = time.perf_counter()
            async with s.post(gw.base("acme") + "/chat/completions", data=chat_body(), headers=h) as r:
                await r.read()
                assert r.status == 200, r.status
            out.append(time.perf_counter() - t0)


async def flood(gw: Gateway, n: int, conns: int, addr: str = "127.0.0.3") -> dict:
    h = {"content-type": "application/json", "authorization": "Bearer ro_live_AAAAAAAAAAAA_forgedsecretforged"}
    statuses: dict[int, int] = {}
    left = [n]

    async def one(s):
        while left[0] > 0:
            left[0] -= 1
            async with s.post(gw.base("acme") + "/chat/completions", data=chat_body(), headers=h) as r:
                await r.read()
                statuses[r.status] = statuses.get(r.status, 0) + 1

    t0 = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(addr, 0), limit=conns)) as s:
        await asyncio.gather(*(one(s) for _ in range(conns)))
    return {"seconds": round(time.monotonic() - t0, 2), "statuses": statuses}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))] * 1000, 2)


def _caller_proc(gw: Gateway, stop, q) -> None:
    """The real caller in its own process, so its latency is not queued behind the flood's client."""
    out: list[float] = []

    async def go():
        ev = asyncio.Event()

        async def watch():
            while not stop.is_set():
                await asyncio.sleep(0.05)
            ev.set()

        w = asyncio.create_task(watch())
        await caller(gw, ev, out)
        await w

    asyncio.run(go())
    q.put(out)


def _timed_caller(gw: Gateway, during):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    stop, q = ctx.Event(), ctx.Queue()
    p = ctx.Process(target=_caller_proc, args=(gw, stop, q))
    p.start()
    result = during()
    stop.set()
    lat = q.get(timeout=60)
    p.join()
    return lat, result


def measure(gw: Gateway, n: int, conns: int) -> dict:
    base, _ = _timed_caller(gw, lambda: time.sleep(5))
    under, f = _timed_caller(gw, lambda: asyncio.run(flood(gw, n, conns)))
    return {
        "caller_alone_ms": {"p50": pct(base, 0.5), "p99": pct(base, 0.99), "n": len(base)},
        "caller_during_flood_ms": {
            "p50": pct(under, 0.5),
            "p99": pct(under, 0.99),
            "n": len(under),
            "mean": round(statistics.mean(under) * 1000, 2),
        },
        "flood": f,
    }


def run(extra_yaml: str, n: int, conns: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="preauth-flood-"))
    tokens = write_config(tmp / "config")
    with open(tmp / "config" / "gateway.yaml", "a") as fh:
        fh.write(extra_yaml)
    stack = Stack(tmp / "run", config_dir=tmp / "config", policy_dir=POLICY_DIR, unreachable={"openai-dead"})
    stack.start()
    gw = Gateway(stack, tokens)
    try:
        before = len(gw.all_receipts())
        out = measure(gw, n, conns)
        time.sleep(4)  # denials settle after ~2 s
        out["receipts_added"] = len(gw.all_receipts()) - before
        return out
    finally:
        stack.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flood", type=int, default=3000)
    p.add_argument("--conns", type=int, default=16)
    a = p.parse_args()
    print(json.dumps({"throttle_off": run(OFF, a.flood, a.conns), "defaults": run("", a.flood, a.conns)}, indent=2))


if __name__ == "__main__":
    main()
