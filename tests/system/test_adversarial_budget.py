"""Budgets and forwarded headers held against a key holder who wants to overspend or leak (ISSUE-11 7-9).

The attacker holds a valid key of one workspace. They try to make the provider
produce more output than the gateway reserved (a second output-limit field, a
duplicated JSON key, ``n``/``best_of``/several prompts), and to smuggle headers
to the provider next to the platform's credential (``OpenAI-Organization``,
``Cookie``, the gateway's own routing header). Everything runs through the real
Envoy + ext_proc stack; the provider simulator honours the same output-limit
fields and multipliers a lenient provider does and records what it received.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import anthropic
import openai
import pytest
import yaml

from devstack.processes import Stack
from tests.conftest import POLICY_DIR, TRANSPORTS, Gateway, start_full_stack, write_config
from tests.cpclient import eventually
from tests.httpcall import curl

RACE_CAP = 3000  # tokens a day for workspace 'capped': the issue's 3,000-token cap
N_CAP = 2000  # workspace 'tiny': chat n
BEST_OF_CAP = 2000  # workspace 'outage': completions best_of / several prompts
BUDGETS = [
    {"id": "race-cap", "workspace": "capped", "key": None, "unit": "tokens", "window": "day", "limit": RACE_CAP},
    {"id": "n-cap", "workspace": "tiny", "key": None, "unit": "tokens", "window": "day", "limit": N_CAP},
    {"id": "best-of-cap", "workspace": "outage", "key": None, "unit": "tokens", "window": "day", "limit": BEST_OF_CAP},
]
# The operator of openai-eu lets OpenAI-Organization through on that upstream only.
EU_FORWARD = [
    "content-type",
    "accept",
    "user-agent",
    "x-stainless-*",
    "idempotency-key",
    "openai-organization",
    "x-sim-*",
]


@pytest.fixture(scope="module", params=TRANSPORTS)
def agw(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adv-budget")
    tokens = write_config(tmp / "config", BUDGETS)
    ups = yaml.safe_load((tmp / "config" / "upstreams.yaml").read_text())
    for u in ups["upstreams"]:
        if u["name"] == "openai-eu":
            u["forward_headers"] = EU_FORWARD
    (tmp / "config" / "upstreams.yaml").write_text(yaml.safe_dump(ups))
    stack = Stack(
        tmp / "run",
        config_dir=tmp / "config",
        policy_dir=POLICY_DIR,
        unreachable={"openai-dead"},
        transport=request.param,
    )
    stack.start()
    g = Gateway(stack, tokens)
    yield g
    stack.stop()


def _auth(gw, name: str) -> dict:
    return {"authorization": f"Bearer {gw.tokens[name]}", "content-type": "application/json"}


def _sent(gw, marker: str, upstream: str = "openai-us") -> list[dict]:
    return [e for e in gw.sim_requests(upstream) if marker in e["body"]]


async def _fire(url: str, headers: dict, body: bytes, n: int) -> list[tuple[int, dict, dict]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n)) as s:

        async def one():
            async with s.post(url, data=body, headers=headers) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.json()

        return await asyncio.gather(*(one() for _ in range(n)))


# -- item 7: one output limit, the one reserved, is the one forwarded ---------------------------


def test_conflicting_limit_fields_cannot_overspend_a_cap(agw):
    """The issue's attack: {max_completion_tokens: 1, max_tokens: 4000} x 20 against a 3,000-token cap."""
    url = agw.base("capped") + "/chat/completions"
    headers = {**_auth(agw, "capped"), "x-sim-output-tokens": "4000", "x-sim-delay-ms": "500"}
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1,
            "max_tokens": 4000,
            "messages": [{"role": "user", "content": "overspend conflict"}],
        }
    ).encode()
    results = asyncio.run(_fire(url, headers, body, 20))
    assert {r[0] for r in results} == {400}, [r[0] for r in results]
    for _, _, b in results:
        assert b["error"]["code"] == "request.invalid"
        assert "max_tokens" in b["error"]["message"] and "max_completion_tokens" in b["error"]["message"]
    assert not _sent(agw, "overspend conflict")

    # One large field alone is reserved at its value: 4,000 output tokens never fit a 3,000 cap.
    big = json.dumps(
        {"model": "gpt-4o-mini", "max_tokens": 4000, "messages": [{"role": "user", "content": "overspend single"}]}
    )
    r = curl(url, big, headers)
    assert r.status == 429 and r.json()["error"]["code"] == "budget.exceeded"
    assert not _sent(agw, "overspend single")

    # 20 concurrent calls each allowed 1,000 output tokens that the provider fully uses:
    # only what fits the cap is admitted, and actual spend stays under it.
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1000,
            "max_tokens": None,
            "messages": [{"role": "user", "content": "overspend race"}],
        }
    ).encode()
    results = asyncio.run(_fire(url, headers, body, 20))
    ok = [r for r in results if r[0] == 200]
    assert 1 <= len(ok) <= RACE_CAP // (1000 + len(body)), [r[0] for r in results]
    assert all(r[0] in (200, 429) for r in results)
    sent = _sent(agw, "overspend race")
    assert len(sent) == len(ok)
    for e in sent:  # the provider saw exactly the reserved field, not the null alias
        doc = json.loads(e["body"])
        assert doc["max_completion_tokens"] == 1000 and "max_tokens" not in doc
    spent = 0
    for _, h, _ in ok:
        r = agw.receipt_doc(h["x-relayone-receipt-id"])
        assert r["usage"]["source"] == "response" and r["usage"]["output_tokens"] == 1000
        spent += r["usage"]["input_tokens"] + r["usage"]["output_tokens"]
    assert spent <= RACE_CAP


