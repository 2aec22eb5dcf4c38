"""The contract's seams (issue 12): what the control plane needs to render Envoy resources comes
from ``relaygate.contract``, not from the sidecar's servicer, settler or admission code."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

from relaygate.contract import envoy as contract

ROOT = Path(__file__).resolve().parents[2]
SIDECAR_INTERNALS = {
    "relaygate.extproc.processor",
    "relaygate.extproc.settlement",
    "relaygate.decision.admission",
    "relaygate.decision.wire",
    "relaygate.extproc.bundle_sync",
    "relaygate.extproc.receipt_shipper",
    "relaygate.extproc.fleet_agent",
    "relaygate.extproc.cpclient",
    "relaygate.extproc.server",
    "relaygate.decision.ledger",
    "relaygate.decision.policy_sandbox",
}


@functools.lru_cache(maxsize=None)
def _imported_by(module: str) -> frozenset[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return frozenset(json.loads(out.stdout))


def test_the_envoy_resource_builders_do_not_import_the_sidecars_internals():
    loaded = _imported_by("relaygate.envoy.config") & SIDECAR_INTERNALS
    assert not loaded, f"relaygate.envoy.config pulls in the sidecar's {sorted(loaded)}"
    assert not {m for m in _imported_by("relaygate.contract.envoy") if m.startswith(("extproc", "controlplane"))}


def test_envoy_and_the_sidecar_name_a_receipt_by_one_rule():
    from relaygate.envoy import config as envoy_config

    assert envoy_config.RECEIPT_ID == contract.RECEIPT_ID_ENVOY_FORMAT
    rid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    # What Envoy renders from its format string for x-request-id=rid is what the sidecar computes.
    assert contract.RECEIPT_ID_ENVOY_FORMAT.replace("%REQ(x-request-id)%", rid) == contract.receipt_id_for(rid)
    # An id Envoy would not have made (too long, not ASCII) is replaced, never trusted.
    for bad in ("x" * 65, "é", None, ""):
        made = contract.receipt_id_for(bad)
        assert made.startswith(contract.RECEIPT_PREFIX) and (bad is None or bad == "" or bad not in made)


def test_the_sidecars_names_are_the_contracts():
    from relaygate.extproc import processor, settlement
    from relaygate.decision import wire

    assert (processor.RECEIPT_HEADER, processor.UPSTREAM_HEADER, processor.NAMESPACE) == (
        contract.RECEIPT_HEADER,
        contract.UPSTREAM_HEADER,
        contract.NAMESPACE,
    )
    assert settlement.USAGE_NAMESPACE == contract.USAGE_NAMESPACE
    assert processor.receipt_id_for is contract.receipt_id_for
    assert wire.ENVOY_PRE_DECISION is contract.ENVOY_PRE_DECISION


def test_the_control_plane_does_not_load_the_sidecars_transport_settler_or_client():
    """The control plane builds bundles, dry runs and Envoy resources from the contract, the
    config documents and the decision code; the sidecar's gRPC servicer, settler, spool, HTTP
    client and server stay out of it (the dry run builds its snapshot with relaygate/decision/snapshot.py)."""
    loaded = _imported_by("relaygate.controlplane.server") & {
        "relaygate.extproc.processor",
        "relaygate.extproc.settlement",
        "relaygate.extproc.spool",
        "relaygate.extproc.bundle_sync",
        "relaygate.extproc.receipt_shipper",
        "relaygate.extproc.fleet_agent",
        "relaygate.extproc.cpclient",
        "relaygate.extproc.server",
    }
    assert not loaded, f"the control plane loads the sidecar's {sorted(loaded)}"


CONTROL_PLANE_MAY_IMPORT = (
    "relaygate.contract",
    "relaygate.decision",
    "relaygate.envoy",
    "relaygate.evidence",
    "relaygate.controlplane",
)


def _relaygate_imports(package: Path) -> dict[str, set[str]]:
    """Every ``relaygate.*`` / first-party module each file of a package names in an import."""
    import ast

    first_party = {"relaygate", "devstack", "bench", "tests"}
    out: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        out[str(path.relative_to(ROOT))] = {n for n in names if n.split(".")[0] in first_party}
    return out


def test_the_control_plane_imports_only_contract_decision_envoy_and_evidence():
    """The acceptance of issue 12: the control plane depends on the contract, the decision library,
    the Envoy resource builders and evidence, never on the sidecar (relaygate.extproc), the
    development runner or the tests. Checked on the source (every import, lazy ones included) and
    on what a started control plane actually loads."""
    offenders = {
        f: sorted(n for n in names if not n.startswith(CONTROL_PLANE_MAY_IMPORT))
        for f, names in _relaygate_imports(ROOT / "relaygate" / "controlplane").items()
    }
    offenders = {f: n for f, n in offenders.items() if n}
    assert not offenders, f"control-plane modules importing outside its allowed packages: {offenders}"
    assert "relaygate.controlplane.app" in _imported_by("relaygate.controlplane.server")
    loaded = {
        m
        for m in _imported_by("relaygate.controlplane.server")
        if m.split(".")[0] in ("relaygate", "devstack", "bench", "tests")
    }
    assert loaded and all(m == "relaygate" or m.startswith(CONTROL_PLANE_MAY_IMPORT) for m in loaded), sorted(
        m for m in loaded if m != "relaygate" and not m.startswith(CONTROL_PLANE_MAY_IMPORT)
    )


# The layers of relaygate/, lowest first: what each package may import of relaygate besides
# itself. docs/architecture.md draws the same picture.
LAYERS = {
    "evidence": set(),  # the offline verifier ships it alone
    "contract": {"evidence"},  # bundle signatures are evidence's Ed25519
    "decision": {"contract", "evidence"},
    "envoy": {"contract"},
    "extproc": {"contract", "decision", "evidence", "envoy"},
    "controlplane": {"contract", "decision", "envoy", "evidence"},
    "providersim": set(),
    "cli": {"contract", "decision", "evidence"},  # the relaygate command: verify and policy tools
}


def test_each_package_imports_only_the_layers_below_it():
    """devstack/ (make run's process runner), bench/ and tests/ are not in the wheel, so nothing in
    relaygate/ may import them; and no package reaches up or sideways (the sidecar never imports
    the control plane, the decision library never imports a transport)."""
    assert {d.name for d in (ROOT / "relaygate").iterdir() if (d / "__init__.py").exists()} == set(LAYERS)
    bad = []
    for f, names in _relaygate_imports(ROOT / "relaygate").items():
        parts = Path(f).parts
        own = parts[1] if len(parts) > 2 else None
        allowed = ({own} | LAYERS[own]) if own else set()
        for n in names:
            segs = n.split(".")
            if segs[0] != "relaygate" or (len(segs) > 1 and segs[1] not in allowed and segs[1] in LAYERS):
                bad.append(f"{f}: {n}")
    assert not bad, bad


def test_control_plane_domain_modules_do_not_import_request_handlers():
    """Handlers call the domain (services, audit, custody, transparency...), never the reverse; only
    the server wires handlers to routes."""
    import ast

    offenders = []
    for path in sorted((ROOT / "relaygate" / "controlplane").glob("*.py")):
        if path.name == "server.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.startswith("relaygate.controlplane.handlers") for n in names) or (
                isinstance(node, ast.ImportFrom)
                and node.module == "relaygate.controlplane"
                and any(a.name == "handlers" for a in node.names)
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"domain modules importing handlers: {offenders}"


def test_denials_made_outside_rego_have_one_shape_and_it_is_the_receipts():
    """Every denial the sidecar, settler, pre-auth sampler and dry run make outside Rego comes from
    relaygate.contract.decision.denial: none spells the dict out itself."""
    import re
    from relaygate.contract.decision import denial

    assert denial(429, "rate.limited", ["slow down"], retry=None) == {
        "allow": False,
        "status": 429,
        "code": "rate.limited",
        "reasons": ["slow down"],
        "policies": [],
        "retry": None,
    }
    spelled = [
        f"{p.relative_to(ROOT)}:{i}"
        for d in ("extproc", "controlplane", "stack")
        for p in (ROOT / d).rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r'"allow":\s*False', line)
    ]
    assert not spelled, f"denials written out by hand: {spelled}"


def test_handlers_use_the_domain_services_public_api_only():
    """Handlers call what a domain object offers, never its private state (the kind of reach-in
    that cleared an ingestor's key cache from a request handler)."""
    import ast

    offenders = []
    for path in sorted((ROOT / "relaygate" / "controlplane" / "handlers").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert not offenders, offenders


def test_services_are_typed():
    """Every domain service a handler reaches has a concrete type, not Any."""
    import typing
    from relaygate.controlplane.services import Services

    hints = typing.get_type_hints(Services)
    untyped = [name for name, hint in hints.items() if hint is typing.Any]
    assert not untyped, untyped
