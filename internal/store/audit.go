package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// ErrAuditBroken means the audit trail has a record that was edited,
// removed, moved or forged, or cannot be read. VerifyAudit returns it as an
// *AuditBreak naming the record.
var ErrAuditBroken = errors.New("audit chain broken")

// AuditBreak is the first record that breaks the audit chain.
type AuditBreak struct {
	// Seq is the sequence number of the bad or missing record.
	Seq uint64
	// Problem says what is wrong with it, for people.
	Problem string
}

func (e *AuditBreak) Error() string { return fmt.Sprintf("audit record %d: %s", e.Seq, e.Problem) }

// Unwrap makes errors.Is(err, ErrAuditBroken) hold.
func (e *AuditBreak) Unwrap() error { return ErrAuditBroken }

// AuditQuery filters ListAudit. Zero fields match everything.
type AuditQuery struct {
	App   string
	Actor string
	// Since and Until bound the record's time: Since <= time < Until.
	Since, Until time.Time
	// Limit keeps only the newest matching records; 0 or less keeps all.
	Limit int
}

func (q AuditQuery) match(r *cutoverv1.AuditRecord) bool {
	t := r.GetTime().AsTime()
	return (q.App == "" || r.GetApp() == q.App) &&
		(q.Actor == "" || r.GetActor() == q.Actor) &&
		(q.Since.IsZero() || !t.Before(q.Since)) &&
		(q.Until.IsZero() || t.Before(q.Until))
}

// auditHeadLen is the length of the head value: seq (8 bytes big-endian)
// then the SHA-256 of that record.
const auditHeadLen = 8 + sha256.Size

