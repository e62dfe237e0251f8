package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protojson"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// Given v1 stable, a canary of v2 is applied, promoted and aborted through
// the CLI: `cutover audit list` shows who applied, promoted and aborted it
// and the engine's own decisions, `cutover audit export` prints every
// record as a JSON line, and `cutover audit verify` passes. When one byte
// of one stored record is changed while the control plane is down, verify
// fails naming that record; restored, it passes again; when a record is
// deleted, verify names the missing one.
func TestAuditTrailRecordsAndDetectsTampering(t *testing.T) {
	f := newTwoRegions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f.deploy(ctx, "v1")

	if _, stderr, code, err := f.env.CLI(ctx, f.app("v2", "setWeight: 50", "pause: {}").Manifest(), "apply", "-f", "-"); err != nil || code != 0 {
		t.Fatalf("cutover apply: exit %d %v: %s", code, err, stderr)
	}
	f.wait(ctx, "us-east at 50%", harness.AtStep(0, 1))
	f.cli(ctx, "promote", "demo")
	f.wait(ctx, "eu-west at 50%", harness.AtStep(1, 1))
	f.cli(ctx, "abort", "demo", "--reason", "audit drill")
	f.wait(ctx, "aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))

	// Who did what, and what the engine decided, in order.
	list := &cutoverv1.ListAuditRecordsResponse{}
	if err := protojson.Unmarshal([]byte(f.cli(ctx, "audit", "list", "--app", "demo", "-o", "json")), list); err != nil {
		t.Fatal(err)
	}
	applyV2 := find(t, list.GetRecords(), "rollout.apply", "checking v2") // the pre-flight runs first
	promote := find(t, list.GetRecords(), "rollout.promote", "")
	wavePromoted := find(t, list.GetRecords(), "wave.promoted", "progressing v2")
	abort := find(t, list.GetRecords(), "rollout.abort", "")
	for _, r := range []*cutoverv1.AuditRecord{applyV2, promote, abort} {
		if !strings.HasPrefix(r.GetActor(), "anonymous@127.0.0.1") || r.GetTarget() != "rollout/demo" {
			t.Errorf("%s by %q on %q, want the caller's address on rollout/demo", r.GetAction(), r.GetActor(), r.GetTarget())
		}
	}
	if wavePromoted.GetActor() != "cutover" {
		t.Errorf("wave.promoted by %q, want the engine (cutover)", wavePromoted.GetActor())
	}
	if !strings.Contains(abort.GetReason(), "audit drill") || abort.GetAfter() != "aborted v2" {
		t.Errorf("abort record: reason %q, after %q", abort.GetReason(), abort.GetAfter())
	}
	if !(applyV2.GetSeq() < promote.GetSeq() && promote.GetSeq() < wavePromoted.GetSeq() && wavePromoted.GetSeq() < abort.GetSeq()) {
		t.Errorf("out of order: apply %d, promote %d, wave promoted %d, abort %d",
			applyV2.GetSeq(), promote.GetSeq(), wavePromoted.GetSeq(), abort.GetSeq())
	}
	table := f.cli(ctx, "audit", "list", "--actor", "agent:us-east", "--since", "1h")
	if !strings.Contains(table, "agent.connect") || !strings.Contains(table, "cluster/us-east") || strings.Contains(table, "rollout/demo") {
		t.Errorf("cutover audit list --actor agent:us-east:\n%s", table)
	}

	// Every record, as JSON lines, chained.
	exported := exportAudit(t, f, ctx)
	var prev []byte
	for i, r := range exported {
		if r.GetSeq() != uint64(i+1) || !bytes.Equal(r.GetPrevHash(), prev) || len(r.GetHash()) != 32 {
			t.Fatalf("exported record %d: seq %d, prev_hash %x after %x", i+1, r.GetSeq(), r.GetPrevHash(), prev)
		}
		prev = r.GetHash()
	}
	expectVerified(t, f, ctx, len(exported))
	code, body, err := f.env.HTTP(ctx, http.MethodGet, "/v1/audit:verify", "")
	var rest struct {
		Ok             bool   `json:"ok"`
		RecordsChecked string `json:"recordsChecked"`
	}
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &rest) != nil || !rest.Ok {
		t.Errorf("GET /v1/audit:verify = %d %s %v", code, body, err)
	}
	// A SIEM can pull what is new over REST: one JSON object per line.
	after := exported[len(exported)-3].GetSeq()
	code, body, err = f.env.HTTP(ctx, http.MethodGet, fmt.Sprintf("/v1/audit:export?afterSeq=%d", after), "")
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if err != nil || code != http.StatusOK || len(lines) != 2 {
		t.Fatalf("GET /v1/audit:export?afterSeq=%d = %d, %d lines, %v:\n%s", after, code, len(lines), err, body)
	}
	for i, l := range lines {
		var msg struct{ Result json.RawMessage }
		r := &cutoverv1.ExportAuditRecordsResponse{}
		if err := json.Unmarshal([]byte(l), &msg); err != nil || protojson.Unmarshal(msg.Result, r) != nil || r.GetRecord().GetSeq() != after+uint64(i)+1 {
			t.Errorf("REST export line %d = %s (%v)", i+1, l, err)
		}
	}

	// One byte of the promote record changes on disk.
	db := filepath.Join(f.env.Server.DataDir, "cutover.db")
	var original []byte
	whileDown(t, f, ctx, db, func(audit *bolt.Bucket) error {
		k := seqKey(promote.GetSeq())
		original = bytes.Clone(audit.Get(k))
		at := bytes.Index(original, []byte("current step completed"))
		if at < 0 {
			return fmt.Errorf("record %d does not hold its reason", promote.GetSeq())
		}
		edited := bytes.Clone(original)
		edited[at] = 'C'
		return audit.Put(k, edited)
	})
	expectBroken(t, f, ctx, fmt.Sprintf("audit record %d: hash does not match its content", promote.GetSeq()))

	// Restored, the chain holds again (with the records of the restarts).
	whileDown(t, f, ctx, db, func(audit *bolt.Bucket) error { return audit.Put(seqKey(promote.GetSeq()), original) })
	expectVerified(t, f, ctx, len(exportAudit(t, f, ctx)))

	// A record deleted is missing.
	whileDown(t, f, ctx, db, func(audit *bolt.Bucket) error { return audit.Delete(seqKey(applyV2.GetSeq())) })
	expectBroken(t, f, ctx, fmt.Sprintf("audit record %d: is missing", applyV2.GetSeq()))
}

