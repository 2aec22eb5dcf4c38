"""Wire formats of the gateway surface: paths, request bodies, error bodies.

Knows what OpenAI- and Anthropic-shaped requests look like, enough to pull out
model, stream flag and worst-case output, to bound the input tokens from above,
and to rewrite the body so the provider honours exactly the output limit that was
reserved (adding ``max_tokens`` when absent) and OpenAI streams end with usage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, cast
from urllib.parse import quote, unquote

import orjson

# GET /v1/{workspace}/models (OpenAI's list) and /v1/{workspace}/v1/models (Anthropic's): the
# models the calling key may use, answered by the gateway itself (relaygate/decision/gate.py).
MODELS = "models"

# /v1/{workspace}/[v1/]{endpoint}: OpenAI SDKs append "/chat/completions" to a
# base URL of /v1/{ws}; Anthropic SDKs append "/v1/messages".
_PATH = re.compile(
    r"^/v1/(?P<ws>[A-Za-z0-9_-]{1,64})/(?P<v1>v1/)?(?P<ep>chat/completions|completions|embeddings|messages|models)/?(?P<q>\?.*)?$"
)
# Gemini's native surface (google-genai SDK with base_url /v1/{workspace}/): the model and whether
# it streams are in the path, /v1/{ws}/v1beta/models/{model}:generateContent or
# :streamGenerateContent (the SDK adds ?alt=sse; the gateway sets the provider's query itself).
_GEMINI_PATH = re.compile(
    r"^/v1/(?P<ws>[A-Za-z0-9_-]{1,64})/(?:v1beta/|v1/)?models/(?P<model>[A-Za-z0-9._-]{1,128})"
    r":(?P<method>generateContent|streamGenerateContent)(?P<q>\?.*)?$"
)
GEMINI = "gemini.generate"
_ENDPOINTS = {
    "chat/completions": "chat.completions",
    "completions": "completions",
    "embeddings": "embeddings",
    "messages": "messages",
    "models": MODELS,
}
# AWS Bedrock runtime, as boto3's bedrock-runtime client calls it with endpoint_url
# /v1/{ws}/bedrock: POST /model/{modelId}/{operation}, the model id percent-encoded ("%3A" for ':').
# botocore encodes a '/' of an ARN as %2F, which Envoy refuses for every path
# (path_with_escaped_slashes_action); model ids and inference profile ids have none.
_BEDROCK_PATH = re.compile(
    r"^/v1/(?P<ws>[A-Za-z0-9_-]{1,64})/bedrock/model/(?P<model>[^/?]{1,512})/"
    r"(?P<op>converse|converse-stream|invoke|invoke-with-response-stream)(?P<q>\?.*)?$"
)
# operation -> (scope endpoint, streamed)
BEDROCK_OPERATIONS = {
    "converse": ("bedrock.converse", False),
    "converse-stream": ("bedrock.converse", True),
    "invoke": ("bedrock.invoke", False),
    "invoke-with-response-stream": ("bedrock.invoke", True),
}
_MODEL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,256}$")
# Which provider dialect serves each endpoint, and its path under the upstream base (a Bedrock
# path names the model and the operation: provider_path).
DIALECT = {
    "chat.completions": ("openai", "/chat/completions"),
    "completions": ("openai", "/completions"),
    "embeddings": ("openai", "/embeddings"),
    "messages": ("anthropic", "/messages"),
    GEMINI: ("google", "/models/{model}:generateContent"),
    "bedrock.converse": ("bedrock", ""),
    "bedrock.invoke": ("bedrock", ""),
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
    model: str = ""  # the model a path names (Gemini's; Bedrock's decoded); "" when the body names it
    operation: str = ""  # Bedrock: converse, converse-stream, invoke, invoke-with-response-stream
    anthropic_sdk: bool = False  # the path had Anthropic's /v1 infix (the model list answers in its shape)
    stream: bool = False  # the path asks for a stream (Gemini's streamGenerateContent)


def parse_path(path: str) -> Route | None:
    m = _PATH.match(path)
    if m:
        return Route(m["ws"], _ENDPOINTS[m["ep"]], m["q"] or "", anthropic_sdk=bool(m["v1"]))
    m = _GEMINI_PATH.match(path)
    if m:
        return Route(m["ws"], GEMINI, m["q"] or "", model=m["model"], stream=m["method"] == "streamGenerateContent")
    m = _BEDROCK_PATH.match(path)
    if not m:
        return None
    model = unquote(m["model"])
    if not _MODEL_ID.match(model):
        return None
    return Route(m["ws"], BEDROCK_OPERATIONS[m["op"]][0], m["q"] or "", model, m["op"])


def provider_path(route: Route, model: str) -> str:
    """The call's path under its upstream's base_path. ``model`` is the catalog model the call is
    for (an alias in the path resolved): Gemini's and Bedrock's paths name it."""
    if route.operation:
        return f"/model/{quote(model, safe='')}/{route.operation}"
    if route.endpoint == GEMINI:  # the gateway's own query: never the client's
        return f"/models/{model}:" + ("streamGenerateContent?alt=sse" if route.stream else "generateContent")
    return DIALECT[route.endpoint][1]


# Output-limit fields each dialect's provider honours. When a body names none, the
# gateway adds the first one (max_tokens: every model of the dialect accepts it).
LIMIT_FIELDS = {
    "chat.completions": ("max_tokens", "max_completion_tokens"),
    "completions": ("max_tokens",),
    "messages": ("max_tokens",),
}
# Every output-limit name some provider honours (OpenAI, the Responses API, TGI, Anthropic's
# legacy completions). A body naming one its dialect does not use is refused: an
# OpenAI-compatible provider might honour it, and the gateway would not have reserved it.
ALL_LIMIT_FIELDS = (
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "max_new_tokens",
    "max_tokens_to_sample",
)
MAX_OUTPUT_TOKENS = 1_000_000  # per output; above every model's limit, so a larger value is an attack or a bug
MAX_N = 128  # OpenAI's own cap on n
MAX_BEST_OF = 20  # OpenAI's own cap on best_of (legacy completions)
# Top-level fields whose value decides the reservation, the route or the receipt. If one of
# them is duplicated (or a key may be spelled with a \u escape) the body is re-serialized, so a
# provider whose JSON parser keeps the first duplicate sees the value the gateway parsed.
_DECISIVE = tuple(
    f'"{k}"'.encode()
    for k in (
        *ALL_LIMIT_FIELDS,
        "model",
        "stream",
        "stream_options",
        "n",
        "best_of",
        "prompt",
        "prediction",
        "user",
        "metadata",
        "service_tier",
    )
)
# Processing tiers a body may ask for, per dialect: those billed at most at the standard price the
# upstream's prices describe. OpenAI's "priority" (and any tier the gateway does not know) bills
# the platform's account more than every reservation and receipt assumes, so it is refused.
SERVICE_TIERS = {"openai": ("auto", "default", "flex"), "anthropic": ("auto", "standard_only")}


@dataclass
class CallShape:
    model: str
    stream: bool
    max_output_tokens: int  # worst case the call can produce (every output, every prompt)
    input_token_bound: int  # never fewer than the real input tokens
    body: bytes  # the body to forward (possibly rewritten)
    rewritten: bool
    user: str | None = None  # the end user the app names (OpenAI 'user', Anthropic metadata.user_id)
    alias: str | None = None  # the name the client used when it was an alias of ``model``
    model_in_path: bool = False  # Gemini: the provider path names the model, the body does not


def resolved(shape: CallShape, model: str) -> CallShape:
    """``shape`` for the catalog model an alias resolved to: the body forwarded names ``model``
    (the provider knows no aliases), and ``alias`` keeps the client's name for the receipt."""
    if model == shape.model:
        return shape
    if shape.model_in_path:  # the provider path is built from shape.model (provider_path)
        return replace(shape, model=model, alias=shape.model)
    doc = orjson.loads(shape.body)
    doc["model"] = model
    return replace(shape, model=model, body=dump_body(doc), rewritten=True, alias=shape.model)


