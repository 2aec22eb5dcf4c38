"""Envoy configuration for a gateway: resources (for the ADS server) and bootstraps.

One listener, one ext_proc filter (fail closed) that sees request headers and
the buffered request body, json_to_metadata and sse_to_metadata filters that
lift usage out of responses without an ext_proc round trip, a gRPC access log
that carries each finished call to the settler, and one cluster per upstream.
Routing: ext_proc sets ``x-relaygate-upstream``; each upstream has a route
matching it exactly, and anything else ends in a 502 (never an upstream).
"""

from __future__ import annotations

import json
import re
import os
from dataclasses import dataclass
from pathlib import Path

from relaygate.contract.config import GatewayConfig
from relaygate.contract.preauth import PreAuthLimits
from relaygate.contract.envoy import (
    AUTHZ_BODY_HEADER,
    AUTHZ_DENIED_DETAILS,
    AUTHZ_DENY_5XX,
    AUTHZ_PATH_HEADER,
    AUTHZ_PREFIX,
    AUTHZ_STATUS_HEADER,
    AWS_ERROR_HEADER,
    ENVOY_REPLIES,
    NAMESPACE,
    PREAUTH_HEADER,
    RECEIPT_HEADER,
    RECEIPT_ID_ENVOY_FORMAT,
    UPSTREAM_HEADER,
    USAGE_NAMESPACE,
    envoy_reply_template,
)

T = "type.googleapis.com/"

# (json path in the response, metadata key). Same selectors serve JSON bodies
# and SSE events: OpenAI usage.{prompt,completion}_tokens (last stream chunk),
# Anthropic usage.{input,output}_tokens and message_start's message.usage.
USAGE_RULES = [
    (["usage", "prompt_tokens"], "prompt_tokens", "NUMBER"),
    (["usage", "completion_tokens"], "completion_tokens", "NUMBER"),
    (["usage", "input_tokens"], "input_tokens", "NUMBER"),
    (["usage", "output_tokens"], "output_tokens", "NUMBER"),
    (["message", "usage", "input_tokens"], "input_tokens", "NUMBER"),
    # Anthropic prompt caching: cached prompt tokens are reported apart from input_tokens, and
    # billed too; the settler adds them (a cache_control'd prompt otherwise settled as ~0 input).
    (["usage", "cache_creation_input_tokens"], "cache_creation_input_tokens", "NUMBER"),
    (["usage", "cache_read_input_tokens"], "cache_read_input_tokens", "NUMBER"),
    (["message", "usage", "cache_creation_input_tokens"], "cache_creation_input_tokens", "NUMBER"),
    (["message", "usage", "cache_read_input_tokens"], "cache_read_input_tokens", "NUMBER"),
    (["model"], "model", "STRING"),
    (["message", "model"], "model", "STRING"),
    # Gemini (generateContent; each streamed chunk repeats the running counts, the last one wins).
    # Thinking tokens are billed as output; tool-use prompt tokens as input. The settler adds them.
    (["usageMetadata", "promptTokenCount"], "gemini_prompt_tokens", "NUMBER"),
    (["usageMetadata", "toolUsePromptTokenCount"], "gemini_tool_prompt_tokens", "NUMBER"),
    (["usageMetadata", "candidatesTokenCount"], "gemini_candidates_tokens", "NUMBER"),
    (["usageMetadata", "thoughtsTokenCount"], "gemini_thoughts_tokens", "NUMBER"),
    (["modelVersion"], "model", "STRING"),
    # Bedrock Converse: usage.{inputTokens,outputTokens} (its event streams: response_digest.lua);
    # InvokeModel answers in the model's own shape (Anthropic's, above; Llama's, below).
    (["usage", "inputTokens"], "input_tokens", "NUMBER"),
    (["usage", "outputTokens"], "output_tokens", "NUMBER"),
    (["usage", "cacheReadInputTokens"], "cache_read_input_tokens", "NUMBER"),
    (["usage", "cacheWriteInputTokens"], "cache_creation_input_tokens", "NUMBER"),
    # Bedrock InvokeModel of a Meta Llama model
    (["prompt_token_count"], "input_tokens", "NUMBER"),
    (["generation_token_count"], "output_tokens", "NUMBER"),
]


RECEIPT_ID = RECEIPT_ID_ENVOY_FORMAT
# Request headers removed by the route on the way to a provider: the routing header, and those
# the connection manager added about the client (its address, scheme, internal/external mark).
FORWARD_STRIP = [
    UPSTREAM_HEADER,
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-client-cert",
    "x-envoy-external-address",
    "x-envoy-internal",
    "x-envoy-original-path",
]
LISTENER_NAME = ROUTE_NAME = "gateway"
RESPONSE_DIGEST_LUA = (Path(__file__).resolve().parent / "response_digest.lua").read_text()
PREAUTH_GUARD_LUA = (Path(__file__).resolve().parent / "preauth_guard.lua").read_text()
SUSPECT_HEADER = "x-relaygate-suspect"  # set by the guard only (it removes a client's)
# Provider response headers a client may see; everything else is removed. Providers describe the
# account a call was billed to on every response (OpenAI-Organization/-Project, account-wide
# x-ratelimit-* / anthropic-ratelimit-*, anthropic-organization-id, edge cookies): behind a
# gateway that account is the platform's, shared by every tenant. retry-after and the SDKs'
# retry hints stay so clients back off as the provider asks.
RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "date",
    "cache-control",
    "vary",
    "server",
    "connection",
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "allow",  # on a 405 (the policy service's)
    # Bedrock: the request id and error type boto3 reports, the content type of an invocation's
    # body and InvokeModel's token counts (this call's, not the account's)
    "x-amzn-requestid",
    "x-amzn-errortype",
    "x-amzn-bedrock-content-type",
    "x-amzn-bedrock-input-token-count",
    "x-amzn-bedrock-output-token-count",
    RECEIPT_HEADER,
    # the policy service's pre-auth mark: Envoy's local replies pass every encoder
    # filter, and the guard (last on the way out) counts and removes it
    PREAUTH_HEADER,
)