@pytest.mark.parametrize(
    "endpoint,fields",
    [
        ("chat/completions", {"max_tokens": 5, "max_completion_tokens": 5}),  # both, even equal
        ("completions", {"max_completion_tokens": 5}),  # not a completions field
        ("messages", {"max_tokens": 5, "max_completion_tokens": 5}),
        ("messages", {"max_completion_tokens": 5}),  # not an Anthropic field
        ("chat/completions", {"max_tokens": 5, "max_output_tokens": 4000}),  # other dialects' aliases
        ("chat/completions", {"max_tokens": 5, "max_new_tokens": 4000}),
        ("messages", {"max_tokens": 5, "max_tokens_to_sample": 4000}),
        ("chat/completions", {"max_tokens": -1}),
        ("chat/completions", {"max_completion_tokens": 0}),
        ("chat/completions", {"max_tokens": 1.5}),
        ("chat/completions", {"max_tokens": 4000.0}),
        ("chat/completions", {"max_completion_tokens": True}),
        ("chat/completions", {"max_tokens": "4000"}),
        ("chat/completions", {"max_tokens": 10**12}),
        ("messages", {"max_tokens": 10**30}),
    ],
)
def test_bad_or_conflicting_limits_are_400(agw, endpoint, fields):
    model = {
        "chat/completions": "gpt-4o-mini",
        "completions": "gpt-3.5-turbo-instruct",
        "messages": "claude-sonnet-4-5",
    }[endpoint]
    doc = {"model": model, **fields}
    doc.update(
        {"prompt": "bad limit"}
        if endpoint == "completions"
        else {"messages": [{"role": "user", "content": "bad limit"}]}
    )
    r = curl(f"{agw.base('acme')}/{endpoint}", json.dumps(doc), _auth(agw, "acme"))
    assert r.status == 400, (r.status, r.body)
    err = r.json()["error"]
    assert err["code"] == "request.invalid" and err["receipt_id"] == r.receipt_id
    for f in fields:
        if f != "max_tokens" or len(fields) == 1:
            assert f in err["message"], err["message"]


