"""AWS Bedrock at the gateway: boto3's bedrock-runtime client against the real stack over TLS.

Two Bedrock upstreams serve the same models from eu-central-1 (jurisdiction eea) and us-east-1
(us); the provider simulator checks the gateway's SigV4 signature with botocore, including that
its region is the one of the endpoint it reached. Clients authenticate with the relaygate key as
a Bedrock API key (bearer) or with the SigV4 pair derived from it; each runs over both transports.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from unittest import mock

import boto3
import botocore.config
import pytest
import yaml
from botocore.exceptions import ClientError

from devstack.processes import Stack, free_port
from relaygate.contract import sigv4
from relaygate.contract.config import DEFAULT_FORWARD_HEADERS
from relaygate.extproc.keytool import aws_credentials, create as create_key
from tests.conftest import POLICY_DIR, TEST_PKI, TRANSPORTS, Gateway, write_config
from tests.cpclient import CP, eventually

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
LLAMA = "meta.llama3-70b-instruct-v1:0"
PLATFORM_AWS = "AKIAPLATFORMEXAMPLE1:platform/secret+access+key"
SIM_OUTPUT = 12  # the simulator's default output tokens


def add_bedrock(cfg) -> None:
    """Two Bedrock upstreams serving the same models (us-east-1, then eu-central-1) and the
    platform's AWS credential, added to a test config directory (tests/conftest.py write_config)."""
    ups = yaml.safe_load((cfg / "upstreams.yaml").read_text())
    price = lambda i, o: {"input_per_1k": i, "output_per_1k": o}  # noqa: E731
    for name, region, jurisdiction, cost in (
        ("bedrock-us", "us-east-1", "us", 3),
        ("bedrock-eu", "eu-central-1", "eu", 4),
    ):
        ups["upstreams"].append(
            {
                "name": name,
                "provider": "bedrock",
                "address": f"127.0.0.1:{free_port()}",
                "region": region,
                "jurisdiction": jurisdiction,
                "credential": "aws-bedrock",
                "models": {MODEL: price(cost, 15), LLAMA: price(1, 1)},
                "forward_headers": [*DEFAULT_FORWARD_HEADERS["bedrock"], "x-sim-*"],
            }
        )
    (cfg / "upstreams.yaml").write_text(yaml.safe_dump(ups))
    secrets = yaml.safe_load((cfg / "secrets.yaml").read_text())
    (cfg / "secrets.yaml").write_text(yaml.safe_dump({**secrets, "aws-bedrock": PLATFORM_AWS}))


@pytest.fixture(scope="module", params=TRANSPORTS)
def bgw(request, tmp_path_factory) -> Gateway:
    tmp = tmp_path_factory.mktemp("bedrock")
    cfg = tmp / "config"
    tokens = write_config(cfg)
    add_bedrock(cfg)
    tokens["converse-only"] = create_key(cfg, "acme", "converse only", ["bedrock.converse"], None)
    stack = Stack(
        tmp / "run",
        config_dir=cfg,
        policy_dir=POLICY_DIR,
        unreachable={"openai-dead"},
        transport=request.param,
    )
    stack.start()
    g = Gateway(stack, tokens)
    g.transport = request.param
    yield g
    stack.stop()


def aws_pair(gw: Gateway, name: str) -> tuple[str, str]:
    """The SigV4 pair of a key, as `relaygate-keys aws-credentials` prints it."""
    return aws_credentials(gw.stack.config_dir, gw.tokens[name].split("_")[2])


