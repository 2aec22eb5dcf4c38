"""relaygate's Rego against the real OPA (issue 16, items 1 and 2).

regorus evaluates every decision in-process; OPA is the reference implementation of Rego. Here
the pinned OPA (devstack.tools) checks the platform policies (``opa check --strict``, ``opa
test``) and, running as a server on loopback queried through opa-python-client's async client,
decides thousands of generated inputs beside regorus: keys with random scopes and glob patterns,
workspaces with random jurisdictions and regions, budgets at and around their caps, candidates
in any order, workspace-policy outcomes, and fields missing or of the wrong type. Every decision
must be identical. The first run of this test found the engines disagreeing on inputs with missing
fields or fields of the wrong type (regorus's compiled evaluator denied on scope where OPA and
regorus's interpreter went on, and the interpreter failed where OPA decided); gateway.rego now
checks the input's shape first, so no rule ever reads a missing field. Generated
workspace policies (the YAML+Rego a platform team writes) are compared the same way.
"""

from __future__ import annotations

import asyncio
import json
import re
import string
import subprocess

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opa_client.errors import RegoParseError
from opa_client.opa_async import AsyncOpaClient

from devstack import opa
from devstack.tools import opa_binary
from devstack.processes import ROOT
from relaygate.decision import workspace_policy as wp
from relaygate.decision.policy_engine import PolicyError, RegorusEngine, build_engine, load_policy_sources

POLICY_DIR = ROOT / "policies"
EXAMPLES = 1500  # per property; each is one regorus evaluation (two evaluators) and one OPA query


def test_opa_check_strict_and_opa_test_pass_on_the_platform_policies():
    checked = opa.check_strict(POLICY_DIR)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = opa.run_tests(POLICY_DIR)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    passed = re.findall(r"^data\.relaygate\.gateway_test\.(test_\w+): PASS", tested.stdout, re.M)
    declared = re.findall(r"^(test_\w+) if", (POLICY_DIR / "relaygate" / "gateway_test.rego").read_text(), re.M)
    assert sorted(passed) == sorted(declared) and len(declared) >= 10, tested.stdout


