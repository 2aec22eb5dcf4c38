"""The Bedrock paths and bodies as the decision library reads them (relaygate/decision/wire.py)."""

from __future__ import annotations

import orjson
import pytest

from relaygate.decision.wire import BadRequest, model_family, parse_bedrock, parse_path, provider_path

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def test_paths_as_botocore_sends_them():
    r = parse_path("/v1/acme/bedrock/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream")
    assert r is not None and (r.workspace, r.endpoint, r.model, r.operation) == (
        "acme",
        "bedrock.converse",
        MODEL,
        "converse-stream",
    )
    assert provider_path(r, r.model) == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    r = parse_path("/v1/acme/bedrock/model/eu.anthropic.claude-x%3A0/invoke-with-response-stream")
    assert r is not None and r.endpoint == "bedrock.invoke" and model_family(r.model) == "anthropic"
    assert parse_path("/v1/acme/bedrock/model/a%2Fb/converse") is None  # an ARN's '/': no such model id
    assert parse_path("/v1/acme/bedrock/model/m/converse2") is None
    assert parse_path("/v1/acme/chat/completions").model == ""  # other dialects unchanged


def _route(op: str, model: str = MODEL):
    return parse_path(f"/v1/acme/bedrock/model/{model}/{op}")


def test_converse_limit_is_added_and_bounded():
    shape = parse_bedrock(_route("converse"), b'{"messages":[]}', 300)
    assert shape.max_output_tokens == 300 and orjson.loads(shape.body)["inferenceConfig"] == {"maxTokens": 300}
    assert shape.model == MODEL and not shape.stream
    shape = parse_bedrock(_route("converse-stream"), b'{"messages":[],"inferenceConfig":{"maxTokens":7}}', 300)
    assert shape.max_output_tokens == 7 and shape.stream and not shape.rewritten
    for bad in (
        b'{"inferenceConfig":{"maxTokens":0}}',
        b'{"inferenceConfig":{"maxTokens":1000001}}',
        b'{"inferenceConfig":{"maxTokens":true}}',
        b'{"additionalModelRequestFields":{"max_tokens":99999}}',
        b'{"max_tokens":5}',
        b'{"modelId":"other"}',
        b'{"performanceConfig":{"latency":"optimized"}}',
        b'{"serviceTier":{"type":"priority"}}',
        b"[]",
    ):
        with pytest.raises(BadRequest) as e:
            parse_bedrock(_route("converse"), bad, 300)
        assert e.value.status == 400, bad


def test_duplicated_max_tokens_is_forwarded_as_parsed():
    raw = b'{"inferenceConfig":{"maxTokens":5,"maxTokens":900000}}'
    shape = parse_bedrock(_route("converse"), raw, 300)
    assert shape.rewritten and orjson.loads(shape.body)["inferenceConfig"]["maxTokens"] == shape.max_output_tokens


def test_invoke_takes_anthropic_and_llama_bodies_only():
    body = b'{"anthropic_version":"bedrock-2023-05-31","messages":[]}'
    shape = parse_bedrock(_route("invoke"), body, 300)
    assert orjson.loads(shape.body)["max_tokens"] == 300 == shape.max_output_tokens
    llama = _route("invoke", "us.meta.llama3-70b-instruct-v1%3A0")
    shape = parse_bedrock(llama, b'{"prompt":"hi"}', 300)
    assert orjson.loads(shape.body)["max_gen_len"] == 300 == shape.max_output_tokens
    assert parse_bedrock(llama, b'{"prompt":"hi","max_gen_len":9}', 300).max_output_tokens == 9
    for bad in (b'{"prompt":"hi","max_tokens":9}', b'{"prompt":"hi","max_gen_len":0}', b'{"max_gen_len":9}'):
        with pytest.raises(BadRequest):
            parse_bedrock(llama, bad, 300)
    with pytest.raises(BadRequest, match="use Converse"):
        parse_bedrock(_route("invoke", "amazon.titan-text-express-v1"), b'{"inputText":"x"}', 300)
    with pytest.raises(BadRequest, match="anthropic_version"):
        parse_bedrock(_route("invoke"), b'{"messages":[]}', 300)
    with pytest.raises(BadRequest, match="max_tokens_to_sample"):
        parse_bedrock(_route("invoke"), body[:-1] + b',"max_tokens_to_sample":9}', 300)
