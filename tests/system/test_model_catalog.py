"""The model catalog at the gateway: aliases (platform and workspace) and GET /v1/{ws}/models.

The session config (tests/conftest.py) gives gpt-4o the platform aliases gpt-4 and gpt-4-turbo,
claude-sonnet-4-5 the reference's claude-3-sonnet names, and workspace acme its own names:
fast -> gpt-4o-mini and smart -> gpt-4 (a platform alias). Every test runs over both transports.
"""

from __future__ import annotations

import uuid

import anthropic
import openai
import pytest

from relaygate.evidence.receipts import envelope_receipt
from tests.httpcall import chat_body, curl


def _verify(gw):
    return {"verify": gw.stack.client_ssl(), "trust_env": False}


def _openai(gw, name="acme", ws="acme") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.base(ws),
        api_key=gw.tokens[name],
        max_retries=0,
        http_client=openai.DefaultHttpxClient(**_verify(gw)),
    )


def _anthropic(gw, name="acme", ws="acme") -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gw.base(ws),
        api_key=gw.tokens[name],
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(**_verify(gw)),
    )


def _marker(what: str) -> str:
    return f"{what} {uuid.uuid4().hex}"


def test_platform_alias_calls_the_catalog_model_and_the_receipt_says_both(gw):
    marker = _marker("alias")
    raw = _openai(gw).chat.completions.with_raw_response.create(
        model="gpt-4", messages=[{"role": "user", "content": marker}], max_tokens=20
    )
    assert raw.parse().choices
    seen = gw.sim_request(marker)
    assert '"model":"gpt-4o"' in seen["body"].replace(" ", "")  # the provider knows no aliases
    p = gw.receipt_doc(raw.headers["x-relayone-receipt-id"])
    assert p["model"]["requested"] == "gpt-4o" and p["model"]["alias"] == "gpt-4"
    assert p["upstream"]["name"] == "openai-us"
    # priced as the model that was called: gpt-4o's $2.5/$10 per 1k, not another model's
    u = p["usage"]
    assert p["cost"]["usd_micros"] == -(-(u["input_tokens"] * 2_500_000 + u["output_tokens"] * 10_000_000) // 1000)


def test_reference_model_names_reach_anthropic(gw):
    marker = _marker("sonnet")
    for name in ("claude-3-sonnet", "claude-3-sonnet-20240229"):
        raw = _anthropic(gw).messages.with_raw_response.create(
            model=name, max_tokens=10, messages=[{"role": "user", "content": f"{marker} {name}"}]
        )
        assert raw.parse().content
        p = gw.receipt_doc(raw.headers["x-relayone-receipt-id"])
        assert (p["model"]["requested"], p["model"]["alias"]) == ("claude-sonnet-4-5", name)


def test_workspace_alias_is_the_workspace_own(gw):
    """acme's 'fast' resolves for acme only; another workspace naming it calls a model nobody serves."""
    r = curl(
        gw.base("acme") + "/chat/completions",
        chat_body("fast", _marker("fast")),
        {"Authorization": f"Bearer {gw.tokens['acme']}", "Content-Type": "application/json"},
    )
    assert r.status == 200, r.body
    assert gw.receipt_doc(r.receipt_id)["model"] == {
        "requested": "gpt-4o-mini",
        "served": "gpt-4o-mini",
        "alias": "fast",
    }
    # a workspace alias may name a platform alias: smart -> gpt-4 -> gpt-4o
    r = curl(
        gw.base("acme") + "/chat/completions",
        chat_body("smart", _marker("smart")),
        {"Authorization": f"Bearer {gw.tokens['acme']}", "Content-Type": "application/json"},
    )
    assert r.status == 200 and gw.receipt_doc(r.receipt_id)["model"]["requested"] == "gpt-4o"
    r = curl(
        gw.base("euro") + "/chat/completions",
        chat_body("fast"),
        {"Authorization": f"Bearer {gw.tokens['euro']}", "Content-Type": "application/json"},
    )
    assert r.status == 404 and r.json()["error"]["code"] == "model.not_found", r.body


def test_an_alias_never_widens_a_key_scope(gw):
    """Attack: a key scoped to gpt-4o calls the cheap model, or any other, through an alias of it.
    Scope is checked on the model actually called, whatever name the body used."""
    hdrs = {"Authorization": f"Bearer {gw.tokens['acme-4o']}", "Content-Type": "application/json"}
    denied = curl(gw.base("acme") + "/chat/completions", chat_body("fast"), hdrs)  # fast -> gpt-4o-mini
    assert denied.status == 403 and denied.json()["error"]["code"] == "scope.denied", denied.body
    assert "gpt-4o-mini" in denied.json()["error"]["message"]
    for name in ("gpt-4", "smart"):  # both are gpt-4o: in scope
        ok = curl(gw.base("acme") + "/chat/completions", chat_body(name, _marker(name)), hdrs)
        assert ok.status == 200, ok.body


def test_model_list_in_openai_shape_is_what_the_key_may_call(gw):
    listed = {m.id: m for m in _openai(gw).models.list()}
    # the catalog's models and every alias acme can use, each with its provider
    for name in ("gpt-4o-mini", "gpt-4o", "gpt-4", "claude-sonnet-4-5", "claude-3-sonnet", "fast", "smart"):
        assert name in listed, sorted(listed)
    assert listed["claude-3-sonnet"].owned_by == "anthropic"
    assert listed["fast"].model_extra["alias_of"] == "gpt-4o-mini"
    assert listed["smart"].model_extra["alias_of"] == "gpt-4o"
    assert "alias_of" not in (listed["gpt-4o"].model_extra or {})
    # the scope of the key: only gpt-4o, under each of its names
    scoped = {m.id for m in _openai(gw, "acme-4o").models.list()}
    assert scoped == {"gpt-4o", "gpt-4", "gpt-4-turbo", "smart"}
    # sovereignty: euro may reach only the EU upstream, which serves gpt-4o-mini alone; acme's own
    # aliases are not euro's
    assert {m.id for m in _openai(gw, "euro", "euro").models.list()} == {"gpt-4o-mini"}


def test_model_list_in_anthropic_shape(gw):
    page = _anthropic(gw).models.list()
    ids = [m.id for m in page.data]
    assert "claude-3-sonnet-20240229" in ids and "claude-sonnet-4-5" in ids
    assert all(m.type == "model" for m in page.data)


def test_model_list_refusals(gw):
    url = gw.base("acme") + "/models"
    assert curl(url, method="GET").status == 401
    other = curl(url, method="GET", headers={"Authorization": f"Bearer {gw.tokens['euro']}"})
    assert other.status == 403 and other.json()["error"]["code"] == "scope.denied"
    post = curl(url, "{}", {"Authorization": f"Bearer {gw.tokens['acme']}", "Content-Type": "application/json"})
    assert post.status == 405 and post.json()["error"]["code"] == "request.method_not_allowed"
    assert post.headers["allow"] == "GET"
    for method in ("PUT", "DELETE", "PATCH"):
        r = curl(url, None, {"Authorization": f"Bearer {gw.tokens['acme']}"}, method)
        assert r.status == 405 and r.headers["allow"] == "GET", (method, r.body)
    # a read-only (dashboard) key may read the list, though it may not call
    ro = curl(url, method="GET", headers={"Authorization": f"Bearer {gw.tokens['acme-ro']}"})
    assert ro.status == 200 and ro.headers["content-type"].startswith("application/json")
    assert "x-relayone-receipt-id" not in ro.headers  # nothing was called: no receipt


def test_model_list_writes_no_receipt(gw):
    """A listing calls no provider; its access-log entry must not be drafted as a gateway refusal."""
    before = len(gw.all_receipts())
    for _ in range(3):
        assert curl(gw.base("acme") + "/models", method="GET", headers={"x-api-key": gw.tokens["acme"]}).status == 200
    # a call after the listings: once its receipt exists, the listings' entries were read too
    r = curl(
        gw.base("acme") + "/chat/completions",
        chat_body(),
        {"Authorization": f"Bearer {gw.tokens['acme']}", "Content-Type": "application/json"},
    )
    gw.receipt(r.receipt_id)
    new = [envelope_receipt(e) for e in gw.all_receipts()[before:]]
    assert "/v1/acme/chat/completions" in [r["request"]["path"] for r in new]  # the receipts read are the new ones
    # (earlier tests' refused calls to /models, 401/403/405, may settle in this window: they are receipted)
    listed = [r for r in new if r["request"]["path"].endswith("/models") and (r["response"] or {}).get("status") == 200]
    assert listed == [], "a model listing was receipted"


@pytest.mark.parametrize("path", ["/models", "/v1/models"])
def test_model_list_answers_json_on_both_paths(gw, path):
    r = curl(gw.base("acme") + path, method="GET", headers={"x-api-key": gw.tokens["acme"]})
    assert r.status == 200
    body = r.json()
    assert ("object" in body) == (path == "/models") and body["data"]
