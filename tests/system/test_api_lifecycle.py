"""The API lifecycle promise (CHANGELOG.md): /v1 stays compatible, breaking changes need a new
major version, deprecations are announced 12 months ahead and said on every answer.

The compatibility check is oasdiff (pinned, devstack/apicompat.py) between the released document
and the current one; a test feeds it a document with an operation, a response field and a request
enum value removed, and a deprecated operation removed before its sunset, to show it catches each.
The deprecation headers are read off a live control plane.
"""

from __future__ import annotations

import datetime as dt
import re
from email.utils import parsedate_to_datetime

import pytest
import yaml

from devstack import apicompat
from tests.conftest import start_controlplane

OPS = ("get", "put", "post", "delete", "patch")


def _deprecated(doc: dict) -> list[tuple[str, str, dict]]:
    return [
        (m.upper(), p, o) for p, ops in doc["paths"].items() for m, o in ops.items() if m in OPS and o.get("deprecated")
    ]


def test_the_current_document_is_compatible_with_the_released_one():
    assert apicompat.problems() == []


def test_the_check_catches_every_kind_of_breaking_change(tmp_path):
    doc = yaml.safe_load(apicompat.RELEASED.read_text())
    s = doc["components"]["schemas"]
    del doc["paths"]["/v1/budgets/{budget_id}"]["delete"]  # an operation
    s["Policy"]["properties"].pop("id")  # a response field
    s["Policy"]["required"].remove("id")
    s["DryRunInput"]["properties"]["request"]["properties"]["endpoint"]["enum"].remove("embeddings")  # an enum value
    deprecated = _deprecated(doc)
    assert deprecated, "no deprecated operation left to remove"
    method, path, _ = deprecated[0]
    del doc["paths"][path][method.lower()]  # a deprecated operation, before its sunset
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(doc, sort_keys=False))
    found = {(c["id"], c.get("operation"), c.get("path")) for c in apicompat.breaking(current=broken)}
    assert ("api-removed-without-deprecation", "DELETE", "/v1/budgets/{budget_id}") in found, found
    assert ("response-required-property-removed", "POST", "/v1/policies") in found, found
    assert ("request-property-enum-value-removed", "POST", "/v1/policies/{policy_id}/dryrun") in found, found
    assert ("api-removed-before-sunset", method, path) in found, found


def test_a_major_version_bump_needs_its_changelog_entry(tmp_path, monkeypatch):
    doc = yaml.safe_load(apicompat.CURRENT.read_text())
    major = int(doc["info"]["version"].split(".")[0]) + 1
    doc["info"]["version"] = f"{major}.0.0"
    bumped = tmp_path / "openapi.yaml"
    bumped.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setattr(apicompat, "CURRENT", bumped)
    assert apicompat.problems() == [
        f"info.version went from {apicompat.version(apicompat.RELEASED)} to {major}.0.0: "
        f"CHANGELOG.md needs a '## [{major}.0.0]' section"
    ]


def test_every_deprecation_is_announced_in_the_changelog_twelve_months_ahead():
    doc = yaml.safe_load(apicompat.CURRENT.read_text())
    changelog = apicompat.CHANGELOG.read_text()
    for method, path, o in _deprecated(doc):
        d = o["x-relaygate-deprecated"]
        since, sunset = dt.date.fromisoformat(d["since"]), dt.date.fromisoformat(d["sunset"])
        assert o["x-sunset"] == d["sunset"]
        assert (sunset - since).days >= 365, f"{method} {path}: sunset {sunset} is less than 12 months after {since}"
        entry = f"`{method} {path}`: deprecated {d['since']}, sunset **{d['sunset']}**"
        assert entry in changelog, f"CHANGELOG.md does not announce {method} {path}"
        assert f"`{d['successor']}`" in changelog


@pytest.fixture(scope="module")
def cp(tmp_path_factory):
    c = start_controlplane(tmp_path_factory.mktemp("lifecycle"))
    yield c
    c.stop()


def test_a_deprecated_operation_says_so_on_every_answer_and_others_do_not(cp):
    acme = cp.client("acme")
    made = acme.post("/v1/keys", {"name": "to-delete"}).json()["key"]
    gone = acme.delete(f"/v1/keys/{made['id']}")
    assert gone.status == 200 and gone.json()["revoked_at"], gone.text
    doc = yaml.safe_load(apicompat.CURRENT.read_text())
    meta = doc["paths"]["/v1/keys/{key_id}"]["delete"]["x-relaygate-deprecated"]
    for r in (gone, acme.delete("/v1/keys/no-such-key")):  # an error answer says it too
        h = r.headers
        m = re.fullmatch(r"@(\d+)", h.get("deprecation", ""))
        assert m, h
        assert dt.datetime.fromtimestamp(int(m[1]), dt.timezone.utc).date().isoformat() == meta["since"]
        assert parsedate_to_datetime(h["sunset"]).date().isoformat() == meta["sunset"]
        assert re.fullmatch(r'</v1/keys/[^>]+/revoke>; rel="successor-version"', h["link"]), h["link"]
    assert f"/v1/keys/{made['id']}/revoke" in gone.headers["link"]
    listed = acme.get("/v1/keys")
    assert listed.status == 200
    assert not {"deprecation", "sunset"} & set(listed.headers), listed.headers
