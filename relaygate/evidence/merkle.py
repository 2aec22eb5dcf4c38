"""RFC 9162 Merkle tree: leaf and node hashes, roots, inclusion and consistency proofs.

Hashes: ``leaf = SHA-256(0x00 || data)``, ``node = SHA-256(0x01 || left || right)``;
the tree over n leaves splits at the largest power of two smaller than n
(RFC 9162 section 2.1.1). Proof generation follows the PATH and PROOF
definitions (2.1.3.1, 2.1.4.1); verification follows the algorithms of
2.1.3.2 and 2.1.4.2, which need nothing but the proof, the sizes and the roots.

:class:`MerkleLog` keeps the leaf hashes of an append-only log and memoizes
the hashes of complete subtrees (they never change once complete), so roots
and proofs over large logs cost O(log n) subtree lookups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator


class ProofError(ValueError):
    """A proof does not verify; the message says which check failed."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class _LeafHashes:
    """Leaf hashes packed 32 bytes apiece in one buffer: ~32 B per leaf in memory, where a list
    of bytes objects costs ~75 B (the control plane keeps its whole log's leaves)."""

    __slots__ = ("_buf",)

    def __init__(self, hashes: Iterable[bytes] = ()) -> None:
        self._buf = bytearray()
        for h in hashes:
            self.append(h)

    def append(self, h: bytes) -> None:
        if len(h) != 32:
            raise ValueError("a leaf hash is 32 bytes")
        self._buf += h

    def __len__(self) -> int:
        return len(self._buf) // 32

    def __getitem__(self, i: int) -> bytes:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return bytes(self._buf[i * 32 : (i + 1) * 32])

    def __iter__(self) -> Iterator[bytes]:
        return (self[i] for i in range(len(self)))


class MerkleLog:
    """An append-only list of leaf hashes with cached complete subtrees."""

    MEMO_MIN = 64  # subtrees smaller than this are recomputed (cheap) rather than stored

    def __init__(self, leaf_hashes: Iterable[bytes] | None = None) -> None:
        self.leaves = _LeafHashes(leaf_hashes or ())
        self._memo: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self.leaves)

    def append(self, leaf: bytes) -> int:
        """Add a leaf hash; return its index."""
        self.leaves.append(leaf)
        return len(self.leaves) - 1

    def _hash(self, start: int, n: int) -> bytes:
        """MTH of leaves[start:start+n]."""
        if n == 1:
            return self.leaves[start]
        complete = n & (n - 1) == 0 and start + n <= len(self.leaves)
        key = (start, n)
        if complete and n >= self.MEMO_MIN:
            cached = self._memo.get(key)
            if cached is not None:
                return cached
        k = _split(n)
        h = node_hash(self._hash(start, k), self._hash(start + k, n - k))
        if complete and n >= self.MEMO_MIN:
            self._memo[key] = h
        return h

    def root(self, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        if not 0 <= size <= len(self.leaves):
            raise ValueError(f"tree size {size} is beyond the log ({len(self.leaves)} leaves)")
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size])."""
        size = len(self.leaves) if size is None else size
        if not 0 <= index < size <= len(self.leaves):
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        out: list[bytes] = []
        start, n, m = 0, size, index
        while n > 1:
            k = _split(n)
            if m < k:
                out.append(self._hash(start + k, n - k))
                n = k
            else:
                out.append(self._hash(start, k))
                start, n, m = start + k, n - k, m - k
        return list(reversed(out))

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """PROOF(first, D[0:second])."""
        second = len(self.leaves) if second is None else second
        if not 0 <= first <= second <= len(self.leaves):
            raise ValueError(f"no consistency proof from size {first} to {second}")
        if first == 0 or first == second:
            return []
        return self._subproof(first, 0, second, True)

    def _subproof(self, m: int, start: int, n: int, complete: bool) -> list[bytes]:
        if m == n:
            return [] if complete else [self._hash(start, n)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, start, k, complete) + [self._hash(start + k, n - k)]
        return self._subproof(m - k, start + k, n - k, False) + [self._hash(start, k)]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root an inclusion proof leads to (raises ProofError)."""
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    if any(len(p) != 32 for p in proof) or len(leaf) != 32:
        raise ProofError("proof elements must be 32-byte hashes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the root of tree size {size}")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]) -> None:
    """RFC 9162 2.1.4.2 (raises ProofError)."""
    if first > second:
        raise ProofError(f"tree size went backwards ({first} -> {second})")
    if any(len(p) != 32 for p in proof):
        raise ProofError("proof elements must be 32-byte hashes")
    if first == second:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError(f"two different roots for tree size {first}")
        return
    if first == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:  # first is a power of two: its root starts the path
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if fr != first_root:
        raise ProofError(f"consistency proof does not reproduce the root of tree size {first}")
    if sr != second_root:
        raise ProofError(f"consistency proof does not reproduce the root of tree size {second}")
