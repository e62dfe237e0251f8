package store_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
)

func numbered(name, revision string, n int64, phase cutoverv1.RolloutPhase) *cutoverv1.Rollout {
	r := rollout(name, revision, phase)
	r.Status.RolloutNumber = n
	return r
}

// ReplaceRollout archives the replaced rollout, keeps the newest entries
// per app, and never touches another app's history ("web" vs "web2").
func TestReplaceRolloutArchivesAndTrims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, path := newStore(t)
	other := numbered("web2", "x1", 1, cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY)
	if err := b.ReplaceRollout(ctx, numbered("web2", "x2", 2, cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING), other, 3); err != nil {
		t.Fatal(err)
	}
	var prev *cutoverv1.Rollout
	for n := int64(1); n <= 6; n++ {
		cur := numbered("web", "v"+strconv.FormatInt(n, 10), n, cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING)
		if prev != nil {
			prev.Status.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_SUPERSEDED
		}
		if err := b.ReplaceRollout(ctx, cur, prev, 3); err != nil {
			t.Fatalf("replace %d: %v", n, err)
		}
		got, err := b.GetRollout(ctx, "web")
		if err != nil || !proto.Equal(got, cur) {
			t.Fatalf("current after replace %d = %v, %v", n, got, err)
		}
		prev = cur
	}
	b = reopen(t, b, path)
	hist, err := b.History(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	var revs []string
	for _, h := range hist {
		revs = append(revs, h.GetSpec().GetRevision().GetName())
	}
	if got, want := revs, []string{"v5", "v4", "v3"}; !slices.Equal(got, want) {
		t.Errorf("history of web = %v, want %v (newest first, 3 kept)", got, want)
	}
	if hist[0].GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_SUPERSEDED {
		t.Errorf("archived phase = %v, want the phase it was archived with", hist[0].GetStatus().GetPhase())
	}
	hist2, err := b.History(ctx, "web2")
	if err != nil || len(hist2) != 1 || !proto.Equal(hist2[0], other) {
		t.Errorf("history of web2 = %v, %v; want only its own entry", hist2, err)
	}
	none, err := b.History(ctx, "nothing")
	if err != nil || len(none) != 0 {
		t.Errorf("history of an unknown app = %v, %v", none, err)
	}
}

// testdata/schema1.db was written by the first release (schema 1, no
// history bucket; testdata/mkschema1 says how). Opening it upgrades it to
// the current schema and keeps every record.
func TestOpenUpgradesSchema1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	orig, err := os.ReadFile(filepath.Join("testdata", "schema1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cutover.db")
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	raw := openRaw(t, path)
	if v := schemaOf(t, raw); v != "1" {
		t.Fatalf("testdata/schema1.db has schema %q, want 1", v)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	b := openStore(t, path)
	if v := schemaOf(t, b.DB()); v != strconv.Itoa(store.SchemaVersion) {
		t.Errorf("schema after upgrade = %q, want %d", v, store.SchemaVersion)
	}
	r, err := b.GetRollout(ctx, "web")
	if err != nil || r.GetSpec().GetRevision().GetName() != "v1" ||
		r.GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY {
		t.Errorf("rollout web after upgrade = %v, %v", r, err)
	}
	cs, err := b.ListClusters(ctx)
	if err != nil || len(cs) != 1 || cs[0].GetName() != "eu-1" {
		t.Errorf("clusters after upgrade = %v, %v", cs, err)
	}
	next := numbered("web", "v2", 2, cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING)
	if err := b.ReplaceRollout(ctx, next, r, 10); err != nil {
		t.Fatalf("ReplaceRollout on the upgraded file: %v", err)
	}
	hist, err := b.History(ctx, "web")
	if err != nil || len(hist) != 1 || !proto.Equal(hist[0], r) {
		t.Errorf("history after first replace = %v, %v", hist, err)
	}
}
