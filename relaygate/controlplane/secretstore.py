"""Named secrets in the database, sealed under the master key: key pepper, provider credentials.

Values are never logged and never returned by the API; sidecars receive them
only inside a bundle's sealed section.
"""

from __future__ import annotations


import sqlalchemy as sa

from relaygate.controlplane import schema
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.sealing import Sealer
from relaygate.contract.envsecret import env_secret

PEPPER = "key_pepper"


class SecretStore:
    def __init__(self, engine, sealer: Sealer) -> None:
        self.engine, self.sealer = engine, sealer
        self._pepper: bytes | None = None

    async def put(self, name: str, value: str, conn=None) -> int:
        """Store (or replace) a secret; returns its new version."""

        async def run(c):
            row = (await c.execute(sa.select(schema.secrets.c.version).where(schema.secrets.c.name == name))).first()
            version = (row[0] + 1) if row else 1
            blob = self.sealer.seal(name, value.encode())
            if row:
                await c.execute(
                    schema.secrets.update()
                    .where(schema.secrets.c.name == name)
                    .values(ciphertext=blob, version=version, updated_ms=now_ms())
                )
            else:
                await c.execute(
                    schema.secrets.insert().values(name=name, ciphertext=blob, version=version, updated_ms=now_ms())
                )
            return version

        if conn is not None:
            return await run(conn)
        async with self.engine.begin() as c:
            return await run(c)

    async def all(self) -> dict[str, str]:
        """The pepper and provider credentials (internal names starting with '_' excluded)."""
        async with self.engine.connect() as c:
            rows = (await c.execute(sa.select(schema.secrets.c.name, schema.secrets.c.ciphertext))).all()
        return {name: self.sealer.open(name, blob).decode() for name, blob in rows if not name.startswith("_")}

    async def get(self, name: str) -> str | None:
        async with self.engine.connect() as c:
            row = (await c.execute(sa.select(schema.secrets.c.ciphertext).where(schema.secrets.c.name == name))).first()
        return self.sealer.open(name, row[0]).decode() if row else None

    async def versions(self) -> dict[str, int]:
        async with self.engine.connect() as c:
            rows = (await c.execute(sa.select(schema.secrets.c.name, schema.secrets.c.version))).all()
        return {name: v for name, v in rows if not name.startswith("_")}

    async def pepper(self) -> bytes:
        """$RELAYGATE_KEY_PEPPER, else the stored one (cached: it never changes under running keys)."""
        if self._pepper is None:
            env = env_secret("RELAYGATE_KEY_PEPPER")
            if env:
                self._pepper = env.encode()
            else:
                async with self.engine.connect() as c:
                    row = (
                        await c.execute(sa.select(schema.secrets.c.ciphertext).where(schema.secrets.c.name == PEPPER))
                    ).first()
                if row is None:
                    raise RuntimeError("no key pepper stored; seed the control plane or set $RELAYGATE_KEY_PEPPER")
                self._pepper = self.sealer.open(PEPPER, row[0])
        return self._pepper
