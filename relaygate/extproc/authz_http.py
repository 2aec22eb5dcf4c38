"""The ext_authz HTTP transport: Envoy's HTTP check, answered by a lean asyncio protocol.

Envoy's ``ext_authz`` filter (HTTP service, request body buffered) sends each call as
``POST /check/v1/{workspace}/...`` with the client's headers and body over HTTP/1.1 on a Unix
socket; the answer is a status line and headers. Measured against grpc.aio's ext_proc, this cuts
the policy service's transport cost per call from ~700 µs of Python CPU to ~40 µs (the
transport floor in docs/performance.md): no protobuf, no gRPC machinery, one message per call.

A transport only, like the ext_proc servicer: every check and decision is
relaygate/decision/gate.py's and every draft is spooled by recorder.py before the answer leaves.

- allow: ``200`` with the routing header, the provider credential, the provider path
  (``x-relaygate-path``; ext_authz cannot set ``:path``, the Lua filter after it does), the
  rewritten body when there is one (``x-relaygate-body``, lifted into dynamic metadata and applied
  by the same Lua filter) and ``x-envoy-auth-headers-to-remove`` (client headers off the
  upstream's allow-list);
- deny: the status, the JSON error body and the receipt header; a 5xx goes out as 418 with
  ``x-relaygate-status`` (Envoy's local_reply_config restores it).

HTTP/1.1 keep-alive, one request at a time per connection (Envoy does not pipeline); the parser is
httptools (llhttp, Node's parser), on the default asyncio loop (uvloop measured no faster here:
the loop is shared with grpc.aio's access-log server, 2026-12-03).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path

import httptools

from relaygate.contract.envoy import (
    AUTHZ_BODY_HEADER,
    AUTHZ_DENY_5XX,
    AUTHZ_PATH_HEADER,
    AUTHZ_PREFIX,
    AUTHZ_REMOVE_HEADER,
    AUTHZ_STATUS_HEADER,
    AWS_ERROR_HEADER,
    PREAUTH_HEADER,
    RECEIPT_HEADER,
    UPSTREAM_HEADER,
    receipt_id_for,
)
from relaygate.decision import gate
from relaygate.decision.admission import Admission, Verdict
from relaygate.decision.gate import Call
from relaygate.decision.wire import CallShape
from relaygate.extproc.recorder import Recorder, timed_decide

log = logging.getLogger("relaygate.extproc.authz")

_PREFIX = AUTHZ_PREFIX.encode()
_REASONS = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found",
            405: b"Method Not Allowed", 413: b"Payload Too Large", 415: b"Unsupported Media Type",
            418: b"I'm a teapot", 429: b"Too Many Requests", 451: b"Unavailable For Legal Reasons"}  # fmt: skip


def _header_value(v: str | bytes) -> bytes:
    b = v if isinstance(v, bytes) else v.encode("latin-1", "replace")
    if b"\r" in b or b"\n" in b:  # never let a value end the header block
        raise ValueError("header value with a line break")
    return b


def http_reply(status: int, headers: list[tuple[str, str | bytes]], body: bytes = b"") -> bytes:
    """One HTTP/1.1 response, keep-alive."""
    out = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Status"))]
    for k, v in headers:
        out.append(k.encode() + b": " + _header_value(v) + b"\r\n")
    out.append(b"content-length: %d\r\n\r\n" % len(body))
    out.append(body)
    return b"".join(out)


def allowed_reply(r) -> bytes:
    headers: list[tuple[str, str | bytes]] = [
        (UPSTREAM_HEADER, r.upstream.name),
        r.credential,
        (AUTHZ_PATH_HEADER, r.path),
        *r.signing,
    ]
    # Envoy drops the listed headers after it has set the ones above: a client's own copy of the
    # path header must not be listed, or ours goes with it (ours overwrites it, and the Lua filter
    # removes it once applied).
    removes = [h for h in r.removes if h != AUTHZ_PATH_HEADER]
    if removes:
        headers.append((AUTHZ_REMOVE_HEADER, ",".join(removes)))
    if r.body is not None:
        headers.append((AUTHZ_BODY_HEADER, r.body))
    return http_reply(200, headers)


def denied_reply(d) -> bytes:
    headers: list[tuple[str, str | bytes]] = [("content-type", "application/json"), (RECEIPT_HEADER, d.receipt_id)]
    status = d.status
    if status >= 500:
        headers.append((AUTHZ_STATUS_HEADER, str(status)))
        status = AUTHZ_DENY_5XX
    if d.preauth:
        headers.append((PREAUTH_HEADER, "1"))
    if d.retry_after is not None:
        headers.append(("retry-after", str(d.retry_after)))
    if d.allow is not None:
        headers.append(("allow", d.allow))
    if d.aws_error:
        headers.append((AWS_ERROR_HEADER, d.code))
    return http_reply(status, headers, d.body)


def answered_reply(body: bytes) -> bytes:
    """A 200 the gateway answers itself (the model list): sent as a denial, since a check's 200
    would forward the call, with its real status in AUTHZ_STATUS_HEADER for local_reply_config."""
    headers: list[tuple[str, str | bytes]] = [("content-type", "application/json"), (AUTHZ_STATUS_HEADER, "200")]
    return http_reply(AUTHZ_DENY_5XX, headers, body)


# The answer when the spool could not record a call: Envoy refuses the call (a 5xx from the check).
SPOOL_FAILED = http_reply(500, [], b"")


class AuthzService:
    """Decides one check request; ``admission()`` is the policy snapshot in force (swapped whole on
    a new bundle, like the ext_proc servicer's).

    Drafts are group-committed: every check decided in one event-loop turn writes its draft into
    one spool transaction, committed at the start of the next turn, and each answer is written to
    Envoy only after that commit (or, if it fails, replaced by a refusal, holds released). One
    commit per turn instead of one per call (issue 13 item 2), and still nothing forwarded that
    is not on disk."""

    def __init__(self, admission: Callable[[], Admission], recorder: Recorder) -> None:
        self.admission = admission
        self.recorder = recorder

    def check(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        names: list[str],
        body: bytes,
        write: Callable[[bytes], None],
    ) -> Coroutine[None, None, None] | None:
        """Decide, and ``write`` the reply bytes once the call's draft is committed. None, or a
        coroutine to run when the workspace's own policies must be evaluated first."""
        call = Call(self.admission(), header_names=names, trace_parent=headers.get("traceparent", ""))
        headers[":method"] = method
        headers[":path"] = path
        try:
            denied = gate.check_headers(call, headers, has_body=bool(body))
            if denied is not None and not isinstance(denied, Verdict):
                return self._after_headers(call, denied, body, write)  # a JWT whose key is being fetched
            return self._rest(call, denied, body, write)
        except Exception:
            reply = self._failed(call)
        self._deliver(reply, write)
        return None

    def _rest(
        self, call: Call, denied: Verdict | None, body: bytes, write: Callable[[bytes], None]
    ) -> Coroutine[None, None, None] | None:
        """What follows the header checks: the model list, or the body's checks and the decision."""
        try:
            if denied is None and gate.is_listing(call):
                listed = gate.model_list(call)
                if not isinstance(listed, bytes):
                    return self._answer_later(call, listed, write)
                reply = answered_reply(listed)
            elif denied is not None:
                reply = denied_reply(self.recorder.denied(call, denied, grouped=True))
            elif isinstance(shape := gate.check_body(call, body), Verdict):
                reply = denied_reply(self.recorder.denied(call, shape, body, grouped=True))
            elif isinstance(v := timed_decide(call, shape), Verdict):
                reply = self._verdict(call, v, shape, body)
            else:
                return self._after(call, v, shape, body, write)
        except Exception:
            reply = self._failed(call)
        self._deliver(reply, write)
        return None

    async def _answer_later(self, call: Call, pending, write) -> None:
        try:
            reply = answered_reply(await pending)
        except Exception:
            reply = self._failed(call)
        self._deliver(reply, write)

    async def _after_headers(self, call: Call, pending, body: bytes, write) -> None:
        try:
            denied = await pending
        except Exception:
            self._deliver(self._failed(call), write)
            return
        more = self._rest(call, denied, body, write)
        if more is not None:
            await more

    async def _after(self, call: Call, pending, shape: CallShape, body: bytes, write) -> None:
        try:
            reply = self._verdict(call, await pending, shape, body)
        except Exception:
            reply = self._failed(call)
        self._deliver(reply, write)

    def _deliver(self, reply: bytes, write: Callable[[bytes], None]) -> None:
        if not self.recorder.spool.after_commit(lambda: write(reply), lambda _e: write(SPOOL_FAILED)):
            write(reply)  # nothing of this call's is waiting to be committed

    def _verdict(self, call: Call, v: Verdict, shape: CallShape, body: bytes) -> bytes:
        if not v.allow:
            return denied_reply(self.recorder.denied(call, v, body, shape, grouped=True))
        return allowed_reply(self.recorder.routed(call, v, shape, body, grouped=True))

    def _failed(self, call: Call) -> bytes:
        log.exception("ext_authz check failed (receipt %s)", call.receipt_id)
        call.receipt_id = call.receipt_id or receipt_id_for(None)
        v = Verdict.deny(500, "gateway.error", "internal error in the policy service")
        try:
            return denied_reply(self.recorder.denied(call, v, grouped=True))
        except Exception:  # the spool itself failed: Envoy fails closed on a 5xx from the check
            return SPOOL_FAILED


class _Connection(asyncio.Protocol):
    """One Envoy connection: parse requests with httptools, answer each in order."""

    __slots__ = ("service", "transport", "parser", "url", "headers", "names", "body", "closed", "task")

    def __init__(self, service: AuthzService) -> None:
        self.service = service
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: dict[str, str] = {}
        self.names: list[str] = []
        self.body: list[bytes] = []
        self.closed = False
        self.task: asyncio.Future | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            log.warning("ext_authz: unparseable request from Envoy; connection closed")
            if self.transport is not None:
                self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.names, self.body = b"", {}, [], []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        k = name.decode("latin-1").lower()
        self.headers[k] = value.decode("latin-1")
        self.names.append(k)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        url = self.url
        path = (url[len(_PREFIX) :] if url.startswith(_PREFIX) else url).decode("latin-1")
        method = self.parser.get_method().decode()
        body = b"".join(self.body)
        # Envoy's own headers about the check request are not the client's.
        names = [n for n in self.names if n not in ("content-length", "host")]
        pending = self.service.check(method, path, self.headers, names, body, self._send)
        if pending is not None:
            # Workspace policies run in the sandbox. Envoy does not pipeline on a connection, so
            # nothing else is read from it until this answer is written.
            self.transport.pause_reading()
            self.task = asyncio.ensure_future(pending)  # referenced: a bare task may be collected

    def _send(self, reply: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(reply)
            self.transport.resume_reading()  # a no-op unless paused for the sandbox


async def serve(service: AuthzService, listen: str) -> asyncio.base_events.Server:
    """Listen on ``unix:PATH`` (mode 0600: only Envoy's user needs it) or ``HOST:PORT``."""
    loop = asyncio.get_running_loop()
    if listen.startswith("unix:"):
        path = Path(listen[5:])
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        server = await loop.create_unix_server(lambda: _Connection(service), str(path), backlog=1024)
        os.chmod(path, 0o600)
        return server
    host, _, port = listen.rpartition(":")
    return await loop.create_server(lambda: _Connection(service), host, int(port), backlog=1024)
