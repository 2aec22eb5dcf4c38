package relaygate.gateway_test

import rego.v1

import data.relaygate.gateway

base := {
	"version": 1,
	"endpoint": "chat.completions",
	"model": "gpt-4o-mini",
	"stream": false,
	"principal": {"key_id": "k1", "workspace": "acme", "endpoints": ["chat.completions"], "models": ["gpt-4o*"]},
	"workspace": {"id": "acme", "allowed_jurisdictions": ["eea"], "allowed_regions": []},
	"candidates": [
		{"name": "us", "provider": "openai", "region": "us-east-1", "jurisdiction": "us", "cost": {"tokens": 100, "usd_micros": 50}},
		{"name": "eu", "provider": "openai", "region": "eu-west-1", "jurisdiction": "eu", "cost": {"tokens": 100, "usd_micros": 60}},
	],
	"budgets": [{"id": "daily", "unit": "tokens", "window": "day", "limit": 1000, "used": 0}],
}

test_allows_and_routes_to_first_sovereign_upstream if {
	d := gateway.decision with input as base
	d.allow
	d.upstream == "eu"
	d.holds == [{"budget_id": "daily", "amount": 100}]
	"relaygate.budget@1.0.0" in d.policies
}

test_endpoint_out_of_scope_is_403 if {
	d := gateway.decision with input as object.union(base, {"endpoint": "embeddings"})
	not d.allow
	d.status == 403
	d.code == "scope.denied"
}

test_model_out_of_scope_is_403 if {
	d := gateway.decision with input as object.union(base, {"model": "o1"})
	d.status == 403
}

test_unknown_model_is_404 if {
	d := gateway.decision with input as object.union(base, {"candidates": []})
	d.status == 404
	d.code == "model.not_found"
}

test_no_sovereign_upstream_is_451 if {
	ws := {"id": "acme", "allowed_jurisdictions": ["ch"], "allowed_regions": []}
	d := gateway.decision with input as object.union(base, {"workspace": ws})
	d.status == 451
	d.code == "sovereignty.blocked"
	count(d.reasons) == 2
}

test_region_restriction if {
	ws := {"id": "acme", "allowed_jurisdictions": [], "allowed_regions": ["us-east-1"]}
	d := gateway.decision with input as object.union(base, {"workspace": ws})
	d.upstream == "us"
}

test_budget_overflow_is_429 if {
	b := [{"id": "daily", "unit": "tokens", "window": "day", "limit": 1000, "used": 950}]
	d := gateway.decision with input as object.union(base, {"budgets": b})
	d.status == 429
	d.code == "budget.exceeded"
	d.budget_ids == ["daily"]
}

test_budget_exactly_full_is_allowed if {
	b := [{"id": "usd", "unit": "usd", "window": "month", "limit": 60, "used": 0}]
	d := gateway.decision with input as object.union(base, {"budgets": b})
	d.allow
	d.holds == [{"budget_id": "usd", "amount": 60}]
}

test_workspace_policy_denial_is_403_and_cited if {
	wp := {"denials": {{"policy": "pol_a@2", "status": 403, "code": "policy.blocked", "reason": "no"}}, "cited": ["pol_a@2"]}
	d := gateway.decision with input as base with data.relaygate.workspace_policies as wp
	not d.allow
	d.status == 403
	d.code == "policy.blocked"
	d.reasons == ["no"]
	"pol_a@2" in d.policies
}

test_workspace_policies_cited_on_allow if {
	wp := {"denials": set(), "cited": ["pol_a@2"]}
	d := gateway.decision with input as base with data.relaygate.workspace_policies as wp
	d.allow
	"pol_a@2" in d.policies
}

test_missing_principal_is_a_policy_error_not_a_decision if {
	d := gateway.decision with input as object.remove(base, ["principal"])
	not d.allow
	d.status == 500
	d.code == "policy.error"
	d.reasons == ["principal must be {key_id, endpoints: [string], models: [string]}"]
}

test_fields_of_the_wrong_type_are_named if {
	bad := object.union(base, {"candidates": [{"name": "eu"}], "budgets": [{"id": "b", "unit": "eur", "limit": 1, "used": 0}]})
	d := gateway.decision with input as bad
	d.code == "policy.error"
	count(d.reasons) == 2
}

test_absent_workspace_policies_are_fine_but_malformed_ones_are_not if {
	gateway.decision.allow with input as base
	d := gateway.decision with input as object.union(base, {"workspace_policies": {"denials": "all"}})
	d.code == "policy.error"
}
