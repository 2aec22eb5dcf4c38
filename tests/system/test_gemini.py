"""Gemini's native surface through the gateway, with Google's own SDK (google-genai).

The SDK with ``base_url`` /v1/{workspace} sends /v1/{ws}/v1beta/models/{model}:generateContent (or
:streamGenerateContent?alt=sse) with the relaygate key as ``x-goog-api-key``; the gateway takes
the model from the path, reserves ``maxOutputTokens`` (and thinking), forwards to the Google
upstream with the platform's key, and settles to ``usageMetadata``. Both transports.
"""

from __future__ import annotations

import json
import uuid

import pytest
from google import genai
from google.genai import errors, types

from tests.httpcall import curl


def _client(gw, name="acme", ws="acme", headers=None) -> genai.Client:
    return genai.Client(
        api_key=gw.tokens[name],
        http_options=types.HttpOptions(
            base_url=gw.base(ws) + "/", api_version="v1beta", headers=headers or {}, retry_options=None
        ),
    )


def _marker(what: str) -> str:
    return f"{what} {uuid.uuid4().hex}"


def _cost(u: dict) -> int:
    return -(-(u["input_tokens"] * 300_000 + u["output_tokens"] * 2_500_000) // 1000)  # $0.3 / $2.5 per 1k


def test_generate_content_settles_to_the_usage_google_reports(gw):
    marker = _marker("gemini")
    c = _client(gw)
    r = c.models.generate_content(model="gemini-2.5-flash", contents=marker)
    assert r.text and r.usage_metadata.candidates_token_count == 12
    seen = gw.sim_request(marker, "google-us")
    assert seen["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen["headers"]["x-goog-api-key"] == "AIza-test"  # the platform's key, never the caller's
    assert gw.tokens["acme"] not in json.dumps(seen["headers"])
    # the reservation the gateway made is what the provider was held to
    assert json.loads(seen["body"])["generationConfig"]["maxOutputTokens"] == 256
    rid = r.sdk_http_response.headers["x-relayone-receipt-id"]
    p = gw.receipt_doc(rid)
    assert p["request"]["endpoint"] == "gemini.generate" and p["upstream"]["name"] == "google-us"
    assert p["usage"] == {
        "input_tokens": r.usage_metadata.prompt_token_count,
        "output_tokens": 12,
        "source": "response",
    }
    assert p["model"]["served"] == "gemini-2.5-flash" and p["cost"]["usd_micros"] == _cost(p["usage"])


def test_stream_settles_to_the_last_running_count(gw):
    """Every streamed chunk repeats the running usage: the last one is the call's, not the first or a sum."""
    marker = _marker("stream")
    c = _client(gw)
    chunks = list(c.models.generate_content_stream(model="gemini-2.5-flash", contents=marker))
    assert len(chunks) == 12 and "".join(c.text for c in chunks).split()[0] == "the"
    seen = gw.sim_request(marker, "google-us")
    assert seen["path"] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    rid = chunks[0].sdk_http_response.headers["x-relayone-receipt-id"]
    p = gw.receipt_doc(rid)
    assert p["request"]["stream"] is True and p["usage"]["output_tokens"] == 12 and p["usage"]["source"] == "response"


def test_thinking_tokens_are_charged_as_output(gw):
    marker = _marker("think")
    c = _client(gw, headers={"x-sim-thought-tokens": "40"})
    r = c.models.generate_content(
        model="gemini-2.5-flash",
        contents=marker,
        config=types.GenerateContentConfig(
            max_output_tokens=100, thinking_config=types.ThinkingConfig(thinking_budget=64)
        ),
    )
    assert r.usage_metadata.thoughts_token_count == 40
    p = gw.receipt_doc(r.sdk_http_response.headers["x-relayone-receipt-id"])
    assert p["usage"]["output_tokens"] == 12 + 40 and p["cost"]["usd_micros"] == _cost(p["usage"])


def test_reference_name_gemini_pro_is_an_alias(gw):
    marker = _marker("pro")
    c = _client(gw)
    r = c.models.generate_content(model="gemini-pro", contents=marker)
    assert r.text
    assert gw.sim_request(marker, "google-us")["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    p = gw.receipt_doc(r.sdk_http_response.headers["x-relayone-receipt-id"])
    assert (p["model"]["requested"], p["model"]["alias"]) == ("gemini-2.5-flash", "gemini-pro")


@pytest.mark.parametrize(
    "who, ws, model, config, status, code",
    [
        ("euro", "acme", "gemini-2.5-flash", None, 403, "scope.denied"),  # another workspace's key
        ("acme-embed", "acme", "gemini-2.5-flash", None, 403, "scope.denied"),  # endpoint outside its scope
        ("acme", "acme", "gemini-9", None, 404, "model.not_found"),
        ("euro", "euro", "gemini-2.5-flash", None, 451, "sovereignty.blocked"),  # only a US upstream serves it
        ("acme", "acme", "gemini-2.5-flash", {"max_output_tokens": 2_000_000}, 400, "request.invalid"),
        ("acme", "acme", "gemini-2.5-flash", {"candidate_count": 9}, 400, "request.invalid"),
    ],
)
def test_denials_reach_the_sdk_as_errors(gw, who, ws, model, config, status, code):
    c = _client(gw, who, ws)
    with pytest.raises(errors.APIError) as e:
        c.models.generate_content(
            model=model, contents="x", config=types.GenerateContentConfig(**config) if config else None
        )
    assert e.value.code == status
    assert e.value.details["error"]["code"] == code, e.value.details


def test_bad_bodies_and_a_forged_key(gw):
    url = gw.base("acme") + "/v1beta/models/gemini-2.5-flash:generateContent"
    hdrs = {"x-goog-api-key": gw.tokens["acme"], "content-type": "application/json"}
    no_contents = curl(url, json.dumps({"generationConfig": {}}), hdrs)
    assert no_contents.status == 400 and "contents" in no_contents.json()["error"]["message"]
    bad_cfg = curl(url, json.dumps({"contents": [], "generationConfig": []}), hdrs)
    assert bad_cfg.status == 400 and bad_cfg.json()["error"]["code"] == "request.invalid"
    forged = curl(url, json.dumps({"contents": []}), {**hdrs, "x-goog-api-key": "ro_live_AAAAAAAAAAAA_forged"})
    assert forged.status == 401 and forged.json()["error"]["code"] == "auth.unauthenticated"
    # a duplicated limit is forwarded as the gateway parsed it (the provider could keep either)
    dup = b'{"contents": [{"parts": [{"text": "dup"}]}], "generationConfig": {"maxOutputTokens": 5, "maxOutputTokens": 7}}'
    r = curl(url, dup, hdrs)
    assert r.status == 200, r.body
    assert gw.receipt_doc(r.receipt_id)["usage"]["output_tokens"] == 7  # what was reserved, and all the sim produced


def test_two_different_credentials_are_refused(gw):
    """Attack: a valid key in one header and another in a second; a proxy or a log in front may read
    the other. The gateway refuses rather than picks one; the same key twice is fine."""
    url = gw.base("acme") + "/chat/completions"
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    good, other = gw.tokens["acme"], gw.tokens["acme-4o"]
    for a, b in (("authorization", "x-api-key"), ("x-api-key", "x-goog-api-key"), ("authorization", "x-goog-api-key")):
        hdrs = {"content-type": "application/json"}
        hdrs[a] = f"Bearer {good}" if a == "authorization" else good
        hdrs[b] = other
        r = curl(url, body, hdrs)
        assert r.status == 401 and "two different credentials" in r.json()["error"]["message"], (a, b, r.body)
        hdrs[b] = good
        assert curl(url, body, hdrs).status == 200, (a, b)
    # a provider key of the client's own beside the gateway credential: the first (Authorization,
    # x-api-key, x-goog-api-key) is the credential, the other never reaches the provider
    for a, b in (("authorization", "x-api-key"), ("x-api-key", "x-goog-api-key")):
        hdrs = {"content-type": "application/json", b: "sk-ant-clients-own"}
        hdrs[a] = f"Bearer {good}" if a == "authorization" else good
        assert curl(url, body, hdrs).status == 200, (a, b)
    listing = curl(
        gw.base("acme") + "/models", None, {"authorization": f"Bearer {good}", "x-goog-api-key": other}, "GET"
    )
    assert listing.status == 401
