"""The ext_proc servicer: one processor per Envoy stream, two messages per call.

Envoy sends request headers, then the buffered request body; the processor
answers each at once (no awaits on the hot path). The body reply carries the
whole decision: either an immediate JSON error, or the routing header, the
rewritten path, the provider credential and the receipt id as dynamic
metadata. Responses never come through here: usage reaches the settler via
Envoy's access log (see settlement.py), so the client waits on two messages.
"""
from __future__ import annotations

import logging
import time

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from relaygate.evidence.receipts import digest
from relaygate.extproc import metrics
from relaygate.decision.admission import Admission, Verdict
from relaygate.contract.decision import denial
from relaygate.contract.envoy import receipt_id_for
from relaygate.contract.config import ApiKey
from relaygate.extproc.spool import Spool
from relaygate.extproc.preauth_sampler import SAMPLED, SAMPLED_DETAILS, ReceiptSampler
from relaygate.contract.envoy import PREAUTH_HEADER
from relaygate.decision.wire import DIALECT, BadRequest, Route, error_body, parse_body, parse_path

log = logging.getLogger("relaygate.extproc")

from relaygate.contract.envoy import NAMESPACE, RECEIPT_HEADER, UPSTREAM_HEADER  # noqa: E402,F401
# Envoy's route lookup needs x-forwarded-proto: removing it here makes the call unroutable
# (envoyproxy/envoy#30358). The route removes exactly these after matching (relaygate/envoy/config.py
# FORWARD_STRIP); every other x-forwarded-* name a client sends is removed here like any header
# off the allow-list (a prefix exemption let X-Forwarded-User and the like reach the provider).
ROUTE_STRIPPED = frozenset({"x-forwarded-for", "x-forwarded-proto"})
_CONTINUE_HEADERS = pb.ProcessingResponse(request_headers=pb.HeadersResponse())
# Envoy derives the receipt id from x-request-id itself; the only metadata we
# hand back marks our own error replies, see relaygate/envoy/config.py.
_DENIED = struct_pb2.Struct()
_DENIED.update({NAMESPACE: {"denied": True}})
PREAUTH_STATUSES = (401, 404, 405)


def _hv(key: str, value: str | bytes) -> base_pb2.HeaderValueOption:
    raw = value if isinstance(value, bytes) else value.encode()
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, raw_value=raw),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


_PREAUTH_MARK = _hv(PREAUTH_HEADER, "1")


class Call:
    """What one stream has learned so far."""
    __slots__ = ("receipt_id", "started", "route", "key", "path", "header_names", "admission", "client")

    def __init__(self, admission: Admission) -> None:
        # The policy snapshot in force when the call arrived decides the whole call, even if
        # a new bundle is swapped in between its two messages.
        self.admission = admission
        self.receipt_id = ""
        self.started = time.time()
        self.route: Route | None = None
        self.key: ApiKey | None = None
        self.path = ""
        self.header_names: list[str] = []   # every request header the client sent (lower case)
        self.client = ""    # x-forwarded-for as Envoy set it: its last entry is the peer address


