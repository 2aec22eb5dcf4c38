"""RFC 9162 Merkle tree: published vectors, and properties over random trees (hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.evidence.merkle import (
    MerkleLog,
    ProofError,
    leaf_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962_merkle.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
H = bytes.fromhex


def _log(n: int) -> MerkleLog:
    return MerkleLog([leaf_hash(x) for x in LEAVES[:n]])


def test_roots_match_the_published_vectors():
    for n, root in enumerate(VECTORS["roots"], start=1):
        assert _log(n).root().hex() == root


@pytest.mark.parametrize("v", VECTORS["inclusion"], ids=lambda v: f"{v['leaf_index']}-of-{v['tree_size']}")
def test_inclusion_proofs_match_and_verify(v):
    log = _log(v["tree_size"])
    proof = [H(p) for p in v["proof"]]
    assert log.inclusion_proof(v["leaf_index"]) == proof
    root = H(VECTORS["roots"][v["tree_size"] - 1])
    verify_inclusion(v["leaf_index"], v["tree_size"], leaf_hash(LEAVES[v["leaf_index"]]), proof, root)


@pytest.mark.parametrize("v", VECTORS["consistency"], ids=lambda v: f"{v['first']}-to-{v['second']}")
def test_consistency_proofs_match_and_verify(v):
    log = _log(v["second"])
    proof = [H(p) for p in v["proof"]]
    assert log.consistency_proof(v["first"]) == proof
    verify_consistency(
        v["first"], v["second"], H(VECTORS["roots"][v["first"] - 1]), H(VECTORS["roots"][v["second"] - 1]), proof
    )


def test_edge_cases_are_refused():
    log = _log(4)
    with pytest.raises(ProofError):
        root_from_inclusion(4, 4, log.leaves[0], log.inclusion_proof(0))
    with pytest.raises(ProofError):
        verify_consistency(3, 2, log.root(3), log.root(2), [])
    with pytest.raises(ProofError):
        verify_consistency(2, 4, log.root(2), log.root(4), [])
    verify_consistency(4, 4, log.root(4), log.root(4), [])
    verify_consistency(0, 4, log.root(0), log.root(4), [])
    with pytest.raises(ValueError):
        log.inclusion_proof(0, 5)


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    b = bytearray(out[i])
    b[bit // 8] ^= 1 << (bit % 8)
    out[i] = bytes(b)
    return out


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_inclusion_holds_for_random_trees_and_fails_when_altered(size, data):
    log = MerkleLog([leaf_hash(i.to_bytes(4, "big")) for i in range(size)])
    index = data.draw(st.integers(0, size - 1))
    tree = data.draw(st.integers(index + 1, size))
    proof = log.inclusion_proof(index, tree)
    root = log.root(tree)
    verify_inclusion(index, tree, log.leaves[index], proof, root)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        with pytest.raises(ProofError):
            verify_inclusion(index, tree, log.leaves[index], _flip(proof, i, bit), root)
        with pytest.raises(ProofError):
            verify_inclusion(index, tree, log.leaves[index], proof[:-1], root)
        with pytest.raises(ProofError):
            verify_inclusion(index, tree, log.leaves[index], proof + [root], root)
    with pytest.raises(ProofError):
        verify_inclusion(index, tree, leaf_hash(b"not a leaf"), proof, root)
    if tree > 1:
        other = (index + 1) % tree
        if log.leaves[other] != log.leaves[index]:
            with pytest.raises(ProofError):
                verify_inclusion(other, tree, log.leaves[index], proof, root)


@settings(max_examples=300, deadline=None)
@given(size=st.integers(2, 300), data=st.data())
def test_consistency_holds_for_random_sizes_and_fails_when_altered(size, data):
    log = MerkleLog([leaf_hash(i.to_bytes(4, "big")) for i in range(size)])
    first = data.draw(st.integers(1, size - 1))
    second = data.draw(st.integers(first + 1, size))
    proof = log.consistency_proof(first, second)
    r1, r2 = log.root(first), log.root(second)
    verify_consistency(first, second, r1, r2, proof)
    i = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(ProofError):
        verify_consistency(first, second, r1, r2, _flip(proof, i, bit))
    with pytest.raises(ProofError):
        verify_consistency(first, second, r1, r2, proof[:-1])
    with pytest.raises(ProofError):
        verify_consistency(first, second, r2, r1, proof)
    with pytest.raises(ProofError):
        verify_consistency(first, second, r1, leaf_hash(b"forged"), proof)


def test_memoized_subtrees_give_the_same_roots_as_fresh_computation():
    log = MerkleLog()
    roots = []
    for i in range(700):
        log.append(leaf_hash(str(i).encode()))
        roots.append(log.root())
    fresh = MerkleLog(list(log.leaves))
    fresh.MEMO_MIN = 1 << 30
    assert all(fresh.root(n + 1) == r for n, r in enumerate(roots))
