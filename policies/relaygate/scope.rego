# Scope: may this key call this endpoint and model?
package relaygate.scope

import rego.v1

# id@version recorded in every decision this module takes part in
policy := "relaygate.scope@1.0.0"

violations contains msg if {
	not input.endpoint in input.principal.endpoints
	msg := sprintf("key %s may not call endpoint %s", [input.principal.key_id, input.endpoint])
}

violations contains msg if {
	not model_allowed
	msg := sprintf("key %s may not use model %s", [input.principal.key_id, input.model])
}

model_allowed if "*" in input.principal.models

model_allowed if input.model in input.principal.models

# Patterns such as "gpt-4o*" match by glob (no separators).
model_allowed if {
	some pattern in input.principal.models
	contains(pattern, "*")
	glob.match(pattern, [], input.model)
}
