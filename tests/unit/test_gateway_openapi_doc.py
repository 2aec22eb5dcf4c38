"""The gateway's OpenAPI document (relaygate/envoy/gateway-openapi.yaml): valid, shipped, and not behind the code.

Validity: the OpenAPI 3.1 meta-schema (the copy schemathesis ships, so no extra dependency), every
schema a valid JSON Schema 2020-12, every reference resolvable, and schemathesis loads every
operation. Completeness: every (status, code) a denial in the code or the Rego policies can
produce is declared for that status on every LLM endpoint, found by reading the source, so a new
denial that is not added to the document fails here.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import jsonschema
import orjson
import pytest
import schemathesis
import yaml
from schemathesis.specs.openapi.definitions import OPENAPI_31

from relaygate.contract.envoy import ENVOY_REPLIES
from relaygate.decision.wire import parse_body

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "relaygate" / "envoy" / "gateway-openapi.yaml"
LLM_PATHS = [
    f"/v1/{{workspace}}/{v1}{ep}"
    for v1 in ("", "v1/")
    for ep in ("chat/completions", "completions", "embeddings", "messages")
]


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(SPEC.read_text())


def _resolve(doc: dict, node):
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        ptr = node["$ref"]
        assert ptr.startswith("#/"), ptr
        node = doc
        for part in ptr[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _walk(doc: dict, node, seen=None):
    """Every dict reachable from node, following local $refs (once each)."""
    seen = set() if seen is None else seen
    if isinstance(node, dict):
        if "$ref" in node:
            if node["$ref"] not in seen:
                seen.add(node["$ref"])
                yield from _walk(doc, _resolve(doc, {"$ref": node["$ref"]}), seen)
        yield node
        for v in node.values():
            yield from _walk(doc, v, seen)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(doc, v, seen)


def test_the_document_is_valid_openapi_3_1_and_every_schema_is_valid_json_schema(doc):
    assert doc["openapi"] == "3.1.0"
    jsonschema.Draft202012Validator(OPENAPI_31).validate(doc)
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema), name
    for node in _walk(doc, doc):  # every reference resolves
        if "$ref" in node:
            assert _resolve(doc, {"$ref": node["$ref"]}) is not None
    ops = {(r.ok().method.upper(), r.ok().path) for r in schemathesis.openapi.from_dict(doc).get_all_operations()}
    assert {("POST", p) for p in LLM_PATHS} <= ops, ops
    assert all(p.startswith("/v1/{workspace}/") for _, p in ops), ops


def test_the_document_ships_in_the_package():
    shipped = resources.files("relaygate.envoy").joinpath("gateway-openapi.yaml").read_text()
    assert shipped == SPEC.read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"relaygate\.envoy" = \[[^\]]*"\*\.yaml"', pyproject), "package-data must include *.yaml"


def _declared_codes(doc: dict, path: str, status: int, method: str = "post") -> set[str]:
    """The codes the gateway's error body may carry for this status on this operation."""
    responses = _resolve(doc, doc["paths"][path])[method]["responses"]
    resp = _resolve(doc, responses.get(str(status)) or responses["default"])
    codes: set[str] = set()
    for node in _walk(doc, resp):
        code = node.get("properties", {}).get("code") if isinstance(node.get("properties"), dict) else None
        if isinstance(code, dict):
            for sub in _walk(doc, code):
                codes.update(sub.get("enum") or [])
                if "const" in sub:
                    codes.add(sub["const"])
    return codes


_DENY = re.compile(r'\b(?:Verdict\.deny|BadRequest|denial|deny)\(\s*(\d{3}|\w+),\s*"([a-z_]+\.[a-z_.]+)"')