def test_duplicated_limit_key_is_forwarded_as_parsed(agw):
    """A duplicated key must not let a first-key-wins provider honour a value the gateway never reserved."""
    raw = (
        '{"model": "gpt-4o-mini", "max_tokens": 4000, "messages": [{"role": "user", "content": '
        '"dup key"}], "max_tokens": 7}'
    )
    r = curl(agw.base("acme") + "/chat/completions", raw, _auth(agw, "acme"))
    assert r.status == 200, r.body
    sent = _sent(agw, "dup key")[-1]["body"]
    assert sent.count("max_tokens") == 1 and json.loads(sent)["max_tokens"] == 7


def test_embeddings_with_a_duplicated_model_are_forwarded_as_parsed(agw):
    """Red team: the re-serialization of duplicated decisive keys skipped embeddings, so a key
    limited to gpt-4o sent {"model": "text-embedding-3-small", ..., "model": "gpt-4o"}: the
    gateway checked (and priced) gpt-4o, and a provider that keeps the first copy would serve a
    model the key may not use. Escaped keys likewise."""
    for raw in (
        '{"model": "text-embedding-3-small", "input": "dup emb", "model": "gpt-4o"}',
        '{"m\\u006fdel": "text-embedding-3-small", "input": "esc emb", "model": "gpt-4o"}',
    ):
        r = curl(agw.base("acme") + "/embeddings", raw, _auth(agw, "acme-4o"))
        marker = "dup emb" if "dup emb" in raw else "esc emb"
        sent = [e["body"] for e in agw.sim_requests() if marker in e["body"]]
        assert r.status == 200 and sent, r.body
        assert "text-embedding-3-small" not in sent[-1] and json.loads(sent[-1])["model"] == "gpt-4o", sent[-1]


def test_escaped_duplicate_key_is_forwarded_as_parsed():
    """A key spelled with a \\u escape duplicates a limit without a second literal "max_tokens"."""
    from relaygate.decision.wire import parse_body

    raw = b'{"model": "m", "max\\u005ftokens": 4000, "max_tokens": 5, "messages": []}'
    shape = parse_body("chat.completions", raw, 100)
    assert shape.max_output_tokens == 5 and shape.rewritten
    assert shape.body.count(b"max") == 1 and json.loads(shape.body)["max_tokens"] == 5
    shape = parse_body("chat.completions", b'{"model": "m", "max_tokens": 5, "max_completion_tokens": null}', 100)
    assert json.loads(shape.body) == {"model": "m", "max_tokens": 5}  # only the reserved field goes on


# -- item 8: n, best_of and several prompts are in the worst case ------------------------------


@pytest.mark.parametrize(
    "endpoint,doc,worst",
    [
        ("completions", {"prompt": [[1, 2], [3]], "n": 2, "best_of": 3, "max_tokens": 10}, 60),  # 2 token prompts
        ("completions", {"prompt": [1, 2, 3], "n": 2, "max_tokens": 10}, 20),  # one token prompt
        ("completions", {"prompt": ["a", "b", "c"], "best_of": 4, "max_tokens": 10}, 120),
        ("chat.completions", {"n": 128, "max_completion_tokens": 7, "messages": []}, 896),
        (
            "chat.completions",
            {"max_tokens": 10, "prediction": {"type": "content", "content": "x" * 50}},
            10 + 81,
        ),  # + its JSON bytes
        ("messages", {"max_tokens": 10, "n": 5}, 10),  # Anthropic has no n; its provider refuses the field
    ],
)
def test_worst_case_counts_every_output(endpoint, doc, worst):
    from relaygate.decision.wire import parse_body

    shape = parse_body(endpoint, json.dumps({"model": "m", **doc}).encode(), 100)
    assert shape.max_output_tokens == worst


def test_chat_n_multiplies_the_reservation(agw):
    url = agw.base("tiny") + "/chat/completions"
    headers = {**_auth(agw, "tiny"), "x-sim-output-tokens": "100"}

    def body(n, tag):
        return json.dumps(
            {"model": "gpt-4o-mini", "max_tokens": 100, "n": n, "messages": [{"role": "user", "content": tag}]}
        )

    # 20 choices x 100 tokens cannot fit 2,000 tokens with any input: refused before the provider.
    r = curl(url, body(20, "n twenty"), headers)
    assert r.status == 429 and r.json()["error"]["code"] == "budget.exceeded", r.body
    assert not _sent(agw, "n twenty")
    # The same through the official SDK.
    client = openai.OpenAI(base_url=agw.base("tiny"), api_key=agw.tokens["tiny"], max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o-mini", max_tokens=100, n=20, messages=[{"role": "user", "content": "n sdk"}]
        )
    assert not _sent(agw, "n sdk")

    # 4 x 100 fits: admitted, and settlement charges what the provider reports (all four choices).
    b = body(4, "n four")
    r = curl(url, b, headers)
    assert r.status == 200, r.body
    assert len(r.json()["choices"]) == 4
    doc = agw.receipt_doc(r.receipt_id)
    assert doc["usage"]["output_tokens"] == 400 and doc["usage"]["source"] == "response"

    # Exactly the reservation: input bound (body bytes) + n x max_tokens, to the token.
    left = N_CAP - doc["usage"]["input_tokens"] - 400

    def sized(n, room, tag):
        base = body(n, tag)
        return base if room < 0 else base.replace(tag, tag + "x" * room)

    fits = sized(3, left - 300 - len(body(3, "n exact")), "n exact")
    assert len(fits) + 300 == left
    over = fits.replace('"n exact', '"n exacx')  # same size
    bigger = sized(3, left - 300 - len(body(3, "n over")) + 1, "n over")
    r = curl(url, bigger, headers)
    assert r.status == 429, (r.status, r.body, left)
    r = curl(url, over.replace("exacx", "exact"), {**headers, "x-sim-output-tokens": "1"})
    assert r.status == 200, (r.body, left)


@pytest.mark.parametrize("extra", [{"n": 129}, {"n": 0}, {"n": -2}, {"n": True}, {"n": 2.0}, {"n": "3"}])
def test_chat_n_out_of_range_is_400(agw, extra):
    doc = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "n bad"}], **extra}
    r = curl(agw.base("acme") + "/chat/completions", json.dumps(doc), _auth(agw, "acme"))
    assert r.status == 400 and r.json()["error"]["code"] == "request.invalid" and "'n'" in r.json()["error"]["message"]
    assert not _sent(agw, "n bad")


def test_completions_best_of_and_prompts_multiply_the_reservation(agw):
    url = agw.base("outage") + "/completions"
    headers = {**_auth(agw, "outage"), "x-sim-output-tokens": "100"}

    def call(tag, **kw):
        doc = {"model": "gpt-3.5-turbo-instruct", "max_tokens": 100, "prompt": tag, **kw}
        return curl(url, json.dumps(doc), headers)

    # best_of=20 generates (and bills) 20 x 100 server-side, whatever n is.
    r = call("best of twenty", best_of=20, n=1)
    assert r.status == 429 and r.json()["error"]["code"] == "budget.exceeded", r.body
    # Three prompts x n=7 x 100 tokens.
    r = call(["three prompts a", "b", "c"], n=7)
    assert r.status == 429, r.body
    assert not _sent(agw, "best of twenty") and not _sent(agw, "three prompts")
    for bad in ({"best_of": 21}, {"best_of": 0}, {"best_of": True}, {"n": 200}):
        r = call("best of bad", **bad)
        assert r.status == 400 and r.json()["error"]["code"] == "request.invalid", (bad, r.body)
        assert list(bad)[0] in r.json()["error"]["message"]
    assert not _sent(agw, "best of bad")

    # Admitted: 3 x 100 generated server-side; the receipt charges what the provider billed.
    r = call("best of three", best_of=3, n=2)
    assert r.status == 200, r.body
    assert len(r.json()["choices"]) == 2
    assert agw.receipt_doc(r.receipt_id)["usage"]["output_tokens"] == 300


