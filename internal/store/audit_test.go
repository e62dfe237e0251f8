package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
	"github.com/cutover-dev/cutover/internal/store/storetest"
)

func record(i int) *cutoverv1.AuditRecord {
	return &cutoverv1.AuditRecord{
		Time:    timestamppb.New(t0.Add(time.Duration(i) * time.Minute)),
		Actor:   []string{"alice", "bob", "cutover"}[i%3],
		Action:  "rollout.promote",
		Target:  "rollout/" + []string{"web", "api"}[i%2],
		App:     []string{"web", "api"}[i%2],
		Cluster: "eu-1",
		Before:  "paused v2 wave 1 step 2",
		After:   "progressing v2 wave 1 step 3",
		Reason:  fmt.Sprintf("reason number %d", i),
	}
}

// appendN appends records 1..n one call at a time.
func appendN(t *testing.T, b *store.Bolt, n int) []*cutoverv1.AuditRecord {
	t.Helper()
	var out []*cutoverv1.AuditRecord
	for i := 1; i <= n; i++ {
		r := record(i)
		if err := b.AppendAudit(context.Background(), r); err != nil {
			t.Fatalf("AppendAudit %d: %v", i, err)
		}
		out = append(out, r)
	}
	return out
}

func verify(t *testing.T, b *store.Bolt) (uint64, *store.AuditBreak) {
	t.Helper()
	n, err := b.VerifyAudit(context.Background())
	if err == nil {
		return n, nil
	}
	var br *store.AuditBreak
	if !errors.As(err, &br) || !errors.Is(err, store.ErrAuditBroken) {
		t.Fatalf("VerifyAudit = %v; want an *AuditBreak wrapping ErrAuditBroken", err)
	}
	return n, br
}

func TestAuditAppendAndVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, path := newStore(t)
	if n, br := verify(t, b); n != 0 || br != nil {
		t.Fatalf("VerifyAudit of an empty trail = %d, %v", n, br)
	}

	recs := appendN(t, b, 5)
	// With a rollout, a history entry and a cluster, in their transactions.
	web := rollout("web", "v2", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING)
	withPut, withReplace, withCluster := record(6), record(7), record(8)
	if err := b.PutRollout(ctx, web, withPut); err != nil {
		t.Fatal(err)
	}
	next := proto.Clone(web).(*cutoverv1.Rollout)
	next.Status.RolloutNumber++
	if err := b.ReplaceRollout(ctx, next, web, 3, withReplace); err != nil {
		t.Fatal(err)
	}
	if err := b.PutCluster(ctx, cluster("eu-1", "eu"), withCluster); err != nil {
		t.Fatal(err)
	}
	// Several at once; Time is filled in when unset.
	untimed := &cutoverv1.AuditRecord{Actor: "agent:eu-1", Action: "agent.connect", Target: "cluster/eu-1"}
	if err := b.AppendAudit(ctx, record(9), untimed); err != nil {
		t.Fatal(err)
	}
	if untimed.GetTime() == nil {
		t.Error("AppendAudit left Time unset")
	}
	recs = append(recs, withPut, withReplace, withCluster)

	for i, r := range recs {
		if r.GetSeq() != uint64(i+1) {
			t.Errorf("record %d got seq %d", i+1, r.GetSeq())
		}
		if i > 0 && !bytes.Equal(r.GetPrevHash(), recs[i-1].GetHash()) {
			t.Errorf("record %d: prev_hash is not record %d's hash", i+1, i)
		}
		if !bytes.Equal(r.GetHash(), rehash(r)) {
			t.Errorf("record %d: hash %x, want SHA-256(prev_hash || encoding without hash) = %x", i+1, r.GetHash(), rehash(r))
		}
	}
	if len(recs[0].GetPrevHash()) != 0 {
		t.Errorf("record 1 has prev_hash %x", recs[0].GetPrevHash())
	}
	if n, br := verify(t, b); n != 10 || br != nil {
		t.Fatalf("VerifyAudit = %d, %v; want 10 records, ok", n, br)
	}

	// The chain goes on after a reopen.
	b = reopen(t, b, path)
	more := record(11)
	if err := b.AppendAudit(ctx, more); err != nil {
		t.Fatal(err)
	}
	if more.GetSeq() != 11 {
		t.Errorf("first record after reopen got seq %d, want 11", more.GetSeq())
	}
	if n, br := verify(t, b); n != 11 || br != nil {
		t.Fatalf("VerifyAudit after reopen = %d, %v; want 11 records, ok", n, br)
	}
	all, err := b.AuditRecords(ctx, 0, 0)
	if err != nil || len(all) != 11 {
		t.Fatalf("AuditRecords = %d records, %v", len(all), err)
	}
	for i, r := range recs {
		if !proto.Equal(all[i], r) {
			t.Errorf("stored record %d =\n%v\nwant\n%v", i+1, all[i], r)
		}
	}
}

