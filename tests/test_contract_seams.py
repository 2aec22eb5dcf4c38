"""The contract's seams (issue 12): what the control plane needs to render Envoy resources comes
from ``relaygate.contract``, not from the sidecar's servicer, settler or admission code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from relaygate.contract import envoy as contract

ROOT = Path(__file__).resolve().parent.parent
SIDECAR_INTERNALS = {"extproc.processor", "extproc.settlement", "extproc.admission", "extproc.wire",
                     "extproc.bundle_sync", "extproc.receipt_shipper", "extproc.fleet_agent", "extproc.cpclient",
                     "extproc.server", "extproc.ledger", "extproc.policy_sandbox"}


def _imported_by(module: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(out.stdout))


def test_the_envoy_resource_builders_do_not_import_the_sidecars_internals():
    loaded = _imported_by("stack.envoy_config") & SIDECAR_INTERNALS
    assert not loaded, f"stack.envoy_config pulls in the sidecar's {sorted(loaded)}"
    assert not {m for m in _imported_by("relaygate.contract.envoy") if m.startswith(("extproc", "controlplane"))}


def test_envoy_and_the_sidecar_name_a_receipt_by_one_rule():
    from stack import envoy_config
    assert envoy_config.RECEIPT_ID == contract.RECEIPT_ID_ENVOY_FORMAT
    rid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    # What Envoy renders from its format string for x-request-id=rid is what the sidecar computes.
    assert contract.RECEIPT_ID_ENVOY_FORMAT.replace("%REQ(x-request-id)%", rid) == contract.receipt_id_for(rid)
    # An id Envoy would not have made (too long, not ASCII) is replaced, never trusted.
    for bad in ("x" * 65, "é", None, ""):
        made = contract.receipt_id_for(bad)
        assert made.startswith(contract.RECEIPT_PREFIX) and (bad is None or bad == "" or bad not in made)


def test_the_sidecars_names_are_the_contracts():
    from extproc import processor, settlement, wire
    assert (processor.RECEIPT_HEADER, processor.UPSTREAM_HEADER, processor.NAMESPACE) == \
        (contract.RECEIPT_HEADER, contract.UPSTREAM_HEADER, contract.NAMESPACE)
    assert settlement.USAGE_NAMESPACE == contract.USAGE_NAMESPACE
    assert processor.receipt_id_for is contract.receipt_id_for
    assert wire.ENVOY_PRE_DECISION is contract.ENVOY_PRE_DECISION


def test_the_control_plane_does_not_load_the_sidecars_transport_settler_or_client():
    """The control plane builds bundles, dry runs and Envoy resources from the contract, the
    config documents and the decision code; the sidecar's gRPC servicer, settler, spool, HTTP
    client and server stay out of it (the dry run builds its snapshot with extproc/snapshot.py)."""
    loaded = _imported_by("controlplane.server") & {
        "extproc.processor", "extproc.settlement", "extproc.spool", "extproc.bundle_sync", "extproc.receipt_shipper",
        "extproc.fleet_agent", "extproc.cpclient", "extproc.server"}
    assert not loaded, f"the control plane loads the sidecar's {sorted(loaded)}"


def test_control_plane_domain_modules_do_not_import_request_handlers():
    """Handlers call the domain (services, audit, custody, transparency...), never the reverse; only
    the server wires handlers to routes."""
    import ast
    offenders = []
    for path in sorted((ROOT / "controlplane").glob("*.py")):
        if path.name == "server.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.startswith("controlplane.handlers") for n in names) or (
                    isinstance(node, ast.ImportFrom) and node.module == "controlplane"
                    and any(a.name == "handlers" for a in node.names)):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"domain modules importing handlers: {offenders}"


def test_denials_made_outside_rego_have_one_shape_and_it_is_the_receipts():
    """Every denial the sidecar, settler, pre-auth sampler and dry run make outside Rego comes from
    relaygate.contract.decision.denial: none spells the dict out itself."""
    import re
    from relaygate.contract.decision import denial
    assert denial(429, "rate.limited", ["slow down"], retry=None) == {
        "allow": False, "status": 429, "code": "rate.limited", "reasons": ["slow down"], "policies": [], "retry": None}
    spelled = [f"{p.relative_to(ROOT)}:{i}" for d in ("extproc", "controlplane", "stack")
               for p in (ROOT / d).rglob("*.py")
               for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r'"allow":\s*False', line)]
    assert not spelled, f"denials written out by hand: {spelled}"
