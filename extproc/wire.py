"""Wire formats of the gateway surface: paths, request bodies, error bodies.

Knows what OpenAI- and Anthropic-shaped requests look like, enough to pull out
model, stream flag and output cap, to bound the input tokens from above, and
to rewrite the body when the gateway must add ``max_tokens`` or ask an OpenAI
stream for its usage chunk.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

# /v1/{workspace}/[v1/]{endpoint}: OpenAI SDKs append "/chat/completions" to a
# base URL of /v1/{ws}; Anthropic SDKs append "/v1/messages".
_PATH = re.compile(
    r"^/v1/(?P<ws>[A-Za-z0-9_-]{1,64})/(?:v1/)?(?P<ep>chat/completions|completions|embeddings|messages)/?(?P<q>\?.*)?$"
)
_ENDPOINTS = {
    "chat/completions": "chat.completions",
    "completions": "completions",
    "embeddings": "embeddings",
    "messages": "messages",
}
# Which provider dialect serves each endpoint, and its path under the upstream base.
DIALECT = {
    "chat.completions": ("openai", "/chat/completions"),
    "completions": ("openai", "/completions"),
    "embeddings": ("openai", "/embeddings"),
    "messages": ("anthropic", "/messages"),
}


class BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Route:
    workspace: str
    endpoint: str
    query: str


def parse_path(path: str) -> Route | None:
    m = _PATH.match(path)
    if not m:
        return None
    return Route(m["ws"], _ENDPOINTS[m["ep"]], m["q"] or "")


@dataclass
class CallShape:
    model: str
    stream: bool
    max_output_tokens: int       # worst case the call can produce
    input_token_bound: int       # never fewer than the real input tokens
    body: bytes                  # the body to forward (possibly rewritten)
    rewritten: bool
    user: str | None = None      # the end user the app names (OpenAI 'user', Anthropic metadata.user_id)


def parse_body(endpoint: str, raw: bytes, default_max_output: int) -> CallShape:
    """Validate a request body and work out its worst-case size.

    The input bound is the body's byte length: a BPE token spans at least one
    byte of text and the JSON framing covers per-message overhead, so the
    bound cannot undershoot. When the client sets no output cap the gateway
    adds ``max_tokens`` (the workspace default) so the reservation is a real
    ceiling, and asks OpenAI streams to end with a usage chunk.
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest(400, "request.invalid_json", f"request body is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadRequest(400, "request.invalid", "request body must be a JSON object")
    model = doc.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise BadRequest(400, "request.invalid", "'model' must be a non-empty string")
    stream = doc.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest(400, "request.invalid", "'stream' must be a boolean")
    if stream and endpoint == "embeddings":
        raise BadRequest(400, "request.invalid", "embeddings cannot be streamed")
    rewritten = False
    if endpoint == "embeddings":
        max_out = 0
    else:
        cap_field = "max_completion_tokens" if "max_completion_tokens" in doc else "max_tokens"
        cap = doc.get(cap_field)
        if cap is None:
            doc["max_tokens"] = cap = default_max_output
            rewritten = True
        elif not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise BadRequest(400, "request.invalid", f"'{cap_field}' must be a positive integer")
        max_out = cap
        if stream and endpoint in ("chat.completions", "completions"):
            opts = doc.get("stream_options")
            if opts is None:
                opts = doc["stream_options"] = {}
            if not isinstance(opts, dict):
                raise BadRequest(400, "request.invalid", "'stream_options' must be an object")
            if opts.get("include_usage") is not True:
                opts["include_usage"] = True
                rewritten = True
    body = orjson.dumps(doc) if rewritten else raw
    user = doc.get("user")
    if user is None and isinstance(doc.get("metadata"), dict):
        user = doc["metadata"].get("user_id")
    if not isinstance(user, str) or not user or len(user) > 256:
        user = None
    return CallShape(model, stream, max_out, len(raw), body, rewritten, user)


def error_body(code: str, message: str, receipt_id: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "receipt_id": receipt_id}})


# Replies Envoy makes itself, in the same error shape (rendered into Envoy's
# local_reply_config by stack/envoy_config.py): kind -> (status, code, message).
ENVOY_REPLIES = {
    "timeout": (504, "upstream.timeout", "the upstream provider timed out"),
    "unavailable": (503, "upstream.unavailable", "the upstream provider is unreachable"),
    "upstream_error": (502, "upstream.error", "the upstream provider failed"),
    "misrouted": (502, "gateway.misrouted", "no upstream was selected for this call"),
    "too_large": (413, "request.too_large", "request body too large"),
    "policy_down": (503, "gateway.unavailable", "the policy service is unavailable; call not forwarded"),
}


def envoy_reply_template(code: str, message: str, receipt_id: str | None) -> str:
    """The body of an Envoy-made reply; ``receipt_id`` may be an Envoy format string."""
    rid = '"' + receipt_id + '"' if receipt_id else "null"
    return '{"error":{"code":"%s","message":"%s","receipt_id":%s}}' % (code, message, rid)


def envoy_reply_body(status: int, receipt_id: str) -> bytes | None:
    """The exact body Envoy sent for a reply it made before any decision (413), else None.

    Such replies never pass the response filters that digest bodies, so the
    receipt's response digest is computed from the same template Envoy used.
    """
    if status == ENVOY_REPLIES["too_large"][0]:
        _, code, message = ENVOY_REPLIES["too_large"]
        return envoy_reply_template(code, message, receipt_id).encode()
    return None