def _call_filter(apply_authz: bool) -> dict:
    """The gateway's one Lua filter after the policy filter (each Lua filter costs Envoy about
    0.06-0.1 ms of CPU per call whatever it does, so these share one; docs/performance.md):

    - request, ext_authz transport only: apply what the check decided (AUTHZ_APPLY_LUA);
    - response: keep only RESPONSE_HEADERS (and pseudo-headers) of what goes back to a client,
      then hash the body as it streams (response_digest.lua). On the way out the usage filters
      after this one in the chain run first, so they still read the provider's headers."""
    allowed = ", ".join(f'["{h}"] = true' for h in RESPONSE_HEADERS)
    lua = (
        RESPONSE_DIGEST_LUA
        + ("\n" + AUTHZ_APPLY_LUA if apply_authz else "")
        + "local ALLOWED = {" + allowed + "}\n"
        "function envoy_on_response(handle)\n"
        "  local h, drop = handle:headers(), {}\n"
        "  for k, _ in pairs(h) do\n"
        "    if string.sub(k, 1, 1) ~= ':' and not ALLOWED[k] then drop[#drop + 1] = k end\n"
        "  end\n"
        "  for _, k in ipairs(drop) do h:remove(k) end\n"
        "  response_digest(handle)\n"
        "end\n"
    )  # fmt: skip
    return {
        "name": "relaygate.call",
        "typed_config": {
            "@type": T + "envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": lua},
        },
    }


def _error_body(code: str, message: str, receipt: bool = True) -> dict:
    body = envoy_reply_template(code, message, RECEIPT_ID if receipt else None)
    return {"text_format_source": {"inline_string": body}, "content_type": "application/json"}


TRANSPORTS = ("extproc", "authz-http")
# After ext_authz: the provider path and a rewritten body the check returned (ext_authz cannot set
# :path or the body itself); nothing happens on calls the check did not route. Part of _call_filter.
AUTHZ_APPLY_LUA = f"""
function envoy_on_request(handle)
  local h = handle:headers()
  local path = h:get("{AUTHZ_PATH_HEADER}")
  if path == nil then return end
  h:remove("{AUTHZ_PATH_HEADER}")
  h:replace(":path", path)
  local md = handle:streamInfo():dynamicMetadata():get("envoy.filters.http.ext_authz")
  local new = md and md["{AUTHZ_BODY_HEADER}"]
  if new ~= nil then
    handle:body():setBytes(new)
    -- body() waited for the whole body: the header map fetched before it is out of scope now
    handle:headers():replace("content-length", tostring(#new))
  end
end
"""


def _exact(*names: str) -> dict:
    return {"patterns": [{"exact": n} for n in names]}


def _authz_filters(cfg: GatewayConfig, message_timeout_ms: int) -> list[dict]:
    """ext_authz over HTTP to the policy service's check server, and the Lua filter that applies
    what the check decided (relaygate/extproc/authz_http.py, relaygate/contract/envoy.py AUTHZ_*)."""
    authz = {
        "@type": T + "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        "transport_api_version": "V3",
        "failure_mode_allow": False,
        "status_on_error": {"code": 503},
        "clear_route_cache": True,
        # The whole body or nothing: a larger one is Envoy's 413, like ext_proc's buffer limit.
        "with_request_body": {
            "max_request_bytes": cfg.max_body_bytes,
            "allow_partial_message": False,
            "pack_as_bytes": True,
        },
        # Every client header goes to the check: it decides which of them reach the provider.
        "allowed_headers": {"patterns": [{"safe_regex": {"regex": ".*"}}]},
        "http_service": {
            "server_uri": {
                "uri": "http://policy",
                "cluster": "policy_http",
                "timeout": f"{message_timeout_ms / 1000:.3f}s",
            },
            "path_prefix": AUTHZ_PREFIX,
            "authorization_response": {
                # x-amz-* and content-type: a Bedrock upstream's SigV4 headers (the signature covers them)
                "allowed_upstream_headers": _exact(
                    UPSTREAM_HEADER,
                    AUTHZ_PATH_HEADER,
                    "authorization",
                    "x-api-key",
                    "x-goog-api-key",
                    "x-amz-date",
                    "x-amz-content-sha256",
                    "x-amz-security-token",
                    "content-type",
                ),
                "allowed_client_headers": _exact(
                    "content-type",
                    RECEIPT_HEADER,
                    "retry-after",
                    "allow",
                    AUTHZ_STATUS_HEADER,
                    PREAUTH_HEADER,
                    AWS_ERROR_HEADER,
                ),
                "dynamic_metadata_from_headers": _exact(AUTHZ_BODY_HEADER),
            },
        },
    }
    return [{"name": "envoy.filters.http.ext_authz", "typed_config": authz}]


def _cel(expr: str) -> dict:
    return {
        "extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": T + "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                "expression": expr,
            },
        }
    }