def _code_denials() -> set[tuple[int | None, str]]:
    """(status, code) of every denial the source spells out; status None where it is a variable."""
    found: set[tuple[int | None, str]] = set()
    sources = [*(ROOT / "relaygate").rglob("*.py"), *(ROOT / "policies").rglob("*.rego")]
    for f in sources:
        if f.name.endswith("_test.rego") or "controlplane" in f.parts:
            continue
        text = f.read_text()
        for status, code in _DENY.findall(text):
            found.add((int(status) if status.isdigit() else None, code))
        # the ledger's lost race (admission.py) spells its denial as keyword arguments
        for status, code in re.findall(r'status=(\d{3}),\s*code="([a-z_.]+)"', text):
            found.add((int(status), code))
    found.update((s, c) for s, c, _ in ENVOY_REPLIES.values())
    # a workspace policy's default effect (relaygate/decision/workspace_policy.py)
    wp = (ROOT / "relaygate" / "decision" / "workspace_policy.py").read_text()
    default_status = int(re.search(r'effect\.get\("status", (\d{3})\)', wp).group(1))
    default_code = re.search(r'effect\.get\("code", "([a-z_.]+)"\)', wp).group(1)
    found.add((default_status, default_code))
    return {(s, c) for s, c in found if s is None or s >= 400}  # not the allow record's 200 "ok"


def test_the_source_scan_finds_the_denials_it_must():
    """Guards the scan itself: if the regexes stop matching, the check below would pass vacuously."""
    found = _code_denials()
    for must in [
        (401, "auth.unauthenticated"),
        (400, "request.invalid_json"),
        (405, "request.method_not_allowed"),
        (451, "sovereignty.blocked"),
        (404, "model.not_found"),
        (429, "budget.exceeded"),
        (503, "budget.unavailable"),
        (503, "rate.unavailable"),
        (403, "policy.blocked"),
        (None, "policy.error"),
        (504, "gateway.timeout"),
    ]:
        assert must in found, must
    assert len(found) >= 25, found


def test_every_denial_the_code_can_produce_is_declared_for_its_status(doc):
    """Each (status, code) is declared for its status on some operation (an endpoint's own denial on
    that endpoint; the four LLM endpoints share one set of responses)."""
    found = _code_denials()
    ops = [(p, m) for p, item in doc["paths"].items() for m in _resolve(doc, item) if m in ("get", "post")]
    declared = {(s, c) for p, m in ops for s in range(400, 600) for c in _declared_codes(doc, p, s, m)}
    missing = [
        f"{status or 'any status'} {code}"
        for status, code in sorted(found, key=str)
        if not any(c == code and (status is None or s == status) for s, c in declared)
    ]
    assert not missing, "declare these in relaygate/envoy/gateway-openapi.yaml: " + ", ".join(missing)


def test_every_declared_status_carries_the_receipt_header_and_the_error_shape(doc):
    for path in LLM_PATHS:
        responses = _resolve(doc, doc["paths"][path])["post"]["responses"]
        for status, ref in responses.items():
            resp = _resolve(doc, ref)
            header = _resolve(doc, resp["headers"]["x-relayone-receipt-id"])
            assert header["required"] is True, (path, status)
            if status != "200":
                assert list(resp["content"]) == ["application/json"], (path, status)
        assert "text/event-stream" in _resolve(doc, responses["200"])["content"] or path.endswith("embeddings")
        assert "retry-after" in _resolve(doc, responses["429"])["headers"]
        assert "allow" in _resolve(doc, responses["405"])["headers"]


def test_a_rewritten_body_escapes_del_so_it_can_travel_in_a_header():
    """The ext_authz transport returns a rewritten body in an HTTP header: a raw DEL there made Envoy
    refuse the check (503). The forwarded body is the same JSON with DEL escaped."""
    raw = b'{"model": "m", "messages": [], "x": "a\x7fb"}'  # no max_tokens: the gateway adds it
    shape = parse_body("messages", raw, 64)
    assert shape.rewritten and b"\x7f" not in shape.body
    assert orjson.loads(shape.body) == {**orjson.loads(raw), "max_tokens": 64}
