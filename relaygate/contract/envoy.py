"""Names and shapes Envoy, the sidecar and the control plane share.

The sidecar sets these headers and metadata; the Envoy resources the control
plane (xDS) and the static bootstrap render route on them, log them and strip
them; the settler reads them back from the access log.
"""

from __future__ import annotations

import os
import time

# -- headers and dynamic-metadata namespaces ------------------------------------------------------
RECEIPT_HEADER = "x-relayone-receipt-id"  # every reply names its receipt
UPSTREAM_HEADER = "x-relaygate-upstream"  # the sidecar's routing choice; Envoy's route matches it
NAMESPACE = "relaygate"  # the sidecar's dynamic metadata (decision, hold)
USAGE_NAMESPACE = "relaygate.usage"  # usage the Lua filter reads from the response
AWS_ERROR_HEADER = "x-amzn-errortype"  # a Bedrock path's denial: the code, where botocore reads it
PREAUTH_HEADER = "x-relaygate-preauth"  # on a pre-auth denial; Envoy's guard counts it per address, removes it

# The ext_authz HTTP transport (relaygate/extproc/authz_http.py): Envoy asks the policy service
# POST AUTHZ_PREFIX + the call's path; an answer of 200 allows the call and names the upstream,
# the provider path (applied by the Lua filter after ext_authz, which cannot set :path) and a
# rewritten body (lifted into ext_authz's dynamic metadata, applied by the same filter). An HTTP
# check cannot deny with a 5xx (Envoy takes one as the service failing), so such a denial is sent
# as 418 with the real status in AUTHZ_STATUS_HEADER and restored by the local_reply_config.
AUTHZ_PREFIX = "/check"
AUTHZ_PATH_HEADER = "x-relaygate-path"
AUTHZ_BODY_HEADER = "x-relaygate-body"
AUTHZ_STATUS_HEADER = "x-relaygate-status"
AUTHZ_REMOVE_HEADER = "x-envoy-auth-headers-to-remove"  # Envoy's own: request headers to drop
AUTHZ_DENIED_DETAILS = "ext_authz_denied"  # Envoy's response code details of a check's denial
AUTHZ_DENY_5XX = 418
# Replies the policy service answers itself that are not denials and call no provider (the model
# list): over ext_authz a denial with AUTHZ_STATUS_HEADER 200 (restored by local_reply_config),
# over ext_proc an ImmediateResponse with these details. They get no receipt: nothing was called.
ANSWERED_DETAILS = "relaygate_answered"

# -- the receipt-id rule -----------------------------------------------------------------------------
RECEIPT_PREFIX = "rcpt_"
# The same rule as an Envoy format string: Envoy names the receipt of a reply it makes itself.
RECEIPT_ID_ENVOY_FORMAT = RECEIPT_PREFIX + "%REQ(x-request-id)%"


def receipt_id_for(request_id: str | None) -> str:
    """A call's receipt id is Envoy's x-request-id with a prefix.

    Envoy generates the request id for every call (client-sent ids are not
    trusted), so Envoy itself can name the receipt in replies it makes before
    or without a policy decision, and the access log names it too.
    """
    if request_id and len(request_id) <= 64 and request_id.isascii():
        return RECEIPT_PREFIX + request_id
    return f"{RECEIPT_PREFIX}{int(time.time() * 1000):012x}{os.urandom(8).hex()}"


# -- replies Envoy makes itself ------------------------------------------------------------------------
# In the same error shape as the sidecar's (rendered into Envoy's local_reply_config):
# kind -> (status, code, message).
ENVOY_REPLIES = {
    "timeout": (504, "upstream.timeout", "the upstream provider timed out"),
    "unavailable": (503, "upstream.unavailable", "the upstream provider is unreachable"),
    "upstream_error": (502, "upstream.error", "the upstream provider failed"),
    "misrouted": (502, "gateway.misrouted", "no upstream was selected for this call"),
    "too_large": (413, "request.too_large", "request body too large"),
    "policy_down": (503, "gateway.unavailable", "the policy service is unavailable; call not forwarded"),
    "policy_timeout": (504, "gateway.timeout", "the policy service did not answer in time; call not forwarded"),
    "rate_limited": (429, "rate.limited", "too many calls from this client address; slow down"),
    "bad_request": (400, "request.invalid", "malformed HTTP request"),
    "request_timeout": (408, "request.timeout", "the request was not received in time"),
    "headers_too_large": (431, "request.headers_too_large", "request headers too large"),
    "gateway_error": (500, "gateway.error", "the gateway could not complete this call"),
}
# Envoy's replies made before any policy decision, by status (one kind per status): the
# settler drafts their receipts from the access log with these codes and bodies.
ENVOY_PRE_DECISION = {
    ENVOY_REPLIES[k][0]: ENVOY_REPLIES[k]
    for k in (
        "too_large",
        "policy_down",
        "policy_timeout",
        "rate_limited",
        "bad_request",
        "request_timeout",
        "headers_too_large",
        "gateway_error",
    )
}


def envoy_reply_template(code: str, message: str, receipt_id: str | None) -> str:
    """The body of an Envoy-made reply; ``receipt_id`` may be an Envoy format string."""
    rid = '"' + receipt_id + '"' if receipt_id else "null"
    return '{"error":{"code":"%s","message":"%s","receipt_id":%s}}' % (code, message, rid)