class Bedrock:
    """A bedrock-runtime client with its own environment (the bearer token is read from
    AWS_BEARER_TOKEN_BEDROCK, at creation and per call)."""

    def __init__(
        self, gw: Gateway, ws: str = "acme", token: str | None = None, pair=None, region="eu-central-1", validate=True
    ):
        self.env = {"AWS_BEARER_TOKEN_BEDROCK": token} if token else {}
        with mock.patch.dict(os.environ, self.env):
            self.client = boto3.session.Session().client(
                "bedrock-runtime",
                endpoint_url=f"{gw.url}/v1/{ws}/bedrock",
                region_name=region,
                verify=str(TEST_PKI.ca),
                aws_access_key_id=pair[0] if pair else "unused",
                aws_secret_access_key=pair[1] if pair else "unused",
                config=botocore.config.Config(
                    retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=validate
                ),
            )
        self.headers: dict[str, str] = {}
        self.client.meta.events.register("before-sign.*.*", self._add_headers)

    def _add_headers(self, request, **_):
        for k, v in self.headers.items():
            request.headers[k] = v

    def __getattr__(self, name):
        fn = getattr(self.client, name)

        def call(*a, **kw):
            with mock.patch.dict(os.environ, self.env):
                return fn(*a, **kw)

        return call


def bearer(gw, name="acme", ws="acme") -> Bedrock:
    return Bedrock(gw, ws, token=gw.tokens[name])


def signed(gw, name="acme", ws="acme", pair=None) -> Bedrock:
    return Bedrock(gw, ws, pair=pair or aws_pair(gw, name))


def _msg(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"text": text}]}]


def _marker(what: str) -> str:
    return f"{what} {uuid.uuid4().hex}"


def _rid(resp: dict) -> str:
    rid = resp["ResponseMetadata"]["HTTPHeaders"]["x-relayone-receipt-id"]
    assert rid.startswith("rcpt_")
    return rid


def _seen(gw: Gateway, marker: str) -> tuple[str, dict]:
    """(upstream, request) of the one simulator request carrying ``marker``."""
    hits = [(u, e) for u in ("bedrock-us", "bedrock-eu") for e in gw.sim_requests(u) if marker in e["body"]]
    assert len(hits) == 1, hits
    return hits[0]


AUTH_STYLES = ("bearer", "sigv4")


def client(gw, style: str, name="acme", ws="acme") -> Bedrock:
    return bearer(gw, name, ws) if style == "bearer" else signed(gw, name, ws)


# -- allowed calls -----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", AUTH_STYLES)
def test_converse(bgw, style):
    marker = _marker("converse")
    resp = client(bgw, style).converse(modelId=MODEL, messages=_msg(marker))
    assert resp["output"]["message"]["content"][0]["text"].startswith("the quick")
    assert resp["usage"]["outputTokens"] == SIM_OUTPUT
    upstream, seen = _seen(bgw, marker)
    # acme may use us and eea: the policy takes the first configured (us-east-1), signed for its region
    assert upstream == "bedrock-us" and seen["region"] == "us-east-1" and "sigv4_error" not in seen
    assert seen["path"] == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert seen["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAPLATFORMEXAMPLE1/")
    body = json.loads(seen["body"])
    assert body["inferenceConfig"]["maxTokens"] == 256  # the workspace default, added
    assert "ro_live_" not in json.dumps(seen["headers"])  # the client's key never reaches AWS
    headers = resp["ResponseMetadata"]["HTTPHeaders"]
    assert "x-amzn-requestid" in headers
    assert not {"x-amzn-account-id", "x-amz-id-2", "set-cookie"} & set(headers)  # the platform's account
    r = bgw.receipt_doc(_rid(resp))
    assert r["usage"] == {
        "input_tokens": resp["usage"]["inputTokens"],
        "output_tokens": SIM_OUTPUT,
        "source": "response",
    }
    assert r["request"]["endpoint"] == "bedrock.converse" and r["model"]["requested"] == MODEL
    import urllib.request

    def metrics() -> str:
        with urllib.request.urlopen(f"{bgw.stack.extproc_admin}/metrics", timeout=5) as m:
            return m.read().decode()

    series = 'gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_provider_name="bedrock"'
    eventually(lambda: series in metrics(), 5, "the call in the GenAI metrics")


