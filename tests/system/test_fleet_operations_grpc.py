"""The fleet-operations gRPC service (relaygate/controlplane/fleetops/fleet_operations.proto) with
its generated Python client, against a control plane driving a real gateway.

What it answers is what the REST API answers (instances, health, deployments); the audit stream
delivers events as they are written and resumes from a cursor with nothing missed and nothing
twice; only the platform admin token opens it (attacker view: no token, a workspace key, the
fleet token).
"""

from __future__ import annotations

import queue
import threading
import time

import grpc
import pytest
from google.protobuf import json_format

from relaygate.controlplane.fleetops import fleet_operations_pb2 as pb
from relaygate.controlplane.fleetops import fleet_operations_pb2_grpc as pb_grpc
from devstack.processes import free_port
from tests.conftest import ControlPlane, start_full_stack

POLICY = """name: {name}
effect: {{status: 403, code: policy.blocked}}
rego: |
  package ops
  import rego.v1
  deny contains "no" if input.model == "{name}"
"""


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    port = free_port()
    stack, tokens = start_full_stack(tmp_path_factory, "fleetops", cp_args=["--ops-grpc-listen", f"127.0.0.1:{port}"])
    creds = grpc.ssl_channel_credentials(stack.pki.ca.read_bytes())
    channel = grpc.secure_channel(f"127.0.0.1:{port}", creds)
    grpc.channel_ready_future(channel).result(timeout=15)
    yield ControlPlane(stack, tokens), pb_grpc.FleetOperationsStub(channel), stack
    channel.close()
    stack.stop()


def _auth(token: str):
    return (("authorization", f"Bearer {token}"),)


def test_instances_health_and_deployments_say_what_the_rest_api_says(ops):
    cp, stub, stack = ops
    admin = _auth(stack.admin_token)
    rest = cp.admin.get("/v1/fleet/instances").json()["instances"]
    got = stub.ListInstances(pb.ListInstancesRequest(), metadata=admin, timeout=10).instances
    assert [i.id for i in got] == [i["id"] for i in rest] and got, (got, rest)
    mine = next(i for i in got if i.id == stack.instance_id)
    live = next(i for i in rest if i["id"] == stack.instance_id)
    assert mine.tenant == live["tenant"] and mine.stale is False
    assert mine.bundle_revision and mine.bundle_revision == live["posture"]["bundle_revision"]
    assert json_format.MessageToDict(mine.posture)["bundle_revision"] == mine.bundle_revision
    assert [i.id for i in stub.ListInstances(pb.ListInstancesRequest(tenant="nobody"), metadata=admin).instances] == []

    health = stub.GetHealth(pb.GetHealthRequest(), metadata=admin, timeout=10)
    rest_health = cp.admin.get("/v1/fleet/health").json()["tenants"]
    assert [(t.tenant, t.instances) for t in health.tenants] == [(t["tenant"], t["instances"]) for t in rest_health]
    assert all(t.status in ("healthy", "degraded", "down") for t in health.tenants)

    deps = stub.ListDeployments(pb.ListDeploymentsRequest(), metadata=admin, timeout=10).deployments
    assert [d.id for d in deps] == [d["id"] for d in cp.admin.get("/v1/fleet/deployments").json()["deployments"]]


def _reader(stub, request, metadata, out: queue.Queue, stop: threading.Event):
    call = stub.StreamAuditEvents(request, metadata=metadata)

    def run():
        try:
            for e in call:
                out.put(e)
        except grpc.RpcError as e:
            out.put(e)

    threading.Thread(target=run, daemon=True).start()
    return call


def _until(out: queue.Queue, pred, timeout: float = 15.0) -> list:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            e = out.get(timeout=0.2)
        except queue.Empty:
            continue
        assert not isinstance(e, grpc.RpcError), e
        seen.append(e)
        if pred(e):
            return seen
    raise AssertionError(f"not seen within {timeout}s; got {[(x.kind, x.id) for x in seen][-10:]}")


