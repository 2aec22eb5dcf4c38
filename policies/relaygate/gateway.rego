# The gateway's one entry point: data.relaygate.gateway.decision.
# Checks run in order scope -> model -> sovereignty -> budget; the first that
# fails decides. See docs/policy.md for the input document (version 1).
package relaygate.gateway

import rego.v1

import data.relaygate.budget
import data.relaygate.scope
import data.relaygate.sovereignty

policy := "relaygate.gateway@1.0.0"

decision := d if {
	count(scope.violations) > 0
	d := deny(403, "scope.denied", sort([v | some v in scope.violations]), [scope.policy])
} else := d if {
	count(input.candidates) == 0
	d := deny(404, "model.not_found", [sprintf("no upstream serves model %s on %s", [input.model, input.endpoint])], [scope.policy])
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
	"policies": [policy, scope.policy, sovereignty.policy, budget.policy],
	"upstream": sovereignty.chosen.name,
	"holds": budget.holds,
}

deny(status, code, reasons, policies) := {
	"allow": false,
	"status": status,
	"code": code,
	"reasons": reasons,
	"policies": array.concat([policy], policies),
	"upstream": null,
	"holds": [],
}
