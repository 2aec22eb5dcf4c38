"""The evidence bundle: a tar.gz an auditor can verify offline (see relaygate/evidence/verify.py).

Layout (every file listed with its SHA-256 in the signed manifest):

    manifest.json            what the bundle holds: range, workspace, components, files and digests
    manifest.sig.json        DSSE envelope over manifest.json's bytes, signed by a control-plane key
    receipts.jsonl           {"event_id", "leaf_index", "envelope"} per receipt, by leaf index
    proofs/inclusion.jsonl   {"event_id", "leaf_index", "tree_size", "hashes"} per receipt
    log/checkpoints.json     signed tree heads (C2SP checkpoints), oldest first; the last one
                             is the tree the inclusion proofs refer to
    log/consistency.json     {"first", "second", "hashes"} between consecutive checkpoints
    chains.jsonl             per sidecar, every receipt of the covered span: {"owner", "seq",
                             "hash", "prev_hash", "included"} (receipts of other workspaces
                             appear as hashes only)
    keys/custody.jsonl       every key-custody event (relaygate/evidence/custody.py)
    policies/index.json      {"id@label": {"path", "sha256", "workspace"}} and the sources
    deployments.json         policy deployments in the range
    fleet/posture.json       gateway instances and their last posture

Hashes in JSON are hex; proof hashes are hex too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zlib
from collections.abc import Iterable
from typing import Any

from relaygate.evidence import dsse
from relaygate.evidence.receipts import canonical
from relaygate.evidence.signing import Signer

FORMAT = "relaygate-evidence/1"
MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig.json"
MANIFEST_TYPE = "application/vnd.relaygate.manifest+json"
RECEIPTS = "receipts.jsonl"
INCLUSION = "proofs/inclusion.jsonl"
CHECKPOINTS = "log/checkpoints.json"
CONSISTENCY = "log/consistency.json"
CHAINS = "chains.jsonl"
CUSTODY = "keys/custody.jsonl"
POLICIES = "policies/index.json"
DEPLOYMENTS = "deployments.json"
POSTURE = "fleet/posture.json"
COMPONENTS = ("receipts", "policies", "key_custody", "deployments", "fleet_posture")
MAX_BYTES = 2 * 1024 * 1024 * 1024


class BundleFormatError(ValueError):
    pass


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def jsonl(rows: Iterable[Any]) -> bytes:
    return b"".join(canonical(r) + b"\n" for r in rows)


def write(files: dict[str, bytes], manifest: dict[str, Any], signer: Signer) -> bytes:
    """Pack files with a manifest listing their digests, signed by ``signer``; return tar.gz bytes."""
    manifest = {
        **manifest,
        "format": FORMAT,
        "files": [{"path": p, "sha256": sha256_hex(files[p]), "bytes": len(files[p])} for p in sorted(files)],
    }
    body = canonical(manifest)
    all_files = {**files, MANIFEST: body, MANIFEST_SIG: canonical(dsse.sign(MANIFEST_TYPE, body, signer))}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in [MANIFEST, MANIFEST_SIG, *sorted(files)]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(all_files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(all_files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


class _Capped(io.RawIOBase):
    """The decompressed bundle, read at most ``MAX_BYTES`` (plus tar framing) in all."""

    def __init__(self, gz: gzip.GzipFile) -> None:
        self.gz, self.left = gz, MAX_BYTES + 1024 * 1024

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left + 1
        data = self.gz.read(n)
        self.left -= len(data)
        if self.left < 0:
            raise BundleFormatError("bundle expands past 2 GiB")
        return data


def read(blob: bytes) -> dict[str, bytes]:
    """Every regular file of a bundle by path; refuses links, absolute or parent paths.

    Decompressed as a stream and refused as soon as it passes ``MAX_BYTES``: a small gzip bomb
    (gigabytes of zeros) never expands in memory whole."""
    files: dict[str, bytes] = {}
    total = 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as gz, tarfile.open(fileobj=_Capped(gz), mode="r|") as tar:
            for info in tar:
                name = info.name
                if not info.isfile() or name.startswith("/") or ".." in name.split("/"):
                    raise BundleFormatError(f"entry not allowed in a bundle: {name}")
                total += info.size
                if total > MAX_BYTES:
                    raise BundleFormatError("bundle expands past 2 GiB")
                f = tar.extractfile(info)
                assert f is not None  # extractfile is None only for entries that are not files
                files[name] = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise BundleFormatError(f"not a gzip file: {e}") from None
    except tarfile.TarError as e:
        raise BundleFormatError(f"not a tar archive: {e}") from None
    return files
