"""relaygate-envoy, the Envoy container's entry point (relaygate/envoy/run.py), run for real.

What a container runtime does to it: start it next to a running policy sidecar, probe its
health port, send an app's redirected provider traffic to its capture listener, and stop it
with SIGTERM while a call is in flight. The call must finish, readiness must drop at once,
and the process must exit 0 within the drain time.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from devstack.processes import Stack, free_port, wait_until
from relaygate.contract.envoy import RECEIPT_HEADER
from relaygate.evidence.receipts import envelope_receipt
from tests.conftest import POLICY_DIR, write_config


def _get(url: str, timeout: float = 3) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class EnvoyContainer:
    """relaygate-envoy started as a container runtime would: its own process, stdout to a log."""

    def __init__(self, stack: Stack, tmp: Path, drain_seconds: float = 10) -> None:
        self.port, self.admin, self.health, self.capture = (free_port() for _ in range(4))
        self.bootstrap = tmp / "envoy-run" / "bootstrap.json"
        tmp.mkdir(parents=True, exist_ok=True)
        self.log = tmp / "relaygate-envoy.log"
        argv = [
            str(Path(sys.executable).parent / "relaygate-envoy"),
            "--config-dir",
            str(stack.config_dir),
            "--authz",
            f"unix:{stack.authz_sockets[0].resolve()}",
            "--extproc",
            f"unix:{stack.sockets[0].resolve()}",
            "--listen-port",
            str(self.port),
            "--admin-port",
            str(self.admin),
            "--health-port",
            str(self.health),
            "--health-host",
            "127.0.0.1",
            "--capture-port",
            str(self.capture),
            "--capture-workspace",
            "acme",
            "--drain-seconds",
            str(drain_seconds),
            "--out",
            str(self.bootstrap),
        ]
        # its own session: a test that gives up kills the wrapper and its Envoy together
        self.proc = subprocess.Popen(
            argv, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_until(lambda: self.ready()[0] == 200, 30, "relaygate-envoy /ready", self.proc, self.log)

    def ready(self) -> tuple[int, str]:
        return _get(f"http://127.0.0.1:{self.health}/ready", 1)

    def active(self) -> int:
        _, body = _get(f"http://127.0.0.1:{self.admin}/stats?format=json&filter=downstream_rq_active$")
        return sum(
            s.get("value", 0) for s in json.loads(body)["stats"] if s["name"] == "http.gateway.downstream_rq_active"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    """The policy sidecar and the provider simulator; each test starts its own relaygate-envoy."""
    tmp = tmp_path_factory.mktemp("entrypoint")
    tokens = write_config(tmp / "config")
    stack = Stack(tmp / "run", config_dir=tmp / "config", policy_dir=POLICY_DIR, tls=False, unreachable={"openai-dead"})
    try:
        stack.start_sim()
        stack.start_extproc()
        yield stack, tokens, tmp
    finally:
        stack.stop()


def test_an_apps_provider_call_captured_by_the_pod_is_decided_and_receipted_in_the_sidecars_workspace(sidecar):
    stack, tokens, tmp = sidecar
    envoy = EnvoyContainer(stack, tmp / "capture")
    try:
        # The bootstrap names sockets and certificate paths: owner-only, like every data file.
        assert stat.S_IMODE(os.stat(envoy.bootstrap).st_mode) == 0o600
        # The app names the provider's own path (an SDK's default base URL), no workspace.
        client = openai.OpenAI(api_key=tokens["acme"], base_url=f"http://127.0.0.1:{envoy.capture}/v1", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "captured-call"}], max_tokens=5
        )
        assert raw.http_response.status_code == 200
        rid = raw.headers[RECEIPT_HEADER]
        assert raw.parse().choices[0].message.content
        # 202 with the draft until the access log settles the call, then 200 with the signed receipt
        wait_until(lambda: _get(f"{stack.extproc_admin}/receipts/{rid}")[0] == 200, 10, "the receipt to be signed")
        # A key of another workspace gains nothing by going through the capture: the sidecar's
        # workspace is in the path, and the key must belong to it.
        other = openai.OpenAI(api_key=tokens["euro"], base_url=f"http://127.0.0.1:{envoy.capture}/v1", max_retries=0)
        with pytest.raises(openai.APIStatusError) as e:
            other.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "captured-other"}], max_tokens=5
            )
        assert e.value.status_code in (401, 403)
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.cfg.upstreams[1].port}/_sim/requests") as r:
            assert not [x for x in json.load(r) if "captured-other" in x["body"]]
        # Probes and Prometheus use the health port; Envoy's admin stays on loopback.
        assert _get(f"http://127.0.0.1:{envoy.health}/healthz")[0] == 200
        status, body = _get(f"http://127.0.0.1:{envoy.health}/stats/prometheus")
        assert status == 200 and "envoy_http_downstream_rq_total" in body
        boot = json.loads(envoy.bootstrap.read_text())
        assert boot["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    finally:
        envoy.stop()


def test_sigterm_drains_the_call_in_flight_then_exits_zero(sidecar):
    stack, tokens, tmp = sidecar
    envoy = EnvoyContainer(stack, tmp / "drain", drain_seconds=10)
    try:
        result: dict = {}

        def slow_call() -> None:
            req = urllib.request.Request(
                f"http://127.0.0.1:{envoy.port}/v1/acme/chat/completions",
                data=json.dumps(
                    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "drain-me"}], "max_tokens": 5}
                ).encode(),
                headers={
                    "authorization": f"Bearer {tokens['acme']}",
                    "content-type": "application/json",
                    "x-sim-delay-ms": "2000",
                },
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    result["status"], result["body"] = r.status, json.load(r)
                    result["receipt"] = r.headers[RECEIPT_HEADER]
            except Exception as e:  # recorded, asserted below
                result["error"] = repr(e)

        t = threading.Thread(target=slow_call)
        t.start()
        wait_until(lambda: envoy.active() >= 1, 10, "the slow call to reach Envoy")
        # the counters the drain waits on exist under these names (relaygate/envoy/run.py)
        _, names = _get(f"http://127.0.0.1:{envoy.admin}/stats?filter=grpc_access_log|downstream_rq_completed")
        for name in ("access_logs.grpc_access_log.logs_written", "http.gateway.downstream_rq_completed"):
            assert name in names, names
        sent = time.monotonic()
        envoy.proc.send_signal(signal.SIGTERM)
        # Readiness drops at once: the orchestrator stops sending new calls while this one finishes.
        wait_until(lambda: envoy.ready()[0] == 503, 2, "/ready to turn 503 after SIGTERM")
        assert envoy.proc.poll() is None, "Envoy stopped before its call in flight finished"
        t.join(30)
        assert result.get("status") == 200, result
        assert result["body"]["choices"][0]["message"]["content"]
        rc = envoy.proc.wait(15)
        assert rc == 0, envoy.log.read_text()[-2000:]
        # Envoy sent the call's access-log entry before it stopped: the receipt settles from the
        # response (usage read from it), not as an incomplete call charged its reservation.
        url = f"{stack.extproc_admin}/receipts/{result['receipt']}"
        wait_until(lambda: _get(url)[0] == 200, 10, "the drained call's receipt")
        receipt = envelope_receipt(json.loads(_get(url)[1]))
        assert receipt["status"] == "complete" and receipt["usage"]["source"] == "response", receipt
        # It waited for the call (the simulator held it ~2 s), not for the whole drain time.
        assert time.monotonic() - sent < 9
    finally:
        envoy.stop()


def test_the_policy_sockets_are_owner_only_unless_a_group_mode_is_asked_for(sidecar, tmp_path):
    """0600 by default (Envoy runs as the sidecar's user); --socket-mode 0660 lets a mesh proxy of
    another uid in the pod's group connect (deploy/mesh/README.md), and never anyone else."""
    stack, _, _ = sidecar
    for sock in (stack.sockets[0], stack.authz_sockets[0]):
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600, sock
    write_config(tmp_path / "config")
    grouped = Stack(
        tmp_path / "run",
        config_dir=tmp_path / "config",
        policy_dir=POLICY_DIR,
        tls=False,
        extproc_args=["--socket-mode", "0660"],
    )
    try:
        grouped.start_extproc()
        for sock in (grouped.sockets[0], grouped.authz_sockets[0]):
            assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660, sock
    finally:
        grouped.stop()
