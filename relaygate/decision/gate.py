"""The gateway's decision for one call, as a library: request -> checks -> policy input -> verdict.

Every transport calls these functions and only converts its own wire format to and from them: the
ext_proc servicer (relaygate/extproc/processor.py) turns Envoy's two ProcessingRequests into
:func:`check_headers` and :func:`check_body` + :func:`decide`, and the control plane's dry run
(relaygate/controlplane/handlers/policies.py) calls :func:`check_body` and :func:`evaluate` on a
call it builds from the request it was given. So a check added here (or a message changed) holds
for the gateway and the dry run alike, and the tests can drive the whole decision with plain
Python values (tests/unit/test_decision_gate.py).

Order of the checks (first failing one answers): 404 unknown path, 405 not POST, 401 no or bad
credential (API key, session token or workspace JWT), 403 credential of another workspace or
without ``gateway:call``, 415 not JSON, 413 too large (by
Content-Length, then by the body), 400 no body or a body the wire parser refuses; then tier limits
(429), the workspace's own policies and the platform policy (docs/policy.md), and the budget
reservation. Nothing here does I/O except through the Admission's ledger and policy sandbox, and
the JWKS fetch of a JWT whose signing key is not cached (in a thread; relaygate/contract/jwtauth.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from relaygate.contract.config import ApiKey
from relaygate.contract.envoy import receipt_id_for
from relaygate.contract.jwtauth import NeedKeys
from relaygate.decision.admission import Admission, Refused, Verdict
from relaygate.decision.wire import BadRequest, CallShape, Route, parse_body, parse_path

# Statuses that, with no key authenticated yet, make a denial "pre-auth": Envoy throttles the
# client address that collects them and their receipts are sampled (relaygate/contract/preauth.py).
PREAUTH_STATUSES = (401, 404, 405)
Offload = Callable[..., Awaitable[dict[str, Any]]]
UNKNOWN_ENDPOINT = "unknown endpoint; use POST /v1/{workspace}/chat/completions, /completions, /embeddings or /messages"


@dataclass(slots=True)
class Call:
    """What the gateway has learned about one call so far (one per Envoy stream).

    ``admission`` is the policy snapshot in force when the call arrived: it decides the whole
    call, even if a new bundle is swapped in between the call's two messages.
    """

    admission: Admission
    receipt_id: str = ""
    started: float = field(default_factory=time.time)
    route: Route | None = None
    key: ApiKey | None = None
    path: str = ""
    header_names: list[str] = field(default_factory=list)  # every request header sent (lower case)
    client: str = ""  # x-forwarded-for as Envoy set it: its last entry is the peer address
    trace_parent: str = ""  # W3C traceparent of Envoy's span for this check ("": not traced)

    def is_preauth(self, status: int) -> bool:
        """Decided before any key was authenticated (see PREAUTH_STATUSES)."""
        return self.key is None and status in PREAUTH_STATUSES

    @property
    def peer(self) -> str:
        return self.client.rpartition(",")[2].strip() or "unknown"


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The client's key: ``Authorization: Bearer`` (OpenAI-shaped) or ``x-api-key`` (Anthropic-shaped)."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if "x-api-key" in headers:
        return headers["x-api-key"].strip()
    return None


HeaderCheck = Verdict | None | Awaitable[Verdict | None]


def check_headers(call: Call, headers: Mapping[str, str], has_body: bool) -> HeaderCheck:
    """The checks the request line and headers decide; None: read the body.

    ``headers`` are the request headers with lower-case names (``:method`` and ``:path`` among
    them); ``has_body`` is False when the request ended with its headers. An awaitable only for
    a JWT whose signing key is not cached yet (its issuer's JWKS is fetched off the event loop,
    rate-limited: relaygate/contract/jwtauth.py); keys, sessions and JWTs of known keys answer at once.
    """
    call.receipt_id = receipt_id_for(headers.get("x-request-id"))
    call.client = headers.get("x-forwarded-for", "")
    call.path = headers.get(":path", "")
    route = parse_path(call.path)
    if route is None:
        return Verdict.deny(404, "route.not_found", UNKNOWN_ENDPOINT)
    call.route = route
    if headers.get(":method") != "POST":
        return Verdict.deny(405, "request.method_not_allowed", "only POST is supported")
    token = bearer_token(headers)
    adm = call.admission
    got = adm.credential(token)
    if isinstance(got, NeedKeys):
        assert token is not None
        return _after_refresh(call, headers, has_body, adm.credential_after_refresh(token, got))
    return _admit(call, headers, has_body, got)


async def _after_refresh(
    call: Call, headers: Mapping[str, str], has_body: bool, pending: Awaitable[ApiKey | Refused]
) -> Verdict | None:
    return _admit(call, headers, has_body, await pending)


def _admit(call: Call, headers: Mapping[str, str], has_body: bool, got: ApiKey | Refused) -> Verdict | None:
    assert call.route is not None
    adm = call.admission
    if isinstance(got, Refused):
        return Verdict.deny(401, "auth.unauthenticated", got.message)
    key = got
    call.key = key
    if key.workspace != call.route.workspace:
        what = "token" if key.credential else "key"
        return Verdict.deny(403, "scope.denied", f"{what} is not valid for this workspace")
    if not key.may_call:  # read-only (dashboard) keys, keys without gateway:call: never spend money
        what = key.credential.partition(":")[0] or "key"
        why = f"a read_only {what}" if key.kind == "read_only" else f"a {what} without the gateway:call permission"
        return Verdict.deny(403, "scope.denied", f"{why} may not call the gateway")
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return Verdict.deny(415, "request.unsupported_media_type", "content-type must be application/json")
    clen = headers.get("content-length")
    if clen is not None and clen.isdigit() and int(clen) > adm.config.max_body_bytes:
        return too_large(adm)
    if not has_body:
        return Verdict.deny(400, "request.invalid", "request body is required")
    return None


def too_large(adm: Admission) -> Verdict:
    return Verdict.deny(413, "request.too_large", f"request body exceeds {adm.config.max_body_bytes} bytes")


def check_body(call: Call, raw: bytes) -> CallShape | Verdict:
    """The request body's checks (size, JSON, the endpoint's shape): what the policy will be asked about."""
    if call.key is None or call.route is None:  # headers were denied; Envoy should not send more
        return Verdict.deny(400, "request.invalid", "request rejected")
    adm = call.admission
    if len(raw) > adm.config.max_body_bytes:
        return too_large(adm)
    ws = adm.config.workspaces[call.key.workspace]
    try:
        return parse_body(call.route.endpoint, raw, ws.default_max_output_tokens)
    except BadRequest as e:
        return Verdict.deny(e.status, e.code, e.message)


def decide(call: Call, shape: CallShape) -> Verdict | Awaitable[Verdict]:
    """The policy decision and budget reservation for a checked call.

    A Verdict at once when the workspace has no policies of its own and the engine is in-process;
    otherwise an awaitable (its policies run in the policy sandbox, off this thread; a remote
    engine is asked over the network), so a transport answers without awaiting on the common path.
    """
    assert call.key is not None and call.route is not None, "check_headers admitted the call first"
    adm = call.admission
    if adm.needs_async(call.key.workspace):
        return adm.decide_async(call.key, call.route.endpoint, shape)
    return adm.decide(call.key, call.route.endpoint, shape)


async def evaluate(
    adm: Admission, workspace: str, doc: dict[str, Any], offload: Offload | None = None
) -> dict[str, Any]:
    """The decision record for a policy input, as the gateway would decide it, reserving nothing.

    The dry run's entry point (it builds ``doc`` with :meth:`Admission.policy_input` from a call
    that passed :func:`check_body`, or takes one it was given): the workspace's policies in the
    sandbox, then the platform policy (``offload`` runs that synchronous evaluation off the
    caller's event loop); no tier limit, no hold.
    """
    outcome = await adm.workspace_outcome(workspace, doc)
    if isinstance(outcome, Verdict):
        return outcome.decision
    if offload is None:
        return adm.platform_decision(doc, outcome)
    return await offload(adm.platform_decision, doc, outcome)
