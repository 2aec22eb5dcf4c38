"""The gateway's OpenAPI document (relaygate/envoy/gateway-openapi.yaml) against what the gateway answers.

schemathesis generates calls from the document (its examples, then valid and invalid bodies, wrong
content types and methods, calls without the key) and sends them through a real Envoy and policy
service (a stack of its own, on each transport) to the provider simulator, checking that every
answer conforms: status declared, content type declared, body schema, headers (the receipt id on
every response), 405s naming the allowed method, and that calls without a key are refused.

The run is bounded (max examples per operation) and seeded, so it is the same run every time. The
key is the "acme" workspace's, which has no budget, so the run cannot exhaust one; the pre-auth
throttle's strike threshold is raised so the calls without a key that schemathesis makes on
purpose do not put the test's address in the penalty box (its 429 is declared, but every answer
would then be that 429). One worker: hypothesis is not thread-safe on CPython 3.11 (see
tests/system/test_openapi.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.processes import Stack
from tests.conftest import POLICY_DIR, TEST_PKI, Gateway, write_config

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "relaygate" / "envoy" / "gateway-openapi.yaml"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "ignored_auth",  # unsupported_method: enabled in schemathesis.toml (per operation)
    ]
)


@pytest.fixture(scope="module", params=["authz-http", "extproc"])
def spec_gw(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"spec-{request.param}")
    tokens = write_config(tmp / "config")
    gw_yaml = tmp / "config" / "gateway.yaml"
    gw_yaml.write_text(gw_yaml.read_text() + "unauthenticated:\n  strikes_per_second: 1000000\n")
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


def _schemathesis(gw: Gateway, workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    # The workspace path parameter is the key's own workspace: a generated one would only ever be a
    # 403 (another workspace) or a 404 (not a workspace name), and no call would reach a provider.
    # Gemini's model is in the path: a generated one would only be a 404 (no upstream serves it).
    # The model list (GET) is not checked for undeclared methods: schemathesis tries QUERY there, a
    # method Envoy's HTTP/1 codec does not know and refuses (400) before any filter sees the call;
    # every method the codec knows gets the 405 with Allow: GET (test_model_list_refusals).
    (workdir / "schemathesis.toml").write_text(
        '[parameters]\n"path.workspace" = "acme"\n"path.model" = "gemini-2.5-flash"\n\n'
        "[checks]\nunsupported_method.enabled = true\n\n"
        '[[operations]]\ninclude-method = "GET"\nchecks.unsupported_method.enabled = false\n'
    )
    argv = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        str(SPEC),
        "--url",
        gw.url,
        "--tls-verify",
        str(TEST_PKI.ca),
        "--checks",
        CHECKS,
        "--max-examples",
        "20",
        "--generation-deterministic",
        "--mode",
        "all",
        "--workers",
        "1",
        "--no-color",
        "--report",
        "ndjson",
        "--report-dir",
        str(workdir),
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=workdir)


@pytest.mark.slow
def test_gateway_answers_as_its_openapi_document_says(spec_gw, tmp_path):
    key = spec_gw.tokens["acme"]
    # The same key in every credential header the document declares (two different ones are a 401).
    creds = ["-H", f"Authorization: Bearer {key}", "-H", f"x-api-key: {key}", "-H", f"x-goog-api-key: {key}"]
    out = _schemathesis(spec_gw, tmp_path, *creds)
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-2000:]
    # The run reached the providers and was refused for several reasons: it tested something.
    statuses = _statuses(tmp_path)
    assert 200 in statuses, statuses
    assert {400, 405, 415} <= statuses.keys(), statuses
    assert not [s for s in statuses if s >= 500], statuses


def _statuses(report_dir: Path) -> dict[int, int]:
    """Response status -> count, from schemathesis's ndjson report."""
    counts: dict[int, int] = {}

    def walk(x):
        if isinstance(x, dict):
            r = x.get("response")
            if isinstance(r, dict) and isinstance(r.get("status_code"), int):
                counts[r["status_code"]] = counts.get(r["status_code"], 0) + 1
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for f in report_dir.rglob("*.ndjson"):
        for line in f.read_text().splitlines():
            walk(json.loads(line))
    return counts


# -- what the run found, fixed in the gateway ----------------------------------------------------


def test_a_wrong_method_is_a_405_that_names_the_allowed_one(spec_gw):
    """RFC 9110: a 405 carries Allow. It was missing (the Lua response filter and ext_authz's
    client-header list dropped it, and the policy service did not send one)."""
    import requests

    for method in ("GET", "PUT", "DELETE"):
        r = requests.request(
            method,
            spec_gw.base("acme") + "/chat/completions",
            headers={"Authorization": f"Bearer {spec_gw.tokens['acme']}"},
            timeout=10,
        )
        assert r.status_code == 405, r.text
        assert r.headers.get("allow") == "POST", r.headers
        assert r.json()["error"]["code"] == "request.method_not_allowed"
        assert r.json()["error"]["receipt_id"] == r.headers["x-relayone-receipt-id"]


def test_a_body_with_a_del_character_that_the_gateway_rewrites_is_forwarded_intact(spec_gw):
    """A JSON string may hold DEL (0x7f) raw. When the gateway rewrites such a body (here it adds
    max_tokens), the ext_authz transport carried it in a header, where DEL is forbidden: Envoy
    refused the check and the call was a 503 gateway.unavailable. It must reach the provider with
    the same value."""
    import requests

    marker = f"del-{spec_gw.stack.transport}-marker"
    raw = (
        b'{"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "a\x7fb ' + marker.encode() + b'"}]}'
    )
    r = requests.post(
        spec_gw.base("acme") + "/messages",
        data=raw,
        headers={"x-api-key": spec_gw.tokens["acme"], "content-type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    sent = json.loads(spec_gw.sim_request(marker, upstream="anthropic-us")["body"])
    assert sent["messages"][0]["content"] == f"a\x7fb {marker}"
    assert sent["max_tokens"] == 256  # the workspace default the gateway added


def test_a_provider_error_passes_through_in_the_provider_shape_with_the_receipt_header(spec_gw):
    """What the document's ProviderError says: the gateway forwards a body it does not check
    (`messages` is the provider's to refuse), the provider's 400 reaches the client unchanged, and
    the receipt id is in the header (never in the provider's body). The simulator crashed on such a
    body (a text/plain 500) until the run found it; real providers answer this 400."""
    import requests

    r = requests.post(
        spec_gw.base("acme") + "/chat/completions",
        json={"model": "gpt-4o-mini", "messages": None},
        headers={"Authorization": f"Bearer {spec_gw.tokens['acme']}"},
        timeout=10,
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "receipt_id" not in r.json()["error"]
    assert r.headers["x-relayone-receipt-id"].startswith("rcpt_")
