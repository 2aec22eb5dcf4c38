# Budget: would the worst case of this call overflow a cap?
# input.budgets carry each applicable budget's limit and current use (spent +
# reserved); the gateway then reserves the returned holds atomically.
package relaygate.budget

import rego.v1

import data.relaygate.sovereignty

# id@version recorded in every decision this module takes part in
policy := "relaygate.budget@1.0.0"

# The worst-case cost of the call on the chosen upstream, per budget unit.
cost := {"tokens": sovereignty.chosen.cost.tokens, "usd": sovereignty.chosen.cost.usd_micros}

holds := [{"budget_id": b.id, "amount": cost[b.unit]} | some b in input.budgets]

exceeded := [b.id | some b in input.budgets; b.used + cost[b.unit] > b.limit]
