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