def _authz_reply_mappers() -> list[dict]:
    """The check's denials already have our shape: a 5xx sent as 418 gets its status back, the rest
    are left alone (first match wins, before the mappers for Envoy's own replies)."""
    denied = f"response.code_details == '{AUTHZ_DENIED_DETAILS}'"
    restore = [
        {
            "filter": _cel(
                f"{denied} && response.code == {AUTHZ_DENY_5XX} && "
                f"response.headers['{AUTHZ_STATUS_HEADER}'] == '{code}'"
            ),
            "status_code": code,
        }  # fmt: skip
        for code in (200, 500, 503)  # 200: a reply the service answers itself (the model list)
    ]
    return [*restore, {"filter": _cel(denied)}]


def _local_reply_config() -> dict:
    def flags(*names):
        return {"response_flag_filter": {"flags": list(names)}}

    def status(code, op="EQ"):
        return {
            "status_code_filter": {
                "comparison": {"op": op, "value": {"default_value": code, "runtime_key": "relaygate_unused"}}
            }
        }

    def mapper(filt, kind, receipt=True, keep_status=False):
        code, err, message = ENVOY_REPLIES[kind]
        m = {"filter": filt, "body_format_override": _error_body(err, message, receipt)}
        if not keep_status:
            m["status_code"] = code
        if receipt:
            m["headers_to_add"] = [
                {"header": {"key": RECEIPT_HEADER, "value": RECEIPT_ID}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            ]
        return m

    # Every reply Envoy makes itself (local replies only: upstream responses never reach these
    # mappers) gets the JSON error shape and the receipt id; the first matching mapper wins.
    # Flags name upstream failures of a forwarded call; a reply made before any decision is
    # told apart by its status alone (ext_proc's message timeout sets no flag, only 504), and
    # the settler drafts its receipt from the access log with the same code (ENVOY_PRE_DECISION).
    return {
        "mappers": [
            # Replies the policy service made itself already have our shape: leave them alone.
            {
                "filter": {
                    "metadata_filter": {
                        "matcher": {"filter": NAMESPACE, "path": [{"key": "denied"}], "value": {"present_match": True}},
                        "match_if_key_not_found": False,
                    }
                }
            },
            mapper(flags("UT"), "timeout"),
            mapper(flags("UF", "UH", "UO", "URX"), "unavailable"),
            mapper(flags("UC", "UR", "UPE"), "upstream_error"),
            mapper(flags("NR"), "misrouted"),
            mapper(status(502), "misrouted"),  # the unrouted direct_response
            mapper(status(413), "too_large"),
            mapper(status(429), "rate_limited"),  # the pre-auth local rate limit (RL is set after the reply)
            mapper(status(504), "policy_timeout"),  # ext_proc message timeout: the policy service stalled
            # The policy service is down (ext_proc fails closed): nothing decided; the receipt is
            # drafted from the access log if the settler gets the entry.
            mapper(status(503), "policy_down"),
            mapper(status(400), "bad_request"),
            mapper(status(408), "request_timeout"),
            mapper(status(431), "headers_too_large"),
            # Anything else Envoy answers itself (resets, overflow, ...): keep its status.
            mapper(status(0, "GE"), "gateway_error", keep_status=True),
        ]
    }


def _usage_rules(sse: bool) -> list[dict]:
    rules = []
    for path, key, typ in USAGE_RULES:
        rule = {
            "selectors": [{"key": k} for k in path],
            "on_present": {"metadata_namespace": USAGE_NAMESPACE, "key": key, "type": typ},
        }
        rules.append({"rule": rule} if sse else rule)
    return rules


def _preauth_filters(lim: PreAuthLimits) -> list[dict]:
    """Before ext_proc: mark addresses that send junk, and throttle only those (relaygate/contract/preauth.py).

    A local rate limit on every call per address would throttle a busy authenticated caller
    too, and Envoy cannot know before the policy service whether a key is good. So the Lua
    guard remembers which addresses recently got many pre-auth denials and tags their calls;
    the local rate limit's per-address buckets (dynamic descriptors on remote_address) apply
    to tagged calls only; untagged calls match no descriptor and pass.
    """
    if not lim.enabled:
        return []
    lua = (
        f"local STRIKES, PENALTY, MAX_ADDRS = {lim.strikes_per_second}, {lim.penalty_seconds}, "
        f"{lim.max_tracked_addresses}\n"
    ) + PREAUTH_GUARD_LUA
    bucket = {"max_tokens": lim.burst, "tokens_per_fill": lim.requests_per_second, "fill_interval": "1s"}
    always = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "relaygate.preauth"}
    return [
        {
            "name": "relaygate.preauth_guard",
            "typed_config": {
                "@type": T + "envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string": lua},
            },
        },
        {
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": {
                "@type": T + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                "stat_prefix": "preauth",
                # Untagged calls fall to this default bucket, never consumed when a descriptor
                # matches and far too large to run out: they are not limited.
                "token_bucket": {"max_tokens": 1_000_000_000, "tokens_per_fill": 1_000_000_000, "fill_interval": "1s"},
                "always_consume_default_token_bucket": False,
                "filter_enabled": always,
                "filter_enforced": always,
                "max_dynamic_descriptors": lim.max_tracked_addresses,
                "rate_limits": [
                    {
                        "actions": [
                            {"request_headers": {"header_name": SUSPECT_HEADER, "descriptor_key": "suspect"}},
                            {"remote_address": {}},
                        ]
                    }
                ],
                "descriptors": [
                    {"entries": [{"key": "suspect", "value": "1"}, {"key": "remote_address"}], "token_bucket": bucket}
                ],
                # The bucket refills every second: a well-behaved client retries after that.
                "response_headers_to_add": [
                    {"header": {"key": "retry-after", "value": "1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                ],
            },
        },
    ]


def route_config(cfg: GatewayConfig) -> dict:
    """One route per upstream, matched on the header the policy service sets; else a 502."""
    routes = [
        {
            "name": u.name,
            "match": {"prefix": "/", "headers": [{"name": UPSTREAM_HEADER, "string_match": {"exact": u.name}}]},
            # The provider's own name, always: auto_host_rewrite leaves an IP-addressed upstream
            # the client's Host, so a virtual host in front of such a provider was the client's pick.
            "route": {"cluster": u.cluster, "timeout": "300s", "host_rewrite_literal": _host_header(u)},
        }
        for u in cfg.upstreams
    ]
    routes.append(
        {
            "name": "unrouted",
            "match": {"prefix": "/"},
            "direct_response": {"status": 502, "body": {"inline_string": ""}},
        }
    )
    return {
        "name": ROUTE_NAME,
        "virtual_hosts": [
            {
                "name": "gateway",
                "domains": ["*"],
                "routes": routes,
                # Applied by the router after the route matched: the routing header and what Envoy
                # itself added about the client never reach a provider (ext_proc strips the
                # client's own headers to the upstream's allow-list, relaygate/contract/config.py).
                "request_headers_to_remove": FORWARD_STRIP,
                "response_headers_to_add": [
                    {
                        "header": {"key": RECEIPT_HEADER, "value": RECEIPT_ID},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    }
                ],
            }
        ],
    }


TRACING_CLUSTER = "otel_collector"


@dataclass(frozen=True)
class Tracing:
    """Envoy's OpenTelemetry tracer: a trace per call (sampled at ``sampling`` percent) with the
    policy check's span as a child, whose context the check carries to the policy service in
    ``traceparent``; spans go over OTLP/gRPC to ``endpoint`` (``HOST:PORT`` or ``http://HOST:PORT``,
    plaintext; ``https://HOST:PORT``: TLS against the system CA bundle). The sidecar adds its
    ``relaygate.decide`` span to the same trace (relaygate/extproc/tracing.py)."""

    endpoint: str  # "": the collector's cluster is in the bootstrap (a listener rendered over xDS)
    sampling: float = 100.0
    service_name: str = "relaygate-envoy"

    def __post_init__(self) -> None:
        host, port = self.address
        if self.endpoint and (not host or not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError(f"OTLP endpoint {self.endpoint!r}: expected HOST:PORT or http(s)://HOST:PORT")
        if not 0 <= self.sampling <= 100:
            raise ValueError(f"trace sampling {self.sampling}: a percentage from 0 to 100")

    @property
    def tls(self) -> bool:
        return self.endpoint.startswith("https://")

    @property
    def address(self) -> tuple[str, str]:
        rest = self.endpoint.split("://", 1)[1] if "://" in self.endpoint else self.endpoint
        host, _, port = rest.rstrip("/").rpartition(":")
        return host.strip("[]"), port

    def metadata(self) -> dict:
        """What an xDS gateway's node metadata says of its tracing (the control plane renders the
        listener's tracing from it; the collector's cluster is in the bootstrap)."""
        return {"sampling": self.sampling, "service_name": self.service_name}

    @classmethod
    def from_metadata(cls, meta: dict) -> "Tracing":
        return cls("", float(meta.get("sampling", 100.0)), str(meta.get("service_name", "relaygate-envoy")))


def _tracing(t: Tracing) -> dict:
    """The connection manager's tracing: Envoy's OpenTelemetry tracer towards TRACING_CLUSTER."""
    return {
        "random_sampling": {"value": t.sampling},
        "spawn_upstream_span": True,  # the provider call is a span of its own, apart from the check
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": T + "envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": {"envoy_grpc": {"cluster_name": TRACING_CLUSTER}, "timeout": "1s"},
                "service_name": t.service_name,
            },
        },
    }


