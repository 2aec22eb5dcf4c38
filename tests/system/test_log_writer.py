"""One Merkle log writer across control-plane replicas on PostgreSQL (issue 18 item 2).

Three replicas (devstack.processes.Cluster) share one database; signed receipt batches are
POSTed to all of them as sidecars ship them. The writer replica is SIGKILLed mid-ingestion:
another takes over, every receipt is in the log exactly once, and the tree before the crash is
a prefix of the tree after (consistency proof) with inclusion proofs verifying. A writer whose
session was ended cannot append; and a control plane over a 200k-leaf log whose leaf rows are
absent (only tiles and the size) starts and serves the right roots and proofs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import random
import threading
import time

import pytest
import sqlalchemy as sa

from devstack.processes import Cluster
from relaygate.controlplane import db, schema
from relaygate.controlplane.transparency import Fenced, TransparencyLog
from relaygate.evidence import tiles as T
from relaygate.evidence.checkpoint import verify_checkpoint
from relaygate.evidence.merkle import MerkleLog, leaf_hash, verify_consistency, verify_inclusion
from relaygate.evidence.receipts import leaf_bytes
from relaygate.evidence.signing import load_public_key
from tests.conftest import POLICY_DIR, start_controlplane, write_config
from tests.cpclient import CP
from tests.system.test_controlplane_api import _receipt, _registration


def _pg_rows(url: str, sql: str, *args):
    import asyncpg

    async def run():
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg:", "postgresql:"))
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def _wait(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _register(cp_url: str, fleet_token: str, instance: str):
    body, signer = _registration(instance)
    reply = CP(cp_url, fleet_token).post("/v1/fleet/instances", body, headers={"X-Relaygate-Instance": instance})
    assert reply.status == 200, reply.text
    return signer


def _writer(url: str) -> dict:
    [row] = _pg_rows(url, "SELECT * FROM merkle_writer WHERE id = 1")
    return dict(row)


def _writer_index(cluster: Cluster, url: str) -> int:
    rid = _writer(url)["replica_id"]
    for i, cp in enumerate(cluster.cps):
        proc = cp.procs.get("controlplane")
        if proc is not None and proc.poll() is None and f"-{proc.pid}-" in (rid or ""):
            return i
    raise AssertionError(f"no running replica is the writer {rid!r}")


def test_fenced_writer_cannot_append_in_process(postgres):
    """Two TransparencyLogs (two replicas' log writers) on one database: after the first one's
    session is ended, or its lease is taken over as a hung writer's, its append fails and the
    tree does not move; the second continues from the stored size."""
    postgres.reset_database()

    async def run():
        engine = db.create_engine(postgres.url)
        other = db.create_engine(postgres.url)
        try:
            await db.migrate(engine)
            a = TransparencyLog(engine, None, replica_id="a", lease_ttl=1.0)
            b = TransparencyLog(other, None, replica_id="b", lease_ttl=1.0)
            assert await a._try_elect() and a.is_writer
            assert not await b._try_elect() and not b.is_writer  # the lock is held
            h = [hashlib.sha256(b"x%d" % i).digest() for i in range(10)]

            async def elect(log):
                deadline = time.monotonic() + 10
                while not await log._try_elect():
                    assert time.monotonic() < deadline, "never became the writer"
                    await asyncio.sleep(0.05)

            async def append(log, hashes):
                async with log.transaction() as c:
                    if log._appending:
                        log._staged = await log._append(c, hashes, None)

            await append(a, h[:3])
            assert await b.size() == 3
            # 1. the session dies: the next append fails (Fenced), nothing moved.
            pid = (await a.writer_state())["backend_pid"]
            async with other.begin() as c:
                await c.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            with pytest.raises(Fenced):
                await append(a, h[3:5])
            assert not a.is_writer and await b.size() == 3
            await elect(b)
            assert (await b.writer_state())["term"] == 2
            await append(b, h[3:5])
            # 2. a hung writer (lease expired a whole ttl ago, lock still held) is fenced by the next.
            assert await a._try_elect() is False
            async with other.begin() as c:
                await c.execute(schema.merkle_writer.update().values(expires_ms=0))
            await elect(a)  # ends b's session, then takes over
            with pytest.raises(Fenced):
                await append(b, h[5:7])
            await append(a, h[5:10])
            assert await a.size() == 10
            assert await a.root(10) == MerkleLog(h).root()
            assert (await a.writer_state())["term"] == 3
        finally:
            for log in ("a", "b"):
                x = locals().get(log)
                if x is not None:
                    await x.close()
            await engine.dispose()
            await other.dispose()

    asyncio.run(run())


def test_a_large_log_starts_from_its_tiles_and_serves_correct_proofs(tmp_path, postgres):
    """200k leaves stored only as tiles (their merkle_leaves rows absent: a start that read every
    leaf would find none); the control plane starts, its roots and proofs equal the in-memory
    tree's, and new receipts continue the same tree."""
    postgres.reset_database()
    n = 200_000
    leaves = [hashlib.sha256(b"big %d" % i).digest() for i in range(n)]
    store = T.TileWriter().append(leaves)

    async def build():
        engine = db.create_engine(postgres.url)
        try:
            await db.migrate(engine)
            async with engine.begin() as c:
                rows = [{"level": lv, "idx": ix, "width": len(d) // 32, "hashes": d} for (lv, ix), d in store.items()]
                for i in range(0, len(rows), 500):
                    await c.execute(schema.merkle_tiles.insert(), rows[i : i + 500])
                await c.execute(schema.merkle_writer.update().values(size=n))
        finally:
            await engine.dispose()

    asyncio.run(build())
    ref = MerkleLog(leaves)
    cp = start_controlplane(tmp_path, database_url=postgres.url)
    try:
        api = cp.admin
        head = api.post("/v1/audit/checkpoints").json()
        assert head["size"] == n and bytes.fromhex(head["root_hash"]) == ref.root()
        for a, b in ((1, n), (65536, n), (123_457, 199_999)):
            proof = api.get("/v1/audit/proofs/consistency", params={"first": a, "second": b}).json()
            assert [bytes.fromhex(x) for x in proof["hashes"]] == ref.consistency_proof(a, b)

        # The tiles themselves (C2SP): a full one, the partial right edge, a narrower prefix of it.
        def tile(path: str):  # raw bytes: the same client session, not its text Reply
            auth = {"Authorization": f"Bearer {cp.stack.admin_token}"}
            return api.session.get(f"{api.url}/v1/audit/tiles/{path}", headers=auth, timeout=10)

        full = tile("0/3")
        assert (
            full.status_code == 200 and full.content == store[(0, 3)] and "immutable" in full.headers["Cache-Control"]
        )
        edge = tile(f"0/{n // 256}")
        assert edge.content == store[(0, n // 256)] and len(edge.content) == (n % 256) * 32
        assert tile(f"0/{n // 256}?width=5").content == store[(0, n // 256)][: 5 * 32]
        assert tile(f"1/{n // 65536}").content == store[(1, n // 65536)]
        assert tile(f"0/{n // 256 + 1}").status_code == 404
        assert tile(f"0/{n // 256}?width=255").status_code == 404  # not that wide yet
        assert tile("0/1?width=0").status_code == 400 and tile("9/0").status_code == 400
        signer = _register(cp.url, cp.stack.fleet_token, "big-sidecar")
        ids = [f"big-{k}" for k in range(3)]
        body = {"instance_id": "big-sidecar", "receipts": [_receipt(r, signer, sidecar="big-sidecar") for r in ids]}
        assert cp.fleet.post("/v1/fleet/receipts", body).json()["accepted"] == 3
        for r in ids:
            event = api.get(f"/v1/audit/events/{r}").json()
            ref.append(leaf_hash(leaf_bytes(event["receipt"])))
        p = api.get("/v1/audit/proofs/inclusion", params={"event_id": ids[-1]}).json()
        assert p["leaf_index"] == n + 2 and p["tree_size"] == n + 3
        assert [bytes.fromhex(x) for x in p["hashes"]] == ref.inclusion_proof(n + 2, n + 3)
        assert bytes.fromhex(api.get("/v1/audit/checkpoints/latest").json()["root_hash"]) == ref.root()
    finally:
        cp.stop()


def test_a_log_from_before_tiles_is_caught_up_by_the_first_writer(database_url):
    """A database migrated to 0008 holds leaves but no tiles (size 0): the first writer builds
    the tiles from merkle_leaves at start, and the roots are the in-memory tree's."""
    n = 700

    async def run():
        engine = db.create_engine(database_url)
        try:
            await db.migrate(engine)
            hashes = [hashlib.sha256(b"old %d" % i).digest() for i in range(n)]
            async with engine.begin() as c:
                seqs = []
                for i in range(n):
                    seqs.append(
                        (
                            await c.execute(
                                schema.audit_events.insert()
                                .values(id=f"old-{i}", kind="gateway.call", occurred_ms=i)
                                .returning(schema.audit_events.c.seq)
                            )
                        ).scalar()
                    )
                await c.execute(
                    schema.merkle_leaves.insert(),
                    [{"idx": i, "event_seq": s, "leaf_hash": h} for i, (s, h) in enumerate(zip(seqs, hashes))],
                )
            log = TransparencyLog(engine, None, replica_id="first", lease_ttl=2.0)
            try:
                await log.load()
                assert log.is_writer and await log.size() == n
                ref = MerkleLog(hashes)
                for size in (1, 255, 256, 257, 699, n):
                    assert await log.root(size) == ref.root(size)
                assert [bytes.fromhex(h) for h in await log.consistency(300, n)] == ref.consistency_proof(300, n)
            finally:
                await log.close()
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_bench_log_scale_startup_smoke_run(postgres):
    """bench/log_scale.py's start-up figure, on a small generated log: the rows it COPYs make a
    log a control plane starts over and proves (13 tiles for 3000 leaves: 12 + one of level 1)."""
    from bench.log_scale import startup

    out = startup(postgres, 3000, starts=1)
    assert out["receipts"] == 3000 and out["tiles"] == 13 and out["start_s"] > 0
    assert out["first_consistency_proof_ms"] > 0 and out["first_checkpoint_ms"] > 0


@pytest.fixture(scope="class")
def cluster(tmp_path_factory, postgres):
    postgres.reset_database()
    tmp = tmp_path_factory.mktemp("logwriter")
    write_config(tmp / "config")
    c = Cluster(
        tmp / "run",
        config_dir=tmp / "config",
        policy_dir=POLICY_DIR,
        database_url=postgres.url,
        replicas=3,
        cp_extra_args=["--lease-ttl", "3", "--checkpoint-interval", "1"],
    )
    c.start(gateways=False)
    yield c
    c.stop()


def _check_log(url: str, ids: list[str]) -> list[bytes]:
    """Every id is one gateway-call event with exactly one leaf; leaves are 0..n-1; returns the
    leaf hashes in order (recomputed from the stored envelopes)."""
    rows = _pg_rows(
        url,
        "SELECT e.id, e.receipt::text AS receipt, l.idx, l.leaf_hash FROM audit_events e "
        "LEFT JOIN merkle_leaves l ON l.event_seq = e.seq WHERE e.kind = 'gateway.call' ORDER BY l.idx",
    )
    import json

    got = [r["id"] for r in rows]
    assert sorted(got) == sorted(ids), "every receipt sent is stored once, and nothing else"
    assert [r["idx"] for r in rows] == list(range(len(ids))), "one leaf per receipt, no gap"
    for r in rows:
        assert bytes(r["leaf_hash"]) == leaf_hash(leaf_bytes(json.loads(r["receipt"])))
    [(size,)] = _pg_rows(url, "SELECT size FROM merkle_writer WHERE id = 1")
    assert size == len(ids)
    assert _pg_rows(url, "SELECT count(*) AS n FROM merkle_queue")[0]["n"] == 0
    return [bytes(r["leaf_hash"]) for r in rows]


class TestThreeReplicas:
    """On one 3-replica cluster (class-scoped: the other tests here reset the database, which
    must not happen under a running cluster)."""

    def test_writer_killed_mid_ingestion_another_takes_over_without_gap_or_fork(self, cluster, postgres):
        url, fleet = postgres.url, cluster.cps[0].fleet_token
        admin = [CP(cp.cp_url, cp.admin_token) for cp in cluster.cps]
        first = _wait(lambda: _writer(url)["replica_id"], 15, "a log writer")
        w = _writer_index(cluster, url)
        term0 = _writer(url)["term"]
        assert first and term0 >= 1

        senders = 3
        signers = [_register(cluster.cps[i].cp_url, fleet, f"lw-sidecar-{i}") for i in range(senders)]
        batches, per = 30, 10
        sent: list[str] = []
        sent_lock = threading.Lock()
        progress = threading.Semaphore(0)
        alive = set(range(len(cluster.cps)))

        def ship(i: int) -> None:
            rnd = random.Random(i)
            for b in range(batches):
                body = {
                    "instance_id": f"lw-sidecar-{i}",
                    "receipts": [
                        _receipt(f"lw-{i}-{b}-{k}", signers[i], sidecar=f"lw-sidecar-{i}") for k in range(per)
                    ],
                }
                target = (i + b) % len(cluster.cps)
                deadline = time.monotonic() + 30
                while True:  # as a sidecar: the same batch again, to a replica that answers
                    assert time.monotonic() < deadline, "a batch was never accepted"
                    if target not in alive:
                        target = rnd.choice(sorted(alive))
                    try:
                        reply = CP(cluster.cps[target].cp_url, fleet).post("/v1/fleet/receipts", body)
                        if reply.status == 200:
                            out = reply.json()
                            assert not out["rejected"] and not out["deferred"], out
                            break
                    except OSError:
                        pass
                    target = (target + 1) % len(cluster.cps)
                    time.sleep(0.05)
                with sent_lock:
                    sent.extend(r for r in (f"lw-{i}-{b}-{k}" for k in range(per)))
                progress.release()

        with concurrent.futures.ThreadPoolExecutor(senders) as pool:
            futures = [pool.submit(ship, i) for i in range(senders)]
            for _ in range(senders * batches // 3):  # a third of the batches in
                assert progress.acquire(timeout=60)
            before = admin[w].post("/v1/audit/checkpoints").json()  # the writer's tree head before the crash
            assert before["size"] > 0
            alive.discard(w)
            cluster.kill_replica(w)
            for f in futures:
                f.result()

        others = sorted(alive)
        _wait(lambda: _writer(url)["term"] > term0 and _writer_index(cluster, url) in others, 15, "a new writer")
        assert _writer_index(cluster, url) != w
        _wait(
            lambda: _pg_rows(url, "SELECT size FROM merkle_writer")[0]["size"] == len(sent)
            and _pg_rows(url, "SELECT count(*) AS n FROM merkle_queue")[0]["n"] == 0,
            30,
            "every receipt logged",
        )
        leaves = _check_log(url, sent)
        assert len(set(sent)) == senders * batches * per

        # Tree heads: before the crash (by the old writer), after (asked of a non-writer replica,
        # which has the new writer sign it); the consistency proof between them verifies.
        reader = next(i for i in others if i != _writer_index(cluster, url))
        api = admin[reader]
        after = api.post("/v1/audit/checkpoints").json()
        assert after["size"] == len(sent)
        keys = api.get("/v1/audit/keys").json()
        key = load_public_key(keys["current_public_key"].encode())
        head_before, head_after = (
            verify_checkpoint(before["checkpoint"], key),
            verify_checkpoint(after["checkpoint"], key),
        )
        proof = api.get(
            "/v1/audit/proofs/consistency", params={"first": before["size"], "second": after["size"]}
        ).json()
        verify_consistency(
            before["size"],
            after["size"],
            head_before.root,
            head_after.root,
            [bytes.fromhex(h) for h in proof["hashes"]],
        )
        ref = MerkleLog(leaves)
        assert head_after.root == ref.root() and head_before.root == ref.root(before["size"])
        for rid in (sent[0], sent[len(sent) // 2], sent[-1]):
            p = api.get("/v1/audit/proofs/inclusion", params={"event_id": rid}).json()
            head = verify_checkpoint(p["checkpoint"], key)
            event = api.get(f"/v1/audit/events/{rid}").json()
            verify_inclusion(
                p["leaf_index"],
                p["tree_size"],
                leaf_hash(leaf_bytes(event["receipt"])),
                [bytes.fromhex(h) for h in p["hashes"]],
                head.root,
            )
        # Every checkpoint ever signed is a prefix of the final tree (no fork across the hand-over).
        for cp in api.get("/v1/audit/checkpoints", params={"limit": 1000}).json()["checkpoints"]:
            assert bytes.fromhex(cp["root_hash"]) == ref.root(cp["size"]), cp["size"]
        cluster.restart_replica(w)  # back, as a non-writer, for the next test

    def test_a_writer_whose_session_was_ended_appends_nothing_and_its_batch_is_logged_by_the_next(
        self, cluster, postgres
    ):
        """Attacker/failure view on the live cluster: the writer's lock session is terminated by
        hand; the batch it is sent next is accepted, queued, and logged once by whoever writes next."""
        url, fleet = postgres.url, cluster.cps[0].fleet_token
        _wait(lambda: _writer(url)["replica_id"], 15, "a log writer")
        w, state = _writer_index(cluster, url), _writer(url)
        signer = _register(cluster.cps[w].cp_url, fleet, "lw-fenced")
        _pg_rows(url, "SELECT pg_terminate_backend($1)", state["backend_pid"])
        ids = [f"lw-fenced-{k}" for k in range(5)]
        body = {"instance_id": "lw-fenced", "receipts": [_receipt(r, signer, sidecar="lw-fenced") for r in ids]}
        reply = CP(cluster.cps[w].cp_url, fleet).post("/v1/fleet/receipts", body)
        assert reply.status == 200 and reply.json()["accepted"] == 5, reply.text
        _wait(lambda: _writer(url)["term"] > state["term"], 15, "a new term")
        _wait(lambda: _pg_rows(url, "SELECT count(*) AS n FROM merkle_queue")[0]["n"] == 0, 15, "the queue drained")
        rows = _pg_rows(
            url,
            "SELECT l.idx FROM merkle_leaves l JOIN audit_events e ON e.seq = l.event_seq WHERE e.id = ANY($1::text[])",
            ids,
        )
        assert len(rows) == 5 and all(r["idx"] >= state["size"] for r in rows)
        [(n, size)] = _pg_rows(url, "SELECT (SELECT count(*) FROM merkle_leaves), (SELECT size FROM merkle_writer)")
        [(top,)] = _pg_rows(url, "SELECT max(idx) FROM merkle_leaves")
        assert n == size == top + 1

        # A tree-head key rotated through a replica that is not the writer: the writer signs the
        # next tree head (forced, same size) with the new key, which it reads from the database.
        w = _writer_index(cluster, url)
        other = next(i for i in range(len(cluster.cps)) if i != w)
        api = CP(cluster.cps[other].cp_url, cluster.cps[other].admin_token)
        reply = api.post("/v1/fleet/credentials/rotate", {"kind": "tree_head"})
        assert reply.status == 200, reply.text
        new_key = reply.json()["custody_event"]["key_id"]
        latest = api.get("/v1/audit/checkpoints/latest").json()
        assert latest["key_id"] == new_key
        key = load_public_key(api.get("/v1/audit/keys").json()["current_public_key"].encode())
        assert verify_checkpoint(latest["checkpoint"], key).size == latest["size"]

    def test_one_batch_sent_to_every_replica_at_once_is_stored_once_and_answered_200_by_each(self, cluster, postgres):
        """A sidecar whose request timed out resends the batch to another replica while the first
        is still storing it, so two replicas ingest the same receipts at the same instant. Each
        replica's ingestion lock is its own: the one that lost the race on the unique receipt id
        answered 500. Now every reply is 200, the receipts are accepted once in all (duplicates
        at the others), and each has one leaf."""
        url, fleet = postgres.url, cluster.cps[0].fleet_token
        signer = _register(cluster.cps[0].cp_url, fleet, "lw-twice")
        n, per, rounds = len(cluster.cps), 20, 15
        for rnd in range(rounds):
            ids = [f"lw-twice-{rnd}-{k}" for k in range(per)]
            body = {"instance_id": "lw-twice", "receipts": [_receipt(r, signer, sidecar="lw-twice") for r in ids]}
            together = threading.Barrier(n)

            def send(i: int, body=body, together=together):
                together.wait()
                return CP(cluster.cps[i].cp_url, fleet).post("/v1/fleet/receipts", body)

            with concurrent.futures.ThreadPoolExecutor(n) as pool:
                replies = list(pool.map(send, range(n)))
            assert all(r.status == 200 for r in replies), [(r.status, r.text[:300]) for r in replies]
            outs = [r.json() for r in replies]
            assert sum(o["accepted"] for o in outs) == per, outs
            assert sum(o["duplicates"] for o in outs) == per * (n - 1), outs
        _wait(lambda: _pg_rows(url, "SELECT count(*) AS n FROM merkle_queue")[0]["n"] == 0, 15, "the queue drained")
        [(events, leaves)] = _pg_rows(
            url,
            "SELECT count(DISTINCT e.id), count(l.idx) FROM audit_events e "
            "LEFT JOIN merkle_leaves l ON l.event_seq = e.seq WHERE e.id LIKE 'lw-twice-%'",
        )
        assert events == leaves == per * rounds

    def test_every_replica_reports_the_shared_log_and_exactly_one_reports_itself_its_writer(self, cluster, postgres):
        """Operators alert on these gauges (RelaygateNoLogWriter, RelaygateCheckpointStale): exactly
        one replica says it is the writer, and every replica reports the writer's tree heads and the
        log's size. Before, a replica that was not the writer exported what it saw at start, so its
        checkpoint age grew into a false RelaygateCheckpointStale although tree heads were signed."""
        from prometheus_client.parser import text_string_to_metric_families

        url, fleet, n = postgres.url, cluster.cps[0].fleet_token, len(cluster.cps)
        _wait(lambda: _writer(url)["replica_id"], 15, "a log writer")
        w = _writer_index(cluster, url)

        def gauges(i: int) -> dict[str, float]:
            text = CP(cluster.cps[i].cp_url, cluster.cps[i].admin_token).get("/metrics").text
            return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}

        assert [gauges(i)["relaygate_cp_log_writer"] for i in range(n)] == [float(i == w) for i in range(n)]
        other = next(i for i in range(n) if i != w)
        before = gauges(other)["relaygate_cp_checkpoint_timestamp_seconds"]
        signer = _register(cluster.cps[other].cp_url, fleet, "lw-gauges")
        ids = [f"lw-gauges-{k}" for k in range(5)]
        body = {"instance_id": "lw-gauges", "receipts": [_receipt(r, signer, sidecar="lw-gauges") for r in ids]}
        reply = CP(cluster.cps[other].cp_url, fleet).post("/v1/fleet/receipts", body)
        assert reply.status == 200 and reply.json()["accepted"] == 5, reply.text
        _wait(lambda: _pg_rows(url, "SELECT count(*) AS n FROM merkle_queue")[0]["n"] == 0, 15, "the queue drained")
        [(size,)] = _pg_rows(url, "SELECT size FROM merkle_writer WHERE id = 1")

        def reports_the_log(i: int) -> bool:
            g = gauges(i)
            return (
                g["relaygate_cp_merkle_tree_size"] == size
                and g["relaygate_cp_checkpoint_tree_size"] == size
                and g["relaygate_cp_checkpoint_timestamp_seconds"] > before
                and g["relaygate_cp_merkle_queue"] == 0
            )

        for i in range(n):  # tree heads every second (--checkpoint-interval 1), gauges read as often
            _wait(lambda i=i: reports_the_log(i), 15, f"replica {i} reporting the log at size {size}")