// find returns the first record with action whose after summary starts
// with after.
func find(t *testing.T, recs []*cutoverv1.AuditRecord, action, after string) *cutoverv1.AuditRecord {
	t.Helper()
	for _, r := range recs {
		if r.GetAction() == action && strings.HasPrefix(r.GetAfter(), after) {
			return r
		}
	}
	var have []string
	for _, r := range recs {
		have = append(have, fmt.Sprintf("%d %s %s: %s -> %s", r.GetSeq(), r.GetAction(), r.GetActor(), r.GetBefore(), r.GetAfter()))
	}
	t.Fatalf("no %s record leading to %q in the trail:\n  %s", action, after, strings.Join(have, "\n  "))
	return nil
}

func exportAudit(t *testing.T, f *twoRegions, ctx context.Context) []*cutoverv1.AuditRecord {
	t.Helper()
	var out []*cutoverv1.AuditRecord
	for i, line := range strings.Split(strings.TrimSuffix(f.cli(ctx, "audit", "export"), "\n"), "\n") {
		r := &cutoverv1.AuditRecord{}
		if err := protojson.Unmarshal([]byte(line), r); err != nil {
			t.Fatalf("export line %d %q: %v", i+1, line, err)
		}
		out = append(out, r)
	}
	return out
}

func expectVerified(t *testing.T, f *twoRegions, ctx context.Context, n int) {
	t.Helper()
	if out := f.cli(ctx, "audit", "verify"); out != fmt.Sprintf("audit chain ok: %d records\n", n) {
		t.Errorf("cutover audit verify printed %q, want %d records ok", out, n)
	}
}

func expectBroken(t *testing.T, f *twoRegions, ctx context.Context, want string) {
	t.Helper()
	out, stderr, code, err := f.env.CLI(ctx, "", "audit", "verify")
	if err != nil || code == 0 || !strings.HasPrefix(stderr, "error: "+want) {
		t.Errorf("cutover audit verify: exit %d %v, stdout %q, stderr %q; want a failure starting %q", code, err, out, stderr, want)
	}
}

// whileDown stops the control plane, edits the audit bucket of its file
// with bbolt alone, as someone with access to the disk would, and starts
// it again; it returns once both agents are back, so the trail holds
// still.
func whileDown(t *testing.T, f *twoRegions, ctx context.Context, path string, edit func(*bolt.Bucket) error) {
	t.Helper()
	if err := f.env.Server.Stop(20 * time.Second); err != nil {
		t.Fatalf("stop control plane: %v", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return edit(tx.Bucket([]byte("audit"))) })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("edit %s: %v", path, err)
	}
	if err := f.env.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	err = harness.Poll(ctx, 20*time.Millisecond, "agents reconnected", func() (bool, error) {
		resp, err := f.env.Clusters.ListClusters(ctx, &cutoverv1.ListClustersRequest{})
		if err != nil {
			return false, err
		}
		n := 0
		for _, c := range resp.GetClusters() {
			if c.GetStatus() == cutoverv1.ClusterStatus_CLUSTER_STATUS_CONNECTED {
				n++
			}
		}
		return n == len(regions), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }
