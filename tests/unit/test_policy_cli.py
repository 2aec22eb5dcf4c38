"""``relaygate policy check`` and ``relaygate policy test``, offline: platform Rego directories and
workspace policy documents with their own test cases, errors as FILE:LINE:COLUMN, exit status
1 on any failure. (push and diff, against a control plane: tests/system/test_policy_workflow.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from relaygate.cli.main import main
from relaygate.decision import workspace_policy as wp

ROOT = Path(__file__).resolve().parents[2]

DOC = """name: no-gpt-4o
effect: {status: 403, code: policy.blocked}
rego: |
  package anything
  import rego.v1
  deny contains sprintf("%s is not approved", [input.model]) if input.model in policy_data.blocked
data:
  blocked: [gpt-4o]
tests:
  - name: gpt-4o is blocked
    input: {model: gpt-4o}
    deny: ["gpt-4o is not approved"]
  - name: the mini is fine
    input: {model: gpt-4o-mini}
    allow: true
"""


def _run(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(["policy", *args])
    return e.value.code, capsys.readouterr().out


def test_the_platform_policies_check_and_test_clean(capsys):
    code, out = _run(capsys, "check", str(ROOT / "policies"))
    assert code == 0 and out.strip().startswith("ok"), out
    code, out = _run(capsys, "test", str(ROOT / "policies"))
    assert code == 0 and "PASS" in out and "FAIL" not in out and " 0 failed" in out, out


def test_a_document_with_its_tests(tmp_path, capsys):
    f = tmp_path / "no-gpt-4o.yaml"
    f.write_text(DOC)
    code, out = _run(capsys, "test", str(f))
    assert code == 0 and out.count("PASS") == 2, out
    f.write_text(DOC.replace('deny: ["gpt-4o is not approved"]', 'deny: ["something else"]'))
    code, out = _run(capsys, "test", str(f))
    assert code == 1 and "FAIL" in out and 'deny gave ["gpt-4o is not approved"], expected ["something else"]' in out


def test_errors_name_the_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DOC.replace("if input.model in policy_data.blocked", "if input.model in in"))
    code, out = _run(capsys, "check", str(bad))
    assert code == 1 and out.startswith(f"{bad}:6:"), out  # the Rego's line 3 is the YAML's line 6
    twice = tmp_path / "twice.yaml"
    twice.write_text(DOC.replace("if input.model in policy_data.blocked", "if { some m in [1]; some m in [2] }"))
    code, out = _run(capsys, "check", str(twice))
    assert code == 1 and "declared twice" in out and out.startswith(f"{twice}:6:"), out
    platform = tmp_path / "platform"
    shutil.copytree(ROOT / "policies", platform)
    (platform / "relaygate" / "broken.rego").write_text("package relaygate.broken\n\nx := [1,\n")
    code, out = _run(capsys, "check", str(platform))
    assert code == 1 and "broken.rego:" in out, out


def test_the_control_plane_keeps_tests_but_refuses_malformed_ones():
    doc = wp.parse_document(DOC)
    assert len(doc.tests) == 2 and doc.tests_line == 10
    with pytest.raises(wp.PolicyDocumentError, match="'tests' must be a list"):
        wp.parse_document(DOC.replace("  - name: the mini is fine", "  - expect: maybe"))


def test_push_and_diff_need_a_token_from_the_environment(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("RELAYGATE_TOKEN", raising=False)
    with pytest.raises(SystemExit) as e:
        main(["policy", "diff", "--policy", "pol_x"])
    assert e.value.code == 2 and "RELAYGATE_TOKEN" in capsys.readouterr().err


def test_strict_check_with_the_real_opa_names_the_document(tmp_path, capsys):
    """--opa: OPA's strict check over the platform Rego and each document's module; an unused
    variable, which regorus accepts, is named against the author's file."""
    from devstack.tools import opa_binary

    opa = opa_binary()
    f = tmp_path / "unused.yaml"
    f.write_text(
        DOC.replace("if input.model in policy_data.blocked", "if { x := 1; input.model in policy_data.blocked }")
    )
    code, out = _run(capsys, "check", str(f))
    assert code == 0, out  # regorus compiles it
    code, out = _run(capsys, "check", "--opa", opa, str(f), str(ROOT / "policies"))
    assert code == 1 and f"{f}:6: rego_compile_error: assigned var x unused" in out, out  # the YAML's line
    code, out = _run(capsys, "check", "--opa", opa, str(ROOT / "policies"))
    assert code == 0, out