def _bounded_int(doc: dict[str, Any], name: str, top: int, what: str) -> int | None:
    v = doc.get(name)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= top:
        raise BadRequest(400, "request.invalid", f"'{name}' must be an integer from 1 to {top} ({what})")
    return v


def _output_limit(endpoint: str, doc: dict[str, Any], default_max_output: int) -> tuple[int, bool]:
    """(per-output cap, body changed): exactly one limit field is left in ``doc``, the one reserved.

    A body may name at most one of its dialect's limit fields (OpenAI chat takes both
    ``max_tokens`` and ``max_completion_tokens``; a provider given both may honour
    either, so the gateway cannot know which to reserve). Limit fields set to null
    are dropped, so the provider sees only the field the reservation used.
    """
    allowed = LIMIT_FIELDS[endpoint]
    changed = False
    for f in ALL_LIMIT_FIELDS:
        if f in doc and doc[f] is None:
            del doc[f]
            changed = True
    foreign = [f for f in ALL_LIMIT_FIELDS if f in doc and f not in allowed]
    if foreign:
        raise BadRequest(
            400,
            "request.invalid",
            f"'{foreign[0]}' is not an output limit of {endpoint}; use {' or '.join(repr(a) for a in allowed)}",
        )
    present = [f for f in allowed if f in doc]
    if len(present) > 1:
        raise BadRequest(
            400,
            "request.invalid",
            "set only one output limit: "
            + " and ".join(f"'{f}'" for f in present)
            + " were both given, and the provider could honour either",
        )
    if not present:
        doc[allowed[0]] = default_max_output
        return default_max_output, True
    # Never None: the field is present and null limit fields were dropped above.
    cap = cast(int, _bounded_int(doc, present[0], MAX_OUTPUT_TOKENS, "the output token limit"))
    return cap, changed


