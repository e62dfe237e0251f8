package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
)

// evals is a small evaluation record of rollout n of name.
func evals(name string, n int64, points int) *cutoverv1.RolloutEvaluations {
	s := &cutoverv1.GateEvaluationSeries{Cluster: "eu-1", Gate: "errors", Metric: "errorRate", Condition: "errorRate <= 0.01", ResolutionSeconds: 1}
	for i := range points {
		s.Points = append(s.Points, &cutoverv1.GateEvaluation{
			Time: timestamppb.New(t0.Add(time.Duration(i) * time.Second)), Verdict: cutoverv1.GateVerdict_GATE_VERDICT_PASS,
			Canary: 0.001, Stable: 0.002, Threshold: proto.Float64(0.01), CanaryRequests: 400, StableRequests: 1600, Evaluations: 10,
		})
	}
	return &cutoverv1.RolloutEvaluations{Name: name, RolloutNumber: n, Series: []*cutoverv1.GateEvaluationSeries{s}}
}

func getEvals(t *testing.T, b *store.Bolt, name string, n int64) *cutoverv1.RolloutEvaluations {
	t.Helper()
	got, err := b.Evaluations(context.Background(), name, n)
	if err != nil {
		t.Fatalf("Evaluations(%s, %d): %v", name, n, err)
	}
	return got
}

// A record is stored for the current rollout and for one in history, read
// back after a reopen, replaced by a later write, and empty for a rollout
// that has none.
func TestEvaluationsRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, path := newStore(t)
	if err := b.ReplaceRollout(ctx, numbered("web", "v2", 2, cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING),
		numbered("web", "v1", 1, cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY), 10); err != nil {
		t.Fatal(err)
	}
	if err := b.PutEvaluations(ctx, evals("web", 1, 3), evals("web", 2, 5)); err != nil {
		t.Fatal(err)
	}
	if err := b.PutEvaluations(ctx, evals("web", 2, 7)); err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b, path)
	if got := getEvals(t, b, "web", 1); !proto.Equal(got, evals("web", 1, 3)) {
		t.Errorf("record of rollout 1 = %v", got)
	}
	if got := getEvals(t, b, "web", 2); !proto.Equal(got, evals("web", 2, 7)) {
		t.Errorf("record of rollout 2 = %v, want the later write", got)
	}
	if got := getEvals(t, b, "api", 1); len(got.GetSeries()) != 0 || got.GetName() != "api" || got.GetRolloutNumber() != 1 {
		t.Errorf("record of a rollout without one = %v, want an empty record naming it", got)
	}
	if err := b.PutEvaluations(ctx, &cutoverv1.RolloutEvaluations{Name: "web"}); err == nil {
		t.Error("PutEvaluations without a rollout number succeeded")
	}
}

// History retention drops a rollout's evaluation record with its history
// entry, in the same transaction, and leaves the audit trail alone; a late
// write for a dropped rollout (or one never stored) is left out.
func TestEvaluationsFollowHistoryRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newStore(t)
	var prev *cutoverv1.Rollout
	for n := int64(1); n <= 5; n++ {
		cur := numbered("web", "v"+strconv.FormatInt(n, 10), n, cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING)
		rec := &cutoverv1.AuditRecord{Actor: "alice", Action: "rollout.apply", App: "web"}
		if err := b.ReplaceRollout(ctx, cur, prev, 2, rec); err != nil {
			t.Fatalf("replace %d: %v", n, err)
		}
		if err := b.PutEvaluations(ctx, evals("web", n, 2)); err != nil {
			t.Fatalf("evaluations of %d: %v", n, err)
		}
		prev = cur
	}
	// Kept: history 3 and 4, current 5.
	for n, want := range map[int64]int{1: 0, 2: 0, 3: 1, 4: 1, 5: 1} {
		if got := len(getEvals(t, b, "web", n).GetSeries()); got != want {
			t.Errorf("rollout %d has %d series after retention, want %d", n, got, want)
		}
	}
	// Rollout 1 was dropped; rollout 9 never existed.
	if err := b.PutEvaluations(ctx, evals("web", 1, 2), evals("web", 9, 2), evals("web", 4, 6)); err != nil {
		t.Fatal(err)
	}
	if got := len(getEvals(t, b, "web", 1).GetSeries()); got != 0 {
		t.Error("a late write brought back the record of a dropped rollout")
	}
	if got := len(getEvals(t, b, "web", 9).GetSeries()); got != 0 {
		t.Error("a record of a rollout that was never stored was written")
	}
	if got := len(getEvals(t, b, "web", 4).GetSeries()[0].GetPoints()); got != 6 {
		t.Errorf("the same batch's record of a kept rollout has %d points, want 6", got)
	}
	if n, br := verify(t, b); n != 5 || br != nil {
		t.Errorf("VerifyAudit after retention = %d, %v; want all 5 records", n, br)
	}
}

// testdata/schema3.db was written by the release before evaluation
// records (schema 3; testdata/mkschema3 says how). Opening it upgrades it
// to the current schema: its rollouts, history and audit trail are intact,
// and its rollouts can be given records.
func TestOpenUpgradesSchema3(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	orig, err := os.ReadFile(filepath.Join("testdata", "schema3.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cutover.db")
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	raw := openRaw(t, path)
	if v := schemaOf(t, raw); v != "3" {
		t.Fatalf("testdata/schema3.db has schema %q, want 3", v)
	}
	if got := fmt.Sprint(bucketsOf(t, raw)); got != "[audit clusters history meta rollouts]" {
		t.Fatalf("testdata/schema3.db has buckets %s", got)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	b := openStore(t, path)
	if v := schemaOf(t, b.DB()); v != strconv.Itoa(store.SchemaVersion) {
		t.Errorf("schema after upgrade = %q, want %d", v, store.SchemaVersion)
	}
	if got := fmt.Sprint(bucketsOf(t, b.DB())); got != "[audit clusters evaluations history meta rollouts]" {
		t.Errorf("buckets after upgrade = %s", got)
	}
	hist, err := b.History(ctx, "web")
	if err != nil || len(hist) != 1 || hist[0].GetSpec().GetRevision().GetName() != "v1" {
		t.Errorf("history after upgrade = %v, %v", hist, err)
	}
	if n, br := verify(t, b); n != 2 || br != nil {
		t.Errorf("VerifyAudit after upgrade = %d, %v; want the 2 records intact", n, br)
	}
	if got := getEvals(t, b, "web", 1); len(got.GetSeries()) != 0 {
		t.Errorf("an upgraded file has evaluations %v", got)
	}
	if err := b.PutEvaluations(ctx, evals("web", 1, 2), evals("web", 2, 3)); err != nil {
		t.Fatal(err)
	}
	if got := len(getEvals(t, b, "web", 2).GetSeries()[0].GetPoints()); got != 3 {
		t.Errorf("record of the upgraded file's current rollout has %d points, want 3", got)
	}
}
