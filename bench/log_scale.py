"""The receipt log across replicas: ingestion receipts/s with 1 vs 3 control-plane replicas,
and start-up time of a control plane over a large log.

    python -m bench.log_scale ingest [--receipts 12000] [--batch 200] [--senders 6]
    python -m bench.log_scale startup [--sizes 0 1000000 10000000] [--starts 3] [--reuse]

Both start their own PostgreSQL in .run/bench-log (or use $RELAYGATE_TEST_POSTGRES) and reset
its database per run. ``ingest``: the same pre-signed batches (as sidecars ship them, POST
/v1/fleet/receipts) are sent by ``--senders`` threads round-robin over the replicas; the figure
is receipts per second from the first POST until the log's size covers every receipt (all
accepted, signature-checked, stored and made leaves by the one writer). ``startup``: the rows of
an N-receipt log (audit_events, merkle_leaves, merkle_tiles, the size) are generated straight
into PostgreSQL with COPY (timed separately), then a control plane is started and timed until it
answers, plus its first consistency proof and checkpoint over the whole log.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import json
import os
import platform
import shutil
import time
from devstack.processes import ROOT, Cluster

RUN = ROOT / ".run" / "bench-log"


def _postgres():
    from devstack.postgres import Postgres

    url = os.environ.get("RELAYGATE_TEST_POSTGRES")
    if url:
        return Postgres.attach(url), False
    pg = Postgres(RUN / "pg")
    pg.start()
    return pg, True


def _size(url: str) -> int:
    import asyncpg

    async def q():
        c = await asyncpg.connect(url)
        try:
            return await c.fetchval("SELECT size FROM merkle_writer WHERE id = 1")
        finally:
            await c.close()

    return asyncio.run(q())


def ingest(pg, replicas: int, receipts: int, batch: int, senders: int) -> dict:
    from tests.conftest import POLICY_DIR, write_config
    from tests.cpclient import CP
    from tests.system.test_controlplane_api import _receipt, _registration

    pg.reset_database()
    run = RUN / f"ingest-{replicas}"
    shutil.rmtree(run, ignore_errors=True)
    write_config(run / "config")
    cluster = Cluster(
        run / "run", config_dir=run / "config", policy_dir=POLICY_DIR, database_url=pg.url, replicas=replicas
    )
    cluster.start(gateways=False)
    try:
        fleet = cluster.cps[0].fleet_token
        bodies = []
        for s in range(senders):
            body, signer = _registration(f"bench-{s}")
            cp = cluster.cps[s % replicas]
            assert (
                CP(cp.cp_url, fleet)
                .post("/v1/fleet/instances", body, headers={"X-Relaygate-Instance": f"bench-{s}"})
                .status
                == 200
            )
            per_sender = receipts // senders
            for b in range(0, per_sender, batch):
                rs = [
                    _receipt(f"b{s}-{b + k}", signer, sidecar=f"bench-{s}") for k in range(min(batch, per_sender - b))
                ]
                bodies.append((s, {"instance_id": f"bench-{s}", "receipts": rs}))
        total = sum(len(b["receipts"]) for _, b in bodies)

        def send(s: int) -> None:
            mine = [b for x, b in bodies if x == s]
            for j, body in enumerate(mine):
                cp = cluster.cps[(s + j) % replicas]
                reply = CP(cp.cp_url, fleet).post("/v1/fleet/receipts", body)
                assert reply.status == 200 and reply.json()["accepted"] == len(body["receipts"]), reply.text

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(senders) as pool:
            for f in [pool.submit(send, s) for s in range(senders)]:
                f.result()
        accepted = time.monotonic() - t0
        while _size(pg.url) < total:
            time.sleep(0.02)
            if time.monotonic() - t0 > 600:
                raise RuntimeError("the log never covered every receipt")
        logged = time.monotonic() - t0
        return {
            "replicas": replicas,
            "receipts": total,
            "accepted_s": round(accepted, 2),
            "logged_s": round(logged, 2),
            "receipts_per_s": round(total / logged),
        }
    finally:
        cluster.stop()


async def _generate(url: str, n: int) -> dict:
    import asyncpg

    from relaygate.controlplane import db
    from relaygate.evidence.tiles import TileWriter

    engine = db.create_engine(url)
    await db.migrate(engine)
    await engine.dispose()
    c = await asyncpg.connect(url)
    t0 = time.monotonic()
    try:
        chunk = 1_000_000
        writer = TileWriter()
        for start in range(0, n, chunk):
            end = min(n, start + chunk)
            hashes = [hashlib.sha256(b"leaf %d" % i).digest() for i in range(start, end)]
            await c.copy_records_to_table(
                "audit_events",
                records=((i + 1, f"evt_gen_{i}", "gateway.call", 1_700_000_000_000 + i) for i in range(start, end)),
                columns=["seq", "id", "kind", "occurred_ms"],
            )
            await c.copy_records_to_table(
                "merkle_leaves",
                records=((i, i + 1, hashes[i - start]) for i in range(start, end)),
                columns=["idx", "event_seq", "leaf_hash"],
            )
            tiles = writer.append(hashes)
            await c.executemany(
                "INSERT INTO merkle_tiles (level, idx, width, hashes) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (level, idx) DO UPDATE SET width = excluded.width, hashes = excluded.hashes",
                [(lv, ix, len(d) // 32, d) for (lv, ix), d in tiles.items()],
            )
        await c.execute("UPDATE merkle_writer SET size = $1 WHERE id = 1", n)
        await c.execute(f"SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), {max(n, 1)}, {n > 0})")
        await c.execute("ANALYZE")
        tiles_n = await c.fetchval("SELECT count(*) FROM merkle_tiles")
        db_bytes = await c.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await c.close()
    return {"generate_s": round(time.monotonic() - t0, 1), "tiles": tiles_n, "database_mb": db_bytes // 2**20}


def _has_log(url: str, n: int) -> bool:
    try:
        return _size(url) == n
    except Exception:
        return False


def startup(pg, n: int, starts: int = 3, reuse: bool = False) -> dict:
    from devstack.processes import Stack
    from tests.conftest import POLICY_DIR, write_config
    from tests.cpclient import CP

    if reuse and _has_log(pg.url, n):
        gen = {"generate_s": None, "reused": True}
    else:
        pg.reset_database()
        gen = asyncio.run(_generate(pg.url, n))
    run = RUN / f"startup-{n}"
    shutil.rmtree(run, ignore_errors=True)
    write_config(run / "config")
    stack = Stack(run / "run", config_dir=run / "config", policy_dir=POLICY_DIR, controlplane=True, database_url=pg.url)
    times = []
    for k in range(starts):  # the process start to its first answer, each time over the same log
        if k:
            stack.stop_one("controlplane")
        t0 = time.monotonic()
        stack.start_controlplane()
        times.append(time.monotonic() - t0)
    started = sorted(times)[len(times) // 2]
    try:
        api = CP(stack.cp_url, stack.admin_token)
        t1 = time.monotonic()
        proof = api.get("/v1/audit/proofs/consistency", params={"first": n // 3, "second": n}).json()
        proof_s = time.monotonic() - t1
        t2 = time.monotonic()
        head = api.post("/v1/audit/checkpoints").json()
        checkpoint_s = time.monotonic() - t2
        assert head["size"] == n and (proof["hashes"] or n < 2), (head, proof)
    finally:
        stack.stop()
    return {
        "receipts": n,
        **gen,
        "start_s": round(started, 2),  # median
        "start_s_each": [round(t, 2) for t in times],
        "first_consistency_proof_ms": round(proof_s * 1000, 1),
        "first_checkpoint_ms": round(checkpoint_s * 1000, 1),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="bench.log_scale", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    i = sub.add_parser("ingest")
    i.add_argument("--receipts", type=int, default=12000)
    i.add_argument("--batch", type=int, default=200)
    i.add_argument("--senders", type=int, default=6)
    i.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    s = sub.add_parser("startup")
    s.add_argument("--sizes", type=int, nargs="+", default=[0, 1_000_000, 10_000_000])
    s.add_argument("--starts", type=int, default=3, help="control-plane starts per size (the median is reported)")
    s.add_argument("--reuse", action="store_true", help="keep the database's log when it has the size already")
    a = p.parse_args(argv)
    RUN.mkdir(parents=True, exist_ok=True)
    pg, own = _postgres()
    print(json.dumps({"machine": f"{platform.machine()} {os.cpu_count()} cores", "python": platform.python_version()}))
    try:
        if a.what == "ingest":
            for r in a.replicas:
                print(json.dumps(ingest(pg, r, a.receipts, a.batch, a.senders)), flush=True)
        else:
            for n in a.sizes:
                print(json.dumps(startup(pg, n, a.starts, a.reuse)), flush=True)
    finally:
        if own:
            pg.stop()


if __name__ == "__main__":
    main()