def test_every_workspace_policy_the_tests_create_passes_opa_check_strict(tmp_path):
    """Every workspace policy document written in the test suite that relaygate accepts at upload
    (string literals holding one, found by walking the tests' syntax trees), compiled as the
    bundle carries it, passes the real OPA's strict check too."""
    import ast

    sources = {}
    for f in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "rego:" in node.value:
                try:
                    doc = wp.parse_document(node.value)
                    pid = f"pol_{len(sources)}"
                    sources[f"{f.stem}_{pid}.rego"] = wp.compile_policy(pid, doc)
                except wp.PolicyDocumentError:
                    continue  # a document the tests show being refused
    assert len(sources) >= 10, sorted(sources)
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    checked = opa.check_strict(tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# Rule definitions that OPA refuses as "conflicting rules" (and regorus compiled), beside close
# ones OPA accepts. An OPA agent refuses a bundle holding a module it cannot compile, whole: the
# control plane must refuse exactly these at upload.
RULE_HEADS = {
    "own-policy_data-set": (['policy_data contains "x"'], False),
    "set-and-function": (["deny(x) := x"], False),
    "set-and-object": (["a contains 1", 'a[x] := 2 if x := "k"'], False),
    "set-and-nested": (["a contains 1", "a.b := 2"], False),
    "value-and-nested": (["a.b := 1", "a.b.c := 2"], False),
    "string-key-and-nested": (['a["b"] := 1', "a.b.c := 2"], False),
    "functions-of-two-arities": (["f(x) := 1", "f(x, y) := 2"], False),
    "two-defaults": (["default p := 1", "default p := 2", "p := 3 if input.x"], False),
    "value-named-like-a-built-in-called": (["count := 2", "x if count(input.a) == 2"], False),
    "function-named-like-a-built-in-other-arity": (["upper(x, y) := x", 'x if upper("a") == "A"'], False),
    "rule-inside-a-built-ins-name-called": (["time.now_ns := 1", "x if time.now_ns() > 1"], False),
    "rule-over-a-built-in-namespace-called": (['strings := "s"', 'x if strings.reverse("ab") == "ba"'], False),
    "value-named-like-a-built-in": (["count := 2", "x if count == 2"], True),
    "own-function-named-like-a-built-in": (["count(x) := 2", "x if count(input.a) == 2"], True),
    "own-function-called": (["f(x) := x", "y if f(1) == 1"], True),
    "siblings": (["a.b := 1", "a.c := 2"], True),
    "object-and-sibling": (['a[x] := 1 if some x in ["b"]', "a.c := 2"], True),
    "sets-side-by-side": (["a.b contains 1", "a.c := 2"], True),
    "default-and-value": (["default a := 1", "a := 2 if input.x"], True),
    "default-function": (["default f(_) := 1", "f(x) := 2 if x"], True),
    "value-twice": (["p := 1 if input.x", "p := 1 if input.y"], True),
}


@pytest.mark.parametrize("case", sorted(RULE_HEADS))
def test_relaygate_refuses_exactly_the_rule_definitions_opa_refuses(case, tmp_path):
    rules, opa_accepts = RULE_HEADS[case]
    body = "\n".join("  " + r for r in ("package anything", "import rego.v1", *rules, 'deny contains "n" if false'))
    doc = wp.parse_document(f"name: t\nrego: |\n{body}\n")
    (tmp_path / "p.rego").write_text(wp.module_source("pol_t", doc))
    checked = subprocess.run([opa_binary(), "check", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert (checked.returncode == 0) == opa_accepts, checked.stdout + checked.stderr
    if opa_accepts:
        wp.compile_policy("pol_t", doc)
    else:
        with pytest.raises(wp.PolicyDocumentError) as e:
            wp.compile_policy("pol_t", doc)
        assert e.value.line is not None, e.value
        assert "OPA refuses" in e.value.message or "'policy_data' is defined by relaygate" in e.value.message


@pytest.fixture(scope="module")
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture(scope="module")
def opa_server(tmp_path_factory):
    server = opa.OpaServer(tmp_path_factory.mktemp("opa") / "opa.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(opa_server, loop):
    c = AsyncOpaClient(host="127.0.0.1", port=opa_server.port, timeout=10)
    loop.run_until_complete(c._init_session())
    yield c
    loop.run_until_complete(c.close_connection())


def _platform_sources():
    """The platform policies as the sidecar loads them, plus the generated package that reads the
    workspace policies' outcome (as every bundle from a control plane carries it)."""
    modules, data = load_policy_sources(POLICY_DIR)
    return {**modules, wp.AGGREGATOR_PATH: wp.aggregator()}, data


@pytest.fixture(scope="module")
def platform(client, loop):
    modules, data = _platform_sources()

    async def load():
        for path, text in modules.items():
            assert await client.update_policy_from_string(text, path.replace("/", "_"), rego_compat=False)
        for key, value in data.items():
            assert await client.update_or_create_data(value, key)

    loop.run_until_complete(load())
    return RegorusEngine(sources=(modules, data)), RegorusEngine(sources=(modules, data), compiled=False)


ERROR = "evaluation error"  # both engines failed at run time (messages differ between them)
# regorus fails an evaluation on a builtin's error (to_number("x"), concat over a null, ...); OPA
# does so with strict builtin errors, and otherwise leaves the expression undefined. relaygate's
# semantics are the strict ones (fail closed: the call is denied policy.error), so OPA is asked
# in that mode (docs/policy.md).
STRICT = {"strict-builtin-errors": "true"}


def _regorus(engine: RegorusEngine, doc) -> dict | str | None:
    try:
        return engine.decide(json.dumps(doc))
    except PolicyError as e:
        return None if "returned no decision" in str(e) else ERROR


def _opa(client, loop, doc, package: str, rule: str | None = None) -> dict | list | str | None:
    try:
        answer = loop.run_until_complete(
            client.query_rule(input_data=doc, package_path=package, rule_name=rule, query_params=STRICT)
        )
    except aiohttp.ClientResponseError as e:
        if e.status == 500:  # OPA's evaluation errors (e.g. a conflict) answer 500
            return ERROR
        raise
    return answer.get("result")


# -- generated inputs --------------------------------------------------------------------------

ENDPOINTS = ["chat.completions", "completions", "embeddings", "messages"]
MODELS = ["gpt-4o-mini", "gpt-4o", "o1", "claude-haiku-4-5", "text-embedding-3-small", "gpt-4o*", ""]
PATTERNS = [
    "*",
    "gpt-4o*",
    "gpt-*",
    "claude-*",
    "*-mini",
    "o1",
    "gpt-4o-mini",
    "g?t-4o",
    "*o*",
]  # valid_pattern (contract/scope.py) only
JURISDICTIONS = ["us", "eu", "uk", "ch", "jp", "no", "ca"]
GROUPS = ["eea", "eu-adequate", *JURISDICTIONS, "mars"]
REGIONS = ["us-east-1", "eu-west-1", "eu-central-1", "ap-northeast-1"]

small = st.integers(min_value=0, max_value=2_000)
names = st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=8)


@st.composite
def candidates(draw):
    out = []
    for name in draw(st.lists(names, max_size=4, unique=True)):
        out.append(
            {
                "name": name,
                "provider": draw(st.sampled_from(["openai", "anthropic"])),
                "region": draw(st.sampled_from(REGIONS)),
                "jurisdiction": draw(st.sampled_from(JURISDICTIONS)),
                "cost": {"tokens": draw(small), "usd_micros": draw(small)},
            }
        )
    return out


@st.composite
def budgets(draw, cost_hint: int):
    out = []
    for i in range(draw(st.integers(0, 3))):
        limit = draw(st.integers(0, 3_000))
        # Around the cap: exactly full, one under, one over, or anywhere.
        used = draw(
            st.sampled_from([max(limit - cost_hint, 0), max(limit - cost_hint - 1, 0), limit - cost_hint + 1]) | small
        )
        out.append(
            {
                "id": f"b{i}",
                "unit": draw(st.sampled_from(["tokens", "usd"])),
                "window": "day",
                "limit": limit,
                "used": used,
            }
        )
    return out


@st.composite
def policy_inputs(draw, damaged: bool = True):
    cands = draw(candidates())
    doc = {
        "version": 1,
        "endpoint": draw(st.sampled_from(ENDPOINTS)),
        "model": draw(st.sampled_from(MODELS)),
        "stream": draw(st.booleans()),
        "principal": {
            "key_id": draw(names),
            "workspace": "acme",
            "endpoints": draw(st.lists(st.sampled_from(ENDPOINTS), max_size=4)),
            "models": draw(st.lists(st.sampled_from(PATTERNS), max_size=3)),
        },
        "workspace": {
            "id": "acme",
            "allowed_jurisdictions": draw(st.lists(st.sampled_from(GROUPS), max_size=3)),
            "allowed_regions": draw(st.lists(st.sampled_from(REGIONS), max_size=2)),
        },
        "candidates": cands,
        "budgets": draw(budgets(cands[0]["cost"]["tokens"] if cands else 0)),
    }
    if draw(st.booleans()):
        denials = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "policy": st.sampled_from(["pol_a@1", "pol_b@2"]),
                        "status": st.sampled_from([403, 451]),
                        "code": st.sampled_from(["policy.blocked", "policy.pii"]),
                        "reason": names,
                    }
                ),
                max_size=2,
            )
        )
        doc["workspace_policies"] = {"denials": denials, "cited": sorted({d["policy"] for d in denials})}
    # Missing fields and wrong types: both engines must agree on those too.
    for path in draw(st.lists(st.sampled_from(DAMAGE), max_size=2 if damaged else 0, unique=True)):
        _damage(doc, path, draw(st.sampled_from([_DROP, None, "x", 7, [], {}])))
    return doc


