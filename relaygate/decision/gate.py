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

from relaygate.contract import sigv4
from relaygate.contract.config import ApiKey
from relaygate.contract.envoy import receipt_id_for
import orjson

from relaygate.contract.jwtauth import NeedKeys, looks_like_jwt
from relaygate.contract.keys import PREFIX, SESSION_PREFIX
from relaygate.decision.admission import Admission, Refused, Verdict
from relaygate.decision.wire import (
    DIALECT,
    MODELS,
    BadRequest,
    CallShape,
    Route,
    parse_bedrock,
    parse_body,
    parse_path,
    resolved,
)

# Statuses that, with no key authenticated yet, make a denial "pre-auth": Envoy throttles the
# client address that collects them and their receipts are sampled (relaygate/contract/preauth.py).
PREAUTH_STATUSES = (401, 404, 405)
Offload = Callable[..., Awaitable[dict[str, Any]]]
UNKNOWN_ENDPOINT = (
    "unknown endpoint; use POST /v1/{workspace}/chat/completions, /completions, /embeddings, /messages,"
    " /v1beta/models/{model}:generateContent or /bedrock/model/{modelId}/converse, /converse-stream, /invoke,"
    " /invoke-with-response-stream; or GET /v1/{workspace}/models"
)


@dataclass(slots=True)
class PendingSignature:
    """A SigV4-signed call between its headers and its body: the signature covers the body, so the
    key is authenticated (``Call.key`` set) only once the body has been checked against it."""

    key: ApiKey
    auth: sigv4.ClientAuth
    secret: str = field(repr=False)
    method: str
    headers: dict[str, str]  # the signed headers' values, lower-case names


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
    signed: PendingSignature | None = None  # a SigV4 call whose signature the body will settle

    def is_preauth(self, status: int) -> bool:
        """Decided before any key was authenticated (see PREAUTH_STATUSES)."""
        return self.key is None and status in PREAUTH_STATUSES

    @property
    def peer(self) -> str:
        return self.client.rpartition(",")[2].strip() or "unknown"


CONFLICTING = "\0conflicting"  # bearer_token: the request carried two different credentials