def test_sovereignty_picks_the_eea_upstream_and_signs_for_its_region(bgw):
    marker = _marker("eea only")
    resp = bearer(bgw, "euro", "euro").converse(modelId=MODEL, messages=_msg(marker), inferenceConfig={"maxTokens": 20})
    upstream, seen = _seen(bgw, marker)
    assert upstream == "bedrock-eu" and seen["region"] == "eu-central-1"
    assert (
        f"/{time.strftime('%Y%m%d', time.gmtime())}/eu-central-1/bedrock/aws4_request"
        in seen["headers"]["Authorization"]
    )
    assert json.loads(seen["body"])["inferenceConfig"]["maxTokens"] == 20
    assert bgw.receipt_doc(_rid(resp))["usage"]["output_tokens"] == SIM_OUTPUT


@pytest.mark.parametrize("style", AUTH_STYLES)
def test_invoke_model(bgw, style):
    marker = _marker("invoke")
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 40,
        "messages": [{"role": "user", "content": marker}],
    }
    resp = client(bgw, style).invoke_model(modelId=MODEL, body=json.dumps(body))
    doc = json.loads(resp["body"].read())
    assert doc["usage"]["output_tokens"] == SIM_OUTPUT and doc["content"][0]["text"]
    _, seen = _seen(bgw, marker)
    assert seen["path"].endswith("/invoke") and json.loads(seen["body"])["max_tokens"] == 40
    assert seen["headers"]["Content-Type"] == "application/json"
    r = bgw.receipt_doc(_rid(resp))
    assert r["usage"] == {
        "input_tokens": doc["usage"]["input_tokens"],
        "output_tokens": SIM_OUTPUT,
        "source": "response",
    }


@pytest.mark.parametrize("style", AUTH_STYLES)
def test_converse_stream(bgw, style):
    marker = _marker("converse stream")
    c = client(bgw, style)
    c.headers["x-sim-chunk-delay-ms"] = "2"
    c.headers["x-sim-split-frames"] = "37"  # frames straddle the chunks Envoy's Lua filter sees
    resp = c.converse_stream(modelId=MODEL, messages=_msg(marker))
    events = list(resp["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text.split() == [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "the",
        "lazy",
        "dog",
        "the",
        "quick",
        "brown",
    ]
    usage = next(e["metadata"]["usage"] for e in events if "metadata" in e)
    r = bgw.receipt_doc(_rid(resp))
    assert r["usage"] == {"input_tokens": usage["inputTokens"], "output_tokens": SIM_OUTPUT, "source": "response"}
    assert r["request"]["stream"] is True


@pytest.mark.parametrize("style", AUTH_STYLES)
def test_invoke_model_with_response_stream(bgw, style):
    marker = _marker("invoke stream")
    body = {"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": marker}]}
    c = client(bgw, style)
    c.headers["x-sim-output-tokens"] = "7"
    c.headers["x-sim-split-frames"] = "5"
    c.headers["x-sim-chunk-delay-ms"] = "1"
    resp = c.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(body))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in resp["body"]]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == 7
    _, seen = _seen(bgw, marker)
    assert json.loads(seen["body"])["max_tokens"] == 256  # the workspace default, added
    r = bgw.receipt_doc(_rid(resp))
    assert r["usage"] == {"input_tokens": metrics["inputTokenCount"], "output_tokens": 7, "source": "response"}


@pytest.mark.parametrize("style", AUTH_STYLES)
def test_invoke_model_llama(bgw, style):
    marker = _marker("llama")
    resp = client(bgw, style).invoke_model(modelId=LLAMA, body=json.dumps({"prompt": marker}))
    doc = json.loads(resp["body"].read())
    assert doc["generation"] and doc["generation_token_count"] == SIM_OUTPUT
    _, seen = _seen(bgw, marker)
    assert json.loads(seen["body"])["max_gen_len"] == 256  # the workspace default, added
    r = bgw.receipt_doc(_rid(resp))
    assert r["usage"] == {"input_tokens": doc["prompt_token_count"], "output_tokens": SIM_OUTPUT, "source": "response"}


