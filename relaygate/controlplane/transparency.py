"""The append-only audit log: every ingested receipt is a leaf of an RFC 9162 Merkle tree.

One replica appends: the *writer*. On PostgreSQL the writer is elected: it holds an advisory
lock on a dedicated session (PostgreSQL releases it when the session dies, a SIGKILLed replica
included) and a lease row ``merkle_writer`` (replica id, term, backend pid, renewed, expires)
that everyone can read. Every append runs on the lock-holding session and moves the row's
``size`` forward only where ``term`` is still this writer's: a writer whose session was
terminated cannot append at all, and one whose lease was taken over fails its term check, so
a replaced writer never forks the tree (``merkle_leaves.idx`` being the primary key is the last
fence). A replica that sees the writer's lease expired while the lock is still held (a hung
writer: it renews every lease_ttl/3) terminates that session and takes over. On SQLite there is one control
plane and it is always the writer.

Receipts land on any replica. The writer appends their leaves inside the ingestion transaction
(as before: one transaction, no queue); any other replica stores the events and queues them
(``merkle_queue``, NOTIFY ``relaygate_merkle``); the writer, woken by the NOTIFY or a short
poll, makes them leaves in event order and removes them from the queue in the same
transaction. A new writer continues from the stored size and right edge: no gap, no fork.

Leaves are stored as C2SP tlog-tiles (``merkle_tiles``, relaygate/evidence/tiles.py), written
with the leaves; roots and proofs read only tiles (through an LRU cache), and a writer starts
by reading the size and the O(log n) right-edge tiles, never every leaf. A database from before
tiles is caught up by the first writer (from ``merkle_leaves``, progress logged).

Checkpoints (C2SP signed notes) are signed by the writer only, every ``interval`` seconds when
the tree grew; another replica asked for one (POST, or an inclusion proof no checkpoint covers
yet) asks the writer through NOTIFY and waits for it. Reads (state, checkpoints, proofs) work on
every replica, from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import sqlalchemy as sa

from relaygate.controlplane import metrics
from relaygate.controlplane import schema
from relaygate.controlplane.db import is_postgres, now_ms
from relaygate.controlplane.errors import ApiError
from relaygate.evidence import tiles as T
from relaygate.evidence.checkpoint import sign_checkpoint
from relaygate.evidence.merkle import leaf_hash
from relaygate.evidence.receipts import leaf_bytes

log = logging.getLogger("relaygate.controlplane.log")
ORIGIN = "relaygate.audit/v1"
QUEUE_COUNT_CAP = 1_000_000  # relaygate_cp_merkle_queue counts up to this (a count is a scan)
WRITER_LOCK = 0x6D65726B6C65  # "merkle": the advisory-lock key of the log writer
CHANNEL = "relaygate_merkle"
CATCH_UP_CHUNK = 50_000
DRAIN_CHUNK = 2_000


class Fenced(RuntimeError):
    """This replica is no longer the log writer (its session or its term is gone)."""


class TransparencyLog:
    def __init__(self, engine, keys, origin: str = ORIGIN, replica_id: str = "", lease_ttl: float = 10.0) -> None:
        self.engine, self.keys, self.origin = engine, keys, origin
        self.replica_id, self.lease_ttl = replica_id or "controlplane", lease_ttl
        self.postgres = is_postgres(engine)
        self.cache = T.TileCache()
        self._nodes: dict[tuple[int, int], bytes] = {}  # (height, index) -> hash of a complete subtree
        self.lock = asyncio.Lock()  # appends, checkpoints and lease renewals of this replica
        self.writer: T.TileWriter | None = None  # while this replica is the writer
        self.term = 0
        self._conn = None  # PostgreSQL: the session holding the writer's advisory lock
        self._renewed = 0.0
        self._wake = asyncio.Event()
        self._checkpoint_wanted = False
        self._checkpoint_forced = False  # a replica asked for a new tree head even at this size
        self._appending = False
        self._staged: tuple[T.TileWriter, dict] | None = None
        metrics.LOG_WRITER.set_function(lambda: 1.0 if self.writer is not None else 0.0)

    @property
    def is_writer(self) -> bool:
        return self.writer is not None

    async def load(self) -> None:
        """Become the writer if nobody is (always, on SQLite); set the metrics from the database."""
        if self.postgres:
            await self._try_elect()
        else:
            await self._take_over()
        await self.read_gauges()
        log.info("audit log: %d leaves (%s)", await self.size(), "writer" if self.is_writer else "not the writer")

    async def close(self) -> None:
        await self._drop_session()

    # -- the writer's election -------------------------------------------------------------
    async def _try_elect(self) -> bool:
        conn = await self.engine.connect()
        try:
            got = (await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": WRITER_LOCK})).scalar()
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            await self._fence_hung_writer()
            return False
        self._conn = conn
        try:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.add_listener(CHANNEL, self._notified)
            await self._take_over()
        except BaseException:
            await self._drop_session()
            raise
        return True

    def _notified(self, _conn, _pid, _channel, payload: str) -> None:
        if payload == "checkpoint:force":
            self._checkpoint_forced = True
        if payload.startswith("checkpoint"):
            self._checkpoint_wanted = True
        self._wake.set()

    async def _fence_hung_writer(self) -> None:
        """The lock is held, but its holder's lease expired (no renewal for lease_ttl, where it
        renews every third of it): end its session, so the lock is free for the next round."""
        async with self.engine.connect() as c:
            row = (
                (await c.execute(sa.select(schema.merkle_writer).where(schema.merkle_writer.c.id == 1)))
                .mappings()
                .first()
            )
            if row is None or not row["backend_pid"] or row["expires_ms"] > now_ms():
                return
            log.warning(
                "log writer %s (term %d) stopped renewing its lease: ending its database session",
                row["replica_id"],
                row["term"],
            )
            await c.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": row["backend_pid"]})
            await c.commit()

    async def _take_over(self) -> None:
        """Start a new term: read the size and the right edge, then catch up on old leaves."""
        async with self.lock:
            async with self._txn() as c:
                w = schema.merkle_writer
                row = (await c.execute(sa.select(w).where(w.c.id == 1).with_for_update())).mappings().one()
                pid = (await c.execute(sa.text("SELECT pg_backend_pid()"))).scalar() if self.postgres else None
                term, now = row["term"] + 1, now_ms()
                await c.execute(
                    w.update()
                    .where(w.c.id == 1)
                    .values(
                        term=term,
                        replica_id=self.replica_id,
                        backend_pid=pid,
                        renewed_ms=now,
                        expires_ms=now + int(self.lease_ttl * 1000),
                    )
                )
                size, edge = row["size"], {}
                for level, index, _ in T.TileWriter.edge_tiles(size):
                    data = (
                        await c.execute(
                            sa.select(schema.merkle_tiles.c.hashes).where(
                                schema.merkle_tiles.c.level == level, schema.merkle_tiles.c.idx == index
                            )
                        )
                    ).scalar()
                    edge[level] = bytes(data or b"")
            self.term, self.writer, self._renewed = term, T.TileWriter(size, edge), time.monotonic()
            if self.postgres:
                log.info("replica %s is the log writer (term %d, tree size %d)", self.replica_id, term, size)
        await self._catch_up()

    async def _catch_up(self) -> None:
        """Tiles for leaves stored before the log had tiles (a database migrated to 0008)."""
        L = schema.merkle_leaves
        while True:
            async with self.lock:
                if self.writer is None:
                    return
                base = self.writer.size
                async with self._txn() as c:
                    rows = (
                        await c.execute(
                            sa.select(L.c.idx, L.c.leaf_hash)
                            .where(L.c.idx >= base)
                            .order_by(L.c.idx)
                            .limit(CATCH_UP_CHUNK)
                        )
                    ).all()
                    if not rows:
                        return
                    for i, (idx, _) in enumerate(rows):
                        if idx != base + i:
                            raise RuntimeError(f"merkle_leaves has a gap at index {base + i}")
                    staged = await self._append(c, [bytes(h) for _, h in rows], None)
                self._commit(staged)
            log.info("audit log: tiles built for %d leaves", self.writer.size if self.writer else 0)

    async def _renew(self) -> None:
        async with self.lock:
            if self.writer is None or time.monotonic() - self._renewed < self.lease_ttl / 3:
                return
            try:
                async with self._txn() as c:
                    w, now = schema.merkle_writer, now_ms()
                    res = await c.execute(
                        w.update()
                        .where(w.c.id == 1, w.c.term == self.term)
                        .values(renewed_ms=now, expires_ms=now + int(self.lease_ttl * 1000))
                    )
                    if res.rowcount != 1:
                        raise Fenced(f"term {self.term} was taken over")
                self._renewed = time.monotonic()
            except Exception as e:
                await self._step_down(e)

    async def _step_down(self, why: BaseException) -> None:
        if self.writer is not None:
            log.warning("replica %s is no longer the log writer (term %d): %s", self.replica_id, self.term, why)
        self.writer = None
        await self._drop_session()

    async def _drop_session(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # the session ends: PostgreSQL releases the lock
            with contextlib.suppress(Exception):
                await conn.close()

    @contextlib.asynccontextmanager
    async def _txn(self):
        """A transaction on the writer's session (PostgreSQL) or a fresh one (SQLite)."""
        if self._conn is None:
            if self.postgres:
                raise Fenced("no writer session")
            async with self.engine.begin() as c:
                yield c
        else:
            async with self._conn.begin():
                yield self._conn

    # -- appending ---------------------------------------------------------------------------
    async def _append(self, c, hashes: list[bytes], seqs: list[int] | None):
        """Append leaf hashes (and their merkle_leaves rows when ``seqs``) under the term fence;
        the new writer state is applied by :meth:`_commit` once the transaction committed."""
        assert self.writer is not None
        w = self.writer.clone()
        base = w.size
        touched = w.append(hashes)
        ws, now = schema.merkle_writer, now_ms()
        res = await c.execute(
            ws.update()
            .where(ws.c.id == 1, ws.c.term == self.term, ws.c.size == base)
            .values(size=w.size, renewed_ms=now, expires_ms=now + int(self.lease_ttl * 1000))
        )
        if res.rowcount != 1:
            raise Fenced(f"term {self.term} at size {base} is no longer the log's")
        if seqs is not None:
            await c.execute(
                schema.merkle_leaves.insert(),
                [{"idx": base + i, "event_seq": s, "leaf_hash": h} for i, (s, h) in enumerate(zip(seqs, hashes))],
            )
        await c.execute(
            self._upsert_tiles(),
            [{"level": lv, "idx": ix, "width": len(d) // 32, "hashes": d} for (lv, ix), d in touched.items()],
        )
        return w, touched

    def _upsert_tiles(self):
        t = schema.merkle_tiles
        if self.postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(t)
        return stmt.on_conflict_do_update(
            index_elements=[t.c.level, t.c.idx], set_={"width": stmt.excluded.width, "hashes": stmt.excluded.hashes}
        )

    def _commit(self, staged) -> None:
        w, touched = staged
        self.writer, self._renewed = w, time.monotonic()
        for (lv, ix), d in touched.items():
            self.cache.put(lv, ix, d)
        metrics.TREE_SIZE.set(w.size)

    @contextlib.asynccontextmanager
    async def transaction(self):
        """The ingestion transaction: on the writer, leaves staged in it are appended (and the
        writer state moves on commit); elsewhere they are queued for the writer. Raises Fenced
        (after stepping down) when this replica lost the writer's role meanwhile: the caller
        tries again, as a non-writer."""
        async with self.lock:
            self._staged = None
            self._appending = self.writer is not None
            try:
                if self._appending:
                    async with self._txn() as c:
                        yield c
                    if self._staged is not None:
                        self._commit(self._staged)
                else:
                    async with self.engine.begin() as c:
                        yield c
            except Fenced as e:
                await self._step_down(e)
                raise
            except Exception as e:
                if self._appending and self.postgres and (self._conn is None or self._conn.invalidated):
                    await self._step_down(e)  # the writer's session broke (ended by PostgreSQL or by us)
                    raise Fenced(f"the writer's session broke: {e}") from e
                raise
            finally:
                self._staged, self._appending = None, False

    async def stage(self, conn, items: list[tuple[int, dict]]) -> None:
        """Log ``(event_seq, envelope)`` pairs, in order, in the current :meth:`transaction`."""
        if not items:
            return
        if self._appending:
            hashes = [leaf_hash(leaf_bytes(env)) for _, env in items]
            self._staged = await self._append(conn, hashes, [s for s, _ in items])
            return
        await conn.execute(schema.merkle_queue.insert(), [{"event_seq": s} for s, _ in items])
        if self.postgres:
            await conn.execute(sa.text("SELECT pg_notify(:ch, 'queued')"), {"ch": CHANNEL})

    async def drain(self) -> int:
        """The writer: make queued events leaves, in event order. Returns how many."""
        E, Q = schema.audit_events, schema.merkle_queue
        done = 0
        while True:
            async with self.lock:
                if self.writer is None:
                    return done
                try:
                    async with self._txn() as c:
                        seqs = list(
                            (
                                await c.execute(sa.select(Q.c.event_seq).order_by(Q.c.event_seq).limit(DRAIN_CHUNK))
                            ).scalars()
                        )
                        if not seqs:
                            return done
                        envs = dict(
                            (await c.execute(sa.select(E.c.seq, E.c.receipt).where(E.c.seq.in_(seqs)))).tuples().all()
                        )
                        hashes = await asyncio.to_thread(lambda: [leaf_hash(leaf_bytes(envs[s])) for s in seqs])
                        staged = await self._append(c, hashes, seqs)
                        await c.execute(Q.delete().where(Q.c.event_seq.in_(seqs)))
                    self._commit(staged)
                except Fenced as e:
                    await self._step_down(e)
                    return done
                except Exception as e:
                    if self._conn is not None and self._conn.invalidated:
                        await self._step_down(e)
                        return done
                    raise
            done += len(seqs)

    # -- reading (any replica) ------------------------------------------------------------------
    async def size(self, conn=None) -> int:
        q = sa.select(schema.merkle_writer.c.size).where(schema.merkle_writer.c.id == 1)
        if conn is not None:
            size = int((await conn.execute(q)).scalar() or 0)
        else:
            async with self.engine.connect() as c:
                size = int((await c.execute(q)).scalar() or 0)
        metrics.TREE_SIZE.set(size)  # on every replica, as of its last read
        return size

    async def read_gauges(self) -> None:
        """Tree size, newest tree head and queue depth as the database has them: a replica that is
        not the writer would otherwise export what it saw at start, and (say) its checkpoint age
        would grow although the writer signs tree heads on time."""
        async with self.engine.connect() as c:
            await self.size(c)
            head = await self.latest(c)
            queued = (
                await c.execute(
                    sa.select(sa.func.count()).select_from(
                        sa.select(schema.merkle_queue.c.event_seq).limit(QUEUE_COUNT_CAP).subquery()
                    )
                )
            ).scalar()
        metrics.CHECKPOINT_TS.set(head["created_ms"] / 1000 if head else 0)
        metrics.CHECKPOINT_SIZE.set(head["size"] if head else 0)
        metrics.MERKLE_QUEUE.set(queued or 0)

    async def writer_state(self) -> dict:
        async with self.engine.connect() as c:
            row = (
                (await c.execute(sa.select(schema.merkle_writer).where(schema.merkle_writer.c.id == 1)))
                .mappings()
                .one()
            )
        return dict(row)

    async def _compute(self, fn):
        """``fn(node)`` with the tiles it needs read first (cache, then one query per 200). Node
        hashes are complete subtrees, which never change: they are memoized too (an evidence
        bundle's thousands of proofs share most of theirs)."""
        memo = self._nodes

        def recording(height: int, index: int) -> bytes:
            got = memo.get((height, index))
            return got if got is not None else record(height, index)

        need: dict[T.TileKey, int] = {}
        record = T.tile_recorder(need)
        fn(recording)
        local: dict[T.TileKey, bytes] = {}
        missing = []
        for (lv, ix), width in need.items():
            data = self.cache.get(lv, ix, width)
            if data is None:
                missing.append((lv, ix))
            else:
                local[(lv, ix)] = data
        t = schema.merkle_tiles
        for i in range(0, len(missing), 200):
            part = missing[i : i + 200]
            async with self.engine.connect() as c:
                rows = (
                    await c.execute(
                        sa.select(t.c.level, t.c.idx, t.c.hashes).where(
                            sa.or_(*(sa.and_(t.c.level == lv, t.c.idx == ix) for lv, ix in part))
                        )
                    )
                ).all()
            for lv, ix, data in rows:
                data = bytes(data)
                self.cache.put(lv, ix, data)
                local[(lv, ix)] = data
        read = T.node_from_tiles(lambda lv, ix: local.get((lv, ix)))

        def node(height: int, index: int) -> bytes:
            got = memo.get((height, index))
            if got is None:
                got = memo[(height, index)] = read(height, index)
                if len(memo) > 200_000:
                    memo.clear()
            return got

        return fn(node)

    async def tile(self, level: int, index: int) -> bytes | None:
        """A stored tile's current hashes (a full one from the cache when there)."""
        got = self.cache.get(level, index, T.WIDTH)
        if got is not None:
            return got
        t = schema.merkle_tiles
        async with self.engine.connect() as c:
            data = (await c.execute(sa.select(t.c.hashes).where(t.c.level == level, t.c.idx == index))).scalar()
        if data is None:
            return None
        self.cache.put(level, index, bytes(data))
        return bytes(data)

    async def root(self, size: int) -> bytes:
        return await self._compute(lambda node: T.root(node, size))

    async def inclusion(self, index: int, size: int) -> list[str]:
        return [h.hex() for h in await self._compute(lambda node: T.inclusion_proof(node, index, size))]

    async def consistency(self, first: int, second: int) -> list[str]:
        return [h.hex() for h in await self._compute(lambda node: T.consistency_proof(node, first, second))]

    # -- tree heads --------------------------------------------------------------------------
    async def latest(self, conn=None) -> dict | None:
        async def q(c):
            return (
                (
                    await c.execute(
                        sa.select(schema.checkpoints)
                        .order_by(schema.checkpoints.c.size.desc(), schema.checkpoints.c.id.desc())
                        .limit(1)
                    )
                )
                .mappings()
                .first()
            )

        if conn is not None:
            return await q(conn)
        async with self.engine.connect() as c:
            return await q(c)

    async def checkpoint(self, force: bool = False) -> dict:
        """Sign the current tree head (unless the latest checkpoint already has this size); on a
        replica that is not the writer, ask the writer and wait for its checkpoint."""
        async with self.lock:
            if self.writer is not None:
                try:
                    return await self._sign(force)
                except Fenced as e:
                    await self._step_down(e)
        return await self._ask_writer(force)

    async def _sign(self, force: bool) -> dict:
        assert self.writer is not None
        size = self.writer.size
        latest = await self.latest()
        if latest is not None and latest["size"] == size and not force:
            return dict(latest)
        if self.postgres:
            await self.keys.start()  # the current tree-head key (another replica may have rotated it)
        root = await self.root(size)
        signer = self.keys.tree
        ts = now_ms()
        note = sign_checkpoint(self.origin, size, root, ts, signer)
        async with self._txn() as c:
            w = schema.merkle_writer
            term = (await c.execute(sa.select(w.c.term).where(w.c.id == 1).with_for_update())).scalar()
            if term != self.term:
                raise Fenced(f"term {self.term} was taken over by term {term}")
            cid = (
                await c.execute(
                    schema.checkpoints.insert()
                    .values(size=size, root=root, note=note, key_id=signer.key_id, created_ms=ts)
                    .returning(schema.checkpoints.c.id)
                )
            ).scalar()
        metrics.CHECKPOINT_TS.set(ts / 1000)
        metrics.CHECKPOINT_SIZE.set(size)
        return {"id": cid, "size": size, "root": root, "note": note, "key_id": signer.key_id, "created_ms": ts}

    async def _ask_writer(self, force: bool, timeout: float = 10.0) -> dict:
        size, latest = await self.size(), await self.latest()
        if latest is not None and latest["size"] >= size and not force:
            return dict(latest)
        before = latest["id"] if latest is not None else 0
        if self.postgres:
            async with self.engine.begin() as c:
                payload = "checkpoint:force" if force else "checkpoint"
                await c.execute(sa.text("SELECT pg_notify(:ch, :p)"), {"ch": CHANNEL, "p": payload})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            latest = await self.latest()
            if latest is not None and latest["size"] >= size and (not force or latest["id"] > before):
                return dict(latest)
        raise ApiError(503, "log.writer_unavailable", "no Merkle log writer signed a tree head in time; retry")

    async def run(self, interval: float) -> None:
        """Campaign for the writer's role, renew its lease, log queued events, and sign a
        checkpoint every ``interval`` seconds when the tree grew (or when another replica asks)."""
        loop = asyncio.get_running_loop()
        next_checkpoint = next_read = loop.time() + interval
        while True:
            try:
                if loop.time() >= next_read:  # the log's gauges, on every replica, from the shared state
                    next_read = loop.time() + interval
                    await self.read_gauges()
                if self.postgres and self.writer is None:
                    await self._try_elect()
                elif self.postgres:
                    await self._renew()
                if self.writer is not None and self.postgres:  # (SQLite: one replica, nothing is queued)
                    await self.drain()
                if self.writer is not None:
                    if self._checkpoint_wanted or loop.time() >= next_checkpoint:
                        force, self._checkpoint_wanted, self._checkpoint_forced = self._checkpoint_forced, False, False
                        next_checkpoint = loop.time() + interval
                        await self.checkpoint(force=force)
            except Exception:
                log.exception("the log writer's round failed")
            poll = (0.25 if self.writer is not None else 0.5) if self.postgres else interval
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(poll, max(0.05, next_checkpoint - loop.time())))
            self._wake.clear()

    # -- proofs ------------------------------------------------------------------------------
    async def leaf_index(self, conn, event_seq: int) -> int | None:
        return (
            await conn.execute(
                sa.select(schema.merkle_leaves.c.idx).where(schema.merkle_leaves.c.event_seq == event_seq)
            )
        ).scalar()

    async def inclusion_for(self, conn, event_seq: int, tree_size: int | None = None) -> dict | None:
        """The inclusion proof of an event's leaf against ``tree_size`` (default: the latest
        checkpoint, signed now if none covers the leaf yet); None while the event is not a leaf."""
        idx = await self.leaf_index(conn, event_seq)
        if idx is None:
            return None
        if tree_size is None:
            head = await self.latest(conn)
            if head is None or head["size"] <= idx:
                head = await self.checkpoint()
            tree_size, note = head["size"], head["note"]
        else:
            note = (
                await conn.execute(
                    sa.select(schema.checkpoints.c.note).where(schema.checkpoints.c.size == tree_size).limit(1)
                )
            ).scalar()
        if not idx < tree_size <= await self.size(conn):
            raise ApiError(
                400,
                "invalid_request",
                f"leaf {idx} is not in a tree of size {tree_size}",
                {"parameter": "tree_size", "provided": tree_size, "expected": f"> {idx}"},
            )
        return {
            "leaf_index": idx,
            "tree_size": tree_size,
            "hashes": await self.inclusion(idx, tree_size),
            "checkpoint": note,
        }


def checkpoint_json(row) -> dict:
    from relaygate.controlplane.util import iso

    return {
        "size": row["size"],
        "root_hash": bytes(row["root"]).hex(),
        "key_id": row["key_id"],
        "signed_at": iso(row["created_ms"]),
        "checkpoint": row["note"],
    }
