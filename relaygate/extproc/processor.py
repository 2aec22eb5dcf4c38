"""The ext_proc servicer: one processor per Envoy stream, two messages per call.

Envoy sends request headers, then the buffered request body; the processor
answers each at once (no awaits on the hot path). The body reply carries the
whole decision: either an immediate JSON error, or the routing header, the
rewritten path, the provider credential and the receipt id as dynamic
metadata. Responses never come through here: usage reaches the settler via
Envoy's access log (see settlement.py), so the client waits on two messages.

A transport only: every check and decision is relaygate/decision/gate.py's; this module
converts protobuf to the gate's arguments and its Verdicts back to protobuf, and writes the
call's draft to the spool before Envoy acts on it.
"""

from __future__ import annotations

import logging

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from relaygate.contract.envoy import PREAUTH_HEADER, receipt_id_for
from relaygate.decision import gate
from relaygate.decision.admission import Admission, Verdict
from relaygate.decision.draft import call_draft
from relaygate.decision.gate import Call
from relaygate.decision.wire import DIALECT, CallShape, error_body
from relaygate.extproc import metrics
from relaygate.extproc.preauth_sampler import SAMPLED, SAMPLED_DETAILS, ReceiptSampler
from relaygate.extproc.spool import Spool

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


def _hv(key: str, value: str | bytes) -> base_pb2.HeaderValueOption:
    raw = value if isinstance(value, bytes) else value.encode()
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, raw_value=raw),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


_PREAUTH_MARK = _hv(PREAUTH_HEADER, "1")


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
                    resp = self.on_headers(call, req.request_headers)
                    yield resp
                    if resp.HasField("immediate_response"):
                        return  # answered: Envoy sends nothing more of this call, and nothing more is decided
                elif kind == "request_body":
                    resp = self.on_body(call, req.request_body)
                    if not isinstance(resp, pb.ProcessingResponse):
                        resp = await resp  # the workspace's own policies run in the policy sandbox
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
                yield self.deny(call, Verdict.deny(500, "gateway.error", "internal error in the policy service"))
                return

    # -- request headers -------------------------------------------------
    def on_headers(self, call: Call, msg: pb.HttpHeaders) -> pb.ProcessingResponse:
        h: dict[str, str] = {}
        for hv in msg.headers.headers:
            k = hv.key
            h[k] = hv.raw_value.decode("latin-1") if hv.raw_value else hv.value
            call.header_names.append(k)
        denied = gate.check_headers(call, h, has_body=not msg.end_of_stream)
        return _CONTINUE_HEADERS if denied is None else self.deny(call, denied)

    # -- request body ----------------------------------------------------
    def on_body(self, call: Call, msg: pb.HttpBody):
        raw = msg.body
        shape = gate.check_body(call, raw)
        if isinstance(shape, Verdict):
            return self.deny(call, shape, raw if call.key is not None else None)
        v = gate.decide(call, shape)
        if isinstance(v, Verdict):
            return self._verdict(call, v, shape, raw)
        return self._after(call, v, shape, raw)

    async def _after(self, call: Call, pending, shape: CallShape, raw: bytes) -> pb.ProcessingResponse:
        """Waits for the sandbox without blocking the event loop: other calls go on meanwhile."""
        return self._verdict(call, await pending, shape, raw)

    def _verdict(self, call: Call, v: Verdict, shape: CallShape, raw: bytes) -> pb.ProcessingResponse:
        if not v.allow:
            return self.deny(call, v, raw, shape)
        return self.forward(call, v, shape, raw)

    def forward(self, call: Call, v: Verdict, shape: CallShape, raw: bytes) -> pb.ProcessingResponse:
        up = v.upstream
        price = up.models[shape.model]
        try:
            self._spool(
                call,
                v.decision,
                raw,
                shape,
                stream=shape.stream,
                up=up,
                holds=v.holds,
                price=(price.input_micros_per_1k, price.output_micros_per_1k),
                worst=(shape.input_token_bound, shape.max_output_tokens),
            )
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
        removes = [h for h in call.header_names if h not in own and not up.forwards(h) and h not in ROUTE_STRIPPED]
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
    def deny(
        self, call: Call, v: Verdict, raw: bytes | None = None, shape: CallShape | None = None
    ) -> pb.ProcessingResponse:
        status, code = v.status, v.code
        # Decided before any key was authenticated: Envoy counts these per client address
        # (PREAUTH_HEADER, removed before the client sees it) and their receipts are sampled.
        preauth = call.is_preauth(status)
        summary = self._sample(call, code, status) if preauth else None
        rid = summary or call.receipt_id
        body = error_body(code, v.message, rid)
        if summary is None:
            self._spool(call, v.decision, raw, shape, stream=False, response_body=body)
        headers = [_hv("content-type", "application/json"), _hv(RECEIPT_HEADER, rid)]
        if preauth:
            headers.append(_PREAUTH_MARK)
        if v.retry_after is not None:
            headers.append(_hv("retry-after", str(v.retry_after)))
        metrics.DECISIONS.labels("deny", code).inc()
        return pb.ProcessingResponse(
            immediate_response=pb.ImmediateResponse(
                status=http_status_pb2.HttpStatus(code=status),
                headers=pb.HeaderMutation(set_headers=headers),
                body=body,
                # The settler skips access-log entries of sampled calls by this prefix (no draft, on purpose).
                details=(SAMPLED_DETAILS if summary else "relaygate_") + code.replace(".", "_"),
            ),
            dynamic_metadata=_DENIED,
        )  # tells Envoy's local_reply_config to leave this reply alone

    def _sample(self, call: Call, code: str, status: int) -> str | None:
        """None: the denial gets its own receipt; else its window's summary receipt id (relaygate/contract/preauth.py)."""
        limits = call.admission.config.preauth
        sampler = self._sampler
        if sampler is None or sampler.limits is not limits:
            if sampler is not None:
                sampler.flush()
            sampler = self._sampler = ReceiptSampler(
                limits, self.spool.add_pending, self.spool.update_pending, SAMPLED, call.admission.revision
            )
        return sampler.admit(call.peer, code, status, "unauthenticated")

    def _spool(
        self,
        call: Call,
        decision: dict,
        raw: bytes | None,
        shape: CallShape | None,
        stream: bool,
        up=None,
        holds=(),
        price=None,
        worst=None,
        response_body: bytes | None = None,
    ) -> None:
        """Write the decision durably before Envoy acts on it."""
        key, route = call.key, call.route
        record = {
            **{k: decision.get(k) for k in ("allow", "status", "code", "reasons", "policies")},
            "bundle": call.admission.revision,
        }
        self.spool.add_pending(
            call.receipt_id,
            call_draft(
                ts=call.started,
                decision=record,
                path=call.path,
                workspace=route.workspace if route else None,
                key_id=key.id if key else None,
                endpoint=route.endpoint if route else None,
                body=raw,
                model=shape.model if shape else None,
                stream=stream,
                user=shape.user if shape else None,
                upstream=up,
                price=price,
                worst=worst,
                holds=holds,
                response_body=response_body,
            ),
        )


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