def _tracing_cluster(t: Tracing) -> dict:
    """OTLP/gRPC to the collector: HTTP/2, resolved by DNS unless an address."""
    host, port = t.address
    c = _extproc_cluster(TRACING_CLUSTER, [f"{host}:{port}"])
    if not _is_ip(host):
        c["type"] = "STRICT_DNS"
    if t.tls:
        c["transport_socket"] = upstream_tls_to(host, AdsTls(SYSTEM_CA_BUNDLE), ["h2"])
    return c


def listener(
    cfg: GatewayConfig,
    host: str,
    port: int,
    *,
    rds: bool = False,
    message_timeout_ms: int = 2000,
    tls: str = "",
    transport: str = "extproc",
    tracing: Tracing | None = None,
) -> dict:
    """The gateway listener; with ``rds`` its routes come over xDS instead of inline.

    ``tracing``: Envoy's OpenTelemetry tracer (its collector cluster comes from the bootstrap).

    ``tls``: "" (plaintext), "server" (HTTPS) or "mutual" (HTTPS that requires a client
    certificate); see downstream_tls.
    """
    grpc_service = {"envoy_grpc": {"cluster_name": "extproc"}, "timeout": "5s"}
    settler_service = {"envoy_grpc": {"cluster_name": "settler"}, "timeout": "5s"}
    hcm = {
        "@type": T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "gateway",
        "codec_type": "AUTO",
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "request_headers_timeout": "10s",
        "stream_idle_timeout": "300s",
        "use_remote_address": True,
        # Receipt ids derive from x-request-id: never take one from a client.
        "preserve_external_request_id": False,
        "internal_address_config": {"cidr_ranges": [{"address_prefix": "255.255.255.255", "prefix_len": 32}]},
        "access_log": [
            {
                "name": "envoy.access_loggers.http_grpc",
                "typed_config": {
                    "@type": T + "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
                    "common_config": {
                        "log_name": "relaygate",
                        "transport_api_version": "V3",
                        "grpc_service": settler_service,
                        "buffer_flush_interval": "0.05s",
                        # Also the cap on what Envoy holds while the settler is
                        # backed up; past it entries are dropped (logs_dropped), and
                        # the settler's sweep has to finish those receipts.
                        "buffer_size_bytes": 4 * 1024 * 1024,
                    },
                },
            }
        ],
        "local_reply_config": _local_reply_config(),
    }
    if tracing is not None:
        hcm["tracing"] = _tracing(tracing)
    if rds:
        hcm["rds"] = {"config_source": {"ads": {}, "resource_api_version": "V3"}, "route_config_name": ROUTE_NAME}
    else:
        hcm["route_config"] = route_config(cfg)
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
    if transport == "authz-http":
        policy = _authz_filters(cfg, message_timeout_ms)
        hcm["local_reply_config"]["mappers"][0:0] = _authz_reply_mappers()
    else:
        policy = [
            {
                "name": "envoy.filters.http.ext_proc",
                "typed_config": {
                    "@type": T + "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
                    "grpc_service": grpc_service,
                    "failure_mode_allow": False,
                    "status_on_error": {"code": 503},
                    "message_timeout": f"{message_timeout_ms / 1000:.3f}s",
                    "processing_mode": {
                        "request_header_mode": "SEND",
                        "request_body_mode": "BUFFERED",
                        "response_header_mode": "SKIP",
                        "response_body_mode": "NONE",
                        "request_trailer_mode": "SKIP",
                        "response_trailer_mode": "SKIP",
                    },
                    "metadata_options": {"receiving_namespaces": {"untyped": [NAMESPACE]}},
                    # The policy service may remove client-sent x-envoy-* headers too (header allow-list).
                    "mutation_rules": {"allow_envoy": True},
                },
            },
        ]
    hcm["http_filters"] = [
        *_preauth_filters(getattr(cfg, "preauth", None) or PreAuthLimits()),
        *policy,
        # The authz transport's apply step, the response header allow-list and the response
        # body's SHA-256 (the receipt's response subject), in one Lua filter.
        _call_filter(apply_authz=transport == "authz-http"),
        {
            "name": "envoy.filters.http.json_to_metadata",
            "typed_config": {
                "@type": T + "envoy.extensions.filters.http.json_to_metadata.v3.JsonToMetadata",
                "response_rules": {
                    "rules": _usage_rules(False),
                    "allow_content_types_regex": {"regex": "application/json.*"},
                },
            },
        },
        {
            "name": "envoy.filters.http.sse_to_metadata",
            "typed_config": {
                "@type": T + "envoy.extensions.filters.http.sse_to_metadata.v3.SseToMetadata",
                "response_rules": {
                    "content_parser": {
                        "name": "envoy.content_parsers.json",
                        "typed_config": {
                            "@type": T + "envoy.extensions.content_parsers.json.v3.JsonContentParser",
                            "rules": _usage_rules(True),
                        },
                    },
                    "max_event_size": 1048576,
                },
            },
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": T + "envoy.extensions.filters.http.router.v3.Router",
                "suppress_envoy_headers": True,
            },
        },  # no x-envoy-* headers towards providers
    ]
    return {
        "name": LISTENER_NAME,
        "address": {"socket_address": {"address": host, "port_value": port}},
        "per_connection_buffer_limit_bytes": cfg.max_body_bytes + 64 * 1024,
        "filter_chains": [
            {
                "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}],
                **({"transport_socket": downstream_tls(tls)} if tls else {}),
            }
        ],
    }


