"""A do-nothing ext_proc server: the floor cost of two messages per call in Python gRPC.

It answers request headers with CONTINUE and the body with the routing header
relaygate's processor would set, so it runs behind the very same Envoy
bootstrap. The gap between this path and plain Envoy is what Python gRPC
costs; the gap between it and relaygate is what our policy work costs.
"""

from __future__ import annotations

import argparse
import asyncio

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

HEADERS = pb.ProcessingResponse(request_headers=pb.HeadersResponse())


def body_reply(upstream: str) -> pb.ProcessingResponse:
    hv = base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key="x-relaygate-upstream", raw_value=upstream.encode())
    )
    path = base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=":path", raw_value=b"/v1/chat/completions"))
    return pb.ProcessingResponse(
        request_body=pb.BodyResponse(
            response=pb.CommonResponse(
                header_mutation=pb.HeaderMutation(set_headers=[hv, path]), clear_route_cache=True
            )
        )
    )


class Null(pb_grpc.ExternalProcessorServicer):
    def __init__(self, upstream: str) -> None:
        self.body = body_reply(upstream)

    async def Process(self, request_iterator, context):
        async for req in request_iterator:
            if req.HasField("request_headers"):
                yield HEADERS
            else:
                yield self.body
                return


class Sink(als_pb2_grpc.AccessLogServiceServicer):
    async def StreamAccessLogs(self, request_iterator, context):
        async for _ in request_iterator:
            pass
        return als_pb2.StreamAccessLogsResponse()


async def serve(listen: str, upstream: str) -> None:
    server = grpc.aio.server()
    pb_grpc.add_ExternalProcessorServicer_to_server(Null(upstream), server)
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(Sink(), server)
    server.add_insecure_port(listen)
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True)
    p.add_argument("--upstream", required=True)
    a = p.parse_args()
    asyncio.run(serve(a.listen, a.upstream))


if __name__ == "__main__":
    main()
