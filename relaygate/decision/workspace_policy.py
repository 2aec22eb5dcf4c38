"""Workspace policies: YAML documents carrying Rego, compiled into the gateway's policy set.

A platform team writes a policy as YAML::

    name: no-gpt-4o
    description: gpt-4o is not approved here
    effect: {status: 403, code: policy.blocked}    # optional; these are the defaults
    rego: |
      package anything          # replaced by relaygate.custom.<policy id>, same line
      import rego.v1
      deny contains "gpt-4o is not approved" if input.model == "gpt-4o"
    data: {}                    # optional; visible to the Rego as policy_data

Every reason in ``deny`` blocks the call with the effect's status and code.
The control plane parses and checks a document here (errors carry line and
column within the YAML body), and the bundle builder turns the active
versions into modules plus one generated package,
``relaygate.workspace_policies``, that ``gateway.rego`` consults.

Isolation: a workspace policy never runs in the gateway's engine. Each one is
evaluated alone, with only its own ``policy_data``, in a worker process under
a deadline (relaygate/decision/policy_sandbox.py); the sidecar puts the outcome for the
calling workspace into the platform decision's input
(``input.workspace_policies``), which the generated package reads. The Rego
may not reference ``data`` at all (:func:`compile_policy` refuses it with a
line and column), so it reads its data only through ``policy_data``, nor call
``http.send`` or ``opa.runtime``. On an OPA agent, which holds every workspace's
policy data in one tree and runs those built-ins for real, that check is the isolation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from relaygate.decision.policy_engine import PolicyError, build_engine
from relaygate.contract.safeyaml import MAX_DATA_BYTES, MAX_SOURCE_BYTES, compose_and_load

if TYPE_CHECKING:  # imported where used at run time: policy_sandbox imports this module
    from relaygate.decision.policy_sandbox import PolicySandbox, WorkspacePolicies

CUSTOM_PACKAGE = "relaygate.custom"
CUSTOM_MODULE_DIR = "relaygate/custom/"
AGGREGATOR_PATH = "relaygate/workspace_policies.rego"
_CODE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
_PACKAGE_LINE = re.compile(r"^\s*package\s+\S+.*$")
_REGO_ERROR = re.compile(r"--> [^:\n]+:(\d+):(\d+).*?\nerror: ([^\n]+)", re.S)


class PolicyDocumentError(ValueError):
    """A policy document is invalid; ``line``/``column`` are 1-based within the YAML body."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None, source: str = "yaml") -> None:
        super().__init__(message)
        self.message, self.line, self.column, self.source = message, line, column, source

    def details(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "column": self.column}


@dataclass(frozen=True)
class PolicyDocument:
    name: str
    description: str
    status: int
    code: str
    rego: str
    data: dict[str, Any] = field(default_factory=dict)
    rego_line: int = 1  # line of the YAML body where the Rego text starts
    rego_indent: int = 0  # columns the Rego text is indented by in the YAML body
    # The author's test cases (``relaygate policy test``): never evaluated by the control plane.
    tests: tuple[dict[str, Any], ...] = ()
    tests_line: int = 1


@dataclass(frozen=True)
class ActivePolicy:
    """One workspace policy version as it goes into a bundle."""

    workspace: str
    policy_id: str
    version: int
    doc: PolicyDocument

    @property
    def ref(self) -> str:
        return f"{self.policy_id}@{self.version}"

    @property
    def package(self) -> str:
        return f"{CUSTOM_PACKAGE}.{self.policy_id}"

    @property
    def module_path(self) -> str:
        return f"{CUSTOM_MODULE_DIR}{self.policy_id}.rego"


