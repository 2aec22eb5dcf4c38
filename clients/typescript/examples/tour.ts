/**
 * Drives a live control plane with the generated TypeScript client: creates a policy, dry-runs it,
 * relays a call, pages the audit feed, and requests and downloads an evidence bundle. Prints what
 * it saw as one JSON document (tests/system/test_client_libraries.py checks it).
 *
 *   RELAYGATE_URL=https://127.0.0.1:8090 RELAYGATE_KEY=ro_live_… RELAYGATE_OUT=/tmp npx tsx examples/tour.ts
 *
 * TLS: Node trusts NODE_EXTRA_CA_CERTS besides its own roots (e.g. make run's CA).
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { relaygate } from "../src/index.ts";

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`set ${name}`);
  return v;
}

function fail(what: string, error: unknown, response: Response): never {
  throw new Error(`${what}: HTTP ${response.status} ${JSON.stringify(error)}`);
}

const cp = relaygate(need("RELAYGATE_URL"), need("RELAYGATE_KEY"));
const out = need("RELAYGATE_OUT");
const name = process.env.RELAYGATE_POLICY_NAME ?? "ts-tour-no-gpt-4o";
const result: Record<string, unknown> = {};

// 1. A policy, from a YAML document.
const doc =
  `name: ${name}\neffect: {status: 403, code: policy.blocked}\nrego: |\n  package tour\n  import rego.v1\n` +
  `  deny contains "gpt-4o is not approved" if input.model == "gpt-4o"\n`;
const created = await cp.POST("/v1/policies", {
  body: doc,
  bodySerializer: (b: string) => b,
  headers: { "Content-Type": "application/yaml" },
});
if (!created.data) fail("create policy", created.error, created.response);
const pid = created.data.id;
result.policy_id = pid;

// 2. Its dry run against a call it should deny.
const dry = await cp.POST("/v1/policies/{policy_id}/dryrun", {
  params: { path: { policy_id: pid } },
  body: { request: { endpoint: "chat.completions", body: { model: "gpt-4o", messages: [] } } },
});
if (!dry.data) fail("dry run", dry.error, dry.response);
result.dry_run_decision = dry.data.decision;

// 3. A call relayed through the gateway.
const relayed = await cp.POST("/api/relay", {
  body: { to: "gpt-4o-mini", payload: { model: "gpt-4o-mini", messages: [{ role: "user", content: "hello from TypeScript" }] } },
});
if (!relayed.data) fail("relay", relayed.error, relayed.response);
result.relay_status = relayed.data.status_code;
result.relay_receipt_id = relayed.data.receipt_id;

// 4. The audit feed, page by page.
const pages: string[][] = [];
let cursor: string | undefined;
while (pages.length < 3) {
  const page = await cp.GET("/v1/audit/events", { params: { query: { limit: 2, cursor } } });
  if (!page.data) fail("audit page", page.error, page.response);
  pages.push(page.data.events.map((e) => e.id));
  if (!page.data.next_cursor) break;
  cursor = page.data.next_cursor;
}
result.audit_pages = pages;

// 5. An evidence bundle: requested, followed to the end, downloaded.
const now = Date.now();
const job = await cp.POST("/v1/evidence/bundles", {
  body: {
    from: new Date(now - 3600_000).toISOString(),
    to: new Date(now + 60_000).toISOString(),
    components: ["receipts", "policies"],
  },
});
if (!job.data) fail("evidence job", job.error, job.response);
const id = job.data.id;
const deadline = Date.now() + 120_000;
for (;;) {
  const st = await cp.GET("/v1/evidence/bundles/{bundle_id}/status", { params: { path: { bundle_id: id } } });
  if (!st.data) fail("evidence status", st.error, st.response);
  if (st.data.status === "failed") throw new Error(`evidence job failed: ${JSON.stringify(st.data)}`);
  if (st.data.status === "done") {
    result.evidence_sha256 = st.data.sha256;
    break;
  }
  if (Date.now() > deadline) throw new Error(`evidence job still ${st.data.status} at the deadline`);
  await new Promise((r) => setTimeout(r, 200));
}
const dl = await cp.GET("/v1/evidence/bundles/{bundle_id}", {
  params: { path: { bundle_id: id } },
  parseAs: "arrayBuffer",
});
if (dl.response.status !== 200 || !dl.data) fail("download", dl.error, dl.response);
const bytes = Buffer.from(dl.data as ArrayBuffer);
const path = join(out, "evidence-ts.tar.gz");
writeFileSync(path, bytes, { mode: 0o600 });
result.evidence_id = id;
result.downloaded_sha256 = createHash("sha256").update(bytes).digest("hex");
result.downloaded_path = path;

console.log(JSON.stringify(result));
