"""dashboards/: the Grafana dashboards as code, checked by regenerating them, by the real promtool
and against a live stack's metrics.

The committed JSON is exactly what dashboards/generate.py writes (grafana-foundation-sdk at its
Grafana 11 epoch); every query, with the template variables given plausible values, is PromQL
`promtool check rules` accepts (and a broken one it refuses); every series a query names is one a
running stack (sidecar, control plane, Envoy) exports after a plain and a streamed call; and the
JSON has the Grafana 11 dashboard shape (schemaVersion, panels on the grid without overlaps,
unique ids, stable uids, a Prometheus `datasource` variable every panel and query uses).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_full_stack

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
UIDS = {"overview.json": "relaygate-overview", "fleet.json": "relaygate-fleet", "evidence.json": "relaygate-evidence"}

# What the checks substitute for Grafana's variables: the job names compose/prometheus.yml scrapes,
# every instance and workspace. $datasource only ever selects the data source: removed.
VALUES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "job": "relaygate-policy",
    "cp_job": "relaygate-controlplane",
    "envoy_job": "relaygate-envoy",
    "instance": ".*",
    "workspace": ".*",
    "datasource": "",
}
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]*)?\}")
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
METRIC = re.compile(r"(?<![A-Za-z0-9_:])(?:relaygate_\w+|gen_ai_\w+|envoy_\w+|up)(?![A-Za-z0-9_:])")
# Counters of events a healthy stack does not have (failed bundle polls, sampled junk): their
# families are exported from the start, their series only once the event happens.
EVENT_ONLY = {
    "relaygate_policy_bundle_errors_total",
    "relaygate_receipts_sampled_total",
}


def promtool() -> str:
    exe = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    assert exe, "promtool (Debian package prometheus) is installed by make test"
    return exe


def load() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(d: dict) -> list[dict]:
    """Every panel, rows and the panels of collapsed rows included."""
    out = []
    for p in d.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def variables(d: dict) -> dict[str, dict]:
    return {v["name"]: v for v in d.get("templating", {}).get("list", [])}


def queries(name: str, d: dict) -> list[tuple[str, str]]:
    """(where, raw expr) of every panel target and every query variable's label_values selector."""
    out = []
    for p in panels(d):
        for t in p.get("targets", []):
            out.append((f"{name}: panel {p['id']} {p.get('title')!r} {t.get('refId')}", t["expr"]))
    for v in variables(d).values():
        if v["type"] == "query":
            m = LABEL_VALUES.match(v["query"])
            assert m, f"{name}: variable {v['name']}: not label_values(selector, label): {v['query']!r}"
            out.append((f"{name}: variable {v['name']}", m["selector"]))
    return out


def substitute(where: str, expr: str, defined: set[str]) -> str:
    def value(m: re.Match) -> str:
        var = m[1] or m[2]
        assert var.startswith("__") or var in defined, f"{where}: ${var} is not a variable of the dashboard"
        assert var in VALUES, f"{where}: no test value for ${var}"
        return VALUES[var]

    return VARIABLE.sub(value, expr)


def checked_exprs() -> list[tuple[str, str]]:
    out = []
    for name, d in load().items():
        defined = set(variables(d))
        out.extend((where, substitute(where, expr, defined)) for where, expr in queries(name, d))
    return out


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects: strings, label matchers and label lists taken out first
    (gen_ai_request_model, envoy_cluster_name... are labels there, not series)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    return set(METRIC.findall(e))