def _outputs(endpoint: str, doc: dict[str, Any]) -> int:
    """How many outputs the provider generates, and bills, for one request.

    OpenAI chat returns ``n`` choices; legacy completions generate ``best_of`` per
    prompt server-side (billed, even though only ``n`` are returned) and answer each
    prompt of a ``prompt`` list separately. Anthropic messages have no multiplier.
    """
    if endpoint == "messages":
        return 1
    n = _bounded_int(doc, "n", MAX_N, "choices per prompt") or 1
    if endpoint == "chat.completions":
        return n
    best_of = _bounded_int(doc, "best_of", MAX_BEST_OF, "completions generated per prompt") or 1
    prompt = doc.get("prompt")
    # A list of strings or of token lists is several prompts; a list of ints is one tokenized prompt.
    prompts = (
        len(prompt)
        if isinstance(prompt, list)
        and prompt
        and not all(isinstance(p, int) and not isinstance(p, bool) for p in prompt)
        else 1
    )
    return max(n, best_of) * prompts


def dump_body(doc: dict[str, Any]) -> bytes:
    """A rewritten body. orjson leaves DEL (0x7f) unescaped, and the ext_authz transport returns the
    body in an HTTP header, where it is a forbidden control character (Envoy refused the whole
    check: a 503). DEL is only valid inside a JSON string, so its escape is the same JSON."""
    return orjson.dumps(doc).replace(b"\x7f", b"\\u007f")


MAX_CANDIDATES = 8  # Gemini's own cap on candidateCount
_GEMINI_DECISIVE = tuple(
    f'"{k}"'.encode()
    for k in ("generationConfig", "maxOutputTokens", "candidateCount", "thinkingConfig", "thinkingBudget")
)


