# The gateway's one entry point: data.relaygate.gateway.decision.
# Checks run in order scope -> model -> workspace policies -> sovereignty ->
# budget; the first that fails decides. See docs/policy.md for the input
# document (version 1). Workspace policies (created through the control
# plane) are gathered by the generated package relaygate.workspace_policies.
package relaygate.gateway

import rego.v1

import data.relaygate.budget
import data.relaygate.scope
import data.relaygate.sovereignty
import data.relaygate.workspace_policies

policy := "relaygate.gateway@1.0.0"

decision := d if {
	count(input_errors) > 0
	d := deny(500, "policy.error", sort([e | some e in input_errors]), [])
} else := d if {
	count(scope.violations) > 0
	d := deny(403, "scope.denied", sort([v | some v in scope.violations]), [scope.policy])
} else := d if {
	count(input.candidates) == 0
	d := deny(404, "model.not_found", [sprintf("no upstream serves model %s on %s", [input.model, input.endpoint])], [scope.policy])
} else := d if {
	count(custom_denials) > 0
	ds := sort([x | some x in custom_denials])
	d := deny(ds[0].status, ds[0].code, [x.reason | some x in ds], array.concat([scope.policy], custom_cited))
} else := d if {
	not sovereignty.chosen
	d := deny(451, "sovereignty.blocked", sort([r | some r in sovereignty.reasons]), [scope.policy, sovereignty.policy])
} else := d if {
	count(budget.exceeded) > 0
	d := object.union(
		deny(429, "budget.exceeded", [sprintf("budget %s would be exceeded", [b]) | some b in budget.exceeded], [scope.policy, sovereignty.policy, budget.policy]),
		{"budget_ids": budget.exceeded},
	)
} else := {
	"allow": true,
	"status": 200,
	"code": "ok",
	"reasons": [],
	"policies": array.concat([policy, scope.policy, sovereignty.policy, budget.policy], custom_cited),
	"upstream": sovereignty.chosen.name,
	"holds": budget.holds,
}

# Denials of the workspace's own policies ({policy, status, code, reason}) and
# the id@version of every workspace policy that took part in the decision.
default custom_denials := set()

custom_denials := workspace_policies.denials

default custom_cited := []

custom_cited := workspace_policies.cited

deny(status, code, reasons, policies) := {
	"allow": false,
	"status": status,
	"code": code,
	"reasons": reasons,
	"policies": array.concat([policy], policies),
	"upstream": null,
	"holds": [],
}

# The input is version 1 (docs/policy.md), whole, before anything is decided. The sidecar always
# sends it so; this refuses what another caller (a dry run's hand-made input, a test, a query by
# hand) got wrong, instead of deciding on partial data. It also keeps every Rego engine on one
# path: regorus and OPA disagree on rules that read missing fields or fields of the wrong type
# (tests/system/test_opa_conformance.py), so those rules are never reached with such input.
input_errors contains "version must be 1" if not input.version == 1

input_errors contains "endpoint and model must be strings" if not strings_ok

input_errors contains "principal must be {key_id, endpoints: [string], models: [string]}" if not principal_ok

input_errors contains "workspace must be {id, allowed_jurisdictions: [string], allowed_regions: [string]}" if {
	not workspace_ok
}

input_errors contains "candidates must be [{name, region, jurisdiction, cost: {tokens, usd_micros}}]" if {
	not candidates_ok
}

input_errors contains "budgets must be [{id, unit: tokens or usd, limit, used}]" if not budgets_ok

input_errors contains "workspace_policies must be {denials: [{policy, status, code, reason}], cited: [string]}" if {
	not workspace_policies_ok
}

strings_ok if {
	is_string(input.endpoint)
	is_string(input.model)
}

principal_ok if {
	is_object(input.principal)
	is_string(input.principal.key_id)
	strings(input.principal.endpoints)
	strings(input.principal.models)
}

workspace_ok if {
	is_object(input.workspace)
	is_string(input.workspace.id)
	strings(input.workspace.allowed_jurisdictions)
	strings(input.workspace.allowed_regions)
}

candidates_ok if {
	is_array(input.candidates)
	every c in input.candidates {
		is_object(c)
		is_string(c.name)
		is_string(c.region)
		is_string(c.jurisdiction)
		is_object(c.cost)
		is_number(c.cost.tokens)
		is_number(c.cost.usd_micros)
	}
}

budgets_ok if {
	is_array(input.budgets)
	every b in input.budgets {
		is_object(b)
		is_string(b.id)
		b.unit in {"tokens", "usd"}
		is_number(b.limit)
		is_number(b.used)
	}
}

# Absent (a caller without workspace policies), or as the sidecar sets it.
workspace_policies_ok if not "workspace_policies" in object.keys(input)

workspace_policies_ok if {
	w := input.workspace_policies
	is_object(w)
	is_array(w.denials)
	every x in w.denials {
		is_object(x)
		is_string(x.policy)
		is_number(x.status)
		is_string(x.code)
		is_string(x.reason)
	}
	strings(w.cited)
}

strings(xs) if {
	is_array(xs)
	every x in xs {
		is_string(x)
	}
}
