"""Verify an evidence bundle with no network and no server.

Checks, each reported with the file and receipt it concerns:

1. the manifest's signature, by a control-plane key that chains back to the root:
   the pinned ``trusted_key``, else the bundle's own root, reported as unpinned
   (self-asserted: anyone can build a bundle whose chain roots in a key of theirs);
2. every file's SHA-256 against the manifest, and no file the manifest does not list;
3. key custody: every event's signatures (previous key, proof of possession,
   control-plane countersignature), replayed into a timeline of valid keys that
   admits a key only when a key already trusted vouches for it (KeyRing);
4. every checkpoint's signature by a tree-head key valid when it was signed,
   consistency between consecutive checkpoints, the manifest's tree head being
   the newest checkpoint, and (``after_checkpoint``) that the bundle's tree
   extends a checkpoint the auditor already holds (no stale replay, no fork);
5. every receipt: its DSSE signature, by a key that was valid when the receipt
   was issued (a retired key after its retirement fails), its canonical in-toto
   statement, and its inclusion proof against the signed tree head;
6. each sidecar's hash chain over the covered span: no gap, no reordering, no
   receipt missing that the chain says is included;
7. that every policy version a receipt cites is in the bundle with its source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relaygate.evidence import dsse
from relaygate.evidence import evidence_bundle as eb
from relaygate.evidence.checkpoint import (
    KEY_NAME,
    Checkpoint,
    CheckpointError,
    note_key_hash,
    parse,
    verify_checkpoint,
)
from relaygate.evidence.custody import CONTROL_PLANE, CustodyError, KeyInfo, KeyRing, to_ms
from relaygate.evidence.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from relaygate.evidence.receipts import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    canonical,
    envelope_hash,
    envelope_statement,
    leaf_bytes,
)
from relaygate.evidence.signing import key_id_for


@dataclass
class Finding:
    check: str
    ok: bool
    message: str
    file: str | None = None
    receipt: str | None = None

    def as_dict(self) -> dict[str, str | bool]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    trust: str = ""
    pinned: bool = False

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings) and bool(self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def add(self, check: str, ok: bool, message: str, file: str | None = None, receipt: str | None = None) -> None:
        self.findings.append(Finding(check, ok, message, file, receipt))

    def fail(self, check: str, message: str, file: str | None = None, receipt: str | None = None) -> None:
        self.add(check, False, message, file, receipt)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "pinned": self.pinned,
            "trust": self.trust,
            "stats": self.stats,
            "failures": [f.as_dict() for f in self.failures],
            "checks": [f.as_dict() for f in self.findings if f.ok],
        }

    def render(self) -> str:
        verdict = (
            "FAILED"
            if not self.ok
            else "VERIFIED"
            if self.pinned
            else "CHECKS PASS, BUT TRUST IS ONLY SELF-ASSERTED (no pinned key)"
        )
        lines = [f"relaygate evidence bundle: {verdict}", f"trust: {self.trust}"]
        for k, v in self.stats.items():
            lines.append(f"  {k.replace('_', ' ')}: {v}")
        lines.append("")
        for f in self.findings:
            where = ", ".join(x for x in (f.file, f.receipt) if x)
            lines.append(f"{'ok  ' if f.ok else 'FAIL'} [{f.check}] {f.message}" + (f"  ({where})" if where else ""))
        lines.append("")
        lines.append(f"{len(self.failures)} failure(s), {len(self.findings) - len(self.failures)} check(s) passed")
        return "\n".join(lines)


def _json(files: dict[str, bytes], name: str, report: Report, default: Any = None) -> Any:
    """The parsed JSON of a bundle file (free-form: callers check its shape), else ``default``."""
    if name not in files:
        return default
    try:
        return json.loads(files[name])
    except ValueError as e:
        report.fail("format", f"{name} is not valid JSON: {e}", name)
        return default


def _jsonl(files: dict[str, bytes], name: str, report: Report) -> list[Any]:
    out: list[Any] = []
    for n, line in enumerate((files.get(name) or b"").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as e:
            report.fail("format", f"{name} line {n} is not valid JSON: {e}", name)
    return out


def _tree_head_key(note: str, cp_keys: dict[str, KeyInfo]) -> KeyInfo | None:
    """The control-plane tree-head key of the ring whose signature on ``note`` verifies, if any."""
    for k in cp_keys.values():
        if k.purpose != "tree-head":
            continue
        try:
            verify_checkpoint(note, k.public_key)
            return k
        except CheckpointError:
            continue
    return None


def _outside(sigs: list[tuple[str, bytes, bytes]], cp_keys: dict[str, KeyInfo], root_words: str) -> str:
    """Why no tree-head key matched: the note is signed by a key outside the chain, or the signature is bad."""
    ours = {note_key_hash(KEY_NAME, k.public_key) for k in cp_keys.values()}
    if not any(khash in ours for _, khash, _ in sigs):
        return f" (it is signed by a key that does not chain to {root_words})"
    return ""


def _check_fresh(
    report: Report,
    note: str,
    ordered: list[Checkpoint],
    trees: dict[int, bytes],
    proofs: dict[tuple[int, int], dict[str, Any]],
    cp_keys: dict[str, KeyInfo],
    ring: KeyRing,
    root_words: str,
) -> None:
    """The bundle's tree must extend the checkpoint the auditor holds: not older, same log, consistent.

    A bundle replayed from before that checkpoint (stale), or cut from a different log (a fork, a
    split view shown to this auditor), fails here. The held note is trusted only when a tree-head
    key of the ring (chained to the root) signed it, while that key was valid.
    """
    try:
        held, _, sigs = parse(note)
    except CheckpointError as e:
        report.fail("consistency", f"the checkpoint you hold is unreadable: {e}")
        return
    key = _tree_head_key(note, cp_keys)
    if key is None:
        report.fail(
            "consistency", f"the checkpoint you hold is not signed by a tree-head key that chains to {root_words}"
        )
        return
    try:
        ring.check(key.key_id, held.timestamp_ms, "tree-head")
    except CustodyError as e:
        report.fail("consistency", f"the checkpoint you hold is {e}")
        return
    m = held.size
    if not ordered:
        report.fail(
            "consistency",
            f"the bundle has no signed tree head to compare with the checkpoint you hold (size {m})",
            eb.CHECKPOINTS,
        )
        return
    newest = ordered[-1]
    if held.origin != newest.origin:
        report.fail(
            "consistency",
            f"the checkpoint you hold is of log {held.origin}, the bundle's of {newest.origin}",
            eb.CHECKPOINTS,
        )
        return
    if m > newest.size:
        report.fail(
            "consistency",
            f"stale: the bundle's newest tree head has size {newest.size}, older than the "
            f"checkpoint you hold (size {m}): a replayed or withheld bundle",
            eb.CHECKPOINTS,
        )
        return
    if m in trees:
        if trees[m] != held.root:
            report.fail(
                "consistency",
                f"fork: the bundle's checkpoint of size {m} has a different root than the "
                "checkpoint you hold (the log was rewritten, or you were shown another "
                "view)",
                eb.CHECKPOINTS,
            )
            return
        how = "the same root at that size"
    else:
        proof = next((proofs[(m, c.size)] for c in reversed(ordered) if (m, c.size) in proofs), None)
        if proof is None:
            report.fail(
                "consistency",
                f"no consistency proof from the checkpoint you hold (size {m}) to the "
                f"bundle's tree (size {newest.size}): request the bundle with "
                f'"consistency_from": [{m}]',
                eb.CONSISTENCY,
            )
            return
        try:
            verify_consistency(
                m, proof["second"], held.root, trees[proof["second"]], [bytes.fromhex(h) for h in proof["hashes"]]
            )
        except (ProofError, ValueError, KeyError, TypeError) as e:
            report.fail(
                "consistency",
                f"the bundle's tree is not consistent with the checkpoint you hold (size {m}): {e}",
                eb.CONSISTENCY,
            )
            return
        how = f"a consistency proof {m} -> {proof['second']}"
    report.add(
        "consistency",
        True,
        f"the bundle's tree (size {newest.size}) is consistent with the checkpoint you hold (size {m}): {how}",
        eb.CONSISTENCY,
    )


def held_checkpoint(text: str) -> str:
    """The signed note of a checkpoint file the auditor holds; ValueError when it is neither form.

    Either the JSON ``GET /v1/audit/checkpoints/latest`` serves (``{"size", "root_hash", "key_id",
    "signed_at", "checkpoint": <signed note>}``; only the signed note is trusted, the other fields
    must agree with it) or the signed note itself.
    """
    text = text.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise ValueError(f"checkpoint file is not valid JSON: {e}") from None
        except RecursionError:
            raise ValueError("checkpoint file is JSON nested too deep to be a checkpoint") from None
        note = doc.get("checkpoint") if isinstance(doc, dict) else None
        if not isinstance(note, str):
            raise ValueError('checkpoint file has no "checkpoint" (the signed note)')
        try:
            cp, _, _ = parse(note)
        except CheckpointError as e:
            raise ValueError(f"checkpoint file: {e}") from None
        if doc.get("size") not in (None, cp.size) or doc.get("root_hash") not in (None, cp.root.hex()):
            raise ValueError("checkpoint file: size or root_hash disagree with its signed note")
        return note
    note = text + "\n"
    try:
        parse(note)
    except CheckpointError as e:
        raise ValueError(f"checkpoint file: {e}") from None
    return note


def verify_bundle(
    blob: bytes, trusted_key: Ed25519PublicKey | None = None, after_checkpoint: str | None = None
) -> Report:
    """Check a bundle; ``trusted_key`` pins the control plane's root, ``after_checkpoint`` is a
    signed note the auditor already holds (the bundle's tree must extend it)."""
    report = Report(pinned=trusted_key is not None)
    try:
        _verify(report, blob, trusted_key, after_checkpoint)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, RecursionError) as e:
        # The bundle is the attacker's: a file of the wrong shape (an object where a list is due,
        # a field missing, JSON nested past Python's recursion limit) ends the checks as a failure
        # saying what broke, never as a traceback.
        report.fail("format", f"a bundle file has the wrong shape ({type(e).__name__}: {e}); checks stopped here")
    return report