def test_the_audit_stream_follows_new_events_and_resumes_from_a_cursor_without_gaps_or_repeats(ops):
    cp, stub, stack = ops
    admin = _auth(stack.admin_token)
    acme = cp.client("acme")
    out: queue.Queue = queue.Queue()
    stop = threading.Event()
    call = _reader(stub, pb.StreamAuditEventsRequest(from_end=True, follow=True, workspace="acme"), admin, out, stop)
    first = acme.post("/v1/policies", yaml=POLICY.format(name="ops-first"))
    assert first.status == 201, first.text
    seen = _until(out, lambda e: e.kind == "policy.created" and e.detail["policy_id"] == first.json()["id"])
    assert all(e.workspace == "acme" for e in seen)
    cursor = seen[-1].cursor
    call.cancel()

    # while nobody listens: three more changes, in acme and elsewhere
    made = [acme.post("/v1/policies", yaml=POLICY.format(name=f"ops-{i}")).json()["id"] for i in range(3)]
    assert cp.client("euro").post("/v1/policies", yaml=POLICY.format(name="ops-euro")).status == 201
    # resuming from the cursor: exactly the acme events after it, in order, then live ones
    out2: queue.Queue = queue.Queue()
    call2 = _reader(stub, pb.StreamAuditEventsRequest(cursor=cursor, follow=True, workspace="acme"), admin, out2, stop)
    got = _until(out2, lambda e: e.kind == "policy.created" and e.detail["policy_id"] == made[-1])
    created = [e.detail["policy_id"] for e in got if e.kind == "policy.created"]
    assert created == made, created
    assert len({e.id for e in got}) == len(got) and all(e.workspace == "acme" for e in got)
    assert first.json()["id"] not in {e.detail["policy_id"] for e in got if "policy_id" in e.detail}
    live = acme.post("/v1/policies", yaml=POLICY.format(name="ops-live")).json()["id"]
    _until(out2, lambda e: e.kind == "policy.created" and e.detail["policy_id"] == live)
    call2.cancel()

    # without follow: the history from the start, then the stream ends; kinds filter by prefix
    history = list(stub.StreamAuditEvents(pb.StreamAuditEventsRequest(kinds=["policy.*"]), metadata=admin, timeout=30))
    ids = [e.detail["policy_id"] for e in history if e.kind == "policy.created"]
    assert set(made + [first.json()["id"], live]) <= set(ids)
    assert all(e.kind.startswith("policy.") for e in history)
    seqs = [e.cursor for e in history]
    assert len(seqs) == len(set(seqs))


@pytest.mark.parametrize("who", ["none", "wrong", "workspace key", "fleet token"])
def test_only_the_admin_token_opens_fleet_operations(ops, who):
    cp, stub, stack = ops
    metadata = {
        "none": (),
        "wrong": _auth("rg_admin_guess"),
        "workspace key": _auth(cp.tokens["acme"]),
        "fleet token": _auth(stack.fleet_token),
    }[who]
    want = grpc.StatusCode.UNAUTHENTICATED if who in ("none", "wrong") else grpc.StatusCode.PERMISSION_DENIED
    for rpc in (
        lambda: stub.ListInstances(pb.ListInstancesRequest(), metadata=metadata, timeout=10),
        lambda: stub.GetHealth(pb.GetHealthRequest(), metadata=metadata, timeout=10),
        lambda: list(stub.StreamAuditEvents(pb.StreamAuditEventsRequest(), metadata=metadata, timeout=10)),
    ):
        with pytest.raises(grpc.RpcError) as e:
            rpc()
        assert e.value.code() == want, (who, e.value.code(), e.value.details())


def test_a_forged_cursor_is_an_invalid_argument(ops):
    _, stub, stack = ops
    with pytest.raises(grpc.RpcError) as e:
        list(
            stub.StreamAuditEvents(
                pb.StreamAuditEventsRequest(cursor="not-a-cursor"), metadata=_auth(stack.admin_token), timeout=10
            )
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