def check_rules(tmp: Path, exprs: list[str]) -> subprocess.CompletedProcess:
    doc = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [{"record": f"dashboard:check_{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


# -- a. the committed JSON is the generator's output -----------------------------------------------


def test_the_committed_dashboards_are_what_the_generator_writes(tmp_path):
    epoch_build = importlib.metadata.version("grafana-foundation-sdk")
    assert epoch_build.split("!")[-1].startswith("11."), (
        f"grafana-foundation-sdk {epoch_build}: not the Grafana 11 build"
    )
    r = subprocess.run(
        [sys.executable, "-m", "dashboards.generate", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    fresh = {p.name: p.read_bytes() for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_bytes() for p in DASHBOARDS.glob("*.json")}
    assert sorted(fresh) == sorted(UIDS) == sorted(committed)
    for name in UIDS:
        assert fresh[name] == committed[name], f"dashboards/{name} is stale: run python -m dashboards.generate"


# -- b. every query is PromQL promtool accepts -------------------------------------------------------


def test_every_query_is_valid_promql(tmp_path):
    exprs = checked_exprs()
    assert len(exprs) >= 60
    for where, e in exprs:
        assert "$" not in e, f"{where}: unsubstituted variable in {e!r}"
    r = check_rules(tmp_path, [e for _, e in exprs])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in r.stdout, r.stdout
    # the same check refuses a query one parenthesis short, and one naming a variable the test does not know
    broken = exprs[0][1].removesuffix(")")
    assert broken != exprs[0][1]
    r = check_rules(tmp_path, [e for _, e in exprs] + [broken])
    assert r.returncode != 0 and "parse error" in (r.stdout + r.stderr), r.stdout + r.stderr
    with pytest.raises(AssertionError, match="is not a variable of the dashboard"):
        substitute("probe", 'rate(relaygate_calls_total{workspace=~"$tenant"}[5m])', {"job"})


# -- c. every series a query names is exported by a live stack ---------------------------------------


def _get(url: str, context=None) -> str:
    with urllib.request.urlopen(url, timeout=10, context=context) as r:
        return r.read().decode()


def _exposition(text: str) -> tuple[dict[str, str], set[str]]:
    """(family -> type from # TYPE lines, names of the samples present)."""
    types, samples = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            types[name] = kind.strip()
        elif line and not line.startswith("#"):
            samples.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)[0])
    return types, samples


def _value(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The three /metrics outputs of a full stack after a plain and a streamed call were settled and
    their receipts ingested: (family -> type, sample names)."""
    stack, tokens = start_full_stack(tmp_path_factory, "dashboards")
    try:
        http = openai.DefaultHttpxClient(verify=stack.client_ssl(), trust_env=False)
        client = openai.OpenAI(
            api_key=tokens["acme"], base_url=f"{stack.gateway}/v1/acme", http_client=http, max_retries=0
        )
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "dash"}], max_tokens=5
        )
        list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "dash stream"}], max_tokens=5, stream=True
            )
        )
        cp_ctx = stack.client_ssl() if stack.cp_url.startswith("https") else None
        urls = [
            (stack.extproc_admin + "/metrics", None),
            (stack.cp_url + "/metrics", cp_ctx),
            (f"http://127.0.0.1:{stack.envoy_admin_port}/stats/prometheus", None),
        ]
        deadline = time.monotonic() + 30
        while True:  # settled from Envoy's access log, then shipped: both asynchronous
            texts = [_get(url, ctx) for url, ctx in urls]
            if (
                _value(texts[0], "gen_ai_server_time_to_first_token_seconds_count") >= 1
                and _value(texts[1], "relaygate_cp_receipts_ingested_total", result="accepted") >= 2
            ) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        types, samples = {}, set()
        for text in texts:
            t, s = _exposition(text)
            types |= t
            samples |= s
        yield types, samples
    finally:
        stack.stop()


def test_every_series_the_dashboards_name_is_exported(live):
    types, samples = live
    used: dict[str, str] = {}
    for where, e in checked_exprs():
        for name in metric_names(e):
            used.setdefault(name, where)
    # the extraction reads series, not labels
    assert not {"gen_ai_request_model", "gen_ai_token_type", "envoy_cluster_name"} & set(used)
    assert {"relaygate_budget_used", "relaygate_budget_limit", "gen_ai_client_token_usage_sum", "up"} <= set(used)
    assert EVENT_ONLY <= set(used)
    missing = []
    for name, where in sorted(used.items()):
        if name == "up":  # Prometheus' own, per scrape target
            continue
        family = name
        if name not in types:
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            family = base if types.get(base) == "histogram" else None
        if family is None:
            missing.append(f"{name} (no such family; {where})")
        elif name not in samples and family not in EVENT_ONLY:
            missing.append(f"{name} (exported but no series after the calls; {where})")
    assert not missing, "\n".join(missing)
    # Sanity of the check itself: a made-up name would have been caught.
    assert "relaygate_made_up_total" not in types and "relaygate_made_up_total" not in samples


# -- d. the Grafana 11 dashboard shape ---------------------------------------------------------------


def test_the_json_has_the_grafana_11_dashboard_shape():
    boards = load()
    assert sorted(boards) == sorted(UIDS)
    for name, d in boards.items():
        assert d["uid"] == UIDS[name], name
        assert d["title"].startswith("relaygate — ") and d["description"], name
        assert isinstance(d["schemaVersion"], int) and 39 <= d["schemaVersion"] <= 41, (name, d["schemaVersion"])
        assert d["tags"] == ["relaygate"] and d["time"] == {"from": "now-6h", "to": "now"}, name
        vs = variables(d)
        assert len(vs) == len(d["templating"]["list"]), f"{name}: duplicate variable names"
        assert vs["datasource"]["type"] == "datasource" and vs["datasource"]["query"] == "prometheus", name
        assert {"job", "instance"} <= set(vs), name
        for v in vs.values():
            if v["type"] == "query":
                assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, v["name"])
        ps = panels(d)
        ids = [p["id"] for p in ps]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids), f"{name}: panel ids"
        cells: set[tuple[int, int]] = set()
        for p in ps:
            g = p["gridPos"]
            assert all(isinstance(g[k], int) for k in "hwxy") and g["h"] > 0 and g["w"] > 0, (name, p["id"])
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["y"] >= 0, (name, p["id"], g)
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, f"{name}: panel {p['id']} {p.get('title')!r} overlaps another"
            cells |= mine
            assert p.get("title"), (name, p["id"])
            if p["type"] == "row":
                continue
            assert p["type"] in {"timeseries", "stat", "bargauge"}, (name, p["id"], p["type"])
            assert p.get("description"), f"{name}: panel {p['title']!r} has no description"
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, p["title"])
            assert p["targets"], (name, p["title"])
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs)), (name, p["title"])
            for t in p["targets"]:
                assert t["datasource"] == p["datasource"] and t["expr"].strip(), (name, p["title"])
        titles = [p["title"] for p in ps]
        assert len(titles) == len(set(titles)), f"{name}: panel titles repeat"
        assert sum(p["type"] != "row" for p in ps) >= 10, name