# Names of the bootstrap's static secrets (tls_secrets): listeners (static or from the control
# plane over LDS) refer to them by name, so a gateway's private key never leaves its host.
SERVER_CERT_SECRET = "relaygate_gateway_cert"
CLIENT_CA_SECRET = "relaygate_client_ca"
TLS_MODES = ("", "server", "mutual")


def downstream_tls(mode: str) -> dict:
    """The listener's DownstreamTlsContext: HTTPS with the bootstrap's certificate; "mutual" also
    requires a client certificate issued by the bootstrap's client CA. HTTP/1.1 by ALPN (what
    the SDKs speak; h2 prior knowledge still works through the AUTO codec)."""
    if mode not in TLS_MODES[1:]:
        raise ValueError(f"listener tls must be one of {TLS_MODES[1:]}, got {mode!r}")
    common = {
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
        "alpn_protocols": ["http/1.1"],
        "tls_certificate_sds_secret_configs": [{"name": SERVER_CERT_SECRET}],
    }
    ctx = {"@type": T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", "common_tls_context": common}
    if mode == "mutual":
        common["validation_context_sds_secret_config"] = {"name": CLIENT_CA_SECRET}
        ctx["require_client_certificate"] = True
    return {"name": "envoy.transport_sockets.tls", "typed_config": ctx}


@dataclass(frozen=True)
class ListenerTls:
    """Files (on the gateway's host) of the gateway listener's certificate; ``client_ca`` turns on mTLS."""

    cert: str
    key: str
    client_ca: str | None = None

    @property
    def mode(self) -> str:
        return "mutual" if self.client_ca else "server"


@dataclass(frozen=True)
class AdsTls:
    """How a gateway's Envoy reaches the control plane's xDS server: the CA that must have
    issued its certificate (pinned) and, for mTLS, the client certificate Envoy presents."""

    ca: str
    cert: str | None = None
    key: str | None = None


def tls_secrets(t: ListenerTls | None) -> list[dict]:
    if t is None:
        return []
    out = [
        {
            "name": SERVER_CERT_SECRET,
            "tls_certificate": {"certificate_chain": {"filename": t.cert}, "private_key": {"filename": t.key}},
        }
    ]
    if t.client_ca:
        out.append({"name": CLIENT_CA_SECRET, "validation_context": {"trusted_ca": {"filename": t.client_ca}}})
    return out


# The CAs a TLS upstream (a provider) is verified against unless it names its own ``ca_file``:
# the system bundle on the gateway's host (Debian/Ubuntu path, as in the Envoy images).
# Envoy verifies nothing without a trusted CA, so there is no "no CA" case.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def upstream_tls_to(host: str, t: AdsTls, alpn: list[str]) -> dict:
    """An UpstreamTlsContext that verifies the peer's chain against ``t.ca`` *and* its name:
    Envoy checks no SAN unless told to, so a certificate the CA issued to anyone else passes
    chain validation alone."""
    san = {"san_type": "IP_ADDRESS" if _is_ip(host) else "DNS", "matcher": {"exact": host}}
    common = {
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
        "validation_context": {"trusted_ca": {"filename": t.ca}, "match_typed_subject_alt_names": [san]},
    }
    if alpn:
        common["alpn_protocols"] = alpn
    if t.cert:
        common["tls_certificates"] = [{"certificate_chain": {"filename": t.cert}, "private_key": {"filename": t.key}}]
    ctx = {"@type": T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", "common_tls_context": common}
    if not _is_ip(host):
        ctx["sni"] = host
    return {"name": "envoy.transport_sockets.tls", "typed_config": ctx}


def clusters(
    cfg: GatewayConfig, extproc: list[str], *, eds: bool = False, authz: list[str] | None = None
) -> list[dict]:
    """The policy workers (all for decisions, the first for the access log) and one cluster per upstream.

    With ``authz`` (the workers' ext_authz HTTP addresses) decisions go there over HTTP/1.1 and
    the gRPC addresses take only the access log."""
    policy = [_policy_http_cluster(authz)] if authz else [_extproc_cluster("extproc", extproc)]
    return [
        *policy,
        _extproc_cluster("settler", extproc[:1]),
        *(_upstream_cluster(u, eds) for u in cfg.upstreams),
    ]


def endpoints(cfg: GatewayConfig) -> list[dict]:
    """ClusterLoadAssignments of the upstreams that take their endpoints over EDS."""
    return [load_assignment(u) for u in cfg.upstreams if _is_ip(u.host)]


@dataclass(frozen=True)
class Capture:
    """An app's provider traffic, redirected to the gateway by the pod's firewall (as a mesh's init
    container does): it names the provider's own path (``/v1/chat/completions``), not a
    workspace, so it is credited to the one workspace this sidecar serves."""

    port: int
    workspace: str
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.workspace):
            raise ValueError(f"capture workspace {self.workspace!r}: letters, digits, _ and - (at most 64)")


CAPTURE_LISTENER_NAME = "capture"
SELF_CLUSTER = "gateway_self"


def capture_listener(capture: Capture, gateway_port: int) -> dict:
    """Rewrites ``/<provider path>`` to ``/v1/<workspace>/<provider path>`` and hands the call to the
    gateway listener on loopback, so it meets every check a call made to the gateway meets (the
    key must still belong to that workspace; nothing here decides anything). Envoy rewrites a path
    only when it routes, after the filters, hence the hop instead of a path rewrite in place."""
    hcm = {
        "@type": T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "capture",
        "codec_type": "AUTO",
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "request_headers_timeout": "10s",
        "stream_idle_timeout": "300s",
        "route_config": {
            "name": CAPTURE_LISTENER_NAME,
            "virtual_hosts": [
                {
                    "name": "capture",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "route": {
                                "cluster": SELF_CLUSTER,
                                "prefix_rewrite": f"/v1/{capture.workspace}/",
                                "timeout": "300s",
                            },
                        }
                    ],
                }
            ],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": T + "envoy.extensions.filters.http.router.v3.Router",
                    "suppress_envoy_headers": True,
                },
            }
        ],
    }
    return {
        "name": CAPTURE_LISTENER_NAME,
        "address": {"socket_address": {"address": capture.host, "port_value": capture.port}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }


def _self_cluster(gateway_port: int) -> dict:
    return {
        "name": SELF_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": SELF_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(f"127.0.0.1:{gateway_port}")}}]}],
        },
    }