def test_invoke_model_with_response_stream_llama(bgw):
    marker = _marker("llama stream")
    c = bearer(bgw)
    c.headers["x-sim-split-frames"] = "11"
    resp = c.invoke_model_with_response_stream(modelId=LLAMA, body=json.dumps({"prompt": marker, "max_gen_len": 5}))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in resp["body"]]
    assert "".join(ch["generation"] for ch in chunks).split() == ["the", "quick", "brown", "fox", "jumps"]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    r = bgw.receipt_doc(_rid(resp))
    assert r["usage"] == {"input_tokens": metrics["inputTokenCount"], "output_tokens": 5, "source": "response"}


# -- denials -------------------------------------------------------------------------------------------


def _refused(call) -> ClientError:
    with pytest.raises(ClientError) as e:
        call()
    return e.value


def _check(err: ClientError, status: int, code: str, words: str) -> dict:
    meta = err.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == status, err.response
    assert err.response["Error"]["Code"] == code
    assert words in err.response["Error"]["Message"], err.response["Error"]["Message"]
    assert meta["HTTPHeaders"]["x-relayone-receipt-id"].startswith("rcpt_")
    return meta


def test_bad_bearer_key_is_401(bgw):
    bad = Bedrock(bgw, token="ro_live_AAAAAAAAAAAA_" + "x" * 32)
    _check(_refused(lambda: bad.converse(modelId=MODEL, messages=_msg("x"))), 401, "auth.unauthenticated", "invalid")


def test_another_workspaces_key_is_403(bgw):
    for c in (bearer(bgw, "euro", "acme"), signed(bgw, "euro", "acme")):
        err = _refused(lambda: c.converse(modelId=MODEL, messages=_msg("x")))
        _check(err, 403, "scope.denied", "not valid for this workspace")


def test_key_without_the_bedrock_endpoint_is_403(bgw):
    err = _refused(lambda: bearer(bgw, "acme-embed").converse(modelId=MODEL, messages=_msg("x")))
    _check(err, 403, "scope.denied", "bedrock.converse")
    body = {"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "x"}]}
    err = _refused(lambda: bearer(bgw, "converse-only").invoke_model(modelId=MODEL, body=json.dumps(body)))
    _check(err, 403, "scope.denied", "bedrock.invoke")


@pytest.mark.parametrize("max_tokens", [0, 1_000_001])
def test_max_tokens_out_of_range_is_400(bgw, max_tokens):
    c = Bedrock(bgw, token=bgw.tokens["acme"], validate=False)  # boto3 would refuse 0 itself; the gateway must too
    err = _refused(lambda: c.converse(modelId=MODEL, messages=_msg("x"), inferenceConfig={"maxTokens": max_tokens}))
    _check(err, 400, "request.invalid", "'maxTokens' must be an integer from 1 to 1000000")


def test_bad_bodies_are_400(bgw):
    c = bearer(bgw)
    err = _refused(
        lambda: c.converse(modelId=MODEL, messages=_msg("x"), additionalModelRequestFields={"max_tokens": 100000})
    )
    _check(err, 400, "request.invalid", "second output limit")
    err = _refused(lambda: c.invoke_model(modelId=MODEL, body=b"{not json"))
    _check(err, 400, "request.invalid_json", "not valid JSON")
    titan = {"inputText": "x", "textGenerationConfig": {"maxTokenCount": 10}}
    err = _refused(lambda: c.invoke_model(modelId="amazon.titan-text-express-v1", body=json.dumps(titan)))
    _check(err, 400, "request.invalid", "use Converse")
    err = _refused(lambda: c.invoke_model(modelId=LLAMA, body=json.dumps({"prompt": "x", "max_tokens": 10})))
    _check(err, 400, "request.invalid", "use 'max_gen_len'")
    err = _refused(lambda: c.invoke_model(modelId=MODEL, body=json.dumps({"max_tokens": 5, "messages": []})))
    _check(err, 400, "request.invalid", "anthropic_version")


def test_unknown_model_is_404(bgw):
    err = _refused(lambda: bearer(bgw).converse(modelId="anthropic.claude-unknown-v9:0", messages=_msg("x")))
    _check(err, 404, "model.not_found", "no upstream serves model")


def test_sovereignty_denial(bgw):
    err = _refused(lambda: bearer(bgw, "swiss", "swiss").converse(modelId=MODEL, messages=_msg("x")))
    meta = err.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] in (403, 451) and "jurisdiction" in err.response["Error"]["Message"]
    assert err.response["Error"]["Code"].startswith("sovereignty.")


