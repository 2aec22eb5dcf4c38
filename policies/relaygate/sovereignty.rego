# Sovereignty: which upstreams may this workspace's data reach?
# A workspace lists allowed jurisdictions (or groups of them, from
# data.relaygate.jurisdiction_groups) and optionally allowed regions;
# an empty list means no restriction on that axis.
package relaygate.sovereignty

import rego.v1

# id@version recorded in every decision this module takes part in
policy := "relaygate.sovereignty@1.0.0"

allowed_jurisdictions contains j if {
	some entry in input.workspace.allowed_jurisdictions
	some j in object.get(data.relaygate.jurisdiction_groups, entry, [entry])
}

jurisdiction_ok(_) if count(input.workspace.allowed_jurisdictions) == 0

jurisdiction_ok(c) if c.jurisdiction in allowed_jurisdictions

region_ok(_) if count(input.workspace.allowed_regions) == 0

region_ok(c) if c.region in input.workspace.allowed_regions

allowed contains c.name if {
	some c in input.candidates
	jurisdiction_ok(c)
	region_ok(c)
}

# Preference order is the configured order of upstreams (input.candidates).
chosen := [c | some c in input.candidates; c.name in allowed][0]

reasons contains msg if {
	some c in input.candidates
	not c.name in allowed
	msg := sprintf("upstream %s (%s, %s) is outside workspace %s's allowed jurisdictions/regions", [c.name, c.jurisdiction, c.region, input.workspace.id])
}
