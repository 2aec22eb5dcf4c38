"""A small OTLP/gRPC trace receiver on loopback, for the trace tests and `make run`.

Both Envoy's OpenTelemetry tracer and the policy sidecar's exporter send OTLP over gRPC
(``opentelemetry.proto.collector.trace.v1.TraceService/Export``); this answers that one method
with the stubs of ``opentelemetry-proto`` and keeps every span it receives, flattened to a dict
(trace and span ids as hex, attributes as plain values, the sending service's name). With
``--out`` each span is also appended to a JSON-lines file, so `make run`'s traces outlive the
receiver and ``show`` can print one call's trace from it.

    python -m devstack.otlp serve --port 4317 --out .run/traces.jsonl
    python -m devstack.otlp show .run/traces.jsonl --receipt rcpt_...     # that call's span tree

Not a collector: no batching, no forwarding, no retention limit. Production points Envoy and the
sidecar at an OpenTelemetry Collector, Tempo or Jaeger instead (docs/observability.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

RECEIPT_ATTRIBUTE = "relaygate.receipt.id"


def _value(v: AnyValue):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def flatten(request: trace_service_pb2.ExportTraceServiceRequest) -> list[dict]:
    """Every span of one export, with its service's name and its attributes as plain values."""
    out = []
    for rs in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    {
                        "service": resource.get("service.name", ""),
                        "scope": ss.scope.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "start_ns": s.start_time_unix_nano,
                        "end_ns": s.end_time_unix_nano,
                        "status": s.status.code,
                        "attributes": {kv.key: _value(kv.value) for kv in s.attributes},
                    }
                )
    return out


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: "Receiver") -> None:
        self.receiver = receiver

    def Export(self, request, context):  # noqa: N802 (the gRPC method's name)
        self.receiver.add(flatten(request))
        return trace_service_pb2.ExportTraceServiceResponse()


class Receiver:
    """The gRPC server and the spans it has received (thread-safe)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", out: Path | None = None) -> None:
        self._spans: list[dict] = []
        self._lock = threading.Condition()
        self._out = out.open("a", encoding="utf-8") if out else None
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self._server)
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if not self.port:
            raise OSError(f"cannot listen on {host}:{port}")
        self.address = f"{host}:{self.port}"

    def start(self) -> "Receiver":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=1).wait()
        if self._out:
            self._out.close()

    def add(self, spans: list[dict]) -> None:
        with self._lock:
            self._spans.extend(spans)
            if self._out:
                for s in spans:
                    self._out.write(json.dumps(s, sort_keys=True) + "\n")
                self._out.flush()
            self._lock.notify_all()

    def spans(self) -> list[dict]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, predicate, timeout: float = 15.0) -> list[dict]:
        """The spans once ``predicate(spans)`` holds; TimeoutError (with what did arrive) otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self._spans):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({(s["service"], s["name"]) for s in self._spans})
                    raise TimeoutError(f"spans not received within {timeout}s; got {len(self._spans)}: {names}")
                self._lock.wait(left)
            return list(self._spans)


def trace_of_receipt(spans: list[dict], receipt_id: str) -> list[dict]:
    """Every span of the trace whose policy span names this receipt ([] when none does)."""
    ids = {s["trace_id"] for s in spans if s["attributes"].get(RECEIPT_ATTRIBUTE) == receipt_id}
    return [s for s in spans if s["trace_id"] in ids]


def tree(spans: list[dict]) -> str:
    """The spans as an indented tree, parents before children, in start order."""
    by_parent: dict[str, list[dict]] = {}
    ids = {s["span_id"] for s in spans}
    for s in sorted(spans, key=lambda s: s["start_ns"]):
        by_parent.setdefault(s["parent_span_id"] if s["parent_span_id"] in ids else "", []).append(s)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for s in by_parent.get(parent, []):
            ms = (s["end_ns"] - s["start_ns"]) / 1e6
            keys = ("relaygate.decision", "relaygate.code", "gen_ai.request.model", "relaygate.upstream")
            shown = {k: s["attributes"][k] for k in keys if k in s["attributes"]}
            extra = " " + json.dumps(shown) if shown else ""
            lines.append(f"{'  ' * depth}{s['service']}: {s['name']} ({ms:.2f} ms){extra}")
            walk(s["span_id"], depth + 1)

    walk("", 0)
    return "\n".join(lines)


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m devstack.otlp", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="receive OTLP/gRPC traces until interrupted")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=4317)
    s.add_argument("--out", type=Path, help="append every span to this JSON-lines file")
    w = sub.add_parser("show", help="print one call's trace from a --out file")
    w.add_argument("file", type=Path)
    w.add_argument("--receipt", required=True, help="the receipt id (the x-relaygate-receipt header)")
    a = p.parse_args(argv)
    if a.cmd == "show":
        spans = trace_of_receipt(_load(a.file), a.receipt)
        if not spans:
            sys.exit(f"no trace names receipt {a.receipt} in {a.file} (yet: exports are batched, try again)")
        print(f"trace {spans[0]['trace_id']}")
        print(tree(spans))
        return
    r = Receiver(a.port, a.host, a.out).start()
    print(f"OTLP/gRPC receiver on {r.address}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        r.stop()


if __name__ == "__main__":
    main()