def test_budget_exceeded_is_429(bgw):
    err = _refused(lambda: bearer(bgw, "tiny", "tiny").converse(modelId=MODEL, messages=_msg("x")))
    meta = _check(err, 429, "budget.exceeded", "tiny-daily")
    assert int(meta["HTTPHeaders"]["retry-after"]) >= 1


# -- SigV4 attacks -------------------------------------------------------------------------------------


def test_sigv4_wrong_secret_is_401(bgw):
    akid, secret = aws_pair(bgw, "acme")
    c = signed(bgw, pair=(akid, secret[:-2] + ("AA" if secret[-2:] != "AA" else "BB")))
    _check(
        _refused(lambda: c.converse(modelId=MODEL, messages=_msg("x"))),
        401,
        "auth.unauthenticated",
        "signature does not match",
    )


def test_sigv4_body_swapped_after_signing_is_401(bgw):
    c = signed(bgw)
    marker = _marker("swapped")

    def swap(request, **_):
        request.body = request.body.replace(b'"x"', json.dumps(marker).encode())

    c.client.meta.events.register("before-send.*.*", swap)
    _check(
        _refused(lambda: c.converse(modelId=MODEL, messages=_msg("x"))),
        401,
        "auth.unauthenticated",
        "signature does not match",
    )
    assert not [e for u in ("bedrock-us", "bedrock-eu") for e in bgw.sim_requests(u) if marker in e["body"]]


def test_sigv4_stale_and_future_dates_are_401(bgw):
    import datetime as dt

    for skew in (-6 * 60, 6 * 60):
        c = signed(bgw)
        when = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=skew)
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            err = _refused(lambda: c.converse(modelId=MODEL, messages=_msg("x")))
        _check(err, 401, "auth.unauthenticated", "minutes from the gateway's clock")


def test_sigv4_replay_of_a_captured_request_for_another_path_is_401(bgw):
    """A signature captured on one workspace path, replayed against another: the path is signed."""
    c = signed(bgw)
    captured = {}

    def grab(request, **_):
        captured.update(url=request.url, headers=dict(request.headers), body=request.body)

    c.client.meta.events.register("before-send.*.*", grab)
    c.converse(modelId=MODEL, messages=_msg("captured"))
    import urllib.request

    for path in (
        captured["url"].replace("/v1/acme/", "/v1/euro/"),
        captured["url"].replace("/converse", "/converse-stream"),
    ):
        req = urllib.request.Request(path, data=captured["body"], method="POST")
        for k, v in captured["headers"].items():
            req.add_header(k, v.decode() if isinstance(v, bytes) else v)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 401 and e.value.headers["x-amzn-errortype"] == "auth.unauthenticated"


def test_sigv4_of_another_workspaces_key_on_this_path_is_403(bgw):
    """euro's own valid pair, signing a request for acme's path: authenticated, then refused."""
    err = _refused(lambda: signed(bgw, "euro", "acme").converse(modelId=MODEL, messages=_msg("x")))
    _check(err, 403, "scope.denied", "not valid for this workspace")


def test_sigv4_revoked_key_is_401(bgw):
    """The pair a key had before it was revoked (relaygate-keys no longer prints it) ends with it."""
    key_id = bgw.tokens["revoked"].split("_")[2]
    keys = yaml.safe_load((bgw.stack.config_dir / "keys.yaml").read_text())["keys"]
    record = next(k for k in keys if k["id"] == key_id)
    assert record["revoked"]
    with pytest.raises(SystemExit, match="revoked"):
        aws_credentials(bgw.stack.config_dir, key_id)
    c = signed(bgw, pair=(sigv4.access_key_id(key_id), sigv4.client_secret(b"test-pepper", key_id, record["salt"])))
    _check(_refused(lambda: c.converse(modelId=MODEL, messages=_msg("x"))), 401, "auth.unauthenticated", "revoked")


