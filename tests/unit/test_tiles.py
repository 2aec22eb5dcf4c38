"""Roots and proofs computed from C2SP tlog tiles equal the in-memory MerkleLog's, for many sizes,
and tiles appended in batches of any shape are the same tiles."""

from __future__ import annotations

import hashlib
import random

import pytest

from relaygate.evidence import tiles as T
from relaygate.evidence.merkle import MerkleLog, verify_consistency, verify_inclusion


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(b"leaf %d" % i).digest() for i in range(n)]


def _tiled(leaves: list[bytes], batches: list[int]) -> tuple[T.TileWriter, dict]:
    store: dict = {}
    w, i = T.TileWriter(), 0
    for b in batches:
        store.update(w.append(leaves[i : i + b]))
        i += b
    store.update(w.append(leaves[i:]))
    return w, store


SIZES = [1, 2, 3, 7, 8, 255, 256, 257, 511, 512, 513, 1000, 65535, 65536, 65537, 70001]


@pytest.mark.parametrize("size", SIZES)
def test_roots_and_proofs_from_tiles_equal_the_in_memory_tree(size):
    leaves = _leaves(size)
    ref = MerkleLog(leaves)
    rnd = random.Random(size)
    w, store = _tiled(leaves, [rnd.randint(1, 700) for _ in range(5)])
    assert w.size == size
    node = T.node_from_tiles(lambda lv, ix: store.get((lv, ix)))
    sizes = sorted({1, size, size // 2 or 1, max(1, size - 1), *(rnd.randint(1, size) for _ in range(6))})
    for s in sizes:
        assert T.root(node, s) == ref.root(s)
        for i in {0, s - 1, rnd.randrange(s), s // 2}:
            p = T.inclusion_proof(node, i, s)
            assert p == ref.inclusion_proof(i, s)
            verify_inclusion(i, s, leaves[i], p, ref.root(s))
        for a in {0, 1, s // 3, s - 1, s}:
            if 0 <= a <= s:
                p = T.consistency_proof(node, a, s)
                assert p == ref.consistency_proof(a, s)
                verify_consistency(a, s, ref.root(a), ref.root(s), p)


def test_every_stored_tile_holds_the_node_hashes_of_its_level():
    leaves = _leaves(256 * 256 + 300)
    ref = MerkleLog(leaves)
    _, store = _tiled(leaves, [1, 255, 256, 5000, 70000])
    for (level, n), data in store.items():
        assert len(data) % 32 == 0 and 0 < len(data) // 32 <= T.WIDTH
        h = T.HEIGHT * level
        for k in (0, len(data) // 32 - 1):
            start = (n * T.WIDTH + k) << h
            assert data[k * 32 : (k + 1) * 32] == ref._hash(start, 1 << h), (level, n, k)
    assert (1, 0) in store and len(store[(1, 0)]) == 256 * 32  # level 1 full: 65536 leaves
    assert len(store[(2, 0)]) == 32 and len(store[(0, 256)]) == 256 * 32 and len(store[(0, 257)]) == 44 * 32


def test_a_writer_restarted_from_the_right_edge_continues_the_same_tiles():
    leaves = _leaves(70000)
    _, whole = _tiled(leaves, [])
    first, store = _tiled(leaves[:66000], [])
    edge = {lv: store[(lv, ix)] for lv, ix, _ in T.TileWriter.edge_tiles(66000)}
    again = T.TileWriter(66000, edge)
    store.update(again.append(leaves[66000:]))
    assert store == whole


def test_tiles_needed_lists_what_a_proof_reads_and_a_missing_tile_is_reported():
    leaves = _leaves(1000)
    _, store = _tiled(leaves, [])
    need = T.tiles_needed(lambda node: T.inclusion_proof(node, 5, 1000))
    assert set(need) <= set(store)
    partial = {k: store[k] for k in need}
    node = T.node_from_tiles(lambda lv, ix: partial.get((lv, ix)))
    assert T.inclusion_proof(node, 5, 1000) == MerkleLog(leaves).inclusion_proof(5, 1000)
    with pytest.raises(T.MissingTile):
        T.root(T.node_from_tiles(lambda lv, ix: None), 1000)
    narrow = T.node_from_tiles(lambda lv, ix: store[(lv, ix)][:32])
    with pytest.raises(T.MissingTile):
        narrow(1, 0)


def test_cache_keeps_the_widest_copy_and_evicts_the_oldest():
    c = T.TileCache(capacity=2)
    c.put(0, 0, b"a" * 64)
    c.put(0, 0, b"a" * 32)
    assert c.get(0, 0, 2) == b"a" * 64 and c.get(0, 0, 3) is None
    c.put(0, 1, b"b" * 32)
    c.put(0, 2, b"c" * 32)
    assert c.get(0, 0) is None and c.get(0, 2) == b"c" * 32


def test_tiles_roots_and_proofs_equal_go_tlog_reference_vectors():
    """tests/unit/vectors/tlog_tiles.json: golang.org/x/mod/sumdb/tlog (the tlog-tiles reference)
    over records "go leaf %d": every tile (digest of its bytes), root and proof is the same here."""
    import json
    from pathlib import Path

    from relaygate.evidence.merkle import leaf_hash

    vec = json.loads((Path(__file__).parent / "vectors" / "tlog_tiles.json").read_text())
    assert vec["height"] == T.HEIGHT
    biggest = max(c["size"] for c in vec["cases"])
    leaves = [leaf_hash(vec["record"].replace("%d", str(i)).encode()) for i in range(biggest)]
    for case in vec["cases"]:
        size = case["size"]
        w = T.TileWriter()
        store = w.append(leaves[:size])
        mine = {f"{lv}/{ix}/{len(d) // 32}": hashlib.sha256(d).hexdigest() for (lv, ix), d in store.items()}
        assert mine == case["tiles"], size
        node = T.node_from_tiles(lambda lv, ix: store.get((lv, ix)))
        assert T.root(node, size).hex() == case["root"]
        for p in case["inclusion"]:
            assert [h.hex() for h in T.inclusion_proof(node, p["index"], size)] == p["hashes"]
        for p in case["consistency"] or []:
            assert [h.hex() for h in T.consistency_proof(node, p["first"], size)] == p["hashes"]