class Processor(pb_grpc.ExternalProcessorServicer):
    """``admission`` is replaced whole when a new policy bundle arrives (see relaygate/extproc/bundle_sync.py)."""

    def __init__(self, admission: Admission, spool: Spool) -> None:
        self.admission = admission
        self.spool = spool
        self._sampler: ReceiptSampler | None = None

    async def Process(self, request_iterator, context):
        call = Call(self.admission)
        async for req in request_iterator:
            kind = req.WhichOneof("request")
            try:
                if kind == "request_headers":
                    yield self.on_headers(call, req.request_headers)
                elif kind == "request_body":
                    resp = self.on_body(call, req.request_body)
                    if not isinstance(resp, pb.ProcessingResponse):
                        resp = await resp    # the workspace's own policies run in the policy sandbox
                    yield resp
                    # Nothing else of this call comes through here: close the stream so
                    # the call no longer depends on this process (a restart of the
                    # service does not cut streams it already admitted).
                    return
                else:  # not requested by our processing mode; never stall Envoy
                    yield _continue(kind)
            except Exception:
                log.exception("ext_proc failure on %s (receipt %s)", kind, call.receipt_id)
                call.receipt_id = call.receipt_id or receipt_id_for(None)
                yield self.deny(call, 500, "gateway.error", "internal error in the policy service", {})

    # -- request headers -------------------------------------------------
    def on_headers(self, call: Call, msg: pb.HttpHeaders) -> pb.ProcessingResponse:
        h: dict[str, str] = {}
        for hv in msg.headers.headers:
            k = hv.key
            h[k] = hv.raw_value.decode("latin-1") if hv.raw_value else hv.value
            call.header_names.append(k)
        call.receipt_id = receipt_id_for(h.get("x-request-id"))
        call.client = h.get("x-forwarded-for", "")
        call.path = h.get(":path", "")
        route = parse_path(call.path)
        if route is None:
            return self.deny(call, 404, "route.not_found",
                             "unknown endpoint; use POST /v1/{workspace}/chat/completions, /completions, "
                             "/embeddings or /messages", {})
        call.route = route
        if h.get(":method") != "POST":
            return self.deny(call, 405, "request.method_not_allowed", "only POST is supported", {})
        token = None
        auth = h.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
        elif "x-api-key" in h:
            token = h["x-api-key"].strip()
        adm = call.admission
        key = adm.authenticate(token)
        if key is None:
            msg_ = "missing API key" if not token else "invalid or revoked API key"
            return self.deny(call, 401, "auth.unauthenticated", msg_, {})
        call.key = key
        if key.workspace != route.workspace:
            return self.deny(call, 403, "scope.denied", "key is not valid for this workspace", {})
        if not key.may_call:   # read-only (dashboard) keys, keys without gateway:call: never spend money
            why = "a read_only key" if key.kind == "read_only" else "a key without the gateway:call permission"
            return self.deny(call, 403, "scope.denied", f"{why} may not call the gateway", {})
        ctype = h.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self.deny(call, 415, "request.unsupported_media_type",
                             "content-type must be application/json", {})
        clen = h.get("content-length")
        if clen is not None and clen.isdigit() and int(clen) > adm.config.max_body_bytes:
            return self.deny(call, 413, "request.too_large",
                             f"request body exceeds {adm.config.max_body_bytes} bytes", {})
        if msg.end_of_stream:
            return self.deny(call, 400, "request.invalid", "request body is required", {})
        return _CONTINUE_HEADERS

    # -- request body ----------------------------------------------------
    def on_body(self, call: Call, msg: pb.HttpBody) -> pb.ProcessingResponse:
        if call.key is None or call.route is None:  # headers were denied; Envoy should not send more
            return self.deny(call, 400, "request.invalid", "request rejected", {})
        adm = call.admission
        raw = msg.body
        if len(raw) > adm.config.max_body_bytes:
            return self.deny(call, 413, "request.too_large",
                             f"request body exceeds {adm.config.max_body_bytes} bytes", {}, raw)
        ws = adm.config.workspaces[call.key.workspace]
        try:
            shape = parse_body(call.route.endpoint, raw, ws.default_max_output_tokens)
        except BadRequest as e:
            return self.deny(call, e.status, e.code, e.message, {}, raw)
        if adm.has_workspace_policies(call.key.workspace):
            return self._decide_in_sandbox(call, shape, raw)
        return self._verdict(call, adm.decide(call.key, call.route.endpoint, shape), shape, raw)

    async def _decide_in_sandbox(self, call: Call, shape, raw: bytes) -> pb.ProcessingResponse:
        """Waits for the sandbox without blocking the event loop: other calls go on meanwhile."""
        v = await call.admission.decide_async(call.key, call.route.endpoint, shape)
        return self._verdict(call, v, shape, raw)

    def _verdict(self, call: Call, v: Verdict, shape, raw: bytes) -> pb.ProcessingResponse:
        if not v.allow:
            return self.deny(call, v.status, v.code, v.message, v.decision, raw, shape.model, v.retry_after,
                             shape.user)
        return self.forward(call, v, shape, raw)

    def forward(self, call: Call, v: Verdict, shape, raw: bytes) -> pb.ProcessingResponse:
        up = v.upstream
        price = up.models[shape.model]
        try:
            self._spool(call, v.decision, raw, shape.model, shape.stream, shape.user, up=up, holds=v.holds,
                        price=(price.input_micros_per_1k, price.output_micros_per_1k),
                        worst=(shape.input_token_bound, shape.max_output_tokens))
        except BaseException:
            call.admission.ledger.settle(v.holds, {})  # nothing forwarded: give the hold back
            raise
        # No client query string: the provider's endpoints take none, and one could act on the
        # platform's account next to its credential like a header off the allow-list.
        path = up.base_path + DIALECT[call.route.endpoint][1]
        if up.provider == "anthropic":
            cred = _hv("x-api-key", up.credential)
        else:
            cred = _hv("authorization", "Bearer " + up.credential)
        sets = [_hv(":path", path), _hv(UPSTREAM_HEADER, up.name), cred]
        # Only the upstream's allow-list of client headers goes on (relaygate/contract/config.py
        # Upstream.forwards): the rest could act on the platform's provider account. The
        # routing header set here is removed again by the route, after it has been matched.
        own = {":path", UPSTREAM_HEADER, cred.header.key}
        removes = [h for h in call.header_names
                   if h not in own and not up.forwards(h) and h not in ROUTE_STRIPPED]
        common = pb.CommonResponse(
            header_mutation=pb.HeaderMutation(set_headers=sets, remove_headers=removes),
            clear_route_cache=True,
        )
        if shape.rewritten:
            common.body_mutation.body = shape.body
            common.header_mutation.set_headers.append(_hv("content-length", str(len(shape.body))))
        metrics.DECISIONS.labels("allow", "ok").inc()
        return pb.ProcessingResponse(request_body=pb.BodyResponse(response=common))

    # -- denial ------------------------------------------------------------
    def deny(self, call: Call, status: int, code: str, message: str, decision: dict,
             raw: bytes | None = None, model: str | None = None,
             retry_after: int | None = None, user: str | None = None) -> pb.ProcessingResponse:
        if not decision:
            decision = denial(status, code, [message])
        # Decided before any key was authenticated: Envoy counts these per client address
        # (PREAUTH_HEADER, removed before the client sees it) and their receipts are sampled.
        preauth = call.key is None and status in PREAUTH_STATUSES
        summary = self._sample(call, code, status) if preauth else None
        rid = summary or call.receipt_id
        body = error_body(code, message, rid)
        if summary is None:
            self._spool(call, decision, raw, model, False, user, response_body=body)
        headers = [_hv("content-type", "application/json"), _hv(RECEIPT_HEADER, rid)]
        if preauth:
            headers.append(_PREAUTH_MARK)
        if retry_after is not None:
            headers.append(_hv("retry-after", str(retry_after)))
        metrics.DECISIONS.labels("deny", code).inc()
        return pb.ProcessingResponse(immediate_response=pb.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status),
            headers=pb.HeaderMutation(set_headers=headers),
            body=body,
            # The settler skips access-log entries of sampled calls by this prefix (no draft, on purpose).
            details=(SAMPLED_DETAILS if summary else "relaygate_") + code.replace(".", "_"),
        ), dynamic_metadata=_DENIED)  # tells Envoy's local_reply_config to leave this reply alone

    def _sample(self, call: Call, code: str, status: int) -> str | None:
        """None: the denial gets its own receipt; else its window's summary receipt id (relaygate/contract/preauth.py)."""
        limits = call.admission.config.preauth
        sampler = self._sampler
        if sampler is None or sampler.limits is not limits:
            if sampler is not None:
                sampler.flush()
            sampler = self._sampler = ReceiptSampler(limits, self.spool.add_pending, self.spool.update_pending,
                                                     SAMPLED, call.admission.revision)
        addr = call.client.rpartition(",")[2].strip() or "unknown"
        return sampler.admit(addr, code, status, "unauthenticated")

    def _spool(self, call: Call, decision: dict, raw: bytes | None, model: str | None, stream: bool,
               user: str | None = None, up=None, holds=(), price=None, worst=None,
               response_body: bytes | None = None) -> None:
        """Write the decision durably before Envoy acts on it."""
        key, route = call.key, call.route
        draft = {
            "ts": call.started,
            "workspace": route.workspace if route else None,
            "key_id": key.id if key else None,
            "endpoint": route.endpoint if route else None,
            "path": call.path[:512],
            "request": {"digest": digest(raw) if raw is not None else None,
                        "bytes": len(raw) if raw is not None else None},
            "model": model,
            "stream": stream,
            "user": user,
            "decision": {**{k: decision.get(k) for k in ("allow", "status", "code", "reasons", "policies")},
                         "bundle": call.admission.revision},
            "upstream": None if up is None else {
                "name": up.name, "provider": up.provider, "region": up.region,
                "jurisdiction": up.jurisdiction},
            "price": price,
            "worst": worst,      # (input token bound, output cap): what the reservation assumed
            "holds": [[h.budget_id, h.window_key, h.amount, h.unit] for h in holds],
            # A denial's response is the error body sent here: its digest is known now.
            "response_digest": digest(response_body) if response_body is not None else None,
        }
        self.spool.add_pending(call.receipt_id, draft)


def _continue(kind: str | None) -> pb.ProcessingResponse:
    if kind == "response_headers":
        return pb.ProcessingResponse(response_headers=pb.HeadersResponse())
    if kind == "response_body":
        return pb.ProcessingResponse(response_body=pb.BodyResponse())
    if kind == "request_trailers":
        return pb.ProcessingResponse(request_trailers=pb.TrailersResponse())
    if kind == "response_trailers":
        return pb.ProcessingResponse(response_trailers=pb.TrailersResponse())
    return _CONTINUE_HEADERS