def test_sigv4_unsigned_extra_header_is_fine_but_a_changed_signed_header_is_401(bgw):
    c = signed(bgw)

    def add_unsigned(request, **_):
        request.headers["x-added-after-signing"] = "1"

    c.client.meta.events.register("before-send.*.*", add_unsigned)
    assert c.converse(modelId=MODEL, messages=_msg("unsigned extra"))["usage"]["outputTokens"] == SIM_OUTPUT

    c = signed(bgw)

    def change_signed(request, **_):
        request.headers["Content-Type"] = "application/json; charset=utf-8"

    c.client.meta.events.register("before-send.*.*", change_signed)
    _check(
        _refused(lambda: c.converse(modelId=MODEL, messages=_msg("x"))),
        401,
        "auth.unauthenticated",
        "signature does not match",
    )


def test_sigv4_unsigned_payload_is_401(bgw):
    c = signed(bgw)

    def unsigned(request, **_):
        request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"

    c.client.meta.events.register("before-sign.*.*", unsigned)
    _check(
        _refused(lambda: c.converse(modelId=MODEL, messages=_msg("x"))),
        401,
        "auth.unauthenticated",
        "signature does not match",
    )


def test_sigv4_is_refused_on_non_bedrock_paths(bgw):
    import urllib.request

    req = urllib.request.Request(
        f"{bgw.url}/v1/acme/chat/completions",
        data=b'{"model":"gpt-4o-mini","messages":[]}',
        method="POST",
        headers={
            "content-type": "application/json",
            "authorization": "AWS4-HMAC-SHA256 Credential=RGKabcdefABCDEF/20261203/us-east-1/bedrock/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
        },
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401 and "Bedrock paths only" in e.value.read().decode()


# -- the pair from the control plane (bundles + xDS, as production runs) ---------------------------


@pytest.fixture(scope="module")
def cpgw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bedrock-cp")
    tokens = write_config(tmp / "config")
    add_bedrock(tmp / "config")
    stack = Stack(
        tmp / "run",
        config_dir=tmp / "config",
        policy_dir=POLICY_DIR,
        controlplane=True,
        unreachable={"openai-dead"},
        instance_id="bedrock-sidecar",
    )
    stack.start()
    yield Gateway(stack, tokens), CP(stack.cp_url, stack.admin_token)
    stack.stop()


def test_control_plane_hands_a_key_its_own_aws_pair_and_the_gateway_accepts_it(cpgw):
    gw, admin = cpgw
    made = admin.post("/v1/keys", {"name": "bedrock app"}, headers={"X-Relaygate-Workspace": "acme"}).json()
    me = CP(admin.url, made["secret"])
    got = eventually(lambda: (r := me.get("/v1/keys/self/aws-credentials")).status == 200 and r, 10, "the new key")
    pair = got.json()
    assert got.headers["cache-control"] == "no-store"
    assert pair["access_key_id"] == "RGK" + made["key"]["id"] and pair["endpoint_path"] == "/v1/acme/bedrock"
    c = signed(gw, pair=(pair["access_key_id"], pair["secret_access_key"]))
    resp = eventually(
        lambda: not isinstance(r := _try(lambda: c.converse(modelId=MODEL, messages=_msg("via cp"))), ClientError)
        and r,
        10,
        "the bundle",
    )
    assert resp["usage"]["outputTokens"] == SIM_OUTPUT

    # only the key itself: not a session started from it, not the admin token
    session = me.post("/v1/sessions", {"ttl_seconds": 300}).json()
    refused = CP(admin.url, session["token"]).get("/v1/keys/self/aws-credentials")
    assert refused.status == 403 and "API key itself" in refused.error["message"]
    assert admin.get("/v1/keys/self/aws-credentials", headers={"X-Relaygate-Workspace": "acme"}).status == 403

    # rotation (no grace) ends the old pair; the successor has a pair of its own
    rotated = me.post(f"/v1/keys/{made['key']['id']}/rotate", {"grace_seconds": 0}).json()
    eventually(
        lambda: isinstance(e := _try(lambda: c.converse(modelId=MODEL, messages=_msg("old pair"))), ClientError)
        and e.response["ResponseMetadata"]["HTTPStatusCode"] == 401,
        10,
        "the rotation reaching the gateway",
    )
    new = CP(admin.url, rotated["secret"]).get("/v1/keys/self/aws-credentials").json()
    assert new["secret_access_key"] != pair["secret_access_key"]
    c2 = signed(gw, pair=(new["access_key_id"], new["secret_access_key"]))
    assert c2.converse(modelId=MODEL, messages=_msg("new pair"))["usage"]["outputTokens"] == SIM_OUTPUT
    # a bedrock upstream must name an AWS credential (a malformed one would fail every call to it)
    bad = {"name": "bedrock-bad", "provider": "bedrock", "address": "127.0.0.1:9", "region": "us-east-1",
           "jurisdiction": "us", "credential": "openai", "models": {MODEL: {"input_per_1k": 1, "output_per_1k": 1}}}  # fmt: skip
    refused = admin.post("/v1/upstreams", bad)
    assert refused.status == 400 and "not an AWS credential" in refused.error["message"]
    events = admin.get(
        "/v1/audit/events", params={"kind": "key.aws_credentials_issued"}, headers={"X-Relaygate-Workspace": "acme"}
    )
    assert pair["secret_access_key"] not in events.text


def _try(fn):
    try:
        return fn()
    except ClientError as e:
        return e


def test_no_secret_or_signature_reaches_logs_spool_or_receipts(bgw):
    """Neither the client's derived secret and signature nor the platform's AWS secret and its
    upstream signature are written anywhere by the gateway (logs, spool, receipts)."""
    akid, secret = aws_pair(bgw, "acme")
    c = signed(bgw)
    sent = {}
    c.client.meta.events.register("before-send.*.*", lambda request, **_: sent.update(request.headers))
    marker = _marker("no secrets")
    resp = c.converse(modelId=MODEL, messages=_msg(marker))
    receipt = json.dumps(bgw.receipt(_rid(resp)))
    client_sig = sent["Authorization"].decode().rsplit("Signature=", 1)[1]
    _, seen = _seen(bgw, marker)
    upstream_sig = seen["headers"]["Authorization"].rsplit("Signature=", 1)[1]
    needles = [secret, client_sig, PLATFORM_AWS.split(":")[1], upstream_sig]
    assert not [n for n in needles if n in receipt]
    for f in bgw.stack.run_dir.rglob("*"):
        if f.is_file() and f.name != "provider-sim.log":  # the simulated provider is not the gateway
            data = f.read_bytes()
            assert not [n for n in needles if n.encode() in data], f


def test_dry_run_of_a_bedrock_call_names_the_model_as_the_path_would(cpgw):
    gw, admin = cpgw
    acme = CP(admin.url, gw.tokens["acme"])
    run = lambda req: acme.post("/v1/policies/relaygate.sovereignty/dryrun", {"request": req})  # noqa: E731
    ok = run({"endpoint": "bedrock.converse", "model": MODEL, "body": {"messages": []}})
    assert ok.status == 200, ok.text
    assert ok.json()["decision"]["upstream"] == "bedrock-us" and ok.json()["input"]["endpoint"] == "bedrock.converse"
    assert ok.json()["input"]["model"] == MODEL
    missing = run({"endpoint": "bedrock.converse", "body": {"messages": []}})
    assert missing.status == 400 and "request.model" in missing.error["message"]
    other = run({"endpoint": "bedrock.invoke", "model": "amazon.titan-text-express-v1", "body": {}})
    assert other.status == 400 and "use Converse" in other.error["message"]