DAMAGE = [
    ("endpoint",), ("model",), ("principal",), ("principal", "endpoints"), ("principal", "models"),
    ("principal", "key_id"), ("workspace",), ("workspace", "allowed_jurisdictions"),
    ("workspace", "allowed_regions"), ("candidates",), ("budgets",), ("workspace_policies",),
]  # fmt: skip
_DROP = object()


def _damage(doc: dict, path: tuple[str, ...], value) -> None:
    parent = doc
    for k in path[:-1]:
        parent = parent.get(k)
        if not isinstance(parent, dict):
            return
    if value is _DROP:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(doc=policy_inputs())
def test_regorus_decides_like_opa_on_generated_inputs(platform, client, loop, doc):
    compiled, interpreted = platform
    expected = _opa(client, loop, doc, "relaygate.gateway.decision")
    got = _regorus(compiled, doc)
    assert got == expected, json.dumps(doc)
    assert _regorus(interpreted, doc) == expected, json.dumps(doc)  # regorus's two evaluators agree too


def test_the_generator_reaches_every_decision(platform):
    """Not a hollow property: the generated inputs cover allow and every denial code."""
    compiled, _ = platform
    seen = set()

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(doc=policy_inputs())
    def collect(doc):
        d = _regorus(compiled, doc)
        seen.add(d["code"] if isinstance(d, dict) else repr(d)[:20])

    collect()
    assert {"ok", "scope.denied", "model.not_found", "sovereignty.blocked", "budget.exceeded"} <= seen, seen
    assert {"policy.blocked", "policy.pii"} & seen, seen
    assert "policy.error" in seen  # damaged inputs are refused by gateway.rego's input check


