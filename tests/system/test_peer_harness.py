"""What ../shared/peers/run.py (the same-run peer benchmark, not in this repository) needs of us:
``stack.processes.Stack`` and ``bench.run.write_bench_config`` start relaygate's full path, and a
bare urllib call (no CA of ours: every peer path there is plaintext) gets a 200 carrying the
upstream's usage, while a wrong key is refused. The harness preflights exactly this before it
measures; when relaygate's stacks turned TLS on by default it could no longer do so, silently for us.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

from bench.run import upstream_bootstrap, write_bench_config
from relaygate.envoy import config as envoy_config
from stack.processes import Stack, envoy_binary, free_port, http_ok, wait_until


def _post(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "peer preflight"}]})
    req = urllib.request.Request(url, body.encode(), {"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_peer_benchmark_can_start_and_preflight_relaygate(tmp_path):
    up_port, up_admin = free_port(), free_port()
    boot = envoy_config.write(tmp_path / "upstream.json", upstream_bootstrap(up_port, up_admin))
    argv = [envoy_binary(), "-c", str(boot), "--concurrency", "1", "--log-level", "error"]
    upstream = subprocess.Popen(argv + ["--base-id", str(free_port())], stdout=subprocess.DEVNULL)
    stack = None
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{up_admin}/ready"), 30, "upstream envoy", upstream)
        key = write_bench_config(tmp_path / "config", up_port)
        stack = Stack(tmp_path / "relaygate", config_dir=tmp_path / "config", extproc_args=["--log-level", "WARNING"])
        stack.start_extproc()
        stack.start_envoy()
        url = f"{stack.gateway}/v1/bench/chat/completions"
        assert url.startswith("http://")
        status, body = _post(url, {"authorization": f"Bearer {key}"})
        assert status == 200 and body["usage"]["prompt_tokens"] > 0, body
        bad, err = _post(url, {"authorization": "Bearer ro_live_notAKey_0000000000000000000000000000000"})
        assert bad == 401 and err["error"]["code"].startswith("auth."), err
    finally:
        if stack is not None:
            stack.stop()
        upstream.terminate()
        upstream.wait(10)