def _ours(token: str) -> bool:
    """A credential of the gateway's kind: an API key, a session token or a JWT."""
    return token.startswith((PREFIX, SESSION_PREFIX)) or looks_like_jwt(token)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The client's credential: ``Authorization: Bearer`` (OpenAI-shaped), else ``x-api-key``
    (Anthropic-shaped), else ``x-goog-api-key`` (the Gemini SDK's); None if none.

    The first present wins, so a client that also sends a provider key of its own (the Anthropic
    SDK sends ``x-api-key`` and ``Authorization`` when given both an API key and an auth token)
    still works, and that key is never forwarded (relaygate/contract/config.py NEVER_FORWARDED).
    But two *different gateway credentials* on one call are CONFLICTING, refused rather than one
    picked: a proxy in front of the gateway, or a log, may read the other one."""
    found: list[str] = []
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        found.append(auth[7:].strip())
    for name in ("x-api-key", "x-goog-api-key"):
        if name in headers:
            found.append(headers[name].strip())
    if not found:
        return None
    if len({t for t in found if _ours(t)}) > 1:
        return CONFLICTING
    return found[0]


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
    listing = route.endpoint == MODELS
    if headers.get(":method") != ("GET" if listing else "POST"):
        allowed = "GET" if listing else "POST"
        return Verdict.deny(405, "request.method_not_allowed", f"only {allowed} is supported here")
    adm = call.admission
    authorization = headers.get("authorization", "")
    if sigv4.is_sigv4(authorization):
        # SigV4: the key is authenticated with the body (_verify_signature), then _key_checks
        refused = _signed_headers(call, route, headers, authorization)
        return refused if refused is not None else _request_checks(call, headers, has_body)
    token = bearer_token(headers)
    if token == CONFLICTING:
        return Verdict.deny(
            401,
            "auth.unauthenticated",
            "two different credentials were sent (authorization, x-api-key, x-goog-api-key)",
        )
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
    """The checks after a key, session or JWT was resolved (or refused)."""
    assert call.route is not None
    if isinstance(got, Refused):
        return Verdict.deny(401, "auth.unauthenticated", got.message)
    key = got
    call.key = key
    if call.route.endpoint == MODELS:  # any credential of the workspace may read it: it spends nothing
        return _workspace_check(key, call.route)
    refused = _key_checks(key, call.route)
    if refused is not None:
        return refused
    return _request_checks(call, headers, has_body)


def _request_checks(call: Call, headers: Mapping[str, str], has_body: bool) -> Verdict | None:
    """Content type, declared size, a body at all."""
    assert call.route is not None
    adm = call.admission
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if not ctype and call.route.endpoint == "bedrock.invoke":
        ctype = "application/json"  # InvokeModel's contentType defaults to it; boto3 then sends none
    if ctype != "application/json":
        return Verdict.deny(415, "request.unsupported_media_type", "content-type must be application/json")
    clen = headers.get("content-length")
    if clen is not None and clen.isdigit() and int(clen) > adm.config.max_body_bytes:
        return too_large(adm)
    if not has_body:
        return Verdict.deny(400, "request.invalid", "request body is required")
    return None


def allowed_methods(call: Call) -> str:
    """The Allow header of the 405 a wrong method gets (RFC 9110 requires one); the transports send it."""
    return "GET" if call.route is not None and call.route.endpoint == MODELS else "POST"


def is_listing(call: Call) -> bool:
    """check_headers admitted a model-list request: answer it with :func:`model_list`, not a body check."""
    return call.route is not None and call.route.endpoint == MODELS and call.key is not None


# The endpoint a model of each provider is probed with for the model list (the key's scope may
# narrow it to others of the same dialect: see _probe_endpoint).
def _probe_endpoint(key: ApiKey, provider: str) -> str | None:
    return next((e for e in key.endpoints if DIALECT.get(e, ("",))[0] == provider), None)


def model_list(call: Call) -> bytes | Awaitable[bytes]:
    """The answer to ``GET /v1/{ws}/models``: every catalog model and alias the calling key may use.

    A name is listed when the platform policy would admit a minimal call to it by this key (its
    scope, the workspace's sovereignty: the same Rego that decides calls, so the list cannot
    promise what a call would be refused for); budgets are left out (a spent budget does not make a
    model unknown) and the workspace's own policies are not run (they may still refuse a call).
    In OpenAI's shape, or Anthropic's when the path had Anthropic's ``/v1`` infix. Awaitable when
    the engine is remote.
    """
    assert call.key is not None and call.route is not None, "check_headers admitted the listing first"
    adm, key = call.admission, call.key
    ws = key.workspace
    catalog = adm.config.catalog()
    names = {m: m for m in catalog}
    names.update({a: m for a, m in adm.config.model_aliases.items()})
    for a in adm.config.workspaces[ws].model_aliases:
        names[a] = adm.config.resolve_model(ws, a)
    probes: list[tuple[str, str, dict[str, Any]]] = []
    for name, model in sorted(names.items()):
        provider = next((u.provider for u in adm.config.upstreams if model in u.models), None)
        endpoint = _probe_endpoint(key, provider) if provider else None
        if endpoint is None:
            continue
        shape = CallShape(model, False, 1, 1, b"", False)
        doc, _, _ = adm.policy_input(key, endpoint, shape, used=lambda _b, _w: 0)
        doc["budgets"] = []
        probes.append((name, provider or "", dict(doc, model=model)))
    anthropic = call.route.anthropic_sdk

    def render(decisions: list[dict[str, Any]]) -> bytes:
        data = []
        for (name, provider, doc), d in zip(probes, decisions):
            if not d.get("allow"):
                continue
            model = doc["model"]
            extra = {"alias_of": model} if model != name else {}
            if anthropic:
                data.append({"id": name, "type": "model", "display_name": name, "created_at": _EPOCH, **extra})
            else:
                data.append({"id": name, "object": "model", "created": 0, "owned_by": provider, **extra})
        if anthropic:
            ids = [d["id"] for d in data]
            out = {
                "data": data,
                "has_more": False,
                "first_id": ids[0] if ids else None,
                "last_id": ids[-1] if ids else None,
            }
            return orjson.dumps(out)
        return orjson.dumps({"object": "list", "data": data})

    if not adm.remote_engine:
        return render([adm.platform_decision(doc, None) for _, _, doc in probes])

    async def remote() -> bytes:
        return render([await adm.platform_decision_async(doc, None) for _, _, doc in probes])

    return remote()


_EPOCH = "1970-01-01T00:00:00Z"


def _workspace_check(key: ApiKey, route: Route) -> Verdict | None:
    if key.workspace != route.workspace:
        what = "token" if key.credential else "key"
        return Verdict.deny(403, "scope.denied", f"{what} is not valid for this workspace")
    return None


def _key_checks(key: ApiKey, route: Route) -> Verdict | None:
    """The credential's workspace and its right to call at all (a key, a session or a JWT)."""
    refused = _workspace_check(key, route)
    if refused is not None:
        return refused
    if not key.may_call:  # read-only (dashboard) keys, keys without gateway:call: never spend money
        what = key.credential.partition(":")[0] or "key"
        why = f"a read_only {what}" if key.kind == "read_only" else f"a {what} without the gateway:call permission"
        return Verdict.deny(403, "scope.denied", f"{why} may not call the gateway")
    return None


def _signed_headers(call: Call, route: Route, headers: Mapping[str, str], authorization: str) -> Verdict | None:
    """A SigV4 call's header checks: the Authorization header, the access key id (a live relaygate
    key's), the date within the replay window. The signature itself is checked with the body
    (:func:`check_body`); until then the call has no authenticated key."""

    def refuse(why: str) -> Verdict:
        return Verdict.deny(401, "auth.unauthenticated", why)

    if not route.operation:
        return refuse("AWS SigV4 signatures are accepted on Bedrock paths only (/v1/{workspace}/bedrock/...)")
    auth = sigv4.parse_authorization(authorization)
    if isinstance(auth, str):
        return refuse(auth)
    adm = call.admission
    key_id = sigv4.key_id_of(auth.access_key)
    key = adm.config.keys.get(key_id) if key_id else None
    if key is None or key.revoked or (key.expires_at is not None and key.expires_at <= time.time()):
        return refuse("invalid or revoked access key id")
    when = sigv4.parse_amz_date(headers.get("x-amz-date", ""))
    if when is None:
        return refuse("missing or malformed X-Amz-Date")
    if abs(when - time.time()) > sigv4.REPLAY_WINDOW_SECONDS:
        return refuse(
            f"X-Amz-Date is more than {sigv4.REPLAY_WINDOW_SECONDS // 60} minutes from the gateway's clock "
            "(a replayed or stale request)"
        )
    missing = [h for h in auth.signed if h != "host" and h not in headers]
    if missing:
        return refuse(f"signed header {missing[0]} is missing")
    values = {h: headers.get(h, "") for h in auth.signed}
    if "host" in values and not values["host"]:
        values["host"] = headers.get(":authority", "")
    if "x-amz-content-sha256" in headers:
        values["x-amz-content-sha256"] = headers["x-amz-content-sha256"]
    secret = sigv4.client_secret(adm.config.pepper, key.id, key.salt)
    call.signed = PendingSignature(key, auth, secret, headers.get(":method", "POST"), values)
    return None


def _verify_signature(call: Call, raw: bytes) -> Verdict | None:
    """The body-time half of SigV4: the signature over method, path, query, signed headers and the
    body's SHA-256; then the key checks a bearer key gets at header time."""
    p, route = call.signed, call.route
    assert p is not None and route is not None
    path, _, query = call.path.partition("?")
    if not sigv4.verify(p.auth, p.secret, p.method, path, query, p.headers, raw):
        return Verdict.deny(401, "auth.unauthenticated", "the AWS SigV4 signature does not match this request")
    call.key, call.signed = p.key, None
    return _key_checks(p.key, route)


def too_large(adm: Admission) -> Verdict:
    return Verdict.deny(413, "request.too_large", f"request body exceeds {adm.config.max_body_bytes} bytes")


def check_body(call: Call, raw: bytes) -> CallShape | Verdict:
    """The request body's checks (size, JSON, the endpoint's shape): what the policy will be asked about."""
    if call.signed is not None and call.route is not None:
        refused = _verify_signature(call, raw)
        if refused is not None:
            return refused
    if call.key is None or call.route is None:  # headers were denied; Envoy should not send more
        return Verdict.deny(400, "request.invalid", "request rejected")
    adm = call.admission
    if len(raw) > adm.config.max_body_bytes:
        return too_large(adm)
    ws = adm.config.workspaces[call.key.workspace]
    try:
        if call.route.operation:
            shape = parse_bedrock(call.route, raw, ws.default_max_output_tokens)
        else:
            shape = parse_body(call.route.endpoint, raw, ws.default_max_output_tokens, call.route)
    except BadRequest as e:
        return Verdict.deny(e.status, e.code, e.message)
    # Aliases resolve before scope, policy, price and route see the model: a key scoped to a model
    # is held to the model actually called, whatever name the client used for it.
    return resolved(shape, adm.config.resolve_model(ws.id, shape.model))


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