# -- generated workspace policies -------------------------------------------------------------

CONDITIONS = [
    'input.model == "{model}"',
    'startswith(input.model, "{prefix}")',
    'endswith(input.model, "mini")',
    'input.endpoint in {{"embeddings", "completions"}}',
    "input.stream == true",
    "count(input.candidates) > {n}",
    'some c in input.candidates; c.jurisdiction == "{jur}"',
    'regex.match("^gpt-[0-9]", input.model)',
    "glob.match({pattern}, [], input.model)",
    "input.model in policy_data.blocked_models",
    "count(input.principal.models) < {n}",
    "lower(input.principal.key_id) != input.principal.key_id",
    "sum([c.cost.tokens | some c in input.candidates]) > {big}",
    'contains(concat(",", input.workspace.allowed_jurisdictions), "{jur}")',
    'object.get(input, ["workspace", "id"], "") == "acme"',
    'to_number("{n}") >= {n}',
    'split(input.model, "-")[0] == "{prefix}"',
]
REASONS = [
    '"blocked"',
    'sprintf("model %s is not allowed", [input.model])',
    'sprintf("%d candidates", [count(input.candidates)])',
    'concat(" ", ["endpoint", input.endpoint])',
    "upper(input.model)",
]


@st.composite
def workspace_policies(draw):
    rules = []
    for _ in range(draw(st.integers(1, 3))):
        conds = draw(st.lists(st.sampled_from(CONDITIONS), min_size=1, max_size=3))
        body = "; ".join(
            c.format(
                model=draw(st.sampled_from(MODELS)),
                prefix=draw(st.sampled_from(["gpt", "claude", "o1", ""])),
                n=draw(st.integers(0, 3)),
                jur=draw(st.sampled_from(JURISDICTIONS)),
                pattern=json.dumps(draw(st.sampled_from(PATTERNS))),  # a Rego string literal
                big=draw(st.integers(0, 3_000)),
            )
            for c in conds
        )
        rules.append(f"deny contains {draw(st.sampled_from(REASONS))} if {{ {body} }}")
    blocked = draw(st.lists(st.sampled_from(MODELS), max_size=2))
    return "package anything\nimport rego.v1\n\n" + "\n".join(rules) + "\n", {"blocked_models": blocked}


@settings(max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(policy=workspace_policies(), doc=policy_inputs(damaged=False))
def test_workspace_policies_deny_alike_in_regorus_and_opa(client, loop, policy, doc):
    """On the inputs a sidecar makes (whole: workspace policies never see another). On damaged
    ones the engines differ where a builtin meets the wrong type: regorus fails the evaluation
    (the call is denied policy.error), OPA may leave the expression undefined even with strict
    builtin errors (``startswith(null, "x")``); docs/policy.md says so."""
    rego, data = policy
    pid = "pol_gen"
    try:
        source = wp.compile_policy(pid, wp.parse_document(_yaml(rego, data)))
    except wp.PolicyDocumentError:
        return  # refused at upload, so never evaluated: relaygate may be stricter than OPA, never laxer
    policy_data = {"relaygate": {"policy_data": {pid: data}}}
    engine = build_engine({"gen.rego": source}, policy_data)
    engine.set_input_json(json.dumps(doc))
    try:
        got = engine.eval_rule(f"data.{wp.CUSTOM_PACKAGE}.{pid}.deny")
    except BaseException as e:  # regorus raises RuntimeError or a PanicException (a BaseException)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        got = ERROR

    async def load():
        await client.update_policy_from_string(source, "generated_workspace_policy", rego_compat=False)
        await client.update_or_create_data(data, "relaygate/policy_data/" + pid)

    try:
        loop.run_until_complete(load())
    except RegoParseError as e:  # a construct OPA refuses must be refused at upload too
        pytest.fail(f"OPA refuses a policy relaygate accepts: {e}\n{rego}")
    expected = _opa(client, loop, doc, f"{wp.CUSTOM_PACKAGE}.{pid}", "deny")
    assert _as_set(got) == _as_set(expected), rego + "\n" + json.dumps(doc)


def _as_set(v):
    """A deny set as both engines give it (an array in JSON), order aside."""
    return sorted(v, key=json.dumps) if isinstance(v, (list, set)) else v


def _yaml(rego: str, data: dict) -> str:
    indented = "\n".join("  " + line for line in rego.splitlines())
    return f"name: generated\nrego: |\n{indented}\ndata: {json.dumps(data)}\n"
