"""Benchmark: plain Envoy -> upstream against the full relaygate path, measured in one run.

Both paths front the same upstream: a second Envoy that buffers the whole
request body and answers an OpenAI-shaped chat completion with usage, so the
upstream never shortcuts the body and settlement runs on every call. Load comes
from wrk in its own process. Reported per path, medians over --rounds:
requests/s at saturation, p50/p99 at one connection, p50/p99 paced
(connections that wait between calls), and the ratios relaygate/plain.

    make bench                       # or: python -m bench.run --duration 10 --rounds 3
    python -m bench.run --workers 2  # several ext_proc processes behind one cluster
    python -m bench.run --ledger redis  # budgets in a (loopback) Redis shared by a fleet
    python -m bench.run --profile    # py-spy the policy service during a saturated run
    python -m bench.run --opa-engine # also relaygate deciding through a real OPA (--policy-engine opa-server)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from relaygate.extproc.keytool import create as create_key
from relaygate.envoy import config as envoy_config
from devstack.redis_server import RedisServer
from devstack.processes import ROOT, Stack, envoy_binary, free_port, http_ok, wait_until

RUN = ROOT / ".run" / "bench"
RESULTS = ROOT / "bench" / "results"
T = "type.googleapis.com/"

UPSTREAM_BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 230, "completion_tokens": 1, "total_tokens": 231},
    }
)
REQUEST_BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "max_tokens": 64,
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Summarise: " + "lorem ipsum dolor sit amet " * 34},
        ],
    }
)


def _hcm(routes: list[dict], filters: list[dict]) -> dict:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "bench",
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
            "http_filters": filters
            + [
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": T + "envoy.extensions.filters.http.router.v3.Router"},
                }
            ],
        },
    }


def _bootstrap(port: int, admin: int, hcm: dict, clusters: list[dict]) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "l",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [{"filters": [hcm]}],
                }
            ],
            "clusters": clusters,
        },
    }


def upstream_bootstrap(port: int, admin: int) -> dict:
    route = {
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": UPSTREAM_BODY}},
        "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}],
    }
    buffer = {
        "name": "envoy.filters.http.buffer",
        "typed_config": {"@type": T + "envoy.extensions.filters.http.buffer.v3.Buffer", "max_request_bytes": 1048576},
    }
    return _bootstrap(port, admin, _hcm([route], [buffer]), [])


def plain_bootstrap(port: int, admin: int, upstream_port: int) -> dict:
    route = {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}
    cluster = {
        "name": "upstream",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "upstream",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}
                            }
                        }
                    ]
                }
            ],
        },
    }
    return _bootstrap(port, admin, _hcm([route], []), [cluster])


def write_bench_config(d: Path, upstream_port: int) -> str:
    d.mkdir(parents=True, exist_ok=True)
    (d / "gateway.yaml").write_text("max_body_bytes: 1048576\n")
    (d / "secrets.yaml").write_text("key_pepper: bench\nopenai: sk-bench\n")
    (d / "workspaces.yaml").write_text(
        yaml.safe_dump({"workspaces": {"bench": {"sovereignty": {"allowed_jurisdictions": ["us", "eea"]}}}})
    )
    (d / "upstreams.yaml").write_text(
        yaml.safe_dump(
            {
                "upstreams": [
                    {
                        "name": "bench-upstream",
                        "provider": "openai",
                        "address": f"127.0.0.1:{upstream_port}",
                        "region": "us-east-1",
                        "jurisdiction": "us",
                        "credential": "openai",
                        "models": {"gpt-4o-mini": {"input_per_1k": 0.00015, "output_per_1k": 0.0006}},
                    }
                ]
            }
        )
    )
    (d / "budgets.yaml").write_text(
        yaml.safe_dump(
            {
                "budgets": [
                    {
                        "id": "bench-daily",
                        "workspace": "bench",
                        "key": None,
                        "unit": "usd",
                        "window": "day",
                        "limit": 1e6,
                    },
                    {
                        "id": "bench-tokens",
                        "workspace": "bench",
                        "key": None,
                        "unit": "tokens",
                        "window": "month",
                        "limit": 10**12,
                    },
                ]
            }
        )
    )
    (d / "keys.yaml").write_text("keys: []\n")
    return create_key(d, "bench", "bench", None, None)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer {key}"
{delay}
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %f %f\\n", summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000.0, latency:percentile(99) / 1000.0))
end
"""


