"""The OpenAPI document: committed copy matches the declaration; schemathesis finds no 5xx or undocumented status.

schemathesis runs against a live control plane three times, as a workspace key,
as the admin token (acting in a workspace) and as the fleet token, in positive
and negative modes, with these checks: no server error, every status code
documented, content types and response bodies as documented. One worker:
hypothesis parses lambdas with ast.parse, which is not thread-safe on
CPython 3.11 (it fails with "AST constructor recursion depth mismatch").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from relaygate.controlplane import openapi
from tests.conftest import start_controlplane
from tests.cpclient import CP

ROOT = Path(__file__).resolve().parents[2]
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
    "response_headers_conformance,unsupported_method"
)


def test_readme_has_a_curl_example_for_every_operation():
    """Each (method, path) of the API appears in a README curl line (`-X METHOD`, GET by default)."""
    import re

    doc = openapi.build()
    calls = []
    for line in (ROOT / "README.md").read_text().splitlines():
        if "$CP/" in line:
            m = re.search(r"-X (\w+)", line)
            calls += [((m.group(1) if m else "GET").lower(), u) for u in re.findall(r"\$CP(/[^\s\"'?]*)", line)]
    missing = []
    for path, ops in doc["paths"].items():
        rx = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(path)) + "$"
        missing += [
            f"{m.upper()} {path}"
            for m in ops
            if m in ("get", "post", "put", "patch", "delete")
            and not any(cm == m and re.match(rx, u) for cm, u in calls)
        ]
    assert not missing, missing


def test_committed_openapi_matches_the_declaration():
    committed = yaml.safe_load((ROOT / "relaygate" / "controlplane" / "openapi.yaml").read_text())
    assert committed == openapi.build(), (
        "regenerate: python -m relaygate.controlplane.openapi > relaygate/controlplane/openapi.yaml"
    )
    assert committed["openapi"] == "3.1.0"


def test_every_operation_declares_its_errors_and_the_request_id_header():
    """500 and 405 on every operation, X-Request-Id on every response, Retry-After on every 429."""
    doc = openapi.build()
    comp = doc["components"]["responses"]
    for path, ops in doc["paths"].items():
        for method, o in ops.items():
            for status in ("400", "405", "429", "500"):
                assert o["responses"][status] == {"$ref": f"#/components/responses/E{status}"}, (method, path)
            for status, r in o["responses"].items():
                r = comp[r["$ref"].rsplit("/", 1)[1]] if "$ref" in r else r
                assert r["headers"]["X-Request-Id"] == {"$ref": "#/components/headers/X-Request-Id"}, (path, status)
    assert "Retry-After" in comp["E429"]["headers"] and "Allow" in comp["E405"]["headers"]
    relay = doc["paths"]["/api/relay"]["post"]["responses"]["200"]["content"]
    assert set(relay) == {"application/json", "text/event-stream"}


def test_every_409_the_control_plane_raises_is_declared_and_only_there():
    """Each ApiError(409, code) in the source names its code in a declared 409; operations that raise
    none declare none (409 was declared on every POST before)."""
    import re

    doc = openapi.build()
    declared = {
        o["operationId"]: o["responses"]["409"]["description"]
        for ops in doc["paths"].values()
        for o in ops.values()
        if "409" in o["responses"]
    }
    assert set(declared) == set(openapi.CONFLICTS)
    raised = set()
    for f in (ROOT / "relaygate" / "controlplane").rglob("*.py"):
        raised |= set(re.findall(r'ApiError\(\s*409,\s*"([a-z_.]+)"', f.read_text()))
    assert len(raised) >= 10, raised  # the scan works
    missing = [c for c in raised if not any(re.search(rf"\b{re.escape(c)}\b", d) for d in declared.values())]
    assert not missing, missing


@pytest.fixture(scope="module")
def cp(tmp_path_factory):
    c = start_controlplane(
        tmp_path_factory.mktemp("st"), extra_args=["--rate-limit-rps", "100000", "--gateway-url", "http://127.0.0.1:9"]
    )
    yield c
    c.stop()


def test_served_document_is_the_committed_one(cp):
    served = CP(cp.url).get("/v1/openapi.json").json()
    assert served == yaml.safe_load((ROOT / "relaygate" / "controlplane" / "openapi.yaml").read_text())


def test_a_wrong_method_is_a_json_405_naming_the_allowed_methods(cp):
    r = CP(cp.url, cp.tokens["acme"]).call("PATCH", "/v1/budgets")
    assert r.status == 405, r.text
    assert sorted(r.headers["allow"].split(",")) == ["GET", "POST"]
    assert r.error["code"] == "method_not_allowed"
    assert r.json()["request_id"] == r.headers["x-request-id"]


def test_streamed_responses_carry_the_request_id_too(cp):
    """The log export streams (the SSE relay too): its headers leave before the middleware, which
    sets X-Request-Id on returned responses, sees it; a response-prepare hook sets it instead."""
    for fmt in ("csv", "json"):
        r = CP(cp.url, cp.tokens["acme"]).get("/api/logs/export", params={"format": fmt})
        assert r.status == 200, r.text
        assert r.headers.get("x-request-id", "").startswith("req_"), r.headers


@pytest.mark.slow
@pytest.mark.parametrize("who", ["workspace-key", "admin", "fleet"])
def test_schemathesis_finds_no_server_error_or_undocumented_status(cp, who, tmp_path):
    token = {"workspace-key": cp.tokens["acme"], "admin": cp.stack.admin_token, "fleet": cp.stack.fleet_token}[who]
    argv = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{cp.url}/v1/openapi.json",
        "-H",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        "25",
        "--seed",
        "20261122",
        "--mode",
        "all",
        "--workers",
        "1",
        "--no-color",
        "--generation-database",
        "none",
        "--report-dir",
        str(tmp_path),
    ]
    if who == "admin":
        argv += ["-H", "X-Relaygate-Workspace: acme"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-2000:]
    assert "unhandled error" not in (cp.stack.run_dir / "controlplane.log").read_text()