def test_a_pricier_service_tier_is_refused(agw):
    """Red team: OpenAI's body field service_tier="priority" bills the platform's account at a
    higher rate than the one every reservation and receipt is priced at (like a header acting on
    the account, but in the body). Only tiers at or below the standard price pass; a duplicated
    key is forwarded as parsed, so a provider keeping the first copy sees the tier that was checked."""
    url = agw.base("acme") + "/chat/completions"
    for tier in ("priority", "scale", "", 1, None):
        doc = {
            "model": "gpt-4o-mini",
            "max_tokens": 5,
            "service_tier": tier,
            "messages": [{"role": "user", "content": f"tier {tier!r}"}],
        }
        r = curl(url, json.dumps(doc), _auth(agw, "acme"))
        if tier is None:  # null is the provider's default
            assert r.status == 200, r.body
            continue
        assert r.status == 400 and r.json()["error"]["code"] == "request.invalid", (tier, r.body)
        assert "service_tier" in r.json()["error"]["message"]
        assert not _sent(agw, f"tier {tier!r}")
    raw = (
        '{"model":"gpt-4o-mini","max_tokens":5,"service_tier":"priority","service_tier":"flex",'
        '"messages":[{"role":"user","content":"tier dup"}]}'
    )
    r = curl(url, raw, _auth(agw, "acme"))
    assert r.status == 200, r.body
    assert json.loads(_sent(agw, "tier dup")[-1]["body"])["service_tier"] == "flex"
    assert '"priority"' not in _sent(agw, "tier dup")[-1]["body"]


