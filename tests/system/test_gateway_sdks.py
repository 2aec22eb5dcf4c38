"""The official SDKs against the real Envoy + ext_proc stack, plain and streaming."""

from __future__ import annotations

import uuid

import anthropic
import openai
import pytest

from relaygate.evidence.receipts import envelope_receipt, verify_receipt


def _marker(what: str) -> str:
    """Text unique to this call, so the test reads back its own request from the shared simulator."""
    return f"{what} {uuid.uuid4().hex}"


def _verify(gw):
    """The SDKs' HTTP client trusts exactly the stack's CA (not the process-wide trust variables)."""
    return {"verify": gw.stack.client_ssl(), "trust_env": False}


def _client(gw, name="acme", ws="acme", **kw) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.base(ws),
        api_key=gw.tokens[name],
        max_retries=0,
        http_client=openai.DefaultHttpxClient(**_verify(gw)),
        **kw,
    )


def test_sdks_reach_the_gateway_over_verified_tls(gw):
    """The tested path is the shipped one: HTTPS, the certificate checked against the CA."""
    assert gw.base("acme").startswith("https://")
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "tls"}], max_tokens=5
    )
    assert str(raw.http_request.url).startswith("https://") and raw.parse().choices
    msg = _anthropic(gw).messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "tls"}]
    )
    assert str(msg.http_request.url).startswith("https://") and msg.parse().content


def test_openai_chat_completion(gw):
    marker = _marker("Say hello")
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": marker}], max_tokens=50
    )
    resp = raw.parse()
    rid = raw.headers["x-relayone-receipt-id"]
    assert rid.startswith("rcpt_")
    assert resp.choices[0].message.content
    assert resp.usage.completion_tokens == 12

    seen = gw.sim_request(marker)
    assert seen["path"] == "/v1/chat/completions"  # workspace segment removed
    assert seen["headers"]["Authorization"] == "Bearer sk-test-openai"  # provider credential swapped in
    assert gw.tokens["acme"] not in str(seen["headers"])  # client key never reaches the upstream

    env = gw.receipt(rid)
    r = envelope_receipt(env)
    assert verify_receipt(env, gw.public_key())
    assert r["decision"]["allow"] and r["upstream"]["name"] == "openai-us"
    assert r["usage"] == {"input_tokens": resp.usage.prompt_tokens, "output_tokens": 12, "source": "response"}
    assert r["model"] == {"requested": "gpt-4o-mini", "served": "gpt-4o-mini"}
    # 0.15 $/1K in, 0.6 $/1K out, in USD millionths, rounded up
    expected = -(-(resp.usage.prompt_tokens * 150_000 + 12 * 600_000) // 1000)
    assert r["cost"]["usd_micros"] == expected
    assert r["request"]["digest"].startswith("sha256:") and marker not in str(r)


def test_openai_stream_arrives_incrementally_and_settles(gw):
    client = _client(gw)
    marker = _marker("stream please")
    stream = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": marker}],
        stream=True,
        extra_headers={"x-sim-chunk-delay-ms": "150"},
    )
    rid = stream.headers["x-relayone-receipt-id"]
    chunks = iter(stream.parse())
    first = next(chunks)
    assert first.choices[0].delta.content == "the"
    # The simulator is still producing the stream when the first chunk is already here.
    assert gw.sim_request(marker)["done"] is False
    rest = list(chunks)
    text = first.choices[0].delta.content + "".join(c.choices[0].delta.content or "" for c in rest if c.choices)
    assert len(text.split()) == 12
    usage = [c.usage for c in rest if c.usage]
    assert usage, "the gateway asks OpenAI streams for their usage chunk"
    sent = gw.sim_request(marker)
    assert '"include_usage":true' in sent["body"]
    r = gw.receipt_doc(rid)
    assert r["usage"]["source"] == "response"
    assert r["usage"]["output_tokens"] == 12 and r["usage"]["input_tokens"] == usage[0].prompt_tokens
    assert r["request"]["stream"] is True


