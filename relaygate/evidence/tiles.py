"""C2SP tlog-tiles (https://c2sp.org/tlog-tiles) over the RFC 9162 tree of :mod:`merkle`.

A tile at level L, index N holds up to 256 consecutive hashes of tree height 8L: the node
hashes ``N*256 .. N*256+W-1`` at that height (level 0: the leaf hashes). A tile of width 256
is full and never changes; the right edge of each level is a partial tile that grows. Every
hash in a tile is the root of a complete subtree, so a tile's first W hashes are the same in
every later version of it: a reader holding an older (narrower) copy of a partial tile may use
it for every node it covers.

Any complete subtree (height h, index i) is the hash of at most 128 consecutive hashes of one
tile (level h // 8), so roots and proofs of any tree size need O(log n) tiles, never the
leaves. :class:`TileWriter` keeps only the right edge (one partial tile per level) and tells
which tiles an append changed. The proof functions take a ``node(height, index)`` callable;
:func:`tiles_needed` runs them once with a recording callable to list the tiles to fetch (the
algorithms' control flow does not depend on hash values).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from relaygate.evidence.merkle import EMPTY_ROOT, _split, node_hash

HEIGHT = 8
WIDTH = 1 << HEIGHT

Node = Callable[[int, int], bytes]
TileKey = tuple[int, int]  # (level, index)


class MissingTile(LookupError):
    """A tile (or enough of it) is not at hand."""


def tile_of(height: int, index: int) -> tuple[int, int, int, int]:
    """(level, tile index, first position, count) of the tile hashes node (height, index) covers."""
    level, r = divmod(height, HEIGHT)
    first = index << r
    n, off = divmod(first, WIDTH)
    return level, n, off, 1 << r


def fold(hashes: list[bytes]) -> bytes:
    """The root of a complete subtree from its 2^k bottom hashes."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[j], hashes[j + 1]) for j in range(0, len(hashes), 2)]
    return hashes[0]


def node_from_tiles(get: Callable[[int, int], bytes | None]) -> Node:
    """A ``node(height, index)`` reading tiles through ``get(level, index)`` (the tile's bytes,
    32 per hash, or None); raises MissingTile when a tile is absent or too narrow."""

    def node(height: int, index: int) -> bytes:
        level, n, off, count = tile_of(height, index)
        data = get(level, n)
        if data is None or len(data) < (off + count) * 32:
            raise MissingTile((level, n, off + count))
        return fold([bytes(data[k * 32 : (k + 1) * 32]) for k in range(off, off + count)])

    return node


# -- roots and proofs over nodes (RFC 9162 2.1, as MerkleLog computes them) --------------------


def subtree(node: Node, start: int, n: int) -> bytes:
    """MTH of leaves[start:start+n] (start is a multiple of the largest power of two <= n, as in
    every subtree RFC 9162 splits a tree into)."""
    if n & (n - 1) == 0:
        h = n.bit_length() - 1
        return node(h, start >> h)
    k = _split(n)
    return node_hash(subtree(node, start, k), subtree(node, start + k, n - k))


def root(node: Node, size: int) -> bytes:
    return EMPTY_ROOT if size == 0 else subtree(node, 0, size)


def inclusion_proof(node: Node, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size])."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    out: list[bytes] = []
    start, n, m = 0, size, index
    while n > 1:
        k = _split(n)
        if m < k:
            out.append(subtree(node, start + k, n - k))
            n = k
        else:
            out.append(subtree(node, start, k))
            start, n, m = start + k, n - k, m - k
    return list(reversed(out))


def consistency_proof(node: Node, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[0:second])."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to {second}")
    if first == 0 or first == second:
        return []
    return _subproof(node, first, 0, second, True)


def _subproof(node: Node, m: int, start: int, n: int, complete: bool) -> list[bytes]:
    if m == n:
        return [] if complete else [subtree(node, start, n)]
    k = _split(n)
    if m <= k:
        return _subproof(node, m, start, k, complete) + [subtree(node, start + k, n - k)]
    return _subproof(node, m - k, start + k, n - k, False) + [subtree(node, start, k)]