// AppendAudit appends records to the audit trail in one transaction, for
// events that change nothing else in the store (a refused request, say).
// It fills in each record's Seq, PrevHash and Hash, and Time when unset.
// Safe for concurrent use; not idempotent (each call adds records).
func (b *Bolt) AppendAudit(_ context.Context, recs ...*cutoverv1.AuditRecord) error {
	if err := b.db.Update(func(tx *bolt.Tx) error { return b.appendAudit(tx, recs) }); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// OnAudit sets fn to receive the records of every transaction that appends
// audit records, once it has committed: after bbolt has released the
// write lock, never for a transaction that rolled back, in seq order within
// one call. Calls from concurrent writers may overlap or arrive out of seq
// order. fn runs on the writer's goroutine, so it must return at once; it
// must not modify the records (clone to keep them). nil removes the hook.
// Safe for concurrent use.
func (b *Bolt) OnAudit(fn func([]*cutoverv1.AuditRecord)) {
	if fn == nil {
		b.onAudit.Store(nil)
		return
	}
	b.onAudit.Store(&fn)
}

// appendAudit chains recs after the head within tx, so a change and its
// records commit or roll back together. Every writer of the audit bucket
// goes through it.
func (b *Bolt) appendAudit(tx *bolt.Tx, recs []*cutoverv1.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if hook := b.onAudit.Load(); hook != nil {
		tx.OnCommit(func() { (*hook)(recs) })
	}
	meta, bucket := tx.Bucket(bucketMeta), tx.Bucket(bucketAudit)
	seq, prev, err := auditHead(meta)
	if err != nil {
		return err
	}
	for _, r := range recs {
		seq++
		r.Seq = seq
		r.PrevHash = prev
		if r.Time == nil {
			r.Time = timestamppb.Now()
		}
		if r.Hash, err = auditHash(r); err != nil {
			return err
		}
		data, err := marshal(r)
		if err != nil {
			return fmt.Errorf("encode audit record %d: %w", seq, err)
		}
		if err := bucket.Put(auditKey(seq), data); err != nil {
			return err
		}
		prev = r.Hash
	}
	return meta.Put(keyAuditHead, slices.Concat(auditKey(seq), prev))
}

// auditHead reads the head: the last seq appended and its hash; zero and
// nil before the first record.
func auditHead(meta *bolt.Bucket) (uint64, []byte, error) {
	v := meta.Get(keyAuditHead)
	if v == nil {
		return 0, nil, nil
	}
	if len(v) != auditHeadLen {
		return 0, nil, fmt.Errorf("%w: the head is %d bytes long, want %d", ErrAuditBroken, len(v), auditHeadLen)
	}
	return binary.BigEndian.Uint64(v), bytes.Clone(v[8:]), nil
}

// auditHash is SHA-256(prev_hash || deterministic encoding of r with hash
// empty). r is left as it was.
func auditHash(r *cutoverv1.AuditRecord) ([]byte, error) {
	sealed := r.Hash
	r.Hash = nil
	data, err := marshal(r)
	r.Hash = sealed
	if err != nil {
		return nil, fmt.Errorf("encode audit record %d: %w", r.GetSeq(), err)
	}
	h := sha256.New()
	h.Write(r.GetPrevHash())
	h.Write(data)
	return h.Sum(nil), nil
}

// auditKey orders records by seq: 8 bytes big-endian.
func auditKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// auditClockSlack is how far out of time order two records may be stored.
const auditClockSlack = time.Minute

// ListAudit returns the newest records that match q, oldest first, and
// whether older matching records were left out by q.Limit. Safe for
// concurrent use.
func (b *Bolt) ListAudit(_ context.Context, q AuditQuery) ([]*cutoverv1.AuditRecord, bool, error) {
	var out []*cutoverv1.AuditRecord
	truncated := false
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			r := &cutoverv1.AuditRecord{}
			if err := proto.Unmarshal(v, r); err != nil {
				return fmt.Errorf("%w: audit record %x is unreadable: %v", ErrAuditBroken, k, err)
			}
			// Records are appended in time order (give or take writers
			// racing): well before since, nothing older can match.
			if !q.Since.IsZero() && r.GetTime().AsTime().Before(q.Since.Add(-auditClockSlack)) {
				return nil
			}
			if !q.match(r) {
				continue
			}
			if q.Limit > 0 && len(out) == q.Limit {
				truncated = true
				return nil
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("list audit: %w", err)
	}
	slices.Reverse(out)
	return out, truncated, nil
}

// AuditRecords returns up to n records (all when n <= 0) with a seq greater
// than after, oldest first: the pages of an export. Safe for concurrent use.
func (b *Bolt) AuditRecords(_ context.Context, after uint64, n int) ([]*cutoverv1.AuditRecord, error) {
	var out []*cutoverv1.AuditRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(auditKey(after + 1)); k != nil && (n <= 0 || len(out) < n); k, v = c.Next() {
			r := &cutoverv1.AuditRecord{}
			if err := proto.Unmarshal(v, r); err != nil {
				return fmt.Errorf("%w: audit record %x is unreadable: %v", ErrAuditBroken, k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return out, nil
}

// VerifyAudit walks the whole audit trail in order and returns how many
// records it checked and, when the chain is broken, an *AuditBreak (which
// wraps ErrAuditBroken) naming the first bad or missing record: unreadable
// bytes, a gap or a record out of place, a prev_hash that is not the
// previous record's hash, a hash that does not match the content, or a
// head that does not name the last record (the last record removed).
// Safe for concurrent use.
func (b *Bolt) VerifyAudit(_ context.Context) (uint64, error) {
	var checked uint64
	err := b.db.View(func(tx *bolt.Tx) error {
		var prev []byte
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			hash, err := verifyRecord(checked+1, prev, k, v)
			if err != nil {
				return err
			}
			prev = hash
			checked++
		}
		return verifyHead(tx.Bucket(bucketMeta), checked, prev)
	})
	return checked, err
}

// verifyRecord checks the record stored under key k, which must be record
// want and chained to the hash prev, and returns its hash.
func verifyRecord(want uint64, prev, k, v []byte) ([]byte, error) {
	if len(k) != 8 {
		return nil, &AuditBreak{Seq: want, Problem: fmt.Sprintf("expected, found the stray key %x", k)}
	}
	seq := binary.BigEndian.Uint64(k)
	switch {
	case seq > want:
		return nil, &AuditBreak{Seq: want, Problem: fmt.Sprintf("is missing (the next record stored is %d)", seq)}
	case seq < want: // only 0 sorts before 1
		return nil, &AuditBreak{Seq: want, Problem: fmt.Sprintf("expected, found a record stored under %d", seq)}
	}
	r := &cutoverv1.AuditRecord{}
	if err := proto.Unmarshal(v, r); err != nil {
		return nil, &AuditBreak{Seq: seq, Problem: fmt.Sprintf("is unreadable: %v", err)}
	}
	if r.GetSeq() != seq {
		return nil, &AuditBreak{Seq: seq, Problem: fmt.Sprintf("holds record %d: records were moved or reordered", r.GetSeq())}
	}
	if !bytes.Equal(r.GetPrevHash(), prev) {
		return nil, &AuditBreak{Seq: seq, Problem: "prev_hash does not match the previous record's hash"}
	}
	h, err := auditHash(r)
	if err != nil {
		return nil, &AuditBreak{Seq: seq, Problem: err.Error()}
	}
	if !bytes.Equal(h, r.GetHash()) {
		return nil, &AuditBreak{Seq: seq, Problem: "hash does not match its content"}
	}
	return h, nil
}

// verifyHead checks that the head names the last record, last, whose hash
// is hash: removing the newest records leaves an intact but shorter chain
// that only the head reveals.
func verifyHead(meta *bolt.Bucket, last uint64, hash []byte) error {
	if meta.Get(keyAuditHead) == nil {
		if last > 0 {
			return &AuditBreak{Seq: last, Problem: "the head that names the last record is missing"}
		}
		return nil
	}
	seq, headHash, err := auditHead(meta)
	switch {
	case err != nil:
		return &AuditBreak{Seq: last, Problem: "the head that names the last record is unreadable"}
	case seq > last:
		return &AuditBreak{Seq: last + 1, Problem: fmt.Sprintf("is missing (the head names record %d as the last)", seq)}
	case seq < last:
		return &AuditBreak{Seq: seq + 1, Problem: fmt.Sprintf("was not appended through the chain (the head names record %d as the last)", seq)}
	case !bytes.Equal(headHash, hash):
		return &AuditBreak{Seq: last, Problem: "hash does not match the head"}
	}
	return nil
}
