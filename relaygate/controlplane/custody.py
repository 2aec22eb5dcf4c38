"""Key custody in the control plane: its tree-head key, sidecars' receipt-signing keys.

Every key enters through a signed custody event (relaygate/evidence/custody.py), stored
in ``custody_events`` and mirrored in ``signing_keys`` (who owns which key,
valid from/retired at) for fast lookups during ingestion:

- the first tree-head key registers itself (the root of trust); a new one is
  introduced by the old one, which it retires;
- a sidecar registers its first key with a proof of possession, countersigned
  here; a rotation is an introduction signed by the sidecar's current key and
  the new key, countersigned here.

Private tree-head keys are sealed in the database (keyring.py); sidecars keep
theirs in 0600 files and never send them.
"""

from __future__ import annotations

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from relaygate.controlplane import keyring, schema
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.errors import ApiError
from relaygate.controlplane.util import new_id
from relaygate.evidence import custody as ev
from relaygate.evidence import dsse
from relaygate.evidence.signing import Signer, key_id_for, load_public_key


async def pending_commands(engine, instance_id: str) -> list[dict]:
    """What a sidecar's next heartbeat tells it to do: the signing-key rotations pending for it."""
    async with engine.connect() as c:
        rows = (
            await c.execute(
                sa.select(schema.key_rotations.c.id).where(
                    schema.key_rotations.c.target == instance_id,
                    schema.key_rotations.c.kind == "receipt_signing",
                    schema.key_rotations.c.status == "pending",
                )
            )
        ).all()
    return [{"type": "rotate_signing_key", "rotation_id": r[0]} for r in rows]


TREE_SETTING = "tree_head_key"


def _secret_name(key_id: str) -> str:
    return f"_signing:tree-head:{key_id}"


