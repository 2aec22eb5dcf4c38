# Budget: would the worst case of this call overflow a cap?
# input.budgets carry each applicable budget's limit and current use (spent +
# reserved); the gateway then reserves the returned holds atomically.
package relaygate.budget

import rego.v1

policy := {"id": "relaygate.budget", "version": "1.0.0"}

amount(b, c) := c.cost.tokens if b.unit == "tokens"

amount(b, c) := c.cost.usd_micros if b.unit == "usd"

holds(c) := [{"budget_id": b.id, "amount": amount(b, c)} | some b in input.budgets]

exceeded(c) := [b.id | some b in input.budgets; b.used + amount(b, c) > b.limit]
