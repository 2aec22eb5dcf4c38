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
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import yaml

from extproc.policy_engine import PolicyError, build_engine

CUSTOM_PACKAGE = "relaygate.custom"
CUSTOM_MODULE_DIR = "relaygate/custom/"
AGGREGATOR_PATH = "relaygate/workspace_policies.rego"
_CODE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
_PACKAGE_LINE = re.compile(r"^\s*package\s+\S+.*$")
_REGO_ERROR = re.compile(r"--> [^:\n]+:(\d+):(\d+).*?\nerror: ([^\n]+)", re.S)


class PolicyDocumentError(ValueError):
    """A policy document is invalid; ``line``/``column`` are 1-based within the YAML body."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None,
                 source: str = "yaml") -> None:
        super().__init__(message)
        self.message, self.line, self.column, self.source = message, line, column, source

    def details(self) -> dict:
        return {"source": self.source, "line": self.line, "column": self.column}


@dataclass(frozen=True)
class PolicyDocument:
    name: str
    description: str
    status: int
    code: str
    rego: str
    data: dict = field(default_factory=dict)
    rego_line: int = 1      # line of the YAML body where the Rego text starts
    rego_indent: int = 0    # columns the Rego text is indented by in the YAML body


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
    try:
        node = yaml.compose(text)
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise PolicyDocumentError(f"invalid YAML: {e.problem or e}",
                                  mark.line + 1 if mark else None, mark.column + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise PolicyDocumentError(f"invalid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise PolicyDocumentError("a policy document must be a YAML mapping", 1, 1)

    def where(key: str) -> tuple[int | None, int | None]:
        if node is not None and hasattr(node, "value") and isinstance(node.value, list):
            for k, v in node.value:
                if getattr(k, "value", None) == key:
                    return v.start_mark.line + 1, v.start_mark.column + 1
        return 1, 1

    allowed = {"name", "description", "effect", "rego", "data"}
    unknown = sorted(set(map(str, doc)) - allowed)
    if unknown:
        raise PolicyDocumentError(f"unknown field '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})",
                                  *where(unknown[0]))
    name = doc.get("name")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
        raise PolicyDocumentError("'name' must be a string of 1-100 characters", *where("name"))
    description = doc.get("description", "") or ""
    if not isinstance(description, str) or len(description) > 2000:
        raise PolicyDocumentError("'description' must be a string of at most 2000 characters",
                                  *where("description"))
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
        json.dumps(data)
    except (TypeError, ValueError):
        raise PolicyDocumentError("'data' must hold JSON values only", *where("data")) from None
    line, _ = where("rego")
    # A block scalar (| or >) starts on the line after its indicator.
    first = text.splitlines()[line - 1] if line and line <= len(text.splitlines()) else ""
    block = re.search(r"rego:\s*[|>][-+0-9]*\s*(#.*)?$", first) is not None
    rego_line = line + 1 if block else line
    indent = 0
    if block:
        for body_line in text.splitlines()[rego_line - 1:]:
            if body_line.strip():
                indent = len(body_line) - len(body_line.lstrip(" "))
                break
    return PolicyDocument(name.strip(), description, status, code, rego, data, rego_line, indent)


def module_source(policy_id: str, doc: PolicyDocument) -> str:
    """The Rego with its package line replaced in place and ``policy_data`` appended.

    Both edits leave the lines the author wrote where they were, so compiler
    errors still point at the right line of the YAML body.
    """
    lines = doc.rego.split("\n")
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if _PACKAGE_LINE.match(line):
            lines[i] = f"package {CUSTOM_PACKAGE}.{policy_id}"
            lines += ["", "# Added by relaygate: this policy's own data document.",
                      f'policy_data := object.get(data.relaygate.policy_data, "{policy_id}", {{}})', ""]
            return "\n".join(lines)
        break
    raise PolicyDocumentError("the Rego must start with a 'package' line (it is replaced by "
                              f"package {CUSTOM_PACKAGE}.{policy_id})", doc.rego_line, 1, "rego")


def _rego_error(doc: PolicyDocument, err: str) -> PolicyDocumentError:
    m = _REGO_ERROR.search(err)
    if not m:
        return PolicyDocumentError(f"invalid Rego: {err.strip()}", doc.rego_line, None, "rego")
    line, col, msg = int(m[1]), int(m[2]), m[3]
    yaml_line, yaml_col = doc.rego_line + line - 1, col + doc.rego_indent
    return PolicyDocumentError(f"invalid Rego at line {yaml_line}, column {yaml_col}: {msg}",
                               yaml_line, yaml_col, "rego")


def check_rego(policy_id: str, doc: PolicyDocument) -> str:
    """Compile the policy's module alone; return its final source or raise with line/column."""
    source = module_source(policy_id, doc)
    try:
        engine = build_engine({f"{policy_id}.rego": source},
                              {"relaygate": {"policy_data": {policy_id: doc.data}}})
        value = engine.eval_query(f"is_set(data.{CUSTOM_PACKAGE}.{policy_id}.deny)")
    except PolicyError as e:
        raise _rego_error(doc, str(e)) from None
    result = value.get("result") or []
    if result and result[0]["expressions"][0]["value"] is not True:
        raise PolicyDocumentError("'deny' must be a set of reasons (deny contains reason if ...)",
                                  doc.rego_line, 1, "rego")
    if not result and not re.search(r"^\s*deny\b", source, re.M):
        raise PolicyDocumentError("the policy defines no 'deny' rule", doc.rego_line, 1, "rego")
    return source


def aggregator(policies: list[ActivePolicy]) -> str:
    """The generated package that gathers every active workspace policy's denials."""
    active: dict[str, list[str]] = {}
    rules = []
    for p in sorted(policies, key=lambda p: (p.workspace, p.policy_id)):
        active.setdefault(p.workspace, []).append(p.ref)
        head = json.dumps({"policy": p.ref, "status": p.doc.status, "code": p.doc.code})[:-1]
        rules.append(
            f"denials contains {head}, \"reason\": r}} if {{\n"
            f"\tinput.workspace.id == {json.dumps(p.workspace)}\n"
            f"\tsome r in data.{p.package}.deny\n"
            f"\tis_string(r)\n}}\n")
    out = ["# Generated by relaygate from the active workspace policies; do not edit.",
           "package relaygate.workspace_policies", "", "import rego.v1", "",
           f"active := {json.dumps(active, sort_keys=True)}", "",
           "cited := object.get(active, input.workspace.id, [])", ""]
    out += rules if rules else ["denials := set()", ""]
    return "\n".join(out)


def policy_modules(policies: list[ActivePolicy]) -> tuple[dict[str, str], dict]:
    """Modules (path -> source) and data for the bundle, aggregator included."""
    modules = {p.module_path: module_source(p.policy_id, p.doc) for p in policies}
    modules[AGGREGATOR_PATH] = aggregator(policies)
    data = {p.policy_id: p.doc.data for p in policies if p.doc.data}
    return modules, data