def wrk_argv(
    url: str, key: str, conns: int, duration: int, pace_ms: int = 0, body: str = REQUEST_BODY, tag: str = ""
) -> list[str]:
    script = RUN / f"wrk-{conns}-{pace_ms}{tag}.lua"
    delay = f"function delay() return {pace_ms} end" if pace_ms else ""
    script.write_text(WRK_SCRIPT.format(body=json.dumps(body), key=key, delay=delay))
    return ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "-s", str(script), url]


def wrk(url: str, key: str, conns: int, duration: int, pace_ms: int = 0, **kw) -> dict:
    out = subprocess.run(
        wrk_argv(url, key, conns, duration, pace_ms, **kw), capture_output=True, text=True, check=True
    ).stdout
    return wrk_result(out, duration)


def wrk_result(out: str, duration: int) -> dict:
    m = re.search(r"RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)", out)
    requests, bad_status, sock_errors, p50, p99 = m.groups()
    return {
        "rps": int(requests) / duration,
        "non2xx": int(bad_status),
        "socket_errors": int(sock_errors),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
    }


def spawn(name: str, argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=open(RUN / f"{name}.log", "wb"), stderr=subprocess.STDOUT)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    p.add_argument("--connections", type=int, default=32, help="connections at saturation")
    p.add_argument("--pace-conns", type=int, default=8)
    p.add_argument("--pace-ms", type=int, default=20, help="each paced connection waits this long between calls")
    p.add_argument("--workers", type=int, default=1, help="ext_proc worker processes behind one cluster")
    p.add_argument("--profile", action="store_true", help="record the policy service with py-spy")
    p.add_argument(
        "--ledger",
        choices=["memory", "redis"],
        default="memory",
        help="budget ledger of the relaygate path: memory, or redis (a loopback Redis is started)",
    )
    p.add_argument(
        "--abusive-neighbour",
        action="store_true",
        help="instead: workspace B's latency through the full path (control plane, xDS, policy "
        "sandbox) alone, next to workspace A hammered with normal calls, and next to A "
        "hammered with calls that trip A's stalling policy (issue 11 item 5)",
    )
    p.add_argument("--hammer-conns", type=int, default=8, help="--abusive-neighbour: A's connections")
    p.add_argument(
        "--opa-engine",
        action="store_true",
        help="also measure the relaygate path with --policy-engine opa-server: a real OPA (the pinned release, "
        "devstack.tools) on loopback, loaded with policies/, asked once per call",
    )
    a = p.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk (make bench does this)")
    shutil.rmtree(RUN, ignore_errors=True)
    RUN.mkdir(parents=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if a.abusive_neighbour:
        return abusive_neighbour(a)

    up_port, plain_port = free_port(), free_port()
    procs = []
    stack = ext_stack = redis_server = opa_stack = opa_server = None
    try:
        for name, boot in (
            ("upstream", upstream_bootstrap(up_port, free_port())),
            ("plain", plain_bootstrap(plain_port, free_port(), up_port)),
        ):
            path = envoy_config.write(RUN / f"{name}.json", boot)
            procs.append(
                spawn(
                    name,
                    [
                        envoy_binary(),
                        "-c",
                        str(path),
                        "--concurrency",
                        "1",
                        "--log-level",
                        "error",
                        "--base-id",
                        str(free_port()),
                    ],
                )
            )
            admin = boot["admin"]["address"]["socket_address"]["port_value"]
            wait_until(lambda: http_ok(f"http://127.0.0.1:{admin}/ready"), 30, f"{name} envoy", procs[-1])
        key = write_bench_config(RUN / "config", up_port)
        ledger_url = ""
        if a.ledger == "redis":
            redis_server = RedisServer(RUN / "redis")
            ledger_url = redis_server.start()
        # Plaintext like the "plain" Envoy it is compared with (TLS would add the same cost to both).
        stack = Stack(
            RUN / "stack",
            config_dir=RUN / "config",
            workers=a.workers,
            extproc_args=["--log-level", "WARNING"],
            ledger_url=ledger_url,
            tls=False,
        )
        stack.start_extproc()
        stack.start_envoy()
        # The same policy service asked over gRPC ext_proc instead of the ext_authz HTTP check.
        ext_stack = Stack(
            RUN / "stack-extproc",
            config_dir=RUN / "config",
            workers=a.workers,
            extproc_args=["--log-level", "WARNING"],
            ledger_url=ledger_url,
            tls=False,
            transport="extproc",
        )
        ext_stack.start_extproc()
        ext_stack.start_envoy()
        # The floor: the same Envoy bootstrap in front of a do-nothing Python ext_proc server.
        floor = Stack(RUN / "floor", config_dir=RUN / "config", tls=False, transport="extproc")
        floor_sock = floor.sockets[0]
        procs.append(
            spawn(
                "null-extproc",
                [
                    sys.executable,
                    "-m",
                    "bench.null_extproc",
                    "--listen",
                    f"unix:{floor_sock}",
                    "--upstream",
                    "bench-upstream",
                ],
            )
        )
        wait_until(floor_sock.exists, 30, "null ext_proc", procs[-1])
        floor.start_envoy()
        procs.append(floor.procs.pop("envoy"))
        paths = {
            "plain": f"http://127.0.0.1:{plain_port}/v1/chat/completions",
            "extproc-floor": f"{floor.gateway}/v1/bench/chat/completions",
            "relaygate": f"{stack.gateway}/v1/bench/chat/completions",
            "relaygate-extproc": f"{ext_stack.gateway}/v1/bench/chat/completions",
        }
        if a.opa_engine:
            # The same sidecar and Envoy, the platform decision from OPA over its REST API.
            from devstack.opa import OpaServer

            opa_server = OpaServer(RUN / "opa" / "opa.log", extra_args=(str(ROOT / "policies"),)).start()
            opa_stack = Stack(
                RUN / "stack-opa",
                config_dir=RUN / "config",
                workers=a.workers,
                extproc_args=["--log-level", "WARNING", "--policy-engine", "opa-server", "--opa-url", opa_server.url],
                ledger_url=ledger_url,
                tls=False,
            )
            opa_stack.start_extproc()
            opa_stack.start_envoy()
            paths["relaygate-opa"] = f"{opa_stack.gateway}/v1/bench/chat/completions"
        for url in paths.values():  # warm up, and prove both paths answer 200
            r = wrk(url, key, 4, 2)
            if r["non2xx"] or r["rps"] == 0:
                raise SystemExit(f"{url}: warm-up failed: {r}")

        samples: dict[str, dict[str, list[dict]]] = {k: {"sat": [], "one": [], "paced": []} for k in paths}
        profiler = None
        for rnd in range(a.rounds):
            for name, url in list(paths.items()) if rnd % 2 == 0 else list(reversed(paths.items())):
                if a.profile and name == "relaygate" and rnd == 0:
                    pids = [str(pr.pid) for n, pr in stack.procs.items() if n.startswith("extproc")]
                    profiler = subprocess.Popen(
                        [
                            str(Path(sys.executable).parent / "py-spy"),
                            "record",
                            "--format",
                            "raw",
                            "-o",
                            str(RESULTS / "extproc-profile.txt"),
                            "-d",
                            str(a.duration),
                            "-p",
                            pids[0],
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                samples[name]["sat"].append(wrk(url, key, a.connections, a.duration))
                if profiler:
                    profiler.wait()
                    profiler = None
                samples[name]["one"].append(wrk(url, key, 1, a.duration))
                samples[name]["paced"].append(wrk(url, key, a.pace_conns, a.duration, a.pace_ms))
                print(
                    f"round {rnd + 1}/{a.rounds} {name:13s} sat {samples[name]['sat'][-1]['rps']:7.0f} req/s  "
                    f"1-conn p50 {samples[name]['one'][-1]['p50_ms']:.2f} ms",
                    flush=True,
                )

        def med(name, kind, field):
            return statistics.median(s[field] for s in samples[name][kind])

        summary = {
            name: {
                "saturated_rps": med(name, "sat", "rps"),
                "one_conn_p50_ms": med(name, "one", "p50_ms"),
                "one_conn_p99_ms": med(name, "one", "p99_ms"),
                "paced_rps": med(name, "paced", "rps"),
                "paced_p50_ms": med(name, "paced", "p50_ms"),
                "paced_p99_ms": med(name, "paced", "p99_ms"),
                "errors": sum(s["non2xx"] + s["socket_errors"] for k in samples[name].values() for s in k),
            }
            for name in paths
        }
        pl, rg, fl, ep = summary["plain"], summary["relaygate"], summary["extproc-floor"], summary["relaygate-extproc"]
        ratios = {
            "throughput_floor_over_plain": fl["saturated_rps"] / pl["saturated_rps"],
            "one_conn_p50_floor_over_plain": fl["one_conn_p50_ms"] / pl["one_conn_p50_ms"],
            "throughput_relaygate_over_plain": rg["saturated_rps"] / pl["saturated_rps"],
            "one_conn_p50_relaygate_over_plain": rg["one_conn_p50_ms"] / pl["one_conn_p50_ms"],
            "one_conn_p99_relaygate_over_plain": rg["one_conn_p99_ms"] / pl["one_conn_p99_ms"],
            "paced_p50_relaygate_over_plain": rg["paced_p50_ms"] / pl["paced_p50_ms"],
            "paced_p99_relaygate_over_plain": rg["paced_p99_ms"] / pl["paced_p99_ms"],
            "throughput_extproc_over_plain": ep["saturated_rps"] / pl["saturated_rps"],
            "one_conn_p50_extproc_over_plain": ep["one_conn_p50_ms"] / pl["one_conn_p50_ms"],
            "throughput_authz_over_extproc": rg["saturated_rps"] / ep["saturated_rps"],
        }
        if "relaygate-opa" in summary:
            op = summary["relaygate-opa"]
            ratios["throughput_opa_over_regorus"] = op["saturated_rps"] / rg["saturated_rps"]
            ratios["one_conn_p50_opa_minus_regorus_ms"] = op["one_conn_p50_ms"] - rg["one_conn_p50_ms"]
            ratios["throughput_opa_over_plain"] = op["saturated_rps"] / pl["saturated_rps"]
        counts = json.load(urllib.request.urlopen(stack.extproc_admin + "/receipts?limit=1"))
        print()
        print(
            f"{'path':14s} {'sat req/s':>10s} {'1-conn p50':>11s} {'1-conn p99':>11s} "
            f"{'paced req/s':>12s} {'paced p50':>10s} {'paced p99':>10s} {'errors':>7s}"
        )
        for name, s in summary.items():
            print(
                f"{name:14s} {s['saturated_rps']:10.0f} {s['one_conn_p50_ms']:9.2f}ms {s['one_conn_p99_ms']:9.2f}ms "
                f"{s['paced_rps']:12.0f} {s['paced_p50_ms']:8.2f}ms {s['paced_p99_ms']:8.2f}ms {s['errors']:7d}"
            )
        print()
        print(
            f"do-nothing Python ext_proc (floor)/plain: throughput {ratios['throughput_floor_over_plain']:.2f}, "
            f"1-conn p50 {ratios['one_conn_p50_floor_over_plain']:.2f}x"
        )
        print(f"throughput relaygate/plain: {ratios['throughput_relaygate_over_plain']:.2f}  (target >= 0.20)")
        print(f"1-conn p50 relaygate/plain: {ratios['one_conn_p50_relaygate_over_plain']:.2f}x (target <= 5x)")
        print(f"1-conn p99 relaygate/plain: {ratios['one_conn_p99_relaygate_over_plain']:.2f}x")
        print(
            f"paced  p50 relaygate/plain: {ratios['paced_p50_relaygate_over_plain']:.2f}x, "
            f"p99 {ratios['paced_p99_relaygate_over_plain']:.2f}x"
        )
        print(
            f"relaygate over gRPC ext_proc/plain: throughput {ratios['throughput_extproc_over_plain']:.2f}, "
            f"1-conn p50 {ratios['one_conn_p50_extproc_over_plain']:.2f}x; the default ext_authz HTTP "
            f"transport has {ratios['throughput_authz_over_extproc']:.2f}x its throughput"
        )
        if "relaygate-opa" in summary:
            print(
                f"--policy-engine opa-server: throughput {ratios['throughput_opa_over_regorus']:.2f}x the in-process "
                f"engine's, 1-conn p50 +{ratios['one_conn_p50_opa_minus_regorus_ms']:.2f} ms"
            )
        print(f"receipts in the spool: {counts['counts']}")
        out = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "workers": a.workers,
            "ledger": a.ledger,
            "duration_s": a.duration,
            "rounds": a.rounds,
            "connections": a.connections,
            "summary": summary,
            "ratios": ratios,
            "spool": counts["counts"],
        }
        name = f"latest-w{a.workers}{'-redis' if a.ledger == 'redis' else ''}{'-opa' if a.opa_engine else ''}.json"
        (RESULTS / name).write_text(json.dumps(out, indent=2))
        print(f"written to bench/results/{name}")
    finally:
        for s in (stack, ext_stack, opa_stack):
            if s:
                s.stop()
        if opa_server:
            opa_server.stop()
        if redis_server:
            redis_server.stop()
        for pr in procs:
            pr.terminate()
            pr.wait()


def stack_cpu(stack) -> dict[str, float]:
    """CPU seconds used so far by the stack's processes (control plane, sidecars, Envoy) and by the
    policy sandbox (its zygote, which reaps the workers it forked, and the live workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")

    def used(pid: int) -> float:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # utime + stime, plus cutime + cstime: reaped children (the sandbox's killed workers)
            return sum(int(x) for x in fields[11:15]) / tick
        except (OSError, IndexError, ValueError):
            return 0.0

    out = {"controlplane": 0.0, "sidecar": 0.0, "envoy": 0.0, "policy_sandbox": 0.0}
    for name, proc in stack.procs.items():
        group = "sidecar" if name.startswith("extproc") else name
        if group in out:
            out[group] += used(proc.pid)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"relaygate.decision.policy_sandbox" in f.read():
                    out["policy_sandbox"] += used(int(pid))
        except OSError:
            pass
    return out


def abusive_neighbour(a) -> None:
    """B's p50/p99 (one connection, and paced) in three phases per round, all in one run:
    ``alone``; ``a_normal`` (A hammered with ordinary calls: the cost of load alone); ``a_abusive``
    (A hammered with calls its policy stalls on, each killed at the sandbox deadline). The
    issue's goal: B's p99 next to the abuse within 2x of its p99 alone."""
    import requests

    from tests.cpclient import eventually

    # A's policy: harmless unless a call says user "boom", then a loop far past the sandbox deadline.
    from tests.system.test_adversarial_policy import ABUSIVE as ABUSIVE_POLICY

    up_port = free_port()
    procs = []
    stack = None
    try:
        boot = upstream_bootstrap(up_port, free_port())
        path = envoy_config.write(RUN / "upstream.json", boot)
        procs.append(
            spawn(
                "upstream",
                [
                    envoy_binary(),
                    "-c",
                    str(path),
                    "--concurrency",
                    "1",
                    "--log-level",
                    "error",
                    "--base-id",
                    str(free_port()),
                ],
            )
        )
        admin = boot["admin"]["address"]["socket_address"]["port_value"]
        wait_until(lambda: http_ok(f"http://127.0.0.1:{admin}/ready"), 30, "upstream envoy", procs[-1])
        cfg = RUN / "config"
        key_b = write_bench_config(cfg, up_port)
        ws = yaml.safe_load((cfg / "workspaces.yaml").read_text())
        ws["workspaces"]["abuser"] = {"sovereignty": {"allowed_jurisdictions": ["us"]}}
        (cfg / "workspaces.yaml").write_text(yaml.safe_dump(ws))
        key_a = create_key(cfg, "abuser", "abuser", None, None)
        stack = Stack(
            RUN / "stack",
            config_dir=cfg,
            controlplane=True,
            tls=False,
            unreachable={"bench-upstream"},
            extproc_args=["--log-level", "WARNING"],
        )
        stack.start()
        made = requests.post(
            stack.cp_url + "/v1/policies",
            data=ABUSIVE_POLICY,
            timeout=30,
            headers={"Authorization": f"Bearer {key_a}", "Content-Type": "application/yaml"},
        )
        if made.status_code != 201:
            raise SystemExit(f"creating A's policy failed: {made.status_code} {made.text}")
        url_a = f"{stack.gateway}/v1/abuser/chat/completions"
        url_b = f"{stack.gateway}/v1/bench/chat/completions"
        boom = json.dumps({**json.loads(REQUEST_BODY), "user": "boom"})

        def a_stalls() -> bool:
            r = requests.post(
                url_a,
                data=boom,
                timeout=30,
                headers={"Authorization": f"Bearer {key_a}", "Content-Type": "application/json"},
            )
            return r.status_code >= 500 and "policy" in r.text

        eventually(a_stalls, 60, "A's stalling policy reaching the gateway")
        for url, k in ((url_b, key_b), (url_a, key_a)):  # warm up; both answer 200 on ordinary calls
            r = wrk(url, k, 2, 2)
            if r["non2xx"] or r["rps"] == 0:
                raise SystemExit(f"{url}: warm-up failed: {r}")

        phases = ("alone", "a_normal", "a_abusive")
        samples = {ph: {"one": [], "paced": []} for ph in phases}
        hammer_stats = {ph: [] for ph in phases[1:]}
        cpu = {ph: [] for ph in phases}
        for rnd in range(a.rounds):
            for ph in phases if rnd % 2 == 0 else tuple(reversed(phases)):
                hammer = None
                if ph != "alone":
                    argv = wrk_argv(
                        url_a,
                        key_a,
                        a.hammer_conns,
                        2 * a.duration + 4,
                        body=boom if ph == "a_abusive" else REQUEST_BODY,
                        tag=f"-{ph}",
                    )
                    hammer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                    time.sleep(1)  # let the hammer reach steady state before measuring B
                cpu0, t0 = stack_cpu(stack), time.monotonic()
                samples[ph]["one"].append(wrk(url_b, key_b, 1, a.duration))
                samples[ph]["paced"].append(wrk(url_b, key_b, a.pace_conns, a.duration, a.pace_ms))
                cpu1, elapsed = stack_cpu(stack), time.monotonic() - t0
                cpu[ph].append({k: (cpu1[k] - cpu0.get(k, 0.0)) / elapsed for k in cpu1})
                if hammer:
                    hammer_stats[ph].append(wrk_result(hammer.communicate()[0], 2 * a.duration + 4))
                one = samples[ph]["one"][-1]
                print(
                    f"round {rnd + 1}/{a.rounds} {ph:10s} B 1-conn p50 {one['p50_ms']:.2f} ms "
                    f"p99 {one['p99_ms']:.2f} ms",
                    flush=True,
                )

        def med(ph, kind, f):
            return statistics.median(x[f] for x in samples[ph][kind])

        summary = {
            ph: {
                "one_conn_p50_ms": med(ph, "one", "p50_ms"),
                "one_conn_p99_ms": med(ph, "one", "p99_ms"),
                "paced_p50_ms": med(ph, "paced", "p50_ms"),
                "paced_p99_ms": med(ph, "paced", "p99_ms"),
                "b_errors": sum(x["non2xx"] + x["socket_errors"] for k in samples[ph].values() for x in k),
            }
            for ph in phases
        }
        for ph in phases:
            summary[ph]["cpu_cores"] = {
                k: round(statistics.median(x.get(k, 0.0) for x in cpu[ph]), 3) for k in cpu[ph][0]
            }
        for ph, hs in hammer_stats.items():
            summary[ph]["a_rps"] = statistics.median(h["rps"] for h in hs)
            summary[ph]["a_non2xx"] = sum(h["non2xx"] for h in hs)
        base = summary["alone"]
        ratios = {
            f"{ph}_{m}_over_alone": summary[ph][m] / base[m]
            for ph in phases[1:]
            for m in ("one_conn_p50_ms", "one_conn_p99_ms", "paced_p50_ms", "paced_p99_ms")
        }
        print()
        print(
            f"{'phase':10s} {'1-conn p50':>11s} {'1-conn p99':>11s} {'paced p50':>10s} {'paced p99':>10s} "
            f"{'B errors':>8s} {'A req/s':>8s} {'A non-2xx':>9s}"
        )
        for ph, x in summary.items():
            print(
                f"{ph:10s} {x['one_conn_p50_ms']:9.2f}ms {x['one_conn_p99_ms']:9.2f}ms {x['paced_p50_ms']:8.2f}ms "
                f"{x['paced_p99_ms']:8.2f}ms {x['b_errors']:8d} {x.get('a_rps', 0):8.0f} {x.get('a_non2xx', 0):9d}"
            )
        print()
        print("CPU (cores) while B was measured:")
        for ph in phases:
            print(f"  {ph:10s} " + "  ".join(f"{k} {v:.2f}" for k, v in summary[ph]["cpu_cores"].items()))
        print()
        for k, v in ratios.items():
            print(f"{k}: {v:.2f}x")
        ok = ratios["a_abusive_one_conn_p99_ms_over_alone"] <= 2 and ratios["a_abusive_paced_p99_ms_over_alone"] <= 2
        print(f"goal (B's p99 next to the abuse within 2x of alone): {'met' if ok else 'NOT met'}")
        out = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "duration_s": a.duration,
            "rounds": a.rounds,
            "hammer_conns": a.hammer_conns,
            "pace_conns": a.pace_conns,
            "pace_ms": a.pace_ms,
            "summary": summary,
            "ratios": ratios,
            "goal_met": ok,
        }
        (RESULTS / "latest-abusive-neighbour.json").write_text(json.dumps(out, indent=2))
        print("written to bench/results/latest-abusive-neighbour.json")
    finally:
        if stack:
            stack.stop()
        for pr in procs:
            pr.terminate()
            pr.wait()


if __name__ == "__main__":
    sys.exit(main())
