"""A workspace policy declaring one variable twice in a rule body is refused at upload, with its
line and column. OPA refuses such Rego at compile time; regorus compiles it and then fails every
evaluation (each call would be denied policy.error), and fails on a comprehension re-declaring a
name even where OPA accepts it. Found by tests/system/test_opa_conformance.py."""

from __future__ import annotations

import pytest

from relaygate.decision import workspace_policy as wp


def _doc(*rules: str) -> wp.PolicyDocument:
    body = "\n".join("  " + r for r in ("package anything", "import rego.v1", *rules))
    return wp.parse_document(f"name: t\nrego: |\n{body}\n")


@pytest.mark.parametrize(
    ("rule", "name", "column"),
    [
        ('deny contains "x" if { some c in input.a; c == 1; some c in input.b }', "c", 58),
        ('deny contains "x" if { y := 1; y := 2 }', "y", 34),
        ('deny contains "x" if { some c in input.a; count([c | some c in input.b]) > 0 }', "c", 61),
        ('deny contains "x" if { some c in input.a; every c in input.b { c > 0 } }', "c", 51),
        ('deny contains "x" if { some k, v in input.a; some v in input.b }', "v", 53),
    ],
)
def test_a_second_declaration_is_refused_where_it_is(rule, name, column):
    with pytest.raises(wp.PolicyDocumentError) as e:
        wp.compile_policy("pol_t", _doc(rule))
    assert f"variable '{name}' is declared twice" in str(e.value)
    assert (e.value.line, e.value.column) == (5, column)  # the YAML line of the rule, and the column


@pytest.mark.parametrize(
    "rules",
    [
        ['deny contains "x" if { some c in input.a; c > 1 }', 'deny contains "y" if { some c in input.a; c > 2 }'],
        ['deny contains "x" if { [a, b] := [1, 2]; a < b }'],
        ['deny contains "x" if { some _ in input.a; some _ in input.b }'],
        ['deny contains "x" if { some c in input.a; count([d | some d in input.b; d == c]) > 0 }'],
    ],
)
def test_one_declaration_per_name_and_body_is_fine(rules):
    assert "package relaygate.custom.pol_t" in wp.compile_policy("pol_t", _doc(*rules))