def render(
    cfg: GatewayConfig,
    *,
    listen_port: int,
    admin_port: int,
    extproc: list[str],
    host: str = "127.0.0.1",
    message_timeout_ms: int = 2000,
    tls: ListenerTls | None = None,
    authz: list[str] | None = None,
    admin_host: str | None = None,
    capture: Capture | None = None,
    tracing: Tracing | None = None,
) -> dict:
    """A static bootstrap (standalone sidecars and the benchmark); see render_xds_bootstrap.

    ``admin_host``: where Envoy's admin binds (default ``host``; keep it on loopback when the
    listener binds every address: the admin port can stop Envoy). ``capture``: a second
    listener for an app's redirected provider traffic (see capture_listener).

    ``authz``: the workers' ext_authz HTTP addresses; decisions then go over the lean HTTP
    transport (relaygate/extproc/authz_http.py) instead of ext_proc.

    ``extproc`` lists the policy workers (``unix:PATH`` or ``HOST:PORT``); calls
    are balanced over all of them, and the access log goes to the first, the one
    worker that settles and signs. With ``tls`` the listener serves HTTPS (mTLS with a client CA).
    """
    static = {
        "listeners": [
            listener(
                cfg,
                host,
                listen_port,
                message_timeout_ms=message_timeout_ms,
                tls=tls.mode if tls else "",
                transport="authz-http" if authz else "extproc",
                tracing=tracing,
            )
        ],
        "clusters": clusters(cfg, extproc, authz=authz),
    }
    if tracing:
        static["clusters"].append(_tracing_cluster(tracing))
    if capture:
        if tls:
            raise ValueError("capture forwards to the gateway listener over loopback: it needs a plaintext listener")
        static["listeners"].append(capture_listener(capture, listen_port))
        static["clusters"].append(_self_cluster(listen_port))
    if tls:
        static["secrets"] = tls_secrets(tls)
    return {
        "node": {"id": "relaygate-gateway", "cluster": "relaygate"},
        "admin": {"address": {"socket_address": {"address": admin_host or host, "port_value": admin_port}}},
        "static_resources": static,
        "overload_manager": _overload_manager(),
    }