def test_hanging_up_before_the_provider_answers_still_charges_the_reservation(agw):
    """Red team: a caller that sent its request and hung up before the provider's answer left a
    call with no upstream response, which the settler released in full, although the request had
    reached the provider, which generates (and bills) the answer anyway. Repeated, that is
    unlimited spend on the platform's account with nothing charged to any budget."""
    import time as _time

    body = json.dumps(
        {"model": "gpt-4o-mini", "max_tokens": 300, "messages": [{"role": "user", "content": "hangup probe"}]}
    ).encode()
    head = (
        f"POST /v1/acme/chat/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {agw.tokens['acme']}\r\nx-sim-delay-ms: 1500\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    conn = agw.connect()
    conn.sendall(head + body)
    deadline = _time.monotonic() + 10
    while not _sent(agw, "hangup probe"):  # the provider has the request...
        assert _time.monotonic() < deadline
        _time.sleep(0.02)
    conn.close()  # ...and the caller hangs up before its answer
    request_id = _sent(agw, "hangup probe")[-1]["headers"]["X-Request-ID"]
    doc = agw.receipt_doc("rcpt_" + request_id)
    assert doc["upstream"] is not None and doc["usage"]["source"] == "reserved", (doc["usage"], doc["response"])
    assert doc["cost"]["usd_micros"] >= 300 * 600 // 1000, doc["cost"]  # 300 output tokens at $0.6/1k


# -- item 9: only an allow-list of client headers reaches the provider -------------------------

SMUGGLED = {
    "OpenAI-Organization": "org-attacker",
    "OpenAI-Project": "proj-attacker",
    "Cookie": "session=stolen",
    "anthropic-beta": "output-128k-2025-02-19",
    "x-relaygate-upstream": "openai-eu",
    "X-Forwarded-For": "10.0.0.1",
    "X-Forwarded-Host": "evil.example",
    "X-Envoy-Evil": "1",
    "X-Evil": "1",
    "Proxy-Authorization": "Basic Zm9vOmJhcg==",
}
NEVER = {
    "openai-organization",
    "openai-project",
    "cookie",
    "anthropic-beta",
    "x-relaygate-upstream",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-evil",
    "proxy-authorization",
    "x-relayone-receipt-id",
    "accept-encoding",
}


def _lower(headers: dict) -> dict:
    return {k.lower(): v for k, v in headers.items()}


def _assert_clean(seen: dict) -> None:
    leaked = sorted(k for k in seen if k in NEVER or k.startswith("x-envoy-"))
    assert not leaked, seen


def test_openai_sdk_headers_are_allow_listed(agw):
    client = openai.OpenAI(
        base_url=agw.base("acme"),
        api_key=agw.tokens["acme"],
        max_retries=0,
        organization="org-sdk",
        project="proj-sdk",
        default_headers=SMUGGLED,
    )
    client.chat.completions.create(
        model="gpt-4o-mini",
        max_tokens=5,
        messages=[{"role": "user", "content": "hdr sdk"}],
        extra_headers={"Idempotency-Key": "idem-123"},
    )
    seen = _lower(_sent(agw, "hdr sdk")[-1]["headers"])
    _assert_clean(seen)
    assert seen["authorization"] == "Bearer sk-test-openai"
    assert seen["content-type"] == "application/json" and seen["user-agent"].startswith("OpenAI/Python")
    assert seen["x-stainless-lang"] == "python" and seen["idempotency-key"] == "idem-123"
    assert agw.tokens["acme"] not in json.dumps(seen)


def test_curl_headers_are_allow_listed_on_both_dialects(agw):
    r = curl(
        agw.base("acme") + "/chat/completions",
        json.dumps({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hdr curl"}]}),
        {**_auth(agw, "acme"), **SMUGGLED, "accept": "application/json", "accept-encoding": "gzip"},
    )
    assert r.status == 200, r.body
    seen = _lower(_sent(agw, "hdr curl")[-1]["headers"])
    _assert_clean(seen)
    assert seen["authorization"] == "Bearer sk-test-openai" and seen["accept"] == "application/json"
    assert seen["user-agent"].startswith("curl/")

    r = curl(
        agw.base("acme") + "/v1/messages",
        json.dumps(
            {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hdr ant"}]}
        ),
        {**_auth(agw, "acme"), "anthropic-version": "2023-06-01", **SMUGGLED, "x-api-key": "sk-ant-smuggled"},
    )
    assert r.status == 200, r.body
    seen = _lower(_sent(agw, "hdr ant", "anthropic-us")[-1]["headers"])
    _assert_clean(seen)
    assert seen["x-api-key"] == "sk-ant-test" and seen["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen


def test_anthropic_sdk_headers_are_allow_listed(agw):
    client = anthropic.Anthropic(
        base_url=agw.base("acme"), api_key=agw.tokens["acme"], max_retries=0, default_headers=SMUGGLED
    )
    client.messages.create(
        model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "hdr antsdk"}]
    )
    seen = _lower(_sent(agw, "hdr antsdk", "anthropic-us")[-1]["headers"])
    _assert_clean(seen)
    assert seen["x-api-key"] == "sk-ant-test" and seen["anthropic-version"]
    assert seen["x-stainless-lang"] == "python"


def test_forward_headers_is_configurable_per_upstream(agw):
    """openai-eu's operator allowed OpenAI-Organization there; openai-us keeps the default list."""
    for ws, name, upstream in (("euro", "euro", "openai-eu"), ("acme", "acme", "openai-us")):
        r = curl(
            agw.base(ws) + "/chat/completions",
            json.dumps(
                {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hdr cfg " + ws}]}
            ),
            {**_auth(agw, name), **SMUGGLED},
        )
        assert r.status == 200, r.body
        seen = _lower(_sent(agw, "hdr cfg " + ws, upstream)[-1]["headers"])
        assert ("openai-organization" in seen) == (upstream == "openai-eu"), seen
        assert "cookie" not in seen and "openai-project" not in seen and "x-relaygate-upstream" not in seen


def test_no_x_forwarded_header_or_client_host_reaches_the_provider(agw):
    """Red team: the sidecar let every x-forwarded-* name through for the route to strip, but the
    route strips only the ones Envoy sets, so X-Forwarded-User / -Authorization / anything else
    reached the provider; and an upstream addressed by IP got the client's own Host header
    (a name-based virtual host in front of the provider would be the client's choice)."""
    body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hdr xfwd"}]})
    r = curl(
        agw.base("acme") + "/chat/completions",
        body,
        {
            **_auth(agw, "acme"),
            "Host": "internal-admin.example",
            "X-Forwarded-User": "admin",
            "X-Forwarded-Authorization": "Bearer stolen",
            "X-Forwarded-Server": "evil",
            "x-forwarded-anything": "1",
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": "evil.example",
        },
    )
    assert r.status == 200, r.body
    seen = _lower(_sent(agw, "hdr xfwd")[-1]["headers"])
    assert not [k for k in seen if k.startswith("x-forwarded")], seen
    assert seen["host"] == f"127.0.0.1:{agw.sim_ports['openai-us']}", seen


def test_client_query_string_never_reaches_the_provider(agw):
    """Red team: the query of the gateway URL was appended to the provider's path, an input next
    to the platform's credential that no allow-list vetted (e.g. Azure's api-version picks
    preview APIs). The provider's endpoints take no query: the gateway sends none."""
    r = curl(
        agw.base("acme") + "/chat/completions?api-version=2099-01-01-preview&organization=org-evil",
        json.dumps({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "qs probe"}]}),
        _auth(agw, "acme"),
    )
    assert r.status == 200, r.body
    assert _sent(agw, "qs probe")[-1]["path"] == "/v1/chat/completions"


def test_provider_account_headers_never_reach_the_client(agw):
    """Red team: every provider response header went back to the caller, so any key holder
    learned the platform's provider organization and project, its account-wide rate-limit state
    (how much every other tenant is spending right now) and the provider's edge cookies. Only
    the gateway's response allow-list reaches a client; usage and receipts still work."""
    from relaygate.providersim.server import ACCOUNT_HEADERS

    calls = [
        ("/chat/completions", {"model": "gpt-4o-mini", "max_tokens": 5}, "openai"),
        ("/chat/completions", {"model": "gpt-4o-mini", "max_tokens": 5, "stream": True}, "openai"),
        ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 5}, "anthropic"),
        ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 5, "stream": True}, "anthropic"),
    ]
    for path, doc, provider in calls:
        body = json.dumps({**doc, "messages": [{"role": "user", "content": "resp hdr"}]})
        r = curl(agw.base("acme") + path, body, {**_auth(agw, "acme"), "anthropic-version": "2023-06-01"})
        assert r.status == 200, r.body
        leaked = sorted(k for k in r.headers if k in ACCOUNT_HEADERS[provider])
        assert not leaked, (path, doc, r.headers)
        assert r.headers["content-type"].startswith("text/event-stream" if doc.get("stream") else "application/json")
        assert agw.receipt_doc(r.receipt_id)["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_prompt_cache_tokens_are_charged(agw, stream):
    """Red team: Anthropic reports cached prompt tokens apart from input_tokens
    (cache_creation_input_tokens, cache_read_input_tokens), and the gateway read only
    input_tokens, so marking a large system prompt with cache_control made every call settle as
    a one-token input: a cap stopped capping. Every input token the provider bills is charged."""
    system = [{"type": "text", "text": "policy manual " * 2000 + str(stream), "cache_control": {"type": "ephemeral"}}]
    body = json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 5,
            "stream": stream,
            "system": system,
            "messages": [{"role": "user", "content": "cache probe"}],
        }
    )
    for attempt in ("write", "read"):
        r = curl(agw.base("acme") + "/v1/messages", body, {**_auth(agw, "acme"), "anthropic-version": "2023-06-01"})
        assert r.status == 200, r.body
        billed = 1 + (len(system[0]["text"]) + len(" cache probe")) // 4  # what providersim bills, at least
        usage = agw.receipt_doc(r.receipt_id)["usage"]
        assert usage["source"] == "response" and usage["input_tokens"] >= billed - 2, (attempt, usage)


