// relaygate-tour drives a live control plane with the generated Go client: it creates a policy,
// dry-runs it, relays a call, pages the audit feed, and requests and downloads an evidence bundle.
// It prints what it saw as one JSON document (tests/system/test_client_libraries.py checks it).
//
//	RELAYGATE_URL=https://127.0.0.1:8090 RELAYGATE_KEY=ro_live_… RELAYGATE_OUT=/tmp go run ./cmd/relaygate-tour
//
// TLS trusts the system roots plus SSL_CERT_FILE (Go reads it on Linux), e.g. make run's CA.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	relaygate "github.com/relaygate/relaygate/clients/go"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "relaygate-tour: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	base, key, out := os.Getenv("RELAYGATE_URL"), os.Getenv("RELAYGATE_KEY"), os.Getenv("RELAYGATE_OUT")
	if base == "" || key == "" || out == "" {
		fail("set RELAYGATE_URL, RELAYGATE_KEY and RELAYGATE_OUT")
	}
	name := os.Getenv("RELAYGATE_POLICY_NAME")
	if name == "" {
		name = "go-tour-no-gpt-4o"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := relaygate.NewClientWithResponses(base, relaygate.WithRequestEditorFn(
		func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+key)
			return nil
		}))
	if err != nil {
		fail("client: %v", err)
	}
	result := map[string]any{}

	// 1. A policy, from a YAML document.
	doc := "name: " + name + "\neffect: {status: 403, code: policy.blocked}\nrego: |\n  package tour\n  import rego.v1\n" +
		"  deny contains \"gpt-4o is not approved\" if input.model == \"gpt-4o\"\n"
	created, err := client.CreatePolicyWithBodyWithResponse(ctx, nil, "application/yaml", strings.NewReader(doc))
	if err != nil || created.JSON201 == nil {
		fail("create policy: %v %s", err, body(created))
	}
	pid := created.JSON201.Id
	result["policy_id"] = pid

	// 2. Its dry run against a call it should deny.
	var in relaygate.DryRunInput
	if err := json.Unmarshal([]byte(`{"request": {"endpoint": "chat.completions", "body": {"model": "gpt-4o", "messages": []}}}`), &in); err != nil {
		fail("dry-run input: %v", err)
	}
	dry, err := client.DryRunPolicyWithResponse(ctx, pid, nil, in)
	if err != nil || dry.JSON200 == nil {
		fail("dry run: %v %s", err, body(dry))
	}
	result["dry_run_decision"] = dry.JSON200.Decision

	// 3. A call relayed through the gateway.
	to := "gpt-4o-mini"
	relayed, err := client.RelayWithResponse(ctx, nil, relaygate.RelayInput{
		To: to,
		Payload: map[string]interface{}{
			"model": to, "messages": []map[string]string{{"role": "user", "content": "hello from Go"}},
		},
	})
	if err != nil || relayed.JSON200 == nil {
		fail("relay: %v %s", err, body(relayed))
	}
	result["relay_status"] = relayed.JSON200.StatusCode
	result["relay_receipt_id"] = relayed.JSON200.ReceiptId

	// 4. The audit feed, page by page.
	var pages [][]string
	limit := 2
	var cursor *string
	for len(pages) < 3 {
		page, err := client.ListAuditEventsWithResponse(ctx, &relaygate.ListAuditEventsParams{Limit: &limit, Cursor: cursor})
		if err != nil || page.JSON200 == nil {
			fail("audit page: %v %s", err, body(page))
		}
		ids := []string{}
		for _, e := range page.JSON200.Events {
			ids = append(ids, e.Id)
		}
		pages = append(pages, ids)
		if page.JSON200.NextCursor == nil {
			break
		}
		cursor = page.JSON200.NextCursor
	}
	result["audit_pages"] = pages

	// 5. An evidence bundle: requested, followed to the end, downloaded.
	from, until := time.Now().Add(-time.Hour), time.Now().Add(time.Minute)
	comps := []relaygate.EvidenceRequestComponents{"receipts", "policies"}
	job, err := client.CreateEvidenceBundleWithResponse(ctx, nil, relaygate.EvidenceRequest{From: &from, To: &until, Components: &comps})
	if err != nil || job.JSON202 == nil {
		fail("evidence job: %v %s", err, body(job))
	}
	id := job.JSON202.Id
	for {
		st, err := client.GetEvidenceBundleStatusWithResponse(ctx, id, nil)
		if err != nil || st.JSON200 == nil {
			fail("evidence status: %v %s", err, body(st))
		}
		if st.JSON200.Status == "failed" {
			fail("evidence job failed: %s", body(st))
		}
		if st.JSON200.Status == "done" {
			result["evidence_sha256"] = st.JSON200.Sha256
			break
		}
		select {
		case <-ctx.Done():
			fail("evidence job still %s at the deadline", st.JSON200.Status)
		case <-time.After(200 * time.Millisecond):
		}
	}
	dl, err := client.DownloadEvidenceBundleWithResponse(ctx, id, nil)
	if err != nil || dl.StatusCode() != 200 {
		fail("download: %v %s", err, body(dl))
	}
	sum := sha256.Sum256(dl.Body)
	path := filepath.Join(out, "evidence-go.tar.gz")
	if err := os.WriteFile(path, dl.Body, 0o600); err != nil {
		fail("write %s: %v", path, err)
	}
	result["evidence_id"] = id
	result["downloaded_sha256"] = hex.EncodeToString(sum[:])
	result["downloaded_path"] = path

	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(result); err != nil {
		fail("output: %v", err)
	}
}

// body is a response's status and text for an error message (nil-safe: on a transport error the
// generated client returns no response).
func body(r any) string {
	v := reflect.ValueOf(r)
	if r == nil || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return ""
	}
	v = v.Elem()
	status := ""
	if hr, ok := v.FieldByName("HTTPResponse").Interface().(*http.Response); ok && hr != nil {
		status = hr.Status
	}
	b, _ := v.FieldByName("Body").Interface().([]byte)
	return fmt.Sprintf("(%s) %s", status, b)
}
