"""The policy decision as an OpenTelemetry span, a child of Envoy's trace of the call.

Envoy's OpenTelemetry tracer (relaygate/envoy/config.py, ``--otlp-endpoint``) opens one trace per
call and passes its context to the policy check in ``traceparent`` (ext_authz: an HTTP header of
the check request; ext_proc: the gRPC stream's metadata). The sidecar adds one span under it,
``relaygate.decide``, carrying the decision, the receipt id and the GenAI attributes, exported over
OTLP/gRPC by opentelemetry-sdk's batch processor (its own thread; the hot path only builds the
span). A call without a sampled ``traceparent`` costs nothing here: no span, not even a
non-recording one.

Configured like any OpenTelemetry SDK: ``--otlp-endpoint`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` turn it on; ``OTEL_SERVICE_NAME`` (default
``relaygate-policy``), ``OTEL_RESOURCE_ATTRIBUTES`` and the exporter's own ``OTEL_EXPORTER_OTLP_*``
settings (headers, certificate, timeout) apply as the SDK documents them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from relaygate.extproc.metrics import OPERATION

log = logging.getLogger("relaygate.extproc.tracing")

SPAN_NAME = "relaygate.decide"
RECEIPT_ATTRIBUTE = "relaygate.receipt.id"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def endpoint_from(flag: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """Where spans go: the flag, else the SDK's own variables; None: tracing is off."""
    if flag:
        return flag
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    return next((environ[v] for v in ENDPOINT_VARIABLES if environ.get(v)), None)


class DecisionTracer:
    """Makes the ``relaygate.decide`` span of each traced call; one per sidecar process."""

    def __init__(self, endpoint: str, environ: Mapping[str, str] = os.environ) -> None:
        # The SDK and its gRPC exporter are imported only when tracing is on.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        service = environ.get("OTEL_SERVICE_NAME") or "relaygate-policy"
        # A bare host:port means a collector on a private network (the usual sidecar set-up), as
        # in Envoy's own OTLP cluster; give the scheme (https://) to use TLS.
        insecure = None if "://" in endpoint else True
        self._provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=insecure)))
        self._tracer = self._provider.get_tracer("relaygate.extproc")
        self._propagator = TraceContextTextMapPropagator()
        log.info("tracing: decision spans to %s as %s", endpoint, service)

    def record(self, call, receipt_id: str, *, allow: bool, status: int, code: str, shape=None, upstream=None) -> None:
        """The span of one decided call (``call.trace_parent`` set), from the call's start to now.
        ``receipt_id``: the one the client is told (a sampled pre-auth denial's is its window's
        summary receipt).

        Never raises: a tracing fault must not turn an answered call into a failed one."""
        try:
            self._record(call, receipt_id, allow, status, code, shape, upstream)
        except Exception:
            log.exception("tracing: span for receipt %s not recorded", receipt_id)

    def _record(self, call, receipt_id, allow, status, code, shape, upstream) -> None:
        ctx = self._propagator.extract({"traceparent": call.trace_parent})
        attrs: dict[str, str | int | bool] = {
            RECEIPT_ATTRIBUTE: receipt_id,
            "relaygate.decision": "allow" if allow else "deny",
            "relaygate.code": code,
            "http.response.status_code": status,
            "relaygate.policy.revision": call.admission.revision or "",
        }
        route = call.route
        if route is not None:
            attrs["relaygate.workspace"] = route.workspace
            attrs["relaygate.endpoint"] = route.endpoint
            if route.endpoint in OPERATION:  # as in the GenAI metrics
                attrs["gen_ai.operation.name"] = OPERATION[route.endpoint]
        if shape is not None and shape.model:
            attrs["gen_ai.request.model"] = shape.model
        if upstream is not None:
            attrs["gen_ai.provider.name"] = upstream.provider
            attrs["relaygate.upstream"] = upstream.name
            attrs["relaygate.region"] = upstream.region or ""
        if not allow:
            attrs["error.type"] = code
        span = self._tracer.start_span(
            SPAN_NAME, context=ctx, kind=SpanKind.SERVER, attributes=attrs, start_time=int(call.started * 1e9)
        )
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, code))
        span.end()

    def shutdown(self) -> None:
        """Export what is still queued (at most a few seconds), then stop the export thread."""
        self._provider.shutdown()
