"""The policy author's workflow: ``relaygate policy check | test | push | diff`` (docs/policy.md).

``check`` and ``test`` are offline: they compile and evaluate with the gateway's own engine
(regorus) what a platform team has on disk, platform Rego directories (``policies/``) and
workspace policy documents (the YAML the control plane takes), with errors as ``FILE:LINE:COLUMN``.
A workspace document may carry its own test cases (``tests:``: an input and the reasons ``deny``
must give, or ``allow: true``), which the control plane stores and ignores. ``push`` sends a
document to the control plane, active or staged (a new version the gateways do not enforce until
it is activated or rolled out by a deployment). ``diff`` replays the workspace's recent calls
(their endpoint, model and key, from the audit feed) through the control plane's dry run of a
version and lists the decisions that would change.

Evaluating author Rego here has no deadline: these are the author's own files on the author's
machine. The control plane evaluates uploads only in its sandbox.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from relaygate.decision import workspace_policy as wp
from relaygate.decision.policy_engine import PolicyError, build_engine, load_policy_sources
from relaygate.decision.policy_tests import run as run_platform_tests

_WHERE = re.compile(r"(\S+?\.rego):(\d+):(\d+)")
TEST_POLICY_ID = "pol_local"  # the package a document is compiled under here (the server assigns the real id)


@dataclass
class Found:
    platform: list[Path] = field(default_factory=list)  # directories with Rego (and data.yaml)
    documents: list[Path] = field(default_factory=list)  # workspace policy documents


def _is_document(path: Path) -> bool:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return path.suffix in (".yaml", ".yml") and path.is_file()  # let check say what is wrong with it
    return isinstance(doc, dict) and "rego" in doc


def find(paths: list[str]) -> Found:
    """Platform directories (any that hold .rego files) and workspace documents (YAML files with a
    top-level ``rego``) under the given paths."""
    out = Found()
    for p in map(Path, paths):
        if p.is_dir():
            if any(p.rglob("*.rego")):
                out.platform.append(p)
            out.documents += [f for f in sorted(p.rglob("*.y*ml")) if _is_document(f)]
        elif p.is_file():
            out.documents.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return out


def _doc_error(path: Path, e: wp.PolicyDocumentError) -> str:
    where = f"{path}:{e.line}:{e.column}" if e.line and e.column else f"{path}:{e.line}" if e.line else str(path)
    return f"{where}: {e.message}"


def check_document(path: Path) -> tuple[wp.PolicyDocument | None, str, list[str]]:
    """(document, compiled source, errors) of one workspace policy document."""
    try:
        doc = wp.parse_document(path.read_text())
        return doc, wp.check_rego(TEST_POLICY_ID, doc), []
    except wp.PolicyDocumentError as e:
        return None, "", [_doc_error(path, e)]
    except (OSError, UnicodeDecodeError) as e:
        return None, "", [f"{path}: {e}"]


def check_platform(directory: Path) -> list[str]:
    try:
        modules, data = load_policy_sources(directory, include_tests=True)
        build_engine(modules, data)
    except PolicyError as e:
        msg = str(e)
        m = _WHERE.search(msg)
        if m:
            return [f"{directory / m[1]}:{m[2]}:{m[3]}: {msg.strip()}"]
        return [f"{directory}: {msg.strip()}"]
    return []


def check(paths: list[str], opa: str | None = None) -> list[str]:
    """Compile errors; with ``opa`` (the path of an OPA binary) also OPA's strict check (unused
    variables and imports, shadowing, deprecated builtins) of the platform Rego and of each
    document's module as a bundle carries it."""
    found = find(paths)
    errors = [e for d in found.platform for e in check_platform(d)]
    modules: dict[Path, tuple[str, int]] = {}
    for f in found.documents:
        doc, source, doc_errors = check_document(f)
        errors += doc_errors
        if doc is not None and source:
            modules[f] = (source, doc.rego_line)
    if opa and not errors:
        errors += _opa_strict(opa, found.platform, modules)
    return errors