def test_an_aborted_anthropic_stream_is_charged_what_it_may_have_cost(agw):
    """Red team: an Anthropic stream reports input tokens at message_start and output tokens only
    at the final message_delta; a caller that read the text and hung up before the end left the
    settler an input-only usage, settled as zero output tokens, while the provider bills every
    token it generated. Usage without its output count is not a usage: the reservation stands."""

    async def read_some_and_hang_up() -> tuple[str, int]:
        body = json.dumps(
            {
                "model": "claude-sonnet-4-5",
                "max_tokens": 400,
                "stream": True,
                "messages": [{"role": "user", "content": "abort probe"}],
            }
        )
        headers = {
            **_auth(agw, "acme"),
            "anthropic-version": "2023-06-01",
            "x-sim-output-tokens": "400",
            "x-sim-chunk-delay-ms": "20",
        }
        async with aiohttp.ClientSession() as s:
            async with s.post(agw.base("acme") + "/v1/messages", data=body, headers=headers) as r:
                assert r.status == 200
                rid, deltas = r.headers["x-relayone-receipt-id"], 0
                async for line in r.content:
                    deltas += line.startswith(b"event: content_block_delta")
                    if deltas >= 20:
                        r.close()  # got 20 tokens of text; never wait for the usage event
                        return rid, deltas
        raise AssertionError("stream ended early")

    rid, deltas = asyncio.run(read_some_and_hang_up())
    doc = agw.receipt_doc(rid)
    assert doc["response"]["status"] == 200 and doc["usage"]["source"] == "reserved", doc["usage"]
    # claude-sonnet-4-5 costs $15 per 1k output tokens here: all 400 reserved ones are charged.
    assert doc["cost"]["usd_micros"] >= 400 * 15_000 // 1000, (doc["usage"], doc["cost"])