def tile_recorder(need: dict[TileKey, int]) -> Node:
    """A ``node`` that records into ``need`` the tile (and width) each node it is asked for reads."""

    def record(height: int, index: int) -> bytes:
        level, n, off, count = tile_of(height, index)
        need[(level, n)] = max(need.get((level, n), 0), off + count)
        return b"\x00" * 32

    return record


def tiles_needed(compute: Callable[[Node], object]) -> dict[TileKey, int]:
    """The tiles ``compute(node)`` reads, each with the width it needs."""
    need: dict[TileKey, int] = {}
    compute(tile_recorder(need))
    return need


# -- writing --------------------------------------------------------------------------------


class TileWriter:
    """The right edge of a tiled log: appending leaf hashes yields the tiles that changed."""

    def __init__(self, size: int = 0, edge: dict[int, bytes] | None = None) -> None:
        """``edge[level]`` is the partial tile at that level (width ``(size >> 8*level) % 256``)."""
        self.size = size
        self.edge: list[bytearray] = []
        level = 0
        while size >> (HEIGHT * level):
            w = (size >> (HEIGHT * level)) % WIDTH
            data = (edge or {}).get(level, b"")
            if len(data) < w * 32:
                raise ValueError(f"the right-edge tile of level {level} has fewer than {w} hashes")
            self.edge.append(bytearray(data[: w * 32]))
            level += 1

    @staticmethod
    def edge_tiles(size: int) -> list[tuple[int, int, int]]:
        """(level, index, width) of the partial tiles the right edge of a tree of ``size`` has."""
        out, level = [], 0
        while size >> (HEIGHT * level):
            count = size >> (HEIGHT * level)
            if count % WIDTH:
                out.append((level, count // WIDTH, count % WIDTH))
            level += 1
        return out

    def clone(self) -> TileWriter:
        c = TileWriter()
        c.size, c.edge = self.size, [bytearray(e) for e in self.edge]
        return c

    def append(self, leaves: Iterable[bytes]) -> dict[TileKey, bytes]:
        """Append leaf hashes; return every tile they changed (full ones and the new partial
        right edge), as (level, index) -> hashes."""
        touched: dict[TileKey, bytearray] = {}
        for h in leaves:
            if len(h) != 32:
                raise ValueError("a leaf hash is 32 bytes")
            self._push(0, h, touched)
            self.size += 1
        return {k: bytes(v) for k, v in touched.items()}

    def _push(self, level: int, h: bytes, touched: dict[TileKey, bytearray]) -> None:
        if len(self.edge) <= level:
            self.edge.append(bytearray())
        e = self.edge[level]
        e += h
        count = (self.size + 1) >> (HEIGHT * level)  # leaf self.size completes node count-1 here
        touched[(level, (count - 1) // WIDTH)] = e
        if len(e) == WIDTH * 32:
            self.edge[level] = bytearray()
            self._push(level + 1, fold([bytes(e[k * 32 : (k + 1) * 32]) for k in range(WIDTH)]), touched)


class TileCache:
    """A read-through LRU of tiles: ``get`` returns a cached copy wide enough or None."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._tiles: OrderedDict[TileKey, bytes] = OrderedDict()

    def get(self, level: int, index: int, width: int = 0) -> bytes | None:
        data = self._tiles.get((level, index))
        if data is None or len(data) < width * 32:
            return None
        self._tiles.move_to_end((level, index))
        return data

    def put(self, level: int, index: int, data: bytes) -> None:
        old = self._tiles.get((level, index))
        if old is not None and len(old) > len(data):
            return  # a narrower (older) copy of a partial tile adds nothing
        self._tiles[(level, index)] = data
        self._tiles.move_to_end((level, index))
        while len(self._tiles) > self.capacity:
            self._tiles.popitem(last=False)