def _opa_strict(opa: str, platform: list[Path], modules: dict[Path, tuple[str, int]]) -> list[str]:
    """OPA's strict check; a document's errors name its YAML file and line (its Rego's line
    ``n`` is the YAML's ``rego_line + n - 1``: compile_policy keeps the author's lines in place)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="relaygate-policy-") as tmp:
        names: dict[str, tuple[Path, int]] = {}
        for i, (f, (source, first)) in enumerate(modules.items()):
            name = Path(tmp) / f"document_{i}.rego"
            name.write_text(source)
            names[str(name)] = (f, first)
        try:
            out = subprocess.run(
                [opa, "check", "--strict", *map(str, platform), *names], capture_output=True, text=True, timeout=120
            )
        except (OSError, subprocess.SubprocessError) as e:
            return [f"opa check --strict: {e}"]
        if out.returncode == 0:
            return []
        text = out.stdout + out.stderr
        for tmp_name, (f, first) in names.items():  # the author's document and line, not the temporary file
            text = re.sub(
                re.escape(tmp_name) + r":(\d+)", lambda m, f=f, first=first: f"{f}:{first + int(m[1]) - 1}", text
            )
            text = text.replace(tmp_name, str(f))
        lines = [re.sub(r"^\d+ errors? occurred(?: during loading)?:\s*", "", line) for line in text.splitlines()]
        return [line for line in lines if line.strip()]


def run_document_tests(path: Path) -> list[tuple[str, bool, str]]:
    """(name, passed, what went wrong) of each test case of a workspace document."""
    doc, source, errors = check_document(path)
    if doc is None:
        return [(f"{path}", False, errors[0])]
    out = []
    for i, case in enumerate(doc.tests):
        name = f"{path}::{case.get('name') or f'test {i + 1}'}"
        engine = build_engine(
            {f"{TEST_POLICY_ID}.rego": source}, {"relaygate": {"policy_data": {TEST_POLICY_ID: doc.data}}}
        )
        try:
            engine.set_input_json(json.dumps(case.get("input") or {}))
            got = sorted(engine.eval_rule(f"data.{wp.CUSTOM_PACKAGE}.{TEST_POLICY_ID}.deny") or [], key=json.dumps)
        except BaseException as e:  # regorus raises RuntimeError or a PanicException
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            out.append((name, False, f"evaluation failed: {str(e).split('Stack backtrace:')[0].strip()}"))
            continue
        want = [] if case.get("allow") else sorted(case.get("deny") or [], key=json.dumps)
        if "deny" not in case and not case.get("allow"):
            out.append((name, False, "a test names what deny must give (deny: [reasons]) or allow: true"))
        elif got != want:
            out.append((name, False, f"deny gave {json.dumps(got)}, expected {json.dumps(want)}"))
        else:
            out.append((name, True, ""))
    return out


def test(paths: list[str]) -> list[tuple[str, bool, str]]:
    found = find(paths)
    results: list[tuple[str, bool, str]] = []
    for d in found.platform:
        try:
            results += [(f"{d}::{name}", ok, "" if ok else "false") for name, ok in run_platform_tests(d).items()]
        except PolicyError as e:
            results.append((str(d), False, str(e)))
    for f in found.documents:
        results += run_document_tests(f)
    return results


# -- with a control plane ----------------------------------------------------------------------


class ControlPlaneError(RuntimeError):
    pass


class Client:
    """The few control-plane calls the workflow makes (stdlib HTTP: nothing to install)."""

    def __init__(self, url: str, token: str, ca: str | None = None) -> None:
        self.url, self.token = url.rstrip("/"), token
        self.ctx = ssl.create_default_context(cafile=ca) if url.startswith("https") else None

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ctx) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            try:
                err = json.load(e).get("error") or {}
            except ValueError:
                err = {}
            raise ControlPlaneError(
                f"{method} {path}: {e.code} {err.get('code', '')}: {err.get('message', e.reason)}"
            ) from None
        except urllib.error.URLError as e:
            raise ControlPlaneError(f"{self.url}: {e.reason}") from None


def push(client: Client, path: Path, policy_id: str | None, staged: bool) -> dict:
    text = path.read_text()
    if policy_id:
        q = urllib.parse.urlencode({"activate": "false" if staged else "true"})
        return client.call("PUT", f"/v1/policies/{urllib.parse.quote(policy_id)}?{q}", text, "application/yaml")
    if staged:
        raise ControlPlaneError("a new policy is active from its first version: push it, then stage later versions")
    return client.call("POST", "/v1/policies", text, "application/yaml")


# A valid body per endpoint: the dry run checks it as the gateway would; policies see its model.
_BODIES = {
    "chat.completions": lambda m: {"model": m, "messages": [{"role": "user", "content": "replay"}]},
    "completions": lambda m: {"model": m, "prompt": "replay"},
    "embeddings": lambda m: {"model": m, "input": "replay"},
    "messages": lambda m: {"model": m, "max_tokens": 16, "messages": [{"role": "user", "content": "replay"}]},
}


def diff(client: Client, policy_id: str, version: int | None, last: int) -> list[dict]:
    """The workspace's last ``last`` calls, each decided by the dry run of the policy's ``version``
    (default: its newest), next to what the receipt recorded; only the ones that differ."""
    pid = urllib.parse.quote(policy_id)
    if version is None:  # the newest, staged or not
        version = max(v["version"] for v in client.call("GET", f"/v1/policies/{pid}/versions")["versions"])
    page = client.call("GET", f"/v1/audit/events?kind=gateway.call&limit={min(max(last, 1), 200)}")
    changed = []
    for ev in page.get("events", []):
        if ev.get("endpoint") not in _BODIES or not ev.get("model"):
            continue
        body: dict[str, Any] = {"request": {"endpoint": ev["endpoint"], "body": _BODIES[ev["endpoint"]](ev["model"])}}
        if ev.get("key_id"):
            body["request"]["key_id"] = ev["key_id"]
        body["version"] = version
        try:
            d = client.call("POST", f"/v1/policies/{pid}/dryrun", body)["decision"]
        except ControlPlaneError as e:
            changed.append({"event": ev["id"], "model": ev["model"], "was": ev.get("code"), "now": f"error: {e}"})
            continue
        was = ("allow" if ev.get("decision") == "allow" else "deny", ev.get("code"))
        now = ("allow" if d.get("allow") else "deny", d.get("code"))
        if was != now:
            changed.append(
                {
                    "event": ev["id"],
                    "endpoint": ev["endpoint"],
                    "model": ev["model"],
                    "was": "/".join(map(str, was)),
                    "now": "/".join(map(str, now)),
                }
            )
    return changed


def main(a) -> int:
    """``relaygate policy ...`` (argparse namespace from relaygate/evidence/cli.py)."""
    if a.policy_cmd == "check":
        opa = a.opa or (shutil.which("opa") if a.strict else None)
        if a.strict and not opa:
            print("relaygate policy check --strict: no opa on PATH (give --opa PATH)", file=sys.stderr)
            return 2
        errors = check(a.paths, opa)
        for e in errors:
            print(e)
        print(f"{'ok' if not errors else f'{len(errors)} error(s)'}: {', '.join(a.paths)}")
        return 1 if errors else 0
    if a.policy_cmd == "test":
        results = test(a.paths)
        for name, ok, why in results:
            print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {why}" if why else ""))
        failed = sum(not ok for _, ok, _ in results)
        print(f"{len(results) - failed} passed, {failed} failed")
        return 1 if failed or not results else 0
    client = Client(a.control_plane, a.token, a.ca)
    try:
        if a.policy_cmd == "push":
            if not a.no_test:
                errors = check([a.file])
                failed = [r for r in test([a.file]) if not r[1]]
                if errors or failed:
                    for line in errors + [f"FAIL {n}: {w}" for n, _, w in failed]:
                        print(line, file=sys.stderr)
                    print("not pushed: fix the above, or --no-test", file=sys.stderr)
                    return 1
            pol = push(client, Path(a.file), a.policy, a.staged)
            pid = urllib.parse.quote(pol["id"])
            newest = max(v["version"] for v in client.call("GET", f"/v1/policies/{pid}/versions")["versions"])
            state = "staged (not enforced)" if a.staged else "active"
            print(f"{pol['id']} version {newest} pushed, {state} (enforced: version {pol['current_version']})")
            return 0
        if a.policy_cmd == "diff":
            changed = diff(client, a.policy, a.version, a.last)
            for c in changed:
                print(f"{c['event']}  {c.get('endpoint', '')} {c['model']}: {c['was']} -> {c['now']}")
            print(f"{len(changed)} of the last {a.last} calls would be decided differently")
            return 0
    except (ControlPlaneError, OSError) as e:
        print(f"relaygate policy {a.policy_cmd}: {e}", file=sys.stderr)
        return 2
    raise AssertionError(a.policy_cmd)