def parse_document(text: str) -> PolicyDocument:
    """Parse and check the shape of a policy document (Rego is compiled by :func:`check_rego`)."""
    if len(text.encode()) > MAX_SOURCE_BYTES:
        raise PolicyDocumentError(
            f"the policy document is {len(text.encode())} bytes; the limit is {MAX_SOURCE_BYTES} bytes (256 KiB)", 1, 1
        )
    try:
        # Bounded: no alias bombs, recursive aliases or deep nesting (relaygate/contract/safeyaml.py).
        node, doc = compose_and_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise PolicyDocumentError(
            f"invalid YAML: {e.problem or e}", mark.line + 1 if mark else None, mark.column + 1 if mark else None
        ) from None
    except yaml.YAMLError as e:
        raise PolicyDocumentError(f"invalid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise PolicyDocumentError("a policy document must be a YAML mapping", 1, 1)

    def where(key: str) -> tuple[int, int]:
        if node is not None and hasattr(node, "value") and isinstance(node.value, list):
            for k, v in node.value:
                if getattr(k, "value", None) == key:
                    return v.start_mark.line + 1, v.start_mark.column + 1
        return 1, 1

    allowed = {"name", "description", "effect", "rego", "data", "tests"}
    unknown = sorted(set(map(str, doc)) - allowed)
    if unknown:
        raise PolicyDocumentError(
            f"unknown field '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})", *where(unknown[0])
        )
    name = doc.get("name")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
        raise PolicyDocumentError("'name' must be a string of 1-100 characters", *where("name"))
    description = doc.get("description", "") or ""
    if not isinstance(description, str) or len(description) > 2000:
        raise PolicyDocumentError("'description' must be a string of at most 2000 characters", *where("description"))
    effect = doc.get("effect") or {}
    if not isinstance(effect, dict) or set(effect) - {"status", "code"}:
        raise PolicyDocumentError("'effect' may only set 'status' and 'code'", *where("effect"))
    status = effect.get("status", 403)
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 499:
        raise PolicyDocumentError("'effect.status' must be an HTTP status from 400 to 499", *where("effect"))
    code = effect.get("code", "policy.blocked")
    if not isinstance(code, str) or not _CODE.match(code) or len(code) > 64:
        raise PolicyDocumentError("'effect.code' must look like policy.blocked", *where("effect"))
    rego = doc.get("rego")
    if not isinstance(rego, str) or not rego.strip():
        raise PolicyDocumentError("'rego' must hold the policy's Rego source", *where("rego"))
    data = doc.get("data") or {}
    if not isinstance(data, dict):
        raise PolicyDocumentError("'data' must be a mapping", *where("data"))
    try:
        encoded = json.dumps(data)
    except (TypeError, ValueError):
        raise PolicyDocumentError("'data' must hold JSON values only", *where("data")) from None
    if len(encoded) > MAX_DATA_BYTES:
        raise PolicyDocumentError(
            f"'data' is {len(encoded)} bytes as JSON; the limit is {MAX_DATA_BYTES} bytes", *where("data")
        )
    tests = doc.get("tests") or []
    if not isinstance(tests, list) or not all(
        isinstance(t, dict) and isinstance(t.get("input", {}), dict) and set(t) <= {"name", "input", "deny", "allow"}
        for t in tests
    ):
        raise PolicyDocumentError(
            "'tests' must be a list of {name, input, and deny: [reasons] or allow: true}", *where("tests")
        )
    line, _ = where("rego")
    # A block scalar (| or >) starts on the line after its indicator.
    first = text.splitlines()[line - 1] if line and line <= len(text.splitlines()) else ""
    block = re.search(r"rego:\s*[|>][-+0-9]*\s*(#.*)?$", first) is not None
    rego_line = line + 1 if block else line
    indent = 0
    if block:
        for body_line in text.splitlines()[rego_line - 1 :]:
            if body_line.strip():
                indent = len(body_line) - len(body_line.lstrip(" "))
                break
    return PolicyDocument(
        name.strip(), description, status, code, rego, data, rego_line, indent, tuple(tests), where("tests")[0]
    )


ADDED_MARKER = "# Added by relaygate: this policy's own data document."


def module_source(policy_id: str, doc: PolicyDocument) -> str:
    """The Rego with its package line replaced in place and ``policy_data`` appended.

    Both edits leave the lines the author wrote where they were, so compiler
    errors still point at the right line of the YAML body.
    """
    return "\n".join(
        _author_lines(policy_id, doc)
        + [
            "",
            ADDED_MARKER,
            "# The sidecar's sandbox loads it at data.relaygate.policy_data; an OPA agent",
            "# finds it in the bundle, at data.workspace_policies.",
            "policy_data := array.concat(array.concat(",
            f'\t[relaygate_doc | relaygate_doc := data.relaygate.policy_data["{policy_id}"]],',
            f'\t[relaygate_doc | relaygate_doc := data.workspace_policies["{policy_id}"].data],',
            "), [{}])[0]",
            "",
        ]
    )


def _author_lines(policy_id: str, doc: PolicyDocument) -> list[str]:
    """The lines the author wrote, with the package line replaced in place (nothing appended)."""
    lines = doc.rego.split("\n")
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if _PACKAGE_LINE.match(line):
            lines[i] = f"package {CUSTOM_PACKAGE}.{policy_id}"
            return lines
        break
    raise PolicyDocumentError(
        f"the Rego must start with a 'package' line (it is replaced by package {CUSTOM_PACKAGE}.{policy_id})",
        doc.rego_line,
        1,
        "rego",
    )


_ALLOWED_IMPORTS = ("rego.v1", "future.keywords")
# Built-ins that reach outside the policy: on an OPA agent http.send makes requests from the agent's
# network (and can carry the input away) and opa.runtime() hands over the agent's environment and
# configuration; regorus answers http.send with undefined, so the two would also decide differently.
_REFUSED_BUILTINS = ("http.send", "opa.runtime")


def _ref_text(node: Any) -> str | None:
    """``a.b.c`` for a Var/RefDot chain in regorus' AST, else None."""
    parts: list[str] = []
    while isinstance(node, dict):
        if "Var" in node:
            parts.append(node["Var"]["value"])
            return ".".join(reversed(parts))
        if "RefDot" in node:
            parts.append(node["RefDot"]["field"][1])
            node = node["RefDot"]["refr"]
            continue
        return None
    return None


def _refused_calls(node: Any, found: list[tuple[str, dict[str, Any]]]) -> None:
    """Collect every call of a built-in in :data:`_REFUSED_BUILTINS`, with its span."""
    if isinstance(node, dict):
        call = node.get("Call")
        if isinstance(call, dict):
            name = _ref_text(call.get("fcn"))
            if name in _REFUSED_BUILTINS:
                found.append((name, call.get("span") or {}))
        for v in node.values():
            _refused_calls(v, found)
    elif isinstance(node, list):
        for v in node:
            _refused_calls(v, found)


def _calls(node: Any, found: list[tuple[tuple[str, ...], int, dict[str, Any]]]) -> None:
    """Every function call: its dotted name, its number of arguments, its span."""
    if isinstance(node, dict):
        call = node.get("Call")
        if isinstance(call, dict):
            name = _ref_text(call.get("fcn"))
            if name:
                found.append((tuple(name.split(".")), len(call.get("params") or []), call.get("span") or {}))
        for v in node.values():
            _calls(v, found)
    elif isinstance(node, list):
        for v in node:
            _calls(v, found)


def _data_refs(node: Any, found: list[dict[str, Any]]) -> None:
    """Collect the span of every ``data`` variable (data, data.x, data[x], walk(data), imports...)."""
    if isinstance(node, dict):
        var = node.get("Var")
        if isinstance(var, dict) and var.get("value") == "data":
            found.append(var.get("span") or {})
        for v in node.values():
            _data_refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _data_refs(v, found)


def _declared(node: Any, source: str, out: list[tuple[str, dict[str, Any]]]) -> None:
    """Every variable a query declares (``some``, ``:=``, ``every``), nested queries included."""

    def var_nodes(n: Any) -> None:
        if isinstance(n, dict):
            var = n.get("Var")
            if isinstance(var, dict) and var.get("value") not in (None, "_"):
                out.append((var["value"], var.get("span") or {}))
                return
            for v in n.values():
                var_nodes(v)
        elif isinstance(n, list):
            for v in n:
                var_nodes(v)

    def span_name(span: Any) -> None:
        if isinstance(span, dict) and "start" in span and "end" in span:
            name = source.encode()[span["start"] : span["end"]].decode(errors="replace")
            if name != "_":
                out.append((name, span))

    if isinstance(node, dict):
        assign = node.get("AssignExpr")
        if isinstance(assign, dict) and assign.get("op") == "ColEq":
            var_nodes(assign.get("lhs"))
        some_in = node.get("SomeIn")
        if isinstance(some_in, dict):
            var_nodes(some_in.get("key"))
            var_nodes(some_in.get("value"))
        some_vars = node.get("SomeVars")
        if isinstance(some_vars, dict):
            for span in some_vars.get("vars") or []:
                span_name(span)
        every = node.get("Every")
        if isinstance(every, dict):
            span_name(every.get("key"))
            span_name(every.get("value"))
        for v in node.values():
            _declared(v, source, out)
    elif isinstance(node, list):
        for v in node:
            _declared(v, source, out)


def _check_declarations(doc: PolicyDocument, source: str, rules: list[Any]) -> None:
    """Refuse a variable declared twice in one rule body, nested comprehensions and ``every``
    included. OPA refuses ``some c ...; some c ...`` and ``x := 1; x := 2`` at compile time; regorus
    compiles both and fails each evaluation (so every call would be denied ``policy.error``), and
    it also fails on a comprehension that declares a name its rule already has, which OPA
    accepts (tests/system/test_opa_conformance.py). One name, one declaration, per body."""
    for rule in rules:
        spec = rule.get("Spec") if isinstance(rule, dict) else None
        for body in (spec or {}).get("bodies") or []:
            seen: set[str] = set()
            found: list[tuple[str, dict[str, Any]]] = []
            _declared(body.get("query"), source, found)
            for name, span in found:
                if name in seen:
                    raise _at(
                        doc,
                        span,
                        f"variable {name!r} is declared twice in one rule body (some, :=, every or a "
                        "comprehension): give each declaration its own name",
                    )
                seen.add(name)


def _head_path(refr: Any) -> tuple[tuple[str, ...], bool, dict[str, Any]]:
    """A rule head's path as far as it is static (``a.b["c"]``), whether it goes on past that
    (``a.b[x]``), and the span of its first name."""
    parts: list[str] = []
    dynamic = False
    while isinstance(refr, dict):
        if "Var" in refr:
            parts.append(str(refr["Var"].get("value")))
            return tuple(reversed(parts)), dynamic, refr["Var"].get("span") or {}
        if "RefDot" in refr:
            parts.append(str(refr["RefDot"]["field"][1]))
            refr = refr["RefDot"]["refr"]
        elif "RefBrack" in refr:
            index = refr["RefBrack"].get("index") or {}
            if isinstance(index.get("String"), dict) and not dynamic:
                parts.append(str(index["String"].get("value")))
            else:  # everything after a variable key is dynamic
                parts, dynamic = [], True
            refr = refr["RefBrack"]["refr"]
        else:
            break
    return (), dynamic, {}


def _check_rule_heads(doc: PolicyDocument, rules: list[Any]) -> None:
    """Refuse rule definitions OPA refuses and regorus accepts ("conflicting rules"): a name
    defined as more than one kind (set, value, function, or functions of different arity), a rule
    nested under another fully static rule (``a.b := 1`` with ``a.b.c := 2``), two defaults for one
    rule, and ``policy_data``, relaygate's own rule. An OPA agent refuses a bundle holding such a module whole, so one
    workspace's policy would stop every policy change from reaching every OPA agent."""
    heads: list[tuple[tuple[str, ...], bool, str, dict[str, Any]]] = []
    defaults: set[tuple[str, ...]] = set()
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        if isinstance(rule.get("Default"), dict):
            d = rule["Default"]
            path, dynamic, span = _head_path(d.get("refr"))
            kind = f"function of {len(d.get('args') or [])} argument(s)" if d.get("args") else "value"
            if path in defaults:
                raise _at(doc, span, f"rule {'.'.join(path)!r} has two default values: OPA refuses that")
            defaults.add(path)
        elif isinstance(rule.get("Spec"), dict):
            head = rule["Spec"].get("head") or {}
            if not isinstance(head, dict) or len(head) != 1:
                continue
            ((form, h),) = head.items()
            path, dynamic, span = _head_path(h.get("refr"))
            kind = {"Set": "set", "Compr": "value"}.get(form) or f"function of {len(h.get('args') or [])} argument(s)"
        else:
            continue
        if not path:
            continue
        if path[0] == "policy_data":
            raise _at(doc, span, "'policy_data' is defined by relaygate (this policy's own data): do not define it")
        heads.append((path, dynamic, kind, span))
    # A call whose name is, or is inside, one of this policy's rules: OPA calls the rule (a type
    # error unless it is a function of that arity), regorus the built-in of that name.
    calls: list[tuple[tuple[str, ...], int, dict[str, Any]]] = []
    _calls(rules, calls)
    for called, arity, span in calls:
        mine = {kind for path, _, kind, _ in heads if called[: len(path)] == path}
        if mine and mine != {f"function of {arity} argument(s)"}:
            raise _at(
                doc,
                span,
                f"{'.'.join(called)}(...) with {arity} argument(s) names this policy's own rule "
                f"({', '.join(sorted(mine))}): OPA refuses that; rename the rule",
            )
    for i, (path, dynamic, kind, span) in enumerate(heads):
        for other, other_dynamic, other_kind, _ in heads[:i]:
            name, other_name = ".".join(path), ".".join(other)
            if path == other and kind != other_kind:
                raise _at(doc, span, f"rule {name!r} is defined as a {other_kind} and as a {kind}: OPA refuses that")
            short, short_dynamic, long = (
                (other, other_dynamic, path) if len(other) < len(path) else (path, dynamic, other)
            )
            if len(short) < len(long) and long[: len(short)] == short and not short_dynamic:
                raise _at(
                    doc, span, f"rules {other_name!r} and {name!r} overlap (one is inside the other): OPA refuses that"
                )


def _check_references(policy_id: str, doc: PolicyDocument, source: str) -> None:
    """Refuse any reference to ``data`` and any import but rego.v1 / future.keywords.

    A workspace policy's engine holds nothing but its own module and data, so
    this is not what isolates workspaces; it makes an attempt fail loudly at
    compile time, with its line, instead of silently reading nothing.
    """
    try:
        engine = build_engine({f"{policy_id}.rego": source}, {})
        ast = json.loads(engine.get_ast_as_json())
    except PolicyError as e:
        raise _rego_error(doc, str(e)) from None
    for module in ast:
        tree = module.get("ast") or {}
        for imp in tree.get("imports") or []:
            name = _ref_text(imp.get("refr"))
            if name is None or not (
                name in _ALLOWED_IMPORTS
                or name.startswith("future.keywords.")
                or name == "input"
                or name.startswith("input.")
            ):
                span = imp.get("span") or {}
                raise _at(
                    doc,
                    span,
                    f"import {name or '...'} is not allowed: a workspace policy sees only "
                    "'input' and its own 'policy_data'",
                )
        _check_declarations(doc, source, tree.get("rules") or [])
        _check_rule_heads(doc, tree.get("rules") or [])
        calls: list[tuple[str, dict[str, Any]]] = []
        _refused_calls(tree.get("rules") or [], calls)
        if calls:
            raise _at(
                doc,
                calls[0][1],
                f"{calls[0][0]} is not allowed: a workspace policy decides from 'input' and its own "
                "'policy_data' alone",
            )
        found: list[dict[str, Any]] = []
        _data_refs(tree.get("rules") or [], found)
        if found:
            raise _at(
                doc,
                found[0],
                "a workspace policy may not reference 'data': it sees only 'input' and its own data as 'policy_data'",
            )


def _at(doc: PolicyDocument, span: dict[str, Any], msg: str) -> PolicyDocumentError:
    line, col = span.get("line"), span.get("col")
    if line is None:
        return PolicyDocumentError(msg, doc.rego_line, None, "rego")
    yaml_line, yaml_col = doc.rego_line + line - 1, (col or 1) + doc.rego_indent
    return PolicyDocumentError(f"{msg} (line {yaml_line}, column {yaml_col})", yaml_line, yaml_col, "rego")


def _rego_error(doc: PolicyDocument, err: str) -> PolicyDocumentError:
    m = _REGO_ERROR.search(err)
    if not m:
        return PolicyDocumentError(f"invalid Rego: {err.strip()}", doc.rego_line, None, "rego")
    line, col, msg = int(m[1]), int(m[2]), m[3]
    yaml_line, yaml_col = doc.rego_line + line - 1, col + doc.rego_indent
    return PolicyDocumentError(
        f"invalid Rego at line {yaml_line}, column {yaml_col}: {msg}", yaml_line, yaml_col, "rego"
    )


def compile_policy(policy_id: str, doc: PolicyDocument) -> str:
    """Parse the policy's module and check its references; return its final source or raise.

    Nothing is evaluated here: evaluation of author Rego happens only in the
    policy sandbox, under its deadline (see :func:`check_rego_sandboxed`).
    """
    source = module_source(policy_id, doc)
    _check_references(policy_id, doc, _author_source(policy_id, doc))
    return source


def _author_source(policy_id: str, doc: PolicyDocument) -> str:
    """The module as the author wrote it (package replaced, without relaygate's ``policy_data`` rule)."""
    # Built from the author's lines, not cut out of module_source's text at relaygate's comment:
    # an author who writes that comment line would otherwise hide everything after it from the checks.
    return "\n".join(_author_lines(policy_id, doc)) + "\n"


async def check_rego_sandboxed(policy_id: str, doc: PolicyDocument, sandbox: PolicySandbox) -> str:
    """:func:`compile_policy`, then evaluate ``deny`` with an empty input in the sandbox, under its limit."""
    from relaygate.decision.policy_sandbox import PolicyBusy, PolicyEvalError, PolicyTimeout

    source = compile_policy(policy_id, doc)
    try:
        is_set = await sandbox.check(policy_id, source, doc.data)
    except PolicyTimeout as e:
        raise PolicyDocumentError(f"the policy {e} with an empty input", doc.rego_line, None, "rego") from None
    except PolicyBusy as e:
        raise PolicyDocumentError(f"the policy could not be checked now: {e}", doc.rego_line, None, "rego") from None
    except PolicyEvalError as e:
        raise _rego_error(doc, str(e)) from None
    if not is_set and not re.search(r"^\s*deny\b", source, re.M):
        raise PolicyDocumentError("the policy defines no 'deny' rule", doc.rego_line, 1, "rego")
    if not is_set and re.search(r"^\s*deny\s*(:=|=)", source, re.M):
        raise PolicyDocumentError(
            "'deny' must be a set of reasons (deny contains reason if ...)", doc.rego_line, 1, "rego"
        )
    return source


def check_rego(policy_id: str, doc: PolicyDocument) -> str:
    """Compile check plus ``deny`` with an empty input, evaluated in this process.

    Only for trusted callers (tests, tools): the control plane uses
    :func:`check_rego_sandboxed`, because evaluating author Rego in-process has no time limit.
    """
    source = compile_policy(policy_id, doc)
    try:
        engine = build_engine({f"{policy_id}.rego": source}, {"relaygate": {"policy_data": {policy_id: doc.data}}})
        value = engine.eval_query(f"is_set(data.{CUSTOM_PACKAGE}.{policy_id}.deny)")
    except PolicyError as e:
        raise _rego_error(doc, str(e)) from None
    result = value.get("result") or []
    if result and result[0]["expressions"][0]["value"] is not True:
        raise PolicyDocumentError(
            "'deny' must be a set of reasons (deny contains reason if ...)", doc.rego_line, 1, "rego"
        )
    if not result and not re.search(r"^\s*deny\b", source, re.M):
        raise PolicyDocumentError("the policy defines no 'deny' rule", doc.rego_line, 1, "rego")
    return source


WORKSPACE_POLICY_DATA = "workspace_policies"  # bundle data key (top level) holding the workspace policies


def aggregator(policies: list[ActivePolicy] | None = None) -> str:
    """The generated package gateway.rego consults: the sandbox's outcome for the calling workspace.

    The sidecar evaluates the calling workspace's policies in the sandbox and
    passes ``{"denials": [...], "cited": [...]}`` as ``input.workspace_policies``
    (relaygate/decision/admission.py); no workspace Rego runs in the gateway's engine.
    """
    return "\n".join(
        [
            "# Generated by relaygate; do not edit. Workspace policies run in the policy sandbox",
            "# (relaygate/decision/policy_sandbox.py), one engine per policy; this package reads their outcome.",
            "package relaygate.workspace_policies",
            "",
            "import rego.v1",
            "",
            "denials := {d | some d in input.workspace_policies.denials}",
            "",
            "cited := input.workspace_policies.cited if is_array(input.workspace_policies.cited)",
            "",
        ]
    )


def policy_modules(policies: list[ActivePolicy]) -> tuple[dict[str, str], dict[str, Any]]:
    """Modules (path -> source) and data for the bundle, aggregator included.

    Each workspace policy's module goes under relaygate/custom/ and its data,
    with its workspace and effect, under the top-level data key
    ``workspace_policies``; the sidecar splits both off the gateway's engine
    (:func:`split_bundle`).
    """
    modules = {p.module_path: module_source(p.policy_id, p.doc) for p in policies}
    modules[AGGREGATOR_PATH] = aggregator()
    data = {
        p.policy_id: {
            "workspace": p.workspace,
            "ref": p.ref,
            "status": p.doc.status,
            "code": p.doc.code,
            "data": p.doc.data,
        }
        for p in policies
    }
    return modules, data


def split_bundle(
    modules: dict[str, str], data: dict[str, Any]
) -> tuple[dict[str, str], dict[str, Any], WorkspacePolicies]:
    """(platform modules, platform data, WorkspacePolicies) of a bundle's policy content."""
    from relaygate.decision.policy_sandbox import PolicyEntry, WorkspacePolicies

    platform = {path: src for path, src in modules.items() if not path.startswith(CUSTOM_MODULE_DIR)}
    pdata = {k: v for k, v in data.items() if k != WORKSPACE_POLICY_DATA}
    by_ws: dict[str, list[PolicyEntry]] = {}
    for pid, meta in (data.get(WORKSPACE_POLICY_DATA) or {}).items():
        source = modules.get(f"{CUSTOM_MODULE_DIR}{pid}.rego")
        if source is None:
            raise PolicyError(f"workspace policy {pid} has data but no module in the bundle")
        by_ws.setdefault(meta["workspace"], []).append(
            PolicyEntry(pid, meta["ref"], int(meta["status"]), meta["code"], source, meta.get("data") or {})
        )
    return platform, pdata, WorkspacePolicies(by_ws)
