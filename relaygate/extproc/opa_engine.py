"""``--policy-engine opa-server``: the platform decision from a real OPA over its REST API.

For teams whose platform Rego needs builtins regorus lacks (``http.send``, ``io.jwt.*``,
``crypto.*``). The sidecar asks an OPA next to it (``opa run --server``, loaded with the same
policies: an OPA agent on the control plane's bundles, docs/policy.md, or ``opa run --server
policies/`` standalone) one ``POST /v1/data/relaygate/gateway/decision`` per call, over a
keep-alive connection pool. Everything else stays the sidecar's: the checks before the policy,
the workspace policies in the sandbox (their outcome goes to OPA in the input, as to regorus),
the budget holds, the spool and the receipt. OPA unreachable or slower than ``timeout`` refuses
the call 503 ``policy.error`` (fails closed, with a receipt); an answer that is not a decision is
a 500. The cost against the in-process engine is measured in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import orjson

from relaygate.decision.policy_engine import ENTRY_POINT, PolicyError, PolicyUnavailable

log = logging.getLogger("relaygate.extproc.opa")


class OpaEngine:
    """A RemoteEngine (relaygate/decision/policy_engine.py) over OPA's Data API."""

    remote = True

    def __init__(self, url: str, timeout: float = 0.5, connections: int = 64) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--opa-url {url!r}: expected http(s)://HOST:PORT")
        self.base = url.rstrip("/")
        self.url = self.base + "/v1/data/" + ENTRY_POINT.removeprefix("data.").replace(".", "/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the event loop that uses it (aiohttp binds a session to its loop).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=30),
                timeout=self.timeout,
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    def decide(self, input_json: str) -> dict[str, Any]:
        raise PolicyError("the OPA engine is asked asynchronously (Admission.decide_async)")

    async def decide_async(self, input_json: str) -> dict[str, Any]:
        body = b'{"input":' + input_json.encode() + b"}"
        try:
            async with self._client().post(self.url, data=body, headers={"Content-Type": "application/json"}) as r:
                raw = await r.read()
                status = r.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise PolicyUnavailable(f"OPA at {self.base}: {type(e).__name__} {e}".strip()) from None
        if status != 200:
            raise PolicyError(f"OPA answered {status}: {raw[:300].decode(errors='replace')}")
        try:
            result = orjson.loads(raw).get("result")
        except (orjson.JSONDecodeError, AttributeError):
            raise PolicyError("OPA's answer is not JSON") from None
        if not isinstance(result, dict) or not isinstance(result.get("allow"), bool):
            raise PolicyError(f"{ENTRY_POINT} returned no decision (is OPA loaded with relaygate's policies?)")
        return result

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