def _verify(report: Report, blob: bytes, trusted_key: Ed25519PublicKey | None, after_checkpoint: str | None) -> None:
    try:
        files = eb.read(blob)
    except eb.BundleFormatError as e:
        report.fail("format", str(e))
        return
    manifest = _json(files, eb.MANIFEST, report)
    if not isinstance(manifest, dict) or manifest.get("format") != eb.FORMAT:
        report.fail("manifest", f"{eb.MANIFEST} is missing or not a {eb.FORMAT} manifest", eb.MANIFEST)
        return

    # -- key custody first: it says which control-plane keys exist -------------------------
    # Only keys that chain back to the root enter the ring (see KeyRing): the pinned key when
    # there is one. Anything signed by another key fails below, each with its own message.
    trusted_id = key_id_for(trusted_key) if trusted_key is not None else None
    ring = KeyRing(trusted_root=trusted_id)
    custody = _jsonl(files, eb.CUSTODY, report)
    custody_ok = True
    for env in custody:
        try:
            ring.apply(env)
        except (CustodyError, KeyError, ValueError, TypeError, AttributeError, dsse.EnvelopeError) as e:
            custody_ok = False
            report.fail("custody", str(e), eb.CUSTODY)
    for w in ring.warnings:
        report.add("custody", True, f"warning: {w}", eb.CUSTODY)
    if custody and custody_ok:
        report.add(
            "custody",
            True,
            f"{len(custody)} custody events verified ({len(ring.keys)} keys, all chained to root {ring.anchor})",
            eb.CUSTODY,
        )
    if trusted_id:
        report.trust = f"control-plane key {trusted_id} (pinned)"
        if not custody:  # a bundle without custody (no receipts): the pinned key itself signs
            assert trusted_key is not None  # trusted_id is its key id
            ring.keys[trusted_id] = KeyInfo(trusted_id, CONTROL_PLANE, "tree-head", trusted_key, 0)
        elif ring.root != trusted_id:
            report.fail(
                "trust",
                f"the pinned key {trusted_id} is not a control-plane key of this bundle's custody "
                "chain (it is not the chain's root)",
                eb.CUSTODY,
            )
    else:
        report.trust = (
            (
                f"control-plane root key {ring.root} taken from the bundle (NOT pinned: trust is only "
                "self-asserted; compare it with the key you trust, or pass --trusted-key)"
            )
            if ring.root
            else "no control-plane key (NOT pinned: trust is only self-asserted)"
        )
    cp_keys = {k.key_id: k for k in ring.keys.values() if k.owner == CONTROL_PLANE}
    root_words = f"the pinned root {trusted_id}" if trusted_id else f"the bundle's own root {ring.anchor}"

    # -- manifest signature and file digests ------------------------------------------------
    sig_env = _json(files, eb.MANIFEST_SIG, report)
    signed = False
    if isinstance(sig_env, dict):
        try:
            payload_ok = dsse.payload(sig_env) == files[eb.MANIFEST]
        except dsse.EnvelopeError:
            payload_ok = False
        try:
            created = to_ms(manifest["created_at"]) if manifest.get("created_at") else 0
        except (TypeError, ValueError):
            created = 0
        kids = [k for k in dsse.keyids(sig_env) if isinstance(k, str)]
        chained = [cp_keys[k] for k in kids if k in cp_keys]
        if not chained:
            report.fail(
                "manifest",
                f"manifest is signed by {', '.join(kids) or 'no key'}, which does not chain to "
                f"{root_words} (forged manifest?)",
                eb.MANIFEST_SIG,
            )
        for k in chained:
            if dsse.verify_envelope(sig_env, k.public_key, eb.MANIFEST_TYPE) and payload_ok:
                try:
                    ring.check(k.key_id, created)
                except CustodyError as e:
                    report.fail("manifest", f"manifest {e}", eb.MANIFEST_SIG)
                signed = True
                break
        if chained or signed:
            report.add(
                "manifest",
                signed,
                "manifest signature verifies with a control-plane key"
                if signed
                else "manifest signature does not verify with any control-plane key",
                eb.MANIFEST_SIG,
            )
    else:
        report.fail(
            "manifest", "manifest signature does not verify with any control-plane key (no signature)", eb.MANIFEST_SIG
        )
    listed = {f["path"]: f for f in manifest.get("files") or []}
    for path, f in sorted(listed.items()):
        if path not in files:
            report.fail("digests", f"{path} is listed in the manifest but missing", path)
        elif eb.sha256_hex(files[path]) != f.get("sha256"):
            report.fail("digests", f"{path} does not match its manifest digest", path)
    extra = sorted(set(files) - set(listed) - {eb.MANIFEST, eb.MANIFEST_SIG})
    for path in extra:
        report.fail("digests", f"{path} is in the bundle but not in the manifest", path)
    if all(p in files and eb.sha256_hex(files[p]) == f.get("sha256") for p, f in listed.items()) and not extra:
        report.add("digests", True, f"all {len(listed)} files match their manifest digests")

    # -- checkpoints and consistency ---------------------------------------------------------
    notes = _json(files, eb.CHECKPOINTS, report, []) or []
    trees: dict[int, bytes] = {}
    ordered = []
    for i, note in enumerate(notes):
        try:
            cp, _, sigs = parse(note)
        except CheckpointError as e:
            report.fail("checkpoints", f"checkpoint {i}: {e}", eb.CHECKPOINTS)
            continue
        good = _tree_head_key(note, cp_keys)
        if good is None:
            report.fail(
                "checkpoints",
                f"checkpoint of size {cp.size}: signature does not verify with any "
                f"control-plane tree-head key{_outside(sigs, cp_keys, root_words)} "
                "(forged tree head?)",
                eb.CHECKPOINTS,
            )
            continue
        try:
            ring.check(good.key_id, cp.timestamp_ms, "tree-head")
        except CustodyError as e:
            report.fail("checkpoints", f"checkpoint of size {cp.size}: {e}", eb.CHECKPOINTS)
            continue
        if cp.size in trees and trees[cp.size] != cp.root:
            report.fail(
                "checkpoints", f"two signed checkpoints of size {cp.size} with different roots (fork)", eb.CHECKPOINTS
            )
        trees[cp.size] = cp.root
        ordered.append(cp)
    if ordered and len(ordered) == len(notes):
        report.add(
            "checkpoints",
            True,
            f"{len(ordered)} signed checkpoints verify (latest size {ordered[-1].size})",
            eb.CHECKPOINTS,
        )
    proofs = {(p["first"], p["second"]): p for p in _json(files, eb.CONSISTENCY, report, []) or []}
    ordered.sort(key=lambda c: c.size)
    consistent = True
    for a, b in zip(ordered, ordered[1:]):
        if a.size == b.size:
            continue
        p = proofs.get((a.size, b.size))
        if p is None:
            consistent = False
            report.fail("consistency", f"no consistency proof from size {a.size} to {b.size}", eb.CONSISTENCY)
            continue
        try:
            verify_consistency(a.size, b.size, a.root, b.root, [bytes.fromhex(h) for h in p["hashes"]])
        except (ProofError, ValueError) as e:
            consistent = False
            report.fail("consistency", f"{a.size} -> {b.size}: {e}", eb.CONSISTENCY)
    if len(ordered) > 1 and consistent:
        report.add(
            "consistency",
            True,
            f"checkpoints {ordered[0].size} -> {ordered[-1].size} are consistent (append-only)",
            eb.CONSISTENCY,
        )
    head = manifest.get("log")
    if ordered and isinstance(head, dict) and "tree_size" in head:
        # The signed manifest names the tree head the bundle was cut at: it must be the newest one here.
        newest = ordered[-1]
        if head.get("tree_size") != newest.size or head.get("root_hash") != newest.root.hex():
            report.fail(
                "checkpoints",
                f"the manifest names tree size {head.get('tree_size')}, but the newest "
                f"signed checkpoint has size {newest.size} (root {newest.root.hex()[:16]}…)",
                eb.CHECKPOINTS,
            )
    if after_checkpoint is not None:
        _check_fresh(report, after_checkpoint, ordered, trees, proofs, cp_keys, ring, root_words)

    # -- receipts -----------------------------------------------------------------------------
    rows = _jsonl(files, eb.RECEIPTS, report)
    incl = {p["event_id"]: p for p in _jsonl(files, eb.INCLUSION, report)}
    policy_index = _json(files, eb.POLICIES, report, {}) or {}
    by_owner_seq: dict[tuple[str, int], tuple[str, str, str]] = {}
    bad = 0
    cited_missing = set()
    for row in rows:
        rid = row.get("event_id")
        env = row.get("envelope") or {}
        try:
            st = envelope_statement(env)
            r = st["predicate"]
        except (ValueError, KeyError, TypeError, dsse.EnvelopeError):
            report.fail("receipts", "receipt envelope is unreadable", eb.RECEIPTS, rid)
            bad += 1
            continue
        if r.get("id") != rid:
            report.fail("receipts", f"row names {rid} but the signed receipt is {r.get('id')}", eb.RECEIPTS, rid)
            bad += 1
        if (
            st.get("_type") != STATEMENT_TYPE
            or st.get("predicateType") != PREDICATE_TYPE
            or canonical(st) != dsse.payload(env)
        ):
            report.fail("receipts", "statement is not a canonical relaygate in-toto statement", eb.RECEIPTS, rid)
            bad += 1
            continue
        signed_by = dsse.keyids(env)
        key = None
        try:
            key = ring.check(signed_by[0] if signed_by else "", to_ms(r["issued_at"]), "receipts")
        except CustodyError as e:
            report.fail("receipts", str(e), eb.RECEIPTS, rid)
            bad += 1
        except (KeyError, ValueError):
            report.fail("receipts", "receipt has no issued_at", eb.RECEIPTS, rid)
            bad += 1
        if key is not None and not dsse.verify_envelope(env, key.public_key, dsse.INTOTO):
            report.fail("receipts", f"signature does not verify with {key.key_id} (receipt altered)", eb.RECEIPTS, rid)
            bad += 1
            key = None
        p = incl.get(rid)
        if p is None:
            report.fail("inclusion", "no inclusion proof", eb.INCLUSION, rid)
            bad += 1
        else:
            root = trees.get(p["tree_size"])
            try:
                if root is None:
                    raise ProofError(f"no signed checkpoint of size {p['tree_size']}")
                if p["leaf_index"] != row.get("leaf_index"):
                    raise ProofError("proof and receipt name different leaves")
                verify_inclusion(
                    p["leaf_index"],
                    p["tree_size"],
                    leaf_hash(leaf_bytes(env)),
                    [bytes.fromhex(h) for h in p["hashes"]],
                    root,
                )
            except (ProofError, ValueError, KeyError) as e:
                report.fail("inclusion", f"not in the signed log at leaf {p.get('leaf_index')}: {e}", eb.INCLUSION, rid)
                bad += 1
        if key is not None:
            by_owner_seq[(key.owner, r.get("seq"))] = (rid, envelope_hash(env), r.get("prev_hash"))
        for ref in (r.get("decision") or {}).get("policies") or []:
            entry = policy_index.get(ref)
            if entry is None or entry.get("path") not in files:
                cited_missing.add(ref)
                report.fail("policies", f"receipt cites {ref}, which is not in the bundle", eb.POLICIES, rid)
            elif eb.sha256_hex(files[entry["path"]]) != entry.get("sha256"):
                report.fail("policies", f"{ref}: source does not match its digest", entry["path"], rid)
    report.stats["receipts"] = len(rows)
    if rows and not bad:
        report.add(
            "receipts",
            True,
            f"{len(rows)} receipts: signatures by keys valid when issued, inclusion "
            "proofs against the signed tree head",
            eb.RECEIPTS,
        )
    if rows and not cited_missing:
        report.add(
            "policies", True, f"every cited policy version is in the bundle ({len(policy_index)} versions)", eb.POLICIES
        )

    # -- hash chains per sidecar -----------------------------------------------------------------
    stubs: dict[str, list[dict[str, Any]]] = {}
    for s in _jsonl(files, eb.CHAINS, report):
        stubs.setdefault(s["owner"], []).append(s)
    chain_ok = True
    seen = set()
    for owner, chain in stubs.items():
        chain.sort(key=lambda s: s["seq"])
        for prev, cur in zip(chain, chain[1:]):
            if cur["seq"] != prev["seq"] + 1:
                chain_ok = False
                report.fail(
                    "chain",
                    f"sidecar {owner}: seq {prev['seq'] + 1} to {cur['seq'] - 1} missing from the "
                    "log (receipts lost or removed)",
                    eb.CHAINS,
                )
            elif cur["prev_hash"] != prev["hash"]:
                chain_ok = False
                report.fail(
                    "chain",
                    f"sidecar {owner}: seq {cur['seq']} does not link to seq {prev['seq']} (chain broken or reordered)",
                    eb.CHAINS,
                )
        for s in chain:
            got = by_owner_seq.get((owner, s["seq"]))
            seen.add((owner, s["seq"]))
            if s.get("included") and got is None:
                chain_ok = False
                report.fail(
                    "chain",
                    f"sidecar {owner}: the receipt at seq {s['seq']} is listed as included but is "
                    "not in receipts.jsonl (removed)",
                    eb.CHAINS,
                )
            elif got is not None and (got[1] != s["hash"] or got[2] != s["prev_hash"]):
                chain_ok = False
                report.fail(
                    "chain",
                    f"sidecar {owner}: receipt {got[0]} does not match the chain at seq {s['seq']} "
                    "(swapped or altered)",
                    eb.CHAINS,
                    got[0],
                )
    for (owner, seq), (rid, _, _) in by_owner_seq.items():
        if (owner, seq) not in seen:
            chain_ok = False
            report.fail("chain", f"receipt at seq {seq} of sidecar {owner} is not on its chain", eb.CHAINS, rid)
    if stubs and chain_ok:
        report.add(
            "chain",
            True,
            f"hash chains of {len(stubs)} sidecar(s) are unbroken over {sum(len(c) for c in stubs.values())} receipts",
            eb.CHAINS,
        )
    report.stats.update(
        checkpoints=len(ordered), custody_events=len(custody), policy_versions=len(policy_index), files=len(listed)
    )
