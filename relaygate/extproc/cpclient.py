"""The sidecar's client of the control plane: where it is, how the sidecar authenticates, one
HTTP session for every exchange, and the one backoff every retry loop uses.

Bundle sync (relaygate/extproc/bundle_sync.py), receipt shipping (relaygate/extproc/receipt_shipper.py) and the
fleet agent (relaygate/extproc/fleet_agent.py) all talk through one :class:`ControlPlane`, so TLS
pinning, the fleet credential and retry behaviour are decided in one place.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from dataclasses import dataclass, field

import aiohttp


@dataclass
class ControlPlane:
    url: str  # e.g. https://127.0.0.1:8090
    fleet_token: str
    instance_id: str
    tenant: str
    # https: the context every request to the control plane uses (the pinned CA, and the
    # fleet client certificate for mTLS); relaygate.contract.tls.client_context. None: the system store.
    ssl: object = None
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.fleet_token}", "X-Relaygate-Instance": self.instance_id}

    def endpoint(self, path: str) -> str:
        return f"{self.url.rstrip('/')}{path}"

    def http(self) -> aiohttp.ClientSession:
        """The shared client session, bound to this control plane's TLS context (verification never off)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl if self.ssl is not None else True)
            )
        return self._session

    async def post_json(self, path: str, doc: dict, timeout: float = 10.0) -> dict:
        """POST a JSON document; the JSON answer, or RuntimeError naming the status."""
        async with self.http().post(
            self.endpoint(path), json=doc, headers=self.headers(), timeout=aiohttp.ClientTimeout(total=timeout)
        ) as r:
            if r.status not in (200, 201):
                raise RuntimeError(f"{path} answered {r.status}: {(await r.text())[:300]}")
            return await r.json()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def tls_failure(e: BaseException) -> bool:
    """The control plane's certificate (or our client certificate) was refused in the handshake."""
    return isinstance(e, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError))


class Backoff:
    """Exponential backoff with jitter: ``first`` seconds doubling up to ``cap``, each wait drawn
    from 0.5-1.5x the nominal delay so a fleet that lost its control plane does not come back in
    lockstep. ``reset`` after a success."""

    def __init__(self, first: float = 1.0, cap: float = 30.0) -> None:
        self.first, self.cap = first, cap
        self.delay = first

    def reset(self) -> None:
        self.delay = self.first

    async def wait(self) -> None:
        await asyncio.sleep(self.delay * (0.5 + random.random()))
        self.delay = min(self.delay * 2, self.cap)
