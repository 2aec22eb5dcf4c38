"""The generated client libraries (clients/python, clients/typescript, clients/go) against a live
control plane and gateway.

Each language runs the same tour with its own generated client, as a user of that language would:
create a policy from YAML, dry-run it, relay a call through the gateway, page the audit feed, and
request, follow and download an evidence bundle. The test then checks what each saw against the
control plane itself (the policy exists and denies in the dry run, the relayed call's receipt is
in the audit feed, pages do not overlap, the downloaded bundle is the job's bytes and verifies
against the control plane's root key). A last test regenerates every client from the committed
OpenAPI document and fails on any difference (python -m devstack.clients check).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack import clients as clients_mod
from relaygate.evidence.signing import load_public_key
from relaygate.evidence.verify import verify_bundle
from tests.conftest import ControlPlane, start_full_stack
from tests.cpclient import CP, eventually

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients"


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "clients")
    out = tmp_path_factory.mktemp("client-out")
    cp = ControlPlane(stack, tokens)
    # A feed with more than a page or two in it: relayed calls, each a receipt in the feed.
    acme = CP(cp.url, tokens["acme"], "x-api-key")
    for i in range(5):
        body = {
            "to": "gpt-4o-mini",
            "payload": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{i}"}]},
        }
        assert acme.post("/api/relay", body).status == 200
    eventually(
        lambda: len(cp.client("acme").get("/v1/audit/events", params={"limit": 10}).json()["events"]) >= 5,
        20,
        "the relayed calls in the audit feed",
    )
    yield cp, stack, out
    stack.stop()


def _python_tour(url: str, key: str, ca: str, out: Path, name: str) -> dict:
    """The tour with the generated Python client (clients/python), in this process."""
    sys.path.insert(0, str(CLIENTS / "python"))
    try:
        from relaygate_client import AuthenticatedClient
        from relaygate_client.api.audit import list_audit_events
        from relaygate_client.api.evidence import (
            create_evidence_bundle,
            download_evidence_bundle,
            get_evidence_bundle_status,
        )
        from relaygate_client.api.policies import create_policy, dry_run_policy
        from relaygate_client.api.relayplane import relay
        from relaygate_client.models import DryRunInput, EvidenceRequest, Policy, RelayInput
        from relaygate_client.types import UNSET, File
    finally:
        sys.path.remove(str(CLIENTS / "python"))
    import io

    client = AuthenticatedClient(
        base_url=url, token=key, verify_ssl=ssl.create_default_context(cafile=ca), timeout=None
    )
    result: dict = {}
    doc = (
        f"name: {name}\neffect: {{status: 403, code: policy.blocked}}\nrego: |\n  package tour\n  import rego.v1\n"
        '  deny contains "gpt-4o is not approved" if input.model == "gpt-4o"\n'
    )
    created = create_policy.sync(
        client=client, body=File(payload=io.BytesIO(doc.encode()), mime_type="application/yaml")
    )
    assert isinstance(created, Policy), created
    result["policy_id"] = created.id
    dry = dry_run_policy.sync(
        created.id,
        client=client,
        body=DryRunInput.from_dict(
            {"request": {"endpoint": "chat.completions", "body": {"model": "gpt-4o", "messages": []}}}
        ),
    )
    result["dry_run_decision"] = dry.decision.to_dict()
    relayed = relay.sync(
        client=client,
        body=RelayInput.from_dict(
            {"to": "gpt-4o-mini", "payload": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}}
        ),
    )
    result["relay_status"], result["relay_receipt_id"] = relayed.status_code, relayed.receipt_id
    pages, cursor = [], UNSET
    while len(pages) < 3:
        page = list_audit_events.sync(client=client, limit=2, cursor=cursor)
        pages.append([e.id for e in page.events])
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    result["audit_pages"] = pages
    now = dt.datetime.now(dt.timezone.utc)
    job = create_evidence_bundle.sync(
        client=client,
        body=EvidenceRequest.from_dict(
            {
                "from": (now - dt.timedelta(hours=1)).isoformat(),
                "to": (now + dt.timedelta(minutes=1)).isoformat(),
                "components": ["receipts", "policies"],
            }
        ),
    )
    deadline = time.monotonic() + 120
    while (st := get_evidence_bundle_status.sync(job.id, client=client)).status not in ("done", "failed"):
        assert time.monotonic() < deadline, f"evidence job still {st.status}"
        time.sleep(0.2)
    assert st.status == "done", st
    result["evidence_id"], result["evidence_sha256"] = job.id, st.sha256
    dl = download_evidence_bundle.sync_detailed(job.id, client=client)
    assert dl.status_code == 200, dl.content[:300]
    path = out / "evidence-python.tar.gz"
    path.write_bytes(dl.content)
    result["downloaded_sha256"], result["downloaded_path"] = hashlib.sha256(dl.content).hexdigest(), str(path)
    return result


def _env(url: str, key: str, ca: str, out: Path, name: str) -> dict:
    return {
        **os.environ,
        "RELAYGATE_URL": url,
        "RELAYGATE_KEY": key,
        "RELAYGATE_OUT": str(out),
        "RELAYGATE_POLICY_NAME": name,
        "NODE_EXTRA_CA_CERTS": ca,  # Node: trusted besides its own roots
        "SSL_CERT_FILE": ca,  # Go on Linux: the roots to trust
    }


def _typescript_tour(url: str, key: str, ca: str, out: Path, name: str) -> dict:
    clients_mod.npm_ready()
    ts = CLIENTS / "typescript"
    typed = subprocess.run(
        [str(ts / "node_modules" / ".bin" / "tsc"), "-p", "."], cwd=ts, capture_output=True, text=True
    )
    assert typed.returncode == 0, "the TypeScript client and its tour do not type-check:\n" + typed.stdout
    run = subprocess.run(
        [str(ts / "node_modules" / ".bin" / "tsx"), "examples/tour.ts"],
        cwd=ts,
        env=_env(url, key, ca, out, name),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _go_tour(url: str, key: str, ca: str, out: Path, name: str) -> dict:
    from devstack.tools import go_binary

    go = go_binary()
    run = subprocess.run(
        [go, "run", "./cmd/relaygate-tour"],
        cwd=CLIENTS / "go",
        env=_env(url, key, ca, out, name),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


TOURS = {"python": _python_tour, "typescript": _typescript_tour, "go": _go_tour}


@pytest.mark.parametrize("language", list(TOURS))
def test_the_generated_client_runs_the_tour_against_the_live_control_plane(full, language):
    cp, stack, out = full
    key = cp.tokens["acme"]
    name = f"{language}-tour-no-gpt-4o"
    seen = TOURS[language](cp.url, key, str(stack.pki.ca), out, name)
    acme = cp.client("acme")

    # the policy exists, is the one the client created, and its dry run denied gpt-4o
    policy = acme.get(f"/v1/policies/{seen['policy_id']}")
    assert policy.status == 200 and policy.json()["name"] == name, policy.text
    decision = seen["dry_run_decision"]
    assert decision["allow"] is False and "gpt-4o is not approved" in json.dumps(decision), decision

    # the relayed call went through the gateway: its signed receipt reaches the audit feed
    assert seen["relay_status"] == 200 and seen["relay_receipt_id"], seen
    event = eventually(
        lambda: (r := acme.get(f"/v1/audit/events/{seen['relay_receipt_id']}")).status == 200 and r.json(),
        15,
        "the relayed call's receipt in the audit feed",
    )
    assert event["decision"] == "allow" and event["model"] == "gpt-4o-mini", event

    # pages follow each other: each of at most 2, none shared, newest first as the feed orders them
    pages = seen["audit_pages"]
    assert len(pages) >= 2 and all(0 < len(p) <= 2 for p in pages), pages
    flat = [i for p in pages for i in p]
    assert len(flat) == len(set(flat)), pages
    # the feed has grown since (newer events come first), so the pages are one run of it, in order
    direct = [e["id"] for e in acme.get("/v1/audit/events", params={"limit": 200}).json()["events"]]
    assert flat[0] in direct, (flat, direct)
    start = direct.index(flat[0])
    assert direct[start : start + len(flat)] == flat, (flat, direct)

    # the download is the job's bundle, and it verifies against the control plane's root key
    assert seen["downloaded_sha256"] == seen["evidence_sha256"], seen
    root = out / "cp-root.pub"
    root.write_text(CP(cp.url).get("/v1/audit/keys").json()["root_public_key"])
    report = verify_bundle(Path(seen["downloaded_path"]).read_bytes(), load_public_key(root.read_bytes()))
    assert report.ok, [f"{f.check}: {f.message}" for f in report.failures]


def test_the_committed_clients_are_what_the_generators_make_of_the_openapi_document():
    """A change to relaygate/controlplane/openapi.yaml without `python -m devstack.clients
    generate`, or a hand edit of a generated file, fails here with the difference."""
    assert clients_mod.check() == []