class KeyService:
    def __init__(self, engine, secrets) -> None:
        self.engine, self.secrets = engine, secrets
        self.tree: Signer | None = None

    async def _store_event(self, c, env: dict, doc: dict) -> None:
        await c.execute(
            schema.custody_events.insert().values(
                id=doc["id"],
                type=doc["type"],
                owner=doc["owner"],
                key_id=doc.get("key_id"),
                envelope=env,
                created_ms=now_ms(),
            )
        )

    async def _load_tree(self, key_id: str) -> Signer:
        pem = await self.secrets.get(_secret_name(key_id))
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        return Signer(key, key_id_for(key.public_key()))

    async def start(self) -> Signer:
        """Load the current tree-head key, creating (and registering) the first one."""
        async with self.engine.connect() as c:
            current = (
                await c.execute(sa.select(schema.settings.c.value).where(schema.settings.c.name == TREE_SETTING))
            ).scalar()
        if current:
            self.tree = await self._load_tree(current["key_id"])
            return self.tree
        signer, pem = keyring.new_signer()
        at = now_ms() / 1000
        doc = ev.event("key.registered", ev.CONTROL_PLANE, "tree-head", signer, at, event_id=new_id("cust_"))
        env = ev.sign_event(doc, signer)
        async with self.engine.begin() as c:
            await self.secrets.put(_secret_name(signer.key_id), pem, c)
            await c.execute(
                schema.signing_keys.insert().values(
                    key_id=signer.key_id,
                    owner=ev.CONTROL_PLANE,
                    purpose="tree-head",
                    public_key=signer.public_pem().decode(),
                    valid_from_ms=ev.to_ms(doc["at"]),
                )
            )
            await self._store_event(c, env, doc)
            await c.execute(schema.settings.insert().values(name=TREE_SETTING, value={"key_id": signer.key_id}))
        self.tree = signer
        return signer

    async def reload(self) -> None:
        """Another replica may have rotated the tree-head key: load the current one."""
        async with self.engine.connect() as c:
            current = (
                await c.execute(sa.select(schema.settings.c.value).where(schema.settings.c.name == TREE_SETTING))
            ).scalar()
        if current and (self.tree is None or self.tree.key_id != current["key_id"]):
            self.tree = await self._load_tree(current["key_id"])

    async def root_key(self):
        async with self.engine.connect() as c:
            pem = (
                await c.execute(
                    sa.select(schema.signing_keys.c.public_key)
                    .where(schema.signing_keys.c.owner == ev.CONTROL_PLANE)
                    .order_by(schema.signing_keys.c.valid_from_ms)
                    .limit(1)
                )
            ).scalar()
        return load_public_key(pem.encode())

    async def rotate_tree(self, actor: str) -> dict:
        old = self.tree
        signer, pem = keyring.new_signer()
        at = now_ms() / 1000
        doc = ev.event(
            "key.introduced",
            ev.CONTROL_PLANE,
            "tree-head",
            signer,
            at,
            event_id=new_id("cust_"),
            previous_key_id=old.key_id,
            actor=actor,
        )
        env = ev.sign_event(doc, old, signer)
        at_ms = ev.to_ms(doc["at"])
        async with self.engine.begin() as c:
            await self.secrets.put(_secret_name(signer.key_id), pem, c)
            await c.execute(
                schema.signing_keys.update().where(schema.signing_keys.c.key_id == old.key_id).values(retired_ms=at_ms)
            )
            await c.execute(
                schema.signing_keys.insert().values(
                    key_id=signer.key_id,
                    owner=ev.CONTROL_PLANE,
                    purpose="tree-head",
                    public_key=signer.public_pem().decode(),
                    valid_from_ms=at_ms,
                )
            )
            await self._store_event(c, env, doc)
            await c.execute(
                schema.settings.update()
                .where(schema.settings.c.name == TREE_SETTING)
                .values(value={"key_id": signer.key_id})
            )
        self.tree = signer
        return doc

    def _check_event(self, env: dict, instance: str, want_type: str) -> dict:
        try:
            doc = ev.event_of(env)
            new = load_public_key(doc["public_key"].encode())
        except (ev.CustodyError, ValueError, KeyError, TypeError, dsse.EnvelopeError):
            raise ApiError(400, "invalid_request", "the key event is not a signed custody event") from None
        if doc.get("type") != want_type or doc.get("owner") != instance or doc.get("purpose") != "receipts":
            raise ApiError(400, "invalid_request", f"expected a {want_type} event for instance {instance}")
        if key_id_for(new) != doc.get("key_id"):
            raise ApiError(400, "invalid_request", "key_id does not match the public key")
        if not dsse.verify_envelope(env, new, ev.PAYLOAD_TYPE):
            raise ApiError(400, "invalid_request", "the event is not signed by the key it introduces")
        return doc

    async def register_sidecar(self, c, instance: str, env: dict) -> tuple[dict, list[str]]:
        """Record a sidecar's key from its self-signed registration; returns (event, keys it replaced)."""
        doc = self._check_event(env, instance, "key.registered")
        known = (
            (await c.execute(sa.select(schema.signing_keys).where(schema.signing_keys.c.key_id == doc["key_id"])))
            .mappings()
            .first()
        )
        if known is not None:
            if known["owner"] != instance:
                raise ApiError(409, "key.conflict", f"signing key {doc['key_id']} belongs to another instance")
            return doc, []
        at = ev.to_ms(doc["at"])
        replaced = [
            r[0]
            for r in (
                await c.execute(
                    sa.select(schema.signing_keys.c.key_id).where(
                        schema.signing_keys.c.owner == instance, schema.signing_keys.c.retired_ms.is_(None)
                    )
                )
            ).all()
        ]
        if replaced:
            await c.execute(
                schema.signing_keys.update().where(schema.signing_keys.c.key_id.in_(replaced)).values(retired_ms=at)
            )
        await c.execute(
            schema.signing_keys.insert().values(
                key_id=doc["key_id"], owner=instance, purpose="receipts", public_key=doc["public_key"], valid_from_ms=at
            )
        )
        await self._store_event(c, dsse.add_signature(env, self.tree), doc)
        return doc, replaced

    async def introduce_sidecar(self, c, instance: str, env: dict) -> dict:
        """A rotation: the new key introduced by the sidecar's current key."""
        doc = self._check_event(env, instance, "key.introduced")
        known = (
            await c.execute(sa.select(schema.signing_keys.c.owner).where(schema.signing_keys.c.key_id == doc["key_id"]))
        ).first()
        if known is not None:
            if known[0] != instance:
                raise ApiError(409, "key.conflict", f"signing key {doc['key_id']} belongs to another instance")
            return doc  # a resend of an introduction already recorded
        prev = (
            (
                await c.execute(
                    sa.select(schema.signing_keys).where(
                        schema.signing_keys.c.key_id == (doc.get("previous_key_id") or "")
                    )
                )
            )
            .mappings()
            .first()
        )
        if prev is None or prev["owner"] != instance or prev["retired_ms"] is not None:
            raise ApiError(
                409, "key.conflict", f"{doc.get('previous_key_id')} is not instance {instance}'s current key"
            )
        if not dsse.verify_envelope(env, load_public_key(prev["public_key"].encode()), ev.PAYLOAD_TYPE):
            raise ApiError(400, "invalid_request", "the introduction is not signed by the previous key")
        at = ev.to_ms(doc["at"])
        await c.execute(
            schema.signing_keys.update().where(schema.signing_keys.c.key_id == prev["key_id"]).values(retired_ms=at)
        )
        await c.execute(
            schema.signing_keys.insert().values(
                key_id=doc["key_id"], owner=instance, purpose="receipts", public_key=doc["public_key"], valid_from_ms=at
            )
        )
        await self._store_event(c, dsse.add_signature(env, self.tree), doc)
        return doc

    async def events(self, c) -> list[dict]:
        rows = (
            await c.execute(sa.select(schema.custody_events.c.envelope).order_by(schema.custody_events.c.seq))
        ).all()
        return [r[0] for r in rows]