def _gemini(route: Route, doc: dict[str, Any], raw: bytes, default_max_output: int) -> CallShape:
    """A generateContent body: ``generationConfig.maxOutputTokens`` is the output limit (added as
    the workspace default when absent), times ``candidateCount``; thinking tokens are billed as
    output and Google does not say one ceiling covers both, so the worst case adds
    ``thinkingConfig.thinkingBudget`` when one is set, else as much again as the output limit."""
    if "contents" not in doc:
        raise BadRequest(400, "request.invalid", "'contents' is required")
    cfg = doc.get("generationConfig")
    if cfg is None:
        cfg = doc["generationConfig"] = {}
    if not isinstance(cfg, dict):
        raise BadRequest(400, "request.invalid", "'generationConfig' must be an object")
    rewritten = False
    if cfg.get("maxOutputTokens") is None:
        cfg["maxOutputTokens"] = default_max_output
        rewritten = True
    cap = cast(int, _bounded_int(cfg, "maxOutputTokens", MAX_OUTPUT_TOKENS, "the output token limit"))
    n = _bounded_int(cfg, "candidateCount", MAX_CANDIDATES, "candidates per request") or 1
    thinking = cfg.get("thinkingConfig")
    if thinking is not None and not isinstance(thinking, dict):
        raise BadRequest(400, "request.invalid", "'generationConfig.thinkingConfig' must be an object")
    budget = (thinking or {}).get("thinkingBudget")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < -1):
        raise BadRequest(400, "request.invalid", "'thinkingBudget' must be an integer, -1 for dynamic")
    think = budget if budget is not None and budget >= 0 else cap
    if not rewritten and (b"\\u" in raw or any(raw.count(k) > 1 for k in _GEMINI_DECISIVE)):
        rewritten = True  # possibly duplicated keys: forward what was parsed (see _DECISIVE)
    body = dump_body(doc) if rewritten else raw
    return CallShape(route.model, route.stream, (cap + think) * n, len(raw), body, rewritten, model_in_path=True)


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, else the 400 every dialect answers."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest(400, "request.invalid_json", f"request body is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadRequest(400, "request.invalid", "request body must be a JSON object")
    return doc


def parse_body(endpoint: str, raw: bytes, default_max_output: int, route: Route | None = None) -> CallShape:
    """Validate a request body and work out its worst-case size.

    The input bound is the body's byte length: a BPE token spans at least one
    byte of text and the JSON framing covers per-message overhead, so the
    bound cannot undershoot. The output bound is every output the request can
    produce: the one output limit the body names (the gateway adds ``max_tokens``,
    the workspace default, when it names none) times the outputs generated
    (``n``, ``best_of``, several prompts), plus a chat ``prediction`` (rejected
    prediction tokens are billed as output). OpenAI streams are asked to end
    with a usage chunk.
    """
    doc = json_object(raw)
    if endpoint == GEMINI:
        assert route is not None and route.model, "a Gemini path names its model"
        return _gemini(route, doc, raw, default_max_output)
    model = doc.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise BadRequest(400, "request.invalid", "'model' must be a non-empty string")
    stream = doc.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest(400, "request.invalid", "'stream' must be a boolean")
    if stream and endpoint == "embeddings":
        raise BadRequest(400, "request.invalid", "embeddings cannot be streamed")
    tier = doc.get("service_tier")
    tiers = SERVICE_TIERS[DIALECT[endpoint][0]]
    if tier is not None and tier not in tiers:
        raise BadRequest(
            400,
            "request.invalid",
            "'service_tier' must be one of "
            + ", ".join(repr(t) for t in tiers)
            + " (a tier priced above the standard rate is not offered)",
        )
    rewritten = False
    if endpoint == "embeddings":
        max_out = 0
    else:
        cap, rewritten = _output_limit(endpoint, doc, default_max_output)
        max_out = cap * _outputs(endpoint, doc)
        if endpoint == "chat.completions" and doc.get("prediction") is not None:
            max_out += len(orjson.dumps(doc["prediction"]))  # bytes >= tokens
        if stream and endpoint in ("chat.completions", "completions"):
            opts = doc.get("stream_options")
            if opts is None:
                opts = doc["stream_options"] = {}
            if not isinstance(opts, dict):
                raise BadRequest(400, "request.invalid", "'stream_options' must be an object")
            if opts.get("include_usage") is not True:
                opts["include_usage"] = True
                rewritten = True
    # Every endpoint, embeddings too (their model decides scope and price just the same).
    if not rewritten and (b"\\u" in raw or any(raw.count(k) > 1 for k in _DECISIVE)):
        rewritten = True  # possibly duplicated keys: forward what was parsed, see _DECISIVE
    body = dump_body(doc) if rewritten else raw
    user = doc.get("user")
    if user is None and isinstance(doc.get("metadata"), dict):
        user = doc["metadata"].get("user_id")
    if not isinstance(user, str) or not user or len(user) > 256:
        user = None
    return CallShape(model, stream, max_out, len(raw), body, rewritten, user)