def test_openai_completions_and_embeddings(gw):
    client = _client(gw)
    c = client.completions.with_raw_response.create(model="gpt-3.5-turbo-instruct", prompt="Once", max_tokens=5)
    assert c.parse().choices[0].text
    assert gw.receipt_doc(c.headers["x-relayone-receipt-id"])["usage"]["output_tokens"] == 5
    e = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(e.parse().data) == 2
    r = gw.receipt_doc(e.headers["x-relayone-receipt-id"])
    assert r["request"]["endpoint"] == "embeddings" and r["usage"]["output_tokens"] == 0
    assert r["usage"]["input_tokens"] == e.parse().usage.prompt_tokens


def _anthropic(gw, name="acme", ws="acme") -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gw.base(ws),
        api_key=gw.tokens[name],
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(**_verify(gw)),
    )


def test_anthropic_messages(gw):
    marker = _marker("Hello, Claude")
    raw = _anthropic(gw).messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": marker}]
    )
    msg = raw.parse()
    assert msg.content[0].text and msg.usage.output_tokens == 12
    seen = gw.sim_request(marker, "anthropic-us")
    assert seen["path"] == "/v1/messages" and seen["headers"]["x-api-key"] == "sk-ant-test"
    assert "Authorization" not in seen["headers"]
    r = gw.receipt_doc(raw.headers["x-relayone-receipt-id"])
    assert r["usage"] == {"input_tokens": msg.usage.input_tokens, "output_tokens": 12, "source": "response"}
    assert r["upstream"]["provider"] == "anthropic"


def test_anthropic_stream(gw):
    client = _anthropic(gw)
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=7, messages=[{"role": "user", "content": "Stream to me"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        rid = stream.response.headers["x-relayone-receipt-id"]
    assert len(text.split()) == 7 and final.usage.output_tokens == 7
    r = gw.receipt_doc(rid)
    assert r["usage"]["input_tokens"] == final.usage.input_tokens
    assert r["usage"]["output_tokens"] == 7 and r["usage"]["source"] == "response"


def test_sovereign_workspace_routes_to_allowed_region(gw):
    marker = _marker("eu only")
    raw = _client(gw, "euro", "euro").chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": marker}],
        extra_headers={"x-relaygate-upstream": "openai-us"},
    )  # a client cannot pick the route itself
    assert raw.status_code == 200
    assert gw.sim_request(marker, "openai-eu")["path"] == "/v1/chat/completions"
    assert not [e for e in gw.sim_requests("openai-us") if marker in e["body"]]
    r = gw.receipt_doc(raw.headers["x-relayone-receipt-id"])
    assert r["upstream"] == {"name": "openai-eu", "provider": "openai", "region": "eu-west-1", "jurisdiction": "eu"}


@pytest.mark.parametrize("stream", [False, True])
def test_missing_max_tokens_is_capped_by_workspace_default(gw, stream):
    client = _client(gw)
    marker = _marker("no cap")
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": marker}],
        stream=stream,
        extra_headers={"x-sim-output-tokens": "1000"},
    )
    if stream:
        list(raw.parse())
    else:
        assert raw.parse().usage.completion_tokens == 256
    assert '"max_tokens":256' in gw.sim_request(marker)["body"]
    assert gw.receipt_doc(raw.headers["x-relayone-receipt-id"])["usage"]["output_tokens"] == 256


def test_secrets_never_reach_clients_or_logs(gw):
    """Provider credentials and the key pepper stay out of responses and every process log."""
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "secrets?"}]
    )
    assert "sk-test-openai" not in str(raw.headers) + raw.http_response.text
    secrets = ("sk-test-openai", "sk-ant-test", "test-pepper", gw.tokens["acme"])
    for log in gw.stack.run_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        assert not [s for s in secrets if s in text], log.name
    r = gw.receipt(raw.headers["x-relayone-receipt-id"])
    assert not [s for s in secrets if s in str(r)]


def test_client_abort_mid_stream_is_charged_its_reservation(gw):
    """Usage never arrives when the client hangs up; the provider may have billed, so the hold is kept."""
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        stream=True,
        max_tokens=40,
        messages=[{"role": "user", "content": "abort me"}],
        extra_headers={"x-sim-chunk-delay-ms": "200", "x-sim-output-tokens": "40"},
    )
    stream = raw.parse()
    next(iter(stream))
    stream.close()
    r = gw.receipt_doc(raw.headers["x-relayone-receipt-id"])
    assert r["status"] == "complete" and r["response"]["status"] == 200
    assert r["usage"]["source"] == "reserved"
    assert r["cost"]["usd_micros"] > 0
