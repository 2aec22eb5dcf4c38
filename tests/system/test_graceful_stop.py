"""Stopping the control plane is prompt even while sidecars hold bundle long polls open.

A container runtime sends SIGTERM and kills the process after a grace period (Kubernetes: 30 s
by default). Each sidecar keeps a bundle long poll open (up to 20 s) against the control plane;
the stop must not wait for those to time out, or a rolling update of the control plane turns
into a SIGKILL (no clean database shutdown, a grace period spent for nothing).
"""

from __future__ import annotations

import signal
import time

from devstack.processes import Stack, wait_until
from tests.conftest import POLICY_DIR, write_config
from tests.cpclient import CP


def test_the_control_plane_stops_within_seconds_while_a_sidecar_long_polls(tmp_path):
    write_config(tmp_path / "config")
    stack = Stack(
        tmp_path / "run",
        config_dir=tmp_path / "config",
        policy_dir=POLICY_DIR,
        controlplane=True,
        xds=False,
        unreachable={"openai-dead"},
        instance_id="stop-sidecar",
    )
    try:
        stack.start_sim()
        stack.start_controlplane()
        stack.start_extproc()
        admin = CP(stack.cp_url, stack.admin_token)
        admin.session.verify = str(stack.ca)

        def polling() -> bool:  # registered and reporting a bundle: its sync loop now long-polls
            r = admin.get("/v1/fleet/instances")
            inst = [i for i in r.json().get("instances", []) if i["id"] == "stop-sidecar"] if r.status == 200 else []
            return bool(inst and (inst[0].get("posture") or {}).get("bundle_revision"))

        wait_until(polling, 30, "the sidecar to register and take its bundle")
        cp = stack.procs["controlplane"]
        sent = time.monotonic()
        cp.send_signal(signal.SIGTERM)
        rc = cp.wait(30)
        took = time.monotonic() - sent
        assert rc == 0
        assert took < 6, f"the control plane took {took:.1f}s to stop (a long poll held it)"
    finally:
        stack.stop()