# Converse fields that decide the reservation or the price; a body repeating one is re-serialized.
_BEDROCK_DECISIVE = tuple(
    f'"{k}"'.encode()
    for k in (
        *ALL_LIMIT_FIELDS,
        "inferenceConfig",
        "maxTokens",
        "additionalModelRequestFields",
        "performanceConfig",
        "serviceTier",
        "anthropic_version",
        "max_gen_len",
        "prompt",
        "modelId",
        "model",
        "stream",
    )
)
# Output limits some Bedrock model family honours inside Converse's additionalModelRequestFields
# (Anthropic, Meta, Amazon Titan, Cohere, Mistral): the only output limit is inferenceConfig.maxTokens.
_BEDROCK_FOREIGN_LIMITS = (*ALL_LIMIT_FIELDS, "maxTokens", "max_gen_len", "maxTokenCount", "max_new_tokens")
BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
# Bedrock's cross-region inference profile prefixes in front of a model id ("eu.anthropic.claude-...").
_GEO_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "ca.", "global.")


def model_family(model: str) -> str:
    """The provider part of a Bedrock model id: 'anthropic' for eu.anthropic.claude-..."""
    for p in _GEO_PREFIXES:
        if model.startswith(p):
            model = model[len(p) :]
            break
    return model.split(".", 1)[0]


