"""relaygate-provider-sim: OpenAI-, Anthropic- and Gemini-shaped upstream for tests and `make run`.

Reads the whole request body before answering (as real providers do), checks
the provider credential, answers with usage, and streams SSE with usage.
Per-request knobs are request headers, so tests can drive them through the
gateway: ``x-sim-delay-ms`` (before answering), ``x-sim-chunk-delay-ms``
(between stream events), ``x-sim-output-tokens``, ``x-sim-split-frames`` (Bedrock event streams
written in pieces of that many bytes), and ``x-sim-fail``
(an HTTP status such as ``500``, ``reset`` to drop the connection, or ``hang``);
they reach it through the gateway only where an upstream's ``forward_headers`` lets
``x-sim-*`` through (the test config does). Output-limit fields, ``n``, ``best_of`` and
lists of prompts are honoured as a lenient provider would (see ``_out_tokens``).
``GET /_sim/requests`` lists what arrived (path, headers, body digest, port).
With ``--tls-cert/--tls-key`` every port speaks HTTPS with that certificate, so tests can
stand a provider (or an impostor of one) behind a certificate of their choosing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import re
import struct
import time
import uuid
import zlib

from aiohttp import web

WORDS = "the quick brown fox jumps over the lazy dog".split()
# Output-limit fields some provider honours (OpenAI, Anthropic, Responses API, TGI, Anthropic legacy).
LIMIT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_new_tokens", "max_tokens_to_sample")


def _text_of(doc: dict) -> str:
    parts: list[str] = []

    def walk(v):
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for k in ("content", "text", "prompt", "input", "system"):
                if k in v:
                    walk(v[k])

    for k in ("messages", "prompt", "input", "system"):
        if k in doc:
            walk(doc[k] if k != "messages" else [m for m in doc[k] if isinstance(m, dict)])
    return " ".join(parts)


def count_tokens(text: str) -> int:
    return max(1, math.ceil(len(text.encode()) / 4))


def event_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (application/vnd.amazon.eventstream): a prelude (total length,
    headers length, CRC32 of those 8 bytes), string-typed headers, the payload, a CRC32 of it all."""
    head = b"".join(
        struct.pack("!B", len(k)) + k.encode() + struct.pack("!BH", 7, len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack("!II", 12 + len(head) + len(payload) + 4, len(head))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    msg = prelude + head + payload
    return msg + struct.pack("!I", zlib.crc32(msg))


def bedrock_event(name: str, doc: dict) -> bytes:
    return event_frame(
        {":event-type": name, ":content-type": "application/json", ":message-type": "event"}, json.dumps(doc).encode()
    )


_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)


class Sim:
    def __init__(
        self, credentials: set[str], default_output_tokens: int, regions: dict[int, str] | None = None
    ) -> None:
        self.credentials = credentials
        self.default_output_tokens = default_output_tokens
        self.log: list[dict] = []
        # Bedrock: AWS credentials (ACCESS_KEY_ID:SECRET[:TOKEN] among --credential), and the region
        # each port serves (--region PORT=REGION): a signature for another region is refused.
        self.aws = {c.split(":", 1)[0]: c.split(":", 2)[1:] for c in credentials if c.count(":") in (1, 2)}
        self.regions = regions or {}

    def app(self) -> web.Application:
        @web.middleware
        async def mark_done(request, handler):
            try:
                return await handler(request)
            finally:
                if "sim_entry" in request:
                    request["sim_entry"]["done"] = True

        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[mark_done])
        app.on_response_prepare.append(_account_headers)
        app.add_routes(
            [
                web.post("/v1/chat/completions", self.openai),
                web.post("/v1/completions", self.openai),
                web.post("/v1/embeddings", self.openai),
                web.post("/v1/messages", self.anthropic),
                # Gemini's native surface: /v1beta/models/{model}:generateContent | :streamGenerateContent
                web.post("/v1beta/models/{call}", self.gemini),
                web.post(
                    "/model/{model}/{op:converse|converse-stream|invoke|invoke-with-response-stream}", self.bedrock
                ),
                web.get("/_sim/requests", self.requests),
                web.delete("/_sim/requests", self.clear),
            ]
        )
        return app

    async def requests(self, _):
        return web.json_response(self.log)

    async def clear(self, _):
        self.log.clear()
        return web.json_response({"cleared": True})

    def _record(self, request: web.Request, raw: bytes, path: str) -> dict:
        """What arrived, for GET /_sim/requests (the last 2,000); marked done when answered."""
        entry = {
            "path": path,
            "port": request.transport.get_extra_info("sockname")[1],
            "headers": dict(request.headers),
            "body_sha256": hashlib.sha256(raw).hexdigest(),
            "body": raw.decode(errors="replace")[:4096],
            "time": time.time(),
            "done": False,
        }
        self.log.append(entry)
        del self.log[:-2000]
        request["sim_entry"] = entry
        return entry

    async def _prelude(self, request: web.Request, credential: str | None):
        raw = await request.read()
        self._record(request, raw, request.path_qs)
        h = request.headers
        if "x-sim-delay-ms" in h:
            await asyncio.sleep(int(h["x-sim-delay-ms"]) / 1000)
        fail = h.get("x-sim-fail")
        if fail == "hang":
            await asyncio.sleep(3600)
        if fail == "reset":
            request.transport.close()
            raise web.HTTPInternalServerError()
        if fail and fail.isdigit():
            return None, web.json_response({"error": {"message": "simulated failure", "type": "sim"}}, status=int(fail))
        if credential not in self.credentials:
            return None, web.json_response(
                {"error": {"message": "invalid provider credential", "type": "authentication_error"}}, status=401
            )
        try:
            doc = json.loads(raw)
            assert isinstance(doc, dict)
        except (ValueError, AssertionError):
            return None, web.json_response({"error": {"message": "bad json"}}, status=400)
        if "messages" in doc and not isinstance(doc["messages"], list):  # as the providers answer it (was a crash)
            msg = {"message": "'messages' must be an array", "type": "invalid_request_error"}
            return None, web.json_response({"error": msg}, status=400)
        return doc, None

    def _out_tokens(self, request, doc) -> int:
        """Tokens in each output: the largest output limit the body names, as a lenient provider honours it.

        A provider that accepts several limit fields (or another dialect's alias) may honour
        any of them; the simulator takes the largest so a gateway that reserved a smaller
        one shows up as an overspend in tests.
        """
        want = int(request.headers.get("x-sim-output-tokens", self.default_output_tokens))
        caps = [v for f in LIMIT_FIELDS if isinstance(v := doc.get(f), (int, float)) and not isinstance(v, bool)]
        cap = max(caps) if caps else want
        return max(1, min(want, int(cap)))

    def _prompt_cache(self, doc: dict, total: int) -> tuple[int, dict]:
        """(input_tokens, cache usage) as Anthropic reports prompt caching: a request with a
        ``cache_control`` block has its prefix written to the cache the first time and read from
        it afterwards, and those tokens are reported apart from ``input_tokens`` (billed at 1.25x
        or 2x for writes, 0.1x for reads). Here the prefix is everything but one token."""
        if b'"cache_control"' not in json.dumps(doc).replace(" ", "").encode() or total < 2:
            return total, {}
        prefix = hashlib.sha256(json.dumps(doc.get("system")).encode()).hexdigest()
        seen = getattr(self, "_cached", None)
        if seen is None:
            seen = self._cached = set()
        kind = "cache_read_input_tokens" if prefix in seen else "cache_creation_input_tokens"
        seen.add(prefix)
        other = "cache_creation_input_tokens" if kind == "cache_read_input_tokens" else "cache_read_input_tokens"
        return 1, {kind: total - 1, other: 0}

    @staticmethod
    def _multipliers(doc, completions: bool) -> tuple[int, int]:
        """(outputs returned, outputs generated and billed) per request.

        OpenAI returns ``n`` choices per prompt; legacy completions generate ``best_of``
        per prompt server-side (billed) and return the best ``n``; a completions
        ``prompt`` may be a list of prompts, each answered separately.
        """

        def count(name, default=1):
            v = doc.get(name)
            return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else default

        n = count("n")
        prompts = 1
        if completions:
            p = doc.get("prompt")
            if isinstance(p, list) and p and not all(isinstance(x, int) for x in p):
                prompts = len(p)
            return n * prompts, max(n, count("best_of", n)) * prompts
        return n, n

    async def openai(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("authorization", "")
        doc, err = await self._prelude(request, auth[7:] if auth.startswith("Bearer ") else None)
        if err:
            return err
        model = doc.get("model", "unknown")
        prompt_tokens = count_tokens(_text_of(doc))
        if request.path.endswith("/embeddings"):
            inputs = doc.get("input")
            n = len(inputs) if isinstance(inputs, list) else 1
            return web.json_response(
                {
                    "object": "list",
                    "model": model,
                    "data": [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1)] * 8} for i in range(n)],
                    "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
                }
            )
        out = self._out_tokens(request, doc)
        words = [WORDS[i % len(WORDS)] for i in range(out)]
        chat = request.path.endswith("/chat/completions")
        returned, billed = self._multipliers(doc, not chat)
        cid = "chatcmpl-" + uuid.uuid4().hex[:24] if chat else "cmpl-" + uuid.uuid4().hex[:24]
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": out * billed,
            "total_tokens": prompt_tokens + out * billed,
        }
        created = int(time.time())
        if not doc.get("stream"):
            if chat:
                choices = [
                    {
                        "index": c,
                        "message": {"role": "assistant", "content": " ".join(words)},
                        "finish_reason": "length" if out < self.default_output_tokens else "stop",
                    }
                    for c in range(returned)
                ]
                obj = "chat.completion"
            else:
                choices = [
                    {"index": c, "text": " ".join(words), "finish_reason": "stop", "logprobs": None}
                    for c in range(returned)
                ]
                obj = "text_completion"
            return web.json_response(
                {"id": cid, "object": obj, "created": created, "model": model, "choices": choices, "usage": usage}
            )
        resp = await self._sse_start(request)
        delay = int(request.headers.get("x-sim-chunk-delay-ms", "0")) / 1000
        obj = "chat.completion.chunk" if chat else "text_completion"
        for i, w in enumerate(words):
            piece = (" " if i else "") + w
            for c in range(returned):
                choice = (
                    {
                        "index": c,
                        "delta": {"content": piece} if i else {"role": "assistant", "content": piece},
                        "finish_reason": None,
                    }
                    if chat
                    else {"index": c, "text": piece, "finish_reason": None}
                )
                await self._event(
                    resp,
                    None,
                    {"id": cid, "object": obj, "created": created, "model": model, "choices": [choice], "usage": None},
                )
            if delay:
                await asyncio.sleep(delay)
        for c in range(returned):
            last = (
                {"index": c, "delta": {}, "finish_reason": "stop"}
                if chat
                else {"index": c, "text": "", "finish_reason": "stop"}
            )
            await self._event(
                resp,
                None,
                {"id": cid, "object": obj, "created": created, "model": model, "choices": [last], "usage": None},
            )
        if (doc.get("stream_options") or {}).get("include_usage"):
            await self._event(
                resp,
                None,
                {"id": cid, "object": obj, "created": created, "model": model, "choices": [], "usage": usage},
            )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        doc, err = await self._prelude(request, request.headers.get("x-api-key"))
        if err:
            return err
        model = doc.get("model", "unknown")
        in_tok, cache = self._prompt_cache(doc, count_tokens(_text_of(doc)))
        out = self._out_tokens(request, doc)
        words = [WORDS[i % len(WORDS)] for i in range(out)]
        mid = "msg_" + uuid.uuid4().hex[:24]
        if not doc.get("stream"):
            return web.json_response(
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": " ".join(words)}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": in_tok, "output_tokens": out, **cache},
                }
            )
        resp = await self._sse_start(request)
        delay = int(request.headers.get("x-sim-chunk-delay-ms", "0")) / 1000
        await self._event(
            resp,
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": in_tok, "output_tokens": 1, **cache},
                },
            },
        )
        await self._event(
            resp,
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        for i, w in enumerate(words):
            await self._event(
                resp,
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": (" " if i else "") + w},
                },
            )
            if delay:
                await asyncio.sleep(delay)
        await self._event(resp, "content_block_stop", {"type": "content_block_stop", "index": 0})
        await self._event(
            resp,
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": out},
            },
        )
        await self._event(resp, "message_stop", {"type": "message_stop"})
        await resp.write_eof()
        return resp

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        """generateContent as Google answers it: candidates, usageMetadata (prompt, candidates and
        thinking tokens: ``x-sim-thought-tokens`` makes the model think), modelVersion; the stream
        (``:streamGenerateContent?alt=sse``) repeats the running usage on every chunk."""
        model, _, method = request.match_info["call"].partition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            return web.json_response({"error": {"code": 404, "message": "unknown method"}}, status=404)
        doc, err = await self._prelude(request, request.headers.get("x-goog-api-key"))
        if err:
            return err
        cfg = doc.get("generationConfig") or {}
        want = int(request.headers.get("x-sim-output-tokens", self.default_output_tokens))
        cap = cfg.get("maxOutputTokens")
        out = max(1, min(want, int(cap))) if isinstance(cap, int) else want
        n = cfg.get("candidateCount") if isinstance(cfg.get("candidateCount"), int) else 1
        thoughts = int(request.headers.get("x-sim-thought-tokens", "0"))
        prompt = count_tokens(_text_of({"messages": doc.get("contents") or []}) or json.dumps(doc.get("contents")))
        words = [WORDS[i % len(WORDS)] for i in range(out)]

        def usage(done: int) -> dict:
            u = {"promptTokenCount": prompt, "candidatesTokenCount": done * n, "totalTokenCount": prompt + done * n}
            if thoughts:
                u["thoughtsTokenCount"] = thoughts
                u["totalTokenCount"] += thoughts
            return u

        def chunk(text: str, done: int, last: bool) -> dict:
            cands = [
                {
                    "content": {"parts": [{"text": text}], "role": "model"},
                    "index": c,
                    **({"finishReason": "STOP"} if last else {}),
                }
                for c in range(n)
            ]
            return {"candidates": cands, "usageMetadata": usage(done), "modelVersion": model}

        if method == "generateContent":
            return web.json_response(chunk(" ".join(words), out, True))
        resp = await self._sse_start(request)
        delay = int(request.headers.get("x-sim-chunk-delay-ms", "0")) / 1000
        for i, w in enumerate(words):
            await resp.write(
                b"data: " + json.dumps(chunk((" " if i else "") + w, i + 1, i == out - 1)).encode() + b"\r\n\r\n"
            )
            if delay:
                await asyncio.sleep(delay)
        await resp.write_eof()
        return resp

    # -- AWS Bedrock runtime ------------------------------------------------------------------------
    def _sigv4_error(self, request: web.Request, raw: bytes) -> str | None:
        """Why the request's SigV4 signature is not a valid one of a known credential, or None.

        Checked with botocore's own signer (the simulator is a test double; botocore is AWS's
        reference): the scope's region must be this port's, the payload hash the body's."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        m = _SIGV4.match(request.headers.get("authorization", ""))
        if not m:
            return "missing or malformed SigV4 Authorization header"
        akid, day, region, service, signed, sig = m.groups()
        if akid not in self.aws:
            return "The security token included in the request is invalid."
        secret, *token = self.aws[akid]
        port = request.transport.get_extra_info("sockname")[1]
        if port in self.regions and region != self.regions[port]:
            return f"signature scope names region {region}; this endpoint serves {self.regions[port]}"
        if service != "bedrock" or request.headers.get("x-amz-date", "")[:8] != day:
            return "credential scope does not match the request"
        if request.headers.get("x-amz-content-sha256") != hashlib.sha256(raw).hexdigest():
            return "x-amz-content-sha256 is not the body's SHA-256"
        names = signed.split(";")
        if "host" not in names or "x-amz-date" not in names:
            return "host and x-amz-date must be signed"
        if token and (request.headers.get("x-amz-security-token") != token[0] or "x-amz-security-token" not in names):
            return "session token missing or not signed"
        req = AWSRequest("POST", "http://" + request.host + request.raw_path, data=raw,
                         headers={n: request.headers.get(n, "") for n in names if n != "host"})  # fmt: skip
        req.headers["host"] = request.headers.get("host", "")
        req.context["timestamp"] = request.headers["x-amz-date"]
        signer = SigV4Auth(Credentials(akid, secret, token[0] if token else None), service, region)
        expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
        return (
            None
            if expected == sig
            else "The request signature we calculated does not match the signature you provided."
        )

    async def bedrock(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        entry = self._record(request, raw, request.raw_path)

        def error(status: int, kind: str, message: str) -> web.Response:
            return web.json_response({"message": message}, status=status, headers={"x-amzn-errortype": kind})

        fail = request.headers.get("x-sim-fail")
        if fail and fail.isdigit():
            return error(
                int(fail), "ThrottlingException" if fail == "429" else "InternalServerException", "simulated failure"
            )
        why = self._sigv4_error(request, raw)
        if why is not None:
            entry["sigv4_error"] = why
            return error(403, "UnrecognizedClientException", why)
        entry["region"] = _SIGV4.match(request.headers["authorization"]).group(3)
        try:
            doc = json.loads(raw)
            assert isinstance(doc, dict)
        except (ValueError, AssertionError):
            return error(400, "ValidationException", "Malformed input request")
        model, op = request.match_info["model"], request.match_info["op"]
        llama = model.split(".")[0] == "meta" or ".meta." in model  # InvokeModel in Llama's shape
        in_tok = count_tokens(_text_of(doc))
        want = int(request.headers.get("x-sim-output-tokens", self.default_output_tokens))
        if op.startswith("converse"):
            cap = (doc.get("inferenceConfig") or {}).get("maxTokens")
        else:
            cap = doc.get("max_gen_len" if llama else "max_tokens")
        out = max(1, min(want, int(cap))) if isinstance(cap, int) else want
        words = [WORDS[i % len(WORDS)] for i in range(out)]
        rid = str(uuid.uuid4())
        if op == "converse":
            return web.json_response(
                {
                    "output": {"message": {"role": "assistant", "content": [{"text": " ".join(words)}]}},
                    "stopReason": "end_turn",
                    "usage": {"inputTokens": in_tok, "outputTokens": out, "totalTokens": in_tok + out},
                    "metrics": {"latencyMs": 12},
                },
                headers={"x-amzn-requestid": rid},
            )
        if op == "invoke" and llama:
            return web.json_response(
                {"generation": " ".join(words), "prompt_token_count": in_tok, "generation_token_count": out,
                 "stop_reason": "stop"},
                headers={"x-amzn-requestid": rid, "x-amzn-bedrock-input-token-count": str(in_tok),
                         "x-amzn-bedrock-output-token-count": str(out)},
            )  # fmt: skip
        if op == "invoke":
            return web.json_response(
                {
                    "id": "msg_bdrk_" + uuid.uuid4().hex[:20],
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": " ".join(words)}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": in_tok, "output_tokens": out},
                },
                headers={
                    "x-amzn-requestid": rid,
                    "x-amzn-bedrock-input-token-count": str(in_tok),
                    "x-amzn-bedrock-output-token-count": str(out),
                },
            )
        resp = web.StreamResponse(
            headers={"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-requestid": rid,
                     **({"x-amzn-bedrock-content-type": "application/json"} if op.startswith("invoke") else {})}
        )  # fmt: skip
        await resp.prepare(request)
        delay = int(request.headers.get("x-sim-chunk-delay-ms", "0")) / 1000
        if op == "converse-stream":
            frames = [bedrock_event("messageStart", {"role": "assistant"})]
            frames += [
                bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": (" " if i else "") + w}})
                for i, w in enumerate(words)
            ]
            frames += [
                bedrock_event("contentBlockStop", {"contentBlockIndex": 0}),
                bedrock_event("messageStop", {"stopReason": "end_turn"}),
                bedrock_event(
                    "metadata",
                    {
                        "usage": {"inputTokens": in_tok, "outputTokens": out, "totalTokens": in_tok + out},
                        "metrics": {"latencyMs": 12},
                    },
                ),  # fmt: skip
            ]
        elif llama:
            events = [
                {"generation": (" " if i else "") + w, "prompt_token_count": in_tok if i == 0 else None,
                 "generation_token_count": i + 1, "stop_reason": None}
                for i, w in enumerate(words)
            ]  # fmt: skip
            events[-1]["stop_reason"] = "stop"
            events[-1]["amazon-bedrock-invocationMetrics"] = {
                "inputTokenCount": in_tok, "outputTokenCount": out, "invocationLatency": 12, "firstByteLatency": 3,
            }  # fmt: skip
            frames = [
                bedrock_event("chunk", {"bytes": base64.b64encode(json.dumps(e).encode()).decode()}) for e in events
            ]
        else:
            events = [
                {"type": "message_start", "message": {"id": "msg_bdrk", "type": "message", "role": "assistant",
                 "model": model, "content": [], "usage": {"input_tokens": in_tok, "output_tokens": 1}}},
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": (" " if i else "") + w}}
                  for i, w in enumerate(words)),
                {"type": "content_block_stop", "index": 0},
                {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": out}},
                {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
                    "inputTokenCount": in_tok, "outputTokenCount": out, "invocationLatency": 12, "firstByteLatency": 3}},
            ]  # fmt: skip
            frames = [
                bedrock_event("chunk", {"bytes": base64.b64encode(json.dumps(e).encode()).decode()}) for e in events
            ]
        split = int(request.headers.get("x-sim-split-frames", "0"))
        if split:  # pieces of this many bytes, so frames straddle the chunks a gateway sees
            data = b"".join(frames)
            frames = [data[i : i + split] for i in range(0, len(data), split)]
        for f in frames:
            await resp.write(f)
            if delay:
                await asyncio.sleep(delay)
        await resp.write_eof()
        return resp

    @staticmethod
    async def _sse_start(request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        return resp

    @staticmethod
    async def _event(resp, event: str | None, data: dict) -> None:
        head = f"event: {event}\n" if event else ""
        await resp.write((head + "data: " + json.dumps(data) + "\n\n").encode())


# What real providers put on every API response about the account the call was billed to (the
# platform's, behind a gateway): its organization and project, its shared rate-limit state, and
# edge cookies. A gateway must not hand these to its tenants (relaygate/envoy/config.py RESPONSE_HEADERS).
ACCOUNT_HEADERS = {
    "openai": {
        "openai-organization": "org-platform-account",
        "openai-project": "proj_platform",
        "openai-processing-ms": "12",
        "x-ratelimit-limit-tokens": "150000000",
        "x-ratelimit-remaining-tokens": "149990123",
        "x-ratelimit-remaining-requests": "29999",
        "set-cookie": "__cf_bm=platform-edge-cookie; path=/; domain=.api.openai.com; HttpOnly",
    },
    "bedrock": {
        "x-amz-id-2": "platform-account-edge-id",
        "x-amzn-account-id": "123456789012",
        "set-cookie": "aws-platform=account-cookie; path=/; HttpOnly",
    },
    "anthropic": {
        "anthropic-organization-id": "0b6e8f0c-platform-org",
        "request-id": "req_sim",
        "anthropic-ratelimit-tokens-remaining": "3999000",
        "anthropic-ratelimit-requests-remaining": "3999",
        "set-cookie": "__cf_bm=platform-edge-cookie; path=/; domain=.api.anthropic.com; HttpOnly",
    },
}


async def _account_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/_sim/"):
        return
    if request.path.startswith("/v1beta/"):
        return
    kind = (
        "bedrock"
        if request.path.startswith("/model/")
        else "anthropic"
        if request.path.endswith("/messages")
        else "openai"
    )
    for k, v in ACCOUNT_HEADERS[kind].items():
        response.headers.setdefault(k, v)


async def run(
    ports: list[int],
    credentials: set[str],
    output_tokens: int,
    host: str,
    tls: tuple[str, str] | None = None,
    regions: dict[int, str] | None = None,
) -> None:
    sim = Sim(credentials, output_tokens, regions)
    runner = web.AppRunner(sim.app(), access_log=None)
    await runner.setup()
    ctx = None
    if tls:
        import ssl

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*tls)
    for port in ports:
        await web.TCPSite(runner, host, port, ssl_context=ctx).start()
    print(f"provider-sim listening on {host}:{','.join(map(str, ports))}", flush=True)
    await asyncio.Event().wait()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="relaygate-provider-sim", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--port",
        type=int,
        action="append",
        required=True,
        help="port to listen on; repeat to simulate several provider endpoints",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--credential", action="append", default=[], help="a provider credential the simulator accepts (repeatable)"
    )
    p.add_argument("--output-tokens", type=int, default=12, help="tokens in each reply (default 12)")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate chain (PEM; needs --tls-key)")
    p.add_argument("--tls-key", help="the private key of --tls-cert (PEM)")
    p.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="PORT=REGION",
        help="Bedrock: the AWS region a port serves; SigV4 signatures for another region are refused (repeatable)",
    )
    a = p.parse_args(argv)
    regions = {int(r.split("=", 1)[0]): r.split("=", 1)[1] for r in a.region}
    if bool(a.tls_cert) != bool(a.tls_key):
        p.error("--tls-cert and --tls-key go together")
    try:
        asyncio.run(
            run(
                a.port,
                set(a.credential),
                a.output_tokens,
                a.host,
                (a.tls_cert, a.tls_key) if a.tls_cert else None,
                regions,
            )
        )
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
