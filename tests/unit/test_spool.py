"""The receipt spool's own promises that no other test would notice being broken."""

from __future__ import annotations

import os

from relaygate.extproc.spool import Spool


def test_the_wal_stays_bounded_under_a_steady_stream_of_commits(tmp_path):
    """A PASSIVE checkpoint never catches up with a writer that never pauses, so SQLite never
    wraps the log: before the restart threshold the WAL grew by ~1 GB per 30,000 receipts and the
    gateway slowed down round after round of the peer benchmark."""
    spool = Spool(tmp_path / "receipts.db", wal_wrap_bytes=1 << 20, checkpoint_every_s=0.01)
    wal = tmp_path / "receipts.db-wal"
    draft = {"decision": {"allow": True}, "body": "x" * 2000}
    sizes = []
    try:
        for i in range(3000):  # ~6 MB of rows, ~60 MB of WAL frames (a commit each), without a pause
            spool.add_pending(f"r{i}", draft)
            if i % 50 == 0:
                sizes.append(os.path.getsize(wal))
        assert spool.counts() == {"pending": 3000}
    finally:
        spool.close()
    # How far it gets between two checkpoints depends on this machine's speed; that it comes back
    # while the writer never stops does not: without the restart it only ever grows.
    shrank = [(a, b) for a, b in zip(sizes, sizes[1:]) if b < a]
    assert shrank, f"the WAL only grew, to {sizes[-1] >> 20} MiB"
    assert min(b for _, b in shrank) < 4 << 20