def parse_bedrock(route: Route, raw: bytes, default_max_output: int) -> CallShape:
    """A Bedrock call's body: the model comes from the path, the one output limit is
    ``inferenceConfig.maxTokens`` (Converse) or ``max_tokens`` (InvokeModel, Anthropic models
    and Meta Llama models only; Llama's is ``max_gen_len``), added with the workspace default when
    absent, as for the other dialects."""
    doc = json_object(raw)
    stream = BEDROCK_OPERATIONS[route.operation][1]
    for k in ("modelId", "model", "stream"):
        if k in doc:
            raise BadRequest(
                400,
                "request.invalid",
                f"'{k}' does not belong in a Bedrock body: the path names the model and the operation",
            )
    rewritten = False
    if route.endpoint == "bedrock.converse":
        foreign = [f for f in _BEDROCK_FOREIGN_LIMITS if f in doc]
        if foreign:
            raise BadRequest(
                400,
                "request.invalid",
                f"'{foreign[0]}' is not an output limit of Converse; use 'inferenceConfig.maxTokens'",
            )
        extra = doc.get("additionalModelRequestFields")
        if extra is not None:
            if not isinstance(extra, dict):
                raise BadRequest(400, "request.invalid", "'additionalModelRequestFields' must be an object")
            foreign = [f for f in _BEDROCK_FOREIGN_LIMITS if f in extra]
            if foreign:
                raise BadRequest(
                    400,
                    "request.invalid",
                    f"'additionalModelRequestFields.{foreign[0]}' would set a second output limit; "
                    "use 'inferenceConfig.maxTokens'",
                )
        perf = doc.get("performanceConfig")
        if perf is not None and (not isinstance(perf, dict) or perf.get("latency", "standard") != "standard"):
            raise BadRequest(
                400,
                "request.invalid",
                "'performanceConfig.latency' must be 'standard' (a tier priced above the standard rate is not offered)",
            )
        tier = doc.get("serviceTier")
        if tier is not None and (not isinstance(tier, dict) or tier.get("type") not in ("default", "flex")):
            raise BadRequest(
                400,
                "request.invalid",
                "'serviceTier.type' must be 'default' or 'flex' (a tier priced above the standard rate is not offered)",
            )
        cfg = doc.get("inferenceConfig")
        if cfg is None:
            cfg = doc["inferenceConfig"] = {}
        if not isinstance(cfg, dict):
            raise BadRequest(400, "request.invalid", "'inferenceConfig' must be an object")
        if cfg.get("maxTokens") is None:
            cfg["maxTokens"] = default_max_output
            rewritten = True
        max_out = cast(int, _bounded_int(cfg, "maxTokens", MAX_OUTPUT_TOKENS, "the output token limit"))
    else:
        family = model_family(route.model)
        if family == "meta":  # Llama: {"prompt", "max_gen_len", ...}
            foreign = [f for f in _BEDROCK_FOREIGN_LIMITS if f in doc and f != "max_gen_len"]
            if foreign:
                raise BadRequest(
                    400, "request.invalid", f"'{foreign[0]}' is not an output limit of Llama; use 'max_gen_len'"
                )
            if not isinstance(doc.get("prompt"), str):
                raise BadRequest(400, "request.invalid", "a Llama body needs 'prompt', a string")
            if doc.get("max_gen_len") is None:
                doc["max_gen_len"] = default_max_output
                rewritten = True
            max_out = cast(int, _bounded_int(doc, "max_gen_len", MAX_OUTPUT_TOKENS, "the output token limit"))
        elif family == "anthropic":
            if doc.get("anthropic_version") != BEDROCK_ANTHROPIC_VERSION:
                raise BadRequest(400, "request.invalid", f"'anthropic_version' must be '{BEDROCK_ANTHROPIC_VERSION}'")
            max_out, rewritten = _output_limit("messages", doc, default_max_output)
        else:
            raise BadRequest(
                400,
                "request.invalid",
                f"InvokeModel takes Anthropic and Meta Llama models here ({route.model} is a {family} model); "
                "use Converse (POST .../model/{modelId}/converse), which speaks every model family",
            )
    if not rewritten and (b"\\u" in raw or any(raw.count(k) > 1 for k in _BEDROCK_DECISIVE)):
        rewritten = True  # possibly duplicated keys: forward what was parsed, see _DECISIVE
    body = dump_body(doc) if rewritten else raw
    return CallShape(route.model, stream, max_out, len(raw), body, rewritten, model_in_path=True)


def error_body(code: str, message: str, receipt_id: str, aws: bool = False) -> bytes:
    """The gateway's error body. ``aws``: a Bedrock path's, with the message also at the top level,
    where botocore reads it (the error code travels in the x-amzn-errortype header)."""
    doc: dict[str, Any] = {"error": {"code": code, "message": message, "receipt_id": receipt_id}}
    if aws:
        doc["message"] = message
    return orjson.dumps(doc)


# Replies Envoy makes itself: defined by the contract (relaygate/contract/envoy.py).
from relaygate.contract.envoy import ENVOY_PRE_DECISION, envoy_reply_template  # noqa: E402


def envoy_reply_body(status: int, receipt_id: str) -> bytes | None:
    """The exact body Envoy sent for a reply it made before any decision (413, 429, 504...), else None.

    Such replies never pass the response filters that digest bodies, so the
    receipt's response digest is computed from the same template Envoy used.
    """
    if status in ENVOY_PRE_DECISION:
        _, code, message = ENVOY_PRE_DECISION[status]
        return envoy_reply_template(code, message, receipt_id).encode()
    return None
