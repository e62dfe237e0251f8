package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
)

// The OnAudit hook sees every committed record, sealed, once the write
// lock is released (it may read and even write the store), and never a
// record whose transaction rolled back.
func TestOnAuditSeesCommittedRecordsOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newStore(t)
	var (
		mu   sync.Mutex
		seen []*cutoverv1.AuditRecord
	)
	b.OnAudit(func(recs []*cutoverv1.AuditRecord) {
		// Reading from the hook proves the records are committed: another
		// transaction sees them.
		got, _, err := b.ListAudit(ctx, store.AuditQuery{})
		if err != nil || len(got) == 0 || got[len(got)-1].GetSeq() != recs[len(recs)-1].GetSeq() {
			t.Errorf("from the hook, ListAudit = %d records, %v; want the last one %d", len(got), err, recs[len(recs)-1].GetSeq())
		}
		mu.Lock()
		seen = append(seen, recs...)
		mu.Unlock()
	})

	if err := b.PutRollout(ctx, rollout("web", "v1", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING), record(1), record(2)); err != nil {
		t.Fatal(err)
	}
	if err := b.ReplaceRollout(ctx, rollout("web", "v2", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING), nil, 3, record(3)); err != nil {
		t.Fatal(err)
	}
	if err := b.PutCluster(ctx, cluster("eu-1", "eu"), record(4)); err != nil {
		t.Fatal(err)
	}
	if err := b.PutCluster(ctx, cluster("eu-1", "eu")); err != nil { // no records: no call
		t.Fatal(err)
	}
	bad := record(6)
	bad.Reason = "\xff" // not UTF-8: cannot be encoded, so the transaction rolls back
	if err := b.AppendAudit(ctx, record(5), bad); err == nil {
		t.Fatal("AppendAudit of a record that cannot be encoded succeeded")
	}
	if err := b.AppendAudit(ctx, record(7)); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	var seqs []uint64
	for _, r := range seen {
		if len(r.GetHash()) == 0 {
			t.Errorf("record %d reached the hook unsealed", r.GetSeq())
		}
		seqs = append(seqs, r.GetSeq())
	}
	if want := []uint64{1, 2, 3, 4, 5}; !slices.Equal(seqs, want) {
		t.Errorf("hook saw seqs %v, want %v (the rolled-back append never)", seqs, want)
	}

	b.OnAudit(nil)
	if err := b.AppendAudit(ctx, record(8)); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 5 {
		t.Errorf("hook called after it was removed: %d records", len(seen))
	}
}