def render_xds_bootstrap(
    *,
    node_id: str,
    tenant: str,
    zone: str,
    listen: str,
    admin_port: int,
    ads_address: str,
    host: str = "127.0.0.1",
    tls: ListenerTls | None = None,
    ads_tls: AdsTls | None = None,
    tracing: Tracing | None = None,
) -> dict:
    """The small bootstrap of an xDS-driven gateway: its identity and where the ADS server is.

    Everything else (listener, routes, clusters, endpoints) arrives over ADS.
    ``listen`` (host:port) is part of the node's identity: where this gateway serves.
    ``tls``: the listener's certificate, kept here as static secrets; the node metadata
    says only which mode the control plane's listener must ask for. ``ads_tls``: the
    ADS connection verifies the control plane's certificate (CA and name) and, with a
    client certificate, authenticates this gateway to it.
    """
    ads = _extproc_cluster("xds", [ads_address])
    ads_host = ads_address.rpartition(":")[0]
    if not _is_ip(ads_host):
        ads["type"] = "STRICT_DNS"  # a control plane named by DNS (compose, Kubernetes service)
    if ads_tls:
        ads["transport_socket"] = upstream_tls_to(ads_host, ads_tls, ["h2"])  # gRPC needs ALPN h2
    meta = {"tenant": tenant, "zone": zone, "listen": listen}
    if tls:
        meta["tls"] = tls.mode
    static = {"clusters": [ads]}
    if tracing:
        meta["tracing"] = tracing.metadata()
        static["clusters"].append(_tracing_cluster(tracing))
    if tls:
        static["secrets"] = tls_secrets(tls)
    return {
        "node": {"id": node_id, "cluster": tenant, "locality": {"zone": zone}, "metadata": meta},
        "admin": {"address": {"socket_address": {"address": host, "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}],
            },
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": static,
        "overload_manager": _overload_manager(),
    }


def _overload_manager() -> dict:
    return {
        "resource_monitors": [
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": T + "envoy.extensions.resource_monitors.downstream_connections.v3."
                    "DownstreamConnectionsConfig",
                    "max_active_downstream_connections": 10000,
                },
            }
        ]
    }


def _host_header(u) -> str:
    """The Host a provider gets: its address, with the port unless it is the scheme's default."""
    return str(u.authority)


def _is_ip(host: str) -> bool:
    return host.replace(".", "").isdigit()


def _address(addr: str) -> dict:
    if addr.startswith("unix:"):
        return {"pipe": {"path": addr[5:]}}  # relative paths resolve against Envoy's working directory
    host, _, port = addr.rpartition(":")
    return {"socket_address": {"address": host, "port_value": int(port)}}


def _extproc_cluster(name: str, addrs: list[str]) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(a)}} for a in addrs]}],
        },
    }


def _policy_http_cluster(addrs: list[str]) -> dict:
    """HTTP/1.1 to the ext_authz check servers; a rewritten body travels back in a header."""
    return {
        "name": "policy_http",
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {}},
                "common_http_protocol_options": {"max_response_headers_kb": 8192},
            }
        },
        "load_assignment": {
            "cluster_name": "policy_http",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(a)}} for a in addrs]}],
        },
    }


def load_assignment(u) -> dict:
    return {
        "cluster_name": u.cluster,
        "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": u.host, "port_value": u.port}}}}]}
        ],
    }


def _upstream_cluster(u, eds: bool = False) -> dict:
    """IP upstreams are STATIC (or EDS over xDS); host names are resolved by Envoy (STRICT_DNS)."""
    c = {"name": u.cluster, "connect_timeout": "2s", "lb_policy": "ROUND_ROBIN"}
    if not _is_ip(u.host):
        c.update(type="STRICT_DNS", load_assignment=load_assignment(u))
    elif eds:
        c.update(type="EDS", eds_cluster_config={"eds_config": {"ads": {}, "resource_api_version": "V3"}})
    else:
        c.update(type="STATIC", load_assignment=load_assignment(u))
    if u.tls:
        # The provider's certificate must chain to a trusted CA (the system bundle, or the
        # upstream's ca_file for a private provider) *and* name the upstream's host: without
        # both, anyone on the path could answer the handshake and receive the platform's
        # provider credential, which the policy service adds to every forwarded request.
        c["transport_socket"] = upstream_tls_to(u.host, AdsTls(u.ca_file or SYSTEM_CA_BUNDLE), [])
    # Advanced settings an operator passes through to Envoy (Envoy validates them; a bad one is NACKed).
    c.update(u.envoy_cluster_overrides or {})
    return c


REFERENCE_TLS_DIR = "var/tls"


