"""relaygate-run (`make run`): start the whole stack on embedded defaults and show it working.

Starts the provider simulator, relaygate-extproc and Envoy from config/ and
policies/, sends a short tour of calls (curl, the openai and anthropic SDKs,
an allowed call, a stream and denials), prints what came back with each
call's signed receipt, then keeps serving until Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from stack.processes import ROOT, Stack

DEMO_KEYS = {}
for line in (ROOT / "config" / "demo-keys.txt").read_text().splitlines():
    if line.startswith("acme (all"):
        DEMO_KEYS["acme"] = line.split()[-1]
    elif line.startswith("acme (embeddings"):
        DEMO_KEYS["acme-embed"] = line.split()[-1]
    elif line.startswith("euro"):
        DEMO_KEYS["euro"] = line.split()[-1]


def _say(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def _receipt(stack: Stack, rid: str) -> dict:
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{stack.extproc_admin}/receipts/{rid}") as r:
                if r.status == 200:
                    return json.load(r)["receipt"]
        except urllib.error.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"receipt {rid} was not finalized")


def _curl(stack: Stack, key: str, ws: str, body: dict, extra: list[str] = ()) -> str:
    cmd = ["curl", "-sS", "-i", f"{stack.gateway}/v1/{ws}/chat/completions",
           "-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json",
           "-d", json.dumps(body), *extra]
    print("$ curl", f"{stack.gateway}/v1/{ws}/chat/completions", "-H 'Authorization: Bearer ro_live_…'",
          f"-d '{json.dumps(body)}'")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    print(out.strip())
    rid = [line.split(":", 1)[1].strip() for line in out.splitlines()
           if line.lower().startswith("x-relayone-receipt-id:")]
    return rid[0] if rid else ""


def tour(stack: Stack) -> None:
    import anthropic
    import openai

    key = DEMO_KEYS["acme"]
    _say("1. An allowed call with curl (routed to openai-us, credential swapped, receipt returned)")
    rid = _curl(stack, key, "acme", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}],
                                     "max_tokens": 20})
    r = _receipt(stack, rid)
    print("receipt:", json.dumps({k: r[k] for k in ("id", "decision", "upstream", "usage", "cost")}, indent=1))

    _say("2. The openai SDK, streaming (base_url is the only change)")
    client = openai.OpenAI(base_url=f"{stack.gateway}/v1/acme", api_key=key, max_retries=0)
    stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": "Stream a sentence"}])
    print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    _say("3. The anthropic SDK")
    claude = anthropic.Anthropic(base_url=f"{stack.gateway}/v1/acme", api_key=key, max_retries=0)
    msg = claude.messages.create(model="claude-haiku-4-5", max_tokens=32,
                                 messages=[{"role": "user", "content": "Hi Claude"}])
    print(msg.content[0].text, "| usage:", msg.usage.input_tokens, "in,", msg.usage.output_tokens, "out")

    _say("4. Sovereignty: workspace 'euro' may only reach EEA upstreams, so it is routed to openai-eu")
    rid = _curl(stack, DEMO_KEYS["euro"], "euro",
                {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Bonjour"}]})
    print("served by:", _receipt(stack, rid)["upstream"])

    _say("5. Sovereignty block: 'euro' asks for a model only a US upstream serves -> 451")
    _curl(stack, DEMO_KEYS["euro"], "euro", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})

    _say("6. Scope: an embeddings-only key calls chat -> 403")
    _curl(stack, DEMO_KEYS["acme-embed"], "acme",
          {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})

    _say("7. A forged key -> 401, still with a receipt")
    _curl(stack, "ro_live_AAAAAAAAAAAA_forged", "acme", {"model": "gpt-4o-mini", "messages": []})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="relaygate-run", description=__doc__.split("\n\n")[0])
    p.add_argument("--gateway-port", type=int, default=8080)
    p.add_argument("--envoy-admin-port", type=int, default=9901)
    p.add_argument("--admin-port", type=int, default=9464, help="relaygate-extproc admin port")
    p.add_argument("--run-dir", default=str(ROOT / ".run"))
    p.add_argument("--workers", type=int, default=1, help="policy worker processes behind one Envoy cluster")
    p.add_argument("--demo-only", action="store_true", help="stop after the tour instead of serving")
    a = p.parse_args(argv)
    stack = Stack(Path(a.run_dir), gateway_port=a.gateway_port, envoy_admin_port=a.envoy_admin_port,
                  extproc_admin_port=a.admin_port, workers=a.workers)
    print(f"starting relaygate (logs in {a.run_dir}) ...", flush=True)
    try:
        stack.start()
    except Exception as e:
        raise SystemExit(f"could not start the stack: {e}\n(is something else on ports "
                         f"{a.gateway_port}/{a.envoy_admin_port}/{a.admin_port}? pass --gateway-port etc.)")
    try:
        tour(stack)
        print(f"""
\033[1mrelaygate is running.\033[0m
  gateway         {stack.gateway}/v1/<workspace>/chat/completions | /completions | /embeddings | /messages
  demo keys       config/demo-keys.txt
  receipts        {stack.extproc_admin}/receipts   (one: /receipts/<id>; public key: /signing-key)
  metrics         {stack.extproc_admin}/metrics  and Envoy's http://127.0.0.1:{a.envoy_admin_port}/stats/prometheus
Ctrl-C stops everything.""", flush=True)
        if not a.demo_only:
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        print("stopped.")


if __name__ == "__main__":
    main()