# -- forward_headers through the control plane's upstream API and bundles ----------------------


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A gateway that takes its upstreams from the control plane (policy bundles + xDS)."""
    from tests.conftest import ControlPlane

    stack, tokens = start_full_stack(tmp_path_factory, "adv-budget")
    yield Gateway(stack, tokens), ControlPlane(stack, tokens)
    stack.stop()


def test_forward_headers_through_the_upstream_api(full):
    gw, cp = full
    spec = cp.admin.get("/v1/upstreams/openai-us").json()
    spec = {k: v for k, v in spec.items() if k not in ("created_at", "updated_at")}
    assert "x-sim-*" in spec["forward_headers"]  # seeded from the config documents as written
    for bad in (
        ["Authorization"],
        ["x-api-key"],
        ["X-Forwarded-For"],
        ["x-relaygate-upstream"],
        ["bad header"],
        ["*"],
        "cookie",
    ):
        r = cp.admin.put("/v1/upstreams/openai-us", {**spec, "forward_headers": bad})
        assert r.status == 400, (bad, r.text)
    assert cp.admin.get("/v1/upstreams/openai-us").json()["forward_headers"] == spec["forward_headers"]

    def org_seen(tag):
        r = curl(
            gw.base("acme") + "/chat/completions",
            json.dumps({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": tag}]}),
            {"authorization": f"Bearer {gw.tokens['acme']}", "content-type": "application/json", **SMUGGLED},
        )
        assert r.status == 200, r.body
        seen = _lower(_sent(gw, tag)[-1]["headers"])
        assert "cookie" not in seen and "x-relaygate-upstream" not in seen
        return "openai-organization" in seen

    assert not org_seen("cp before")
    wider = [*spec["forward_headers"], "OpenAI-Organization"]
    r = cp.admin.put("/v1/upstreams/openai-us", {**spec, "forward_headers": wider})
    assert r.status == 200 and r.json()["forward_headers"] == wider, r.text
    n = iter(range(10_000))
    eventually(lambda: org_seen(f"cp after {next(n)}"), 20, "the new forward_headers at the gateway")