def reference_tls(directory: str = REFERENCE_TLS_DIR) -> tuple[ListenerTls, AdsTls]:
    """The listener and ADS TLS of envoy/bootstrap-xds.json: files named as stack.tls makes them."""
    d = directory.rstrip("/")
    return (
        ListenerTls(f"{d}/server.pem", f"{d}/server-key.pem"),
        AdsTls(f"{d}/ca.pem", f"{d}/client.pem", f"{d}/client-key.pem"),
    )


def add_render_arguments(p) -> None:
    """The options that choose a bootstrap (shared with relaygate-envoy, relaygate/envoy/run.py)."""
    p.add_argument(
        "--xds",
        action="store_true",
        help="render the small ADS bootstrap (identity + ADS server) instead of the static one",
    )
    p.add_argument("--config-dir", default="config", help="static: the config directory to render")
    p.add_argument("--listen-port", type=int, default=8080)
    p.add_argument(
        "--listen-host",
        default=None,
        help="address the gateway listener binds (default: 127.0.0.1 static, 0.0.0.0 xds)",
    )
    p.add_argument("--admin-port", type=int, default=9901)
    p.add_argument(
        "--admin-host", default="127.0.0.1", help="address Envoy's admin binds (default 127.0.0.1: keep it there)"
    )
    p.add_argument(
        "--extproc",
        action="append",
        help="static: policy worker gRPC address, ext_proc and the access log (repeatable; default "
        "unix:var/extproc.sock)",
    )
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="authz-http",
        help="static: how Envoy asks the policy service (default authz-http: ext_authz over HTTP, the "
        "faster; see docs/architecture.md)",
    )
    p.add_argument(
        "--authz",
        action="append",
        help="static, authz-http: policy worker check address (repeatable; default unix:var/authz.sock)",
    )
    p.add_argument(
        "--capture-port",
        type=int,
        default=0,
        help="static: also listen on 127.0.0.1:PORT for an app's provider calls redirected by the pod's "
        "firewall (provider paths such as /v1/chat/completions; needs --capture-workspace; docs/deploy.md)",
    )
    p.add_argument("--capture-workspace", default="", help="static: the workspace captured calls are made in")
    p.add_argument("--node-id", default="gw-1", help="xds: this gateway's instance id")
    p.add_argument("--tenant", default="default", help="xds: the tenant this gateway serves")
    p.add_argument("--zone", default="local", help="xds: locality zone")
    p.add_argument("--ads", default="127.0.0.1:18000", help="xds: the control plane's ADS address host:port")
    p.add_argument(
        "--tls-dir",
        default=REFERENCE_TLS_DIR,
        help="xds: certificate files as `python -m stack.tls` names them (ca.pem, server.pem, "
        "server-key.pem, client.pem, client-key.pem; relative paths resolve against Envoy's "
        f"working directory; default {REFERENCE_TLS_DIR}): the listener serves HTTPS and the "
        "ADS connection pins ca.pem and presents client.pem",
    )
    p.add_argument("--plaintext", action="store_true", help="xds: no TLS on the listener or the ADS connection")
    p.add_argument(
        "--otlp-endpoint",
        default=_otlp_default(),
        help="trace every call with Envoy's OpenTelemetry tracer, exporting OTLP/gRPC to HOST:PORT "
        "(https://HOST:PORT: TLS); default OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, "
        "else no tracing (docs/observability.md)",
    )
    p.add_argument("--trace-sampling", type=float, default=100.0, help="percent of calls traced (default 100)")


def _otlp_default() -> str | None:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


def bootstrap_from_args(a) -> dict:
    """The bootstrap the options of add_render_arguments describe (ValueError/ConfigError if they conflict)."""
    from relaygate.contract import config as config_mod

    if bool(a.capture_port) != bool(a.capture_workspace):
        raise ValueError("--capture-port and --capture-workspace go together")
    tracing = Tracing(a.otlp_endpoint, a.trace_sampling) if a.otlp_endpoint else None
    if a.xds:
        if a.capture_port:
            raise ValueError("--capture-port is for a static bootstrap (over xDS the control plane renders listeners)")
        tls, ads_tls = (None, None) if a.plaintext else reference_tls(a.tls_dir)
        boot = render_xds_bootstrap(
            node_id=a.node_id,
            tenant=a.tenant,
            zone=a.zone,
            listen=f"{a.listen_host or '0.0.0.0'}:{a.listen_port}",
            admin_port=a.admin_port,
            ads_address=a.ads,
            tls=tls,
            ads_tls=ads_tls,
            host=a.admin_host,
            tracing=tracing,
        )
    else:
        boot = render(
            config_mod.load_without_secrets(a.config_dir),  # Envoy needs no secret: its container gets none
            listen_port=a.listen_port,
            admin_port=a.admin_port,
            extproc=a.extproc or ["unix:var/extproc.sock"],
            authz=(a.authz or ["unix:var/authz.sock"]) if a.transport == "authz-http" else None,
            host=a.listen_host or "127.0.0.1",
            admin_host=a.admin_host,
            capture=Capture(a.capture_port, a.capture_workspace) if a.capture_port else None,
            tracing=tracing,
        )
    return boot


def main(argv=None) -> None:
    """Render a gateway bootstrap: the xDS one (envoy/bootstrap-xds.json) or the static one
    for a config directory (envoy/gateway.json)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m relaygate.envoy.config", description=main.__doc__)
    add_render_arguments(p)
    p.add_argument("--out", default="-")
    a = p.parse_args(argv)
    try:
        boot = bootstrap_from_args(a)
    except ValueError as e:
        p.error(str(e))
    if a.out == "-":
        print(json.dumps(boot, indent=2))
    else:
        write(Path(a.out), boot)


def write(path: Path, bootstrap: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bootstrap, indent=2))
    return path


if __name__ == "__main__":
    main()