// A write that fails appends nothing: the decision and its record commit
// together or not at all.
func TestAuditRollsBackWithItsChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newStore(t)
	appendN(t, b, 2)
	if err := b.PutRollout(ctx, rollout("", "v1", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING), record(3)); err == nil {
		t.Fatal("PutRollout with an empty name succeeded")
	}
	if err := b.ReplaceRollout(ctx, rollout("", "v1", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING), nil, 3, record(3)); err == nil {
		t.Fatal("ReplaceRollout with an empty name succeeded")
	}
	if n, br := verify(t, b); n != 2 || br != nil {
		t.Fatalf("VerifyAudit = %d, %v; want the 2 records before, ok", n, br)
	}
	r := record(3)
	if err := b.AppendAudit(ctx, r); err != nil || r.GetSeq() != 3 {
		t.Fatalf("next append: seq %d, %v; want 3", r.GetSeq(), err)
	}
}

// History retention drops old rollouts, never audit records.
func TestAuditSurvivesHistoryRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newStore(t)
	var prev *cutoverv1.Rollout
	for n := int64(1); n <= 8; n++ {
		cur := numbered("web", "v"+strconv.FormatInt(n, 10), n, cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY)
		if err := b.ReplaceRollout(ctx, cur, prev, 1, record(int(n))); err != nil {
			t.Fatal(err)
		}
		prev = cur
	}
	hist, err := b.History(ctx, "web")
	if err != nil || len(hist) != 1 {
		t.Fatalf("history = %d entries, %v; want 1 kept", len(hist), err)
	}
	if n, br := verify(t, b); n != 8 || br != nil {
		t.Fatalf("VerifyAudit = %d, %v; want all 8 records, ok", n, br)
	}
}

func TestAuditConcurrentAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newStore(t)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errc := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				var err error
				if i%2 == 0 {
					err = b.AppendAudit(ctx, record(w*each+i))
				} else {
					err = b.PutCluster(ctx, cluster(fmt.Sprintf("c-%d", w), "eu"), record(w*each+i))
				}
				if err != nil {
					errc <- err
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if n, br := verify(t, b); n != workers*each || br != nil {
		t.Fatalf("VerifyAudit = %d, %v; want %d records, ok", n, br, workers*each)
	}
}

func TestListAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newStore(t)
	appendN(t, b, 12) // record i: t0+i min; actor alice, bob, cutover by i%3; app web/api by i%2

	seqs := func(rs []*cutoverv1.AuditRecord) string {
		var s []string
		for _, r := range rs {
			s = append(s, strconv.FormatUint(r.GetSeq(), 10))
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name      string
		q         store.AuditQuery
		want      string
		truncated bool
	}{
		{"all", store.AuditQuery{}, "1,2,3,4,5,6,7,8,9,10,11,12", false},
		{"newest under a limit", store.AuditQuery{Limit: 3}, "10,11,12", true},
		{"limit not reached", store.AuditQuery{Limit: 12}, "1,2,3,4,5,6,7,8,9,10,11,12", false},
		{"app", store.AuditQuery{App: "api"}, "1,3,5,7,9,11", false},
		{"actor", store.AuditQuery{Actor: "alice"}, "3,6,9,12", false},
		{"app and actor", store.AuditQuery{App: "web", Actor: "alice"}, "6,12", false},
		{"since, inclusive", store.AuditQuery{Since: t0.Add(10 * time.Minute)}, "10,11,12", false},
		{"until, exclusive", store.AuditQuery{Until: t0.Add(3 * time.Minute)}, "1,2", false},
		{"window", store.AuditQuery{Since: t0.Add(4 * time.Minute), Until: t0.Add(8 * time.Minute), App: "web"}, "4,6", false},
		{"window under a limit", store.AuditQuery{Since: t0.Add(2 * time.Minute), Until: t0.Add(9 * time.Minute), Limit: 2}, "7,8", true},
		{"nothing", store.AuditQuery{Actor: "mallory"}, "", false},
	} {
		got, truncated, err := b.ListAudit(ctx, tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if seqs(got) != tc.want || truncated != tc.truncated {
			t.Errorf("%s: ListAudit = [%s] truncated %v; want [%s] truncated %v", tc.name, seqs(got), truncated, tc.want, tc.truncated)
		}
	}

	page, err := b.AuditRecords(ctx, 4, 3)
	if err != nil || seqs(page) != "5,6,7" {
		t.Errorf("AuditRecords(after 4, 3) = [%s], %v; want [5,6,7]", seqs(page), err)
	}
	page, err = b.AuditRecords(ctx, 10, 5)
	if err != nil || seqs(page) != "11,12" {
		t.Errorf("AuditRecords(after 10, 5) = [%s], %v; want [11,12]", seqs(page), err)
	}
	page, err = b.AuditRecords(ctx, 12, 5)
	if err != nil || len(page) != 0 {
		t.Errorf("AuditRecords(after 12) = [%s], %v; want none", seqs(page), err)
	}
}

// rawEdit closes b, changes its file with bbolt alone, as someone with
// access to the disk would, and opens the store again.
func rawEdit(t *testing.T, b *store.Bolt, path string, edit func(audit, meta *bolt.Bucket) error) *store.Bolt {
	t.Helper()
	storetest.Check(t, b.DB())
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return edit(tx.Bucket([]byte("audit")), tx.Bucket([]byte("meta"))) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return openStore(t, path)
}

func key(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// flip changes one byte of record seq's stored value.
func flip(seq uint64, at func(v []byte) int) func(audit, meta *bolt.Bucket) error {
	return func(audit, _ *bolt.Bucket) error {
		v := bytes.Clone(audit.Get(key(seq)))
		if v == nil {
			return fmt.Errorf("no record %d", seq)
		}
		v[at(v)] ^= 0x01
		return audit.Put(key(seq), v)
	}
}

// inField is the position of a byte inside one of a stored record's
// fields.
func inField(field func(*cutoverv1.AuditRecord) []byte) func(v []byte) int {
	return func(v []byte) int {
		r := &cutoverv1.AuditRecord{}
		if err := proto.Unmarshal(v, r); err != nil {
			panic(err)
		}
		return bytes.Index(v, field(r)) + 5
	}
}

// rehash is the chain's hash, computed here apart from the store's code:
// SHA-256(prev_hash || deterministic encoding with hash empty).
func rehash(r *cutoverv1.AuditRecord) []byte {
	c := proto.Clone(r).(*cutoverv1.AuditRecord)
	c.Hash = nil
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(slices.Concat(c.GetPrevHash(), data))
	return sum[:]
}

func remove(seq uint64) func(audit, meta *bolt.Bucket) error {
	return func(audit, _ *bolt.Bucket) error { return audit.Delete(key(seq)) }
}

func TestVerifyAuditFindsTampering(t *testing.T) {
	t.Parallel()
	const n = 8
	inReason := func(v []byte) int { return bytes.Index(v, []byte("reason number")) + 2 }
	for _, tc := range []struct {
		name    string
		edit    func(audit, meta *bolt.Bucket) error
		seq     uint64
		problem string
		checked uint64
	}{
		{"one byte of a record's content", flip(4, inReason), 4, "hash does not match its content", 3},
		{"one byte of the first record", flip(1, inReason), 1, "hash does not match its content", 0},
		{"one byte of the last record", flip(n, inReason), n, "hash does not match its content", n - 1},
		{"one byte of a hash", flip(4, inField((*cutoverv1.AuditRecord).GetHash)), 4, "hash does not match its content", 3},
		{"one byte of a prev_hash", flip(4, inField((*cutoverv1.AuditRecord).GetPrevHash)), 4, "prev_hash does not match the previous record's hash", 3},
		{"a middle record deleted", remove(5), 5, "is missing", 4},
		{"the first record deleted", remove(1), 1, "is missing", 0},
		{"the last record deleted", remove(n), n, "is missing (the head names record 8 as the last)", n - 1},
		{"the last two records deleted", func(a, m *bolt.Bucket) error {
			_ = remove(n)(a, m)
			return remove(n-1)(a, m)
		}, n - 1, "is missing", n - 2},
		{"two records swapped", func(audit, _ *bolt.Bucket) error {
			v3, v4 := bytes.Clone(audit.Get(key(3))), bytes.Clone(audit.Get(key(4)))
			_ = audit.Put(key(3), v4)
			return audit.Put(key(4), v3)
		}, 3, "holds record 4", 2},
		{"a record rewritten with a fresh hash", func(audit, _ *bolt.Bucket) error {
			// Whoever recomputes one record's hash breaks the next link.
			r := &cutoverv1.AuditRecord{}
			if err := proto.Unmarshal(audit.Get(key(4)), r); err != nil {
				return err
			}
			forged := proto.Clone(r).(*cutoverv1.AuditRecord)
			forged.Actor = "nobody"
			forged.Hash = rehash(forged)
			v, err := proto.MarshalOptions{Deterministic: true}.Marshal(forged)
			if err != nil {
				return err
			}
			return audit.Put(key(4), v)
		}, 5, "prev_hash does not match the previous record's hash", 4},
		{"the head deleted", func(_, meta *bolt.Bucket) error { return meta.Delete([]byte("audit_head")) }, n, "head", n},
		{"the head truncated", func(_, meta *bolt.Bucket) error {
			return meta.Put([]byte("audit_head"), meta.Get([]byte("audit_head"))[:10])
		}, n, "head", n},
		{"a record appended past the head", func(audit, _ *bolt.Bucket) error {
			return audit.Put(key(n+1), audit.Get(key(n)))
		}, n + 1, "", n},
		{"a record unreadable", func(audit, _ *bolt.Bucket) error {
			return audit.Put(key(6), []byte{0xff, 0xff, 0xff})
		}, 6, "unreadable", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, path := newStore(t)
			appendN(t, b, n)
			b = rawEdit(t, b, path, tc.edit)
			checked, br := verify(t, b)
			if br == nil {
				t.Fatalf("VerifyAudit found nothing wrong after %s", tc.name)
			}
			if br.Seq != tc.seq || !strings.Contains(br.Problem, tc.problem) {
				t.Errorf("VerifyAudit = %q (seq %d); want seq %d with %q", br, br.Seq, tc.seq, tc.problem)
			}
			if checked != tc.checked {
				t.Errorf("VerifyAudit checked %d records, want %d", checked, tc.checked)
			}
			want := fmt.Sprintf("audit record %d: ", tc.seq)
			if !strings.HasPrefix(br.Error(), want) {
				t.Errorf("error %q does not start with %q", br.Error(), want)
			}
		})
	}
}

// Whichever byte of a stored record changes, the verification names that
// record.
func TestVerifyAuditNamesEveryFlippedByte(t *testing.T) {
	t.Parallel()
	b, path := newStore(t)
	appendN(t, b, 5)
	var size int
	err := b.DB().View(func(tx *bolt.Tx) error {
		size = len(tx.Bucket([]byte("audit")).Get(key(3)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range size {
		b = rawEdit(t, b, path, flip(3, func([]byte) int { return i }))
		if _, br := verify(t, b); br == nil || br.Seq != 3 {
			t.Errorf("byte %d of record 3 changed: VerifyAudit = %v, want record 3 named", i, br)
		}
		b = rawEdit(t, b, path, flip(3, func([]byte) int { return i })) // and back
	}
	if n, br := verify(t, b); n != 5 || br != nil {
		t.Fatalf("VerifyAudit after restoring every byte = %d, %v", n, br)
	}
}

// testdata/schema2.db was written by the release before the audit trail
// (schema 2; testdata/mkschema2 says how). Opening it upgrades it to the
// current schema with an empty, valid trail that then grows.
func TestOpenUpgradesSchema2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	orig, err := os.ReadFile(filepath.Join("testdata", "schema2.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cutover.db")
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	raw := openRaw(t, path)
	if v := schemaOf(t, raw); v != "2" {
		t.Fatalf("testdata/schema2.db has schema %q, want 2", v)
	}
	if got := fmt.Sprint(bucketsOf(t, raw)); got != "[clusters history meta rollouts]" {
		t.Fatalf("testdata/schema2.db has buckets %s", got)
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
	r, err := b.GetRollout(ctx, "web")
	if err != nil || r.GetSpec().GetRevision().GetName() != "v2" {
		t.Errorf("rollout web after upgrade = %v, %v", r, err)
	}
	hist, err := b.History(ctx, "web")
	if err != nil || len(hist) != 1 || hist[0].GetSpec().GetRevision().GetName() != "v1" {
		t.Errorf("history after upgrade = %v, %v", hist, err)
	}
	if n, br := verify(t, b); n != 0 || br != nil {
		t.Errorf("VerifyAudit after upgrade = %d, %v; want an empty, valid trail", n, br)
	}
	appendN(t, b, 2)
	if n, br := verify(t, b); n != 2 || br != nil {
		t.Errorf("VerifyAudit after two appends = %d, %v", n, br)
	}
}
