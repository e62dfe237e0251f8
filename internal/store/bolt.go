package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// SchemaVersion is the schema this build writes.
const SchemaVersion = 4

// Sentinel errors.
var (
	// ErrNotFound: no record has that key.
	ErrNotFound = errors.New("not found")
	// ErrNewerSchema: the file was written by a newer build of Cutover.
	ErrNewerSchema = errors.New("database schema is newer than this build")
)

var (
	bucketMeta     = []byte("meta")
	bucketRollouts = []byte("rollouts")
	bucketClusters = []byte("clusters")
	bucketHistory  = []byte("history")
	bucketAudit    = []byte("audit")
	bucketEvals    = []byte("evaluations")
	keySchema      = []byte("schema")
	keyAuditHead   = []byte("audit_head")
)

// Bolt is the bbolt-backed store. It is safe for concurrent use.
type Bolt struct {
	db *bolt.DB
	// onAudit receives committed audit records; see OnAudit.
	onAudit atomic.Pointer[func([]*cutoverv1.AuditRecord)]
}

// Open opens (creating if needed) the database file at path and upgrades its
// schema.
func Open(path string) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	b := &Bolt{db: db}
	if err := db.Update(upgrade); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("upgrade store %s: %w", path, err)
	}
	return b, nil
}

// upgrade brings a file of any older schema to SchemaVersion.
func upgrade(tx *bolt.Tx) error {
	// 0 -> 1 created rollouts and clusters; 1 -> 2 adds history; 2 -> 3
	// adds audit (its head, in meta, appears with the first record); 3 -> 4
	// adds evaluations. Each step only adds buckets, so creating whatever
	// is missing upgrades any older file. A step that rewrites records goes
	// here, before EnsureSchema.
	return EnsureSchema(tx, SchemaVersion, bucketRollouts, bucketClusters, bucketHistory, bucketAudit, bucketEvals)
}

// EnsureSchema creates the meta bucket and the given buckets and records
// version as the file's schema, refusing a file whose recorded schema is
// newer (ErrNewerSchema). Both bbolt files of Cutover use it.
func EnsureSchema(tx *bolt.Tx, version int, buckets ...[]byte) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	have := 0
	if v := meta.Get(keySchema); v != nil {
		if have, err = strconv.Atoi(string(v)); err != nil {
			return fmt.Errorf("schema version %q: %w", v, err)
		}
	}
	if have > version {
		return fmt.Errorf("%w: file has %d, build has %d", ErrNewerSchema, have, version)
	}
	for _, name := range buckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return meta.Put(keySchema, []byte(strconv.Itoa(version)))
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }

// DB exposes the handle for consistency checks in tests.
func (b *Bolt) DB() *bolt.DB { return b.db }

// PutRollout stores a rollout, replacing any with the same name, and
// appends audit (see AppendAudit) in the same transaction.
func (b *Bolt) PutRollout(_ context.Context, r *cutoverv1.Rollout, audit ...*cutoverv1.AuditRecord) error {
	return b.put(bucketRollouts, r.GetName(), r, audit)
}

// GetRollout returns the named rollout or ErrNotFound.
func (b *Bolt) GetRollout(_ context.Context, name string) (*cutoverv1.Rollout, error) {
	r := &cutoverv1.Rollout{}
	if err := b.get(bucketRollouts, name, r); err != nil {
		return nil, fmt.Errorf("rollout %q: %w", name, err)
	}
	return r, nil
}

// ListRollouts returns every rollout ordered by name.
func (b *Bolt) ListRollouts(_ context.Context) ([]*cutoverv1.Rollout, error) {
	var out []*cutoverv1.Rollout
	err := b.each(bucketRollouts, func() proto.Message {
		r := &cutoverv1.Rollout{}
		out = append(out, r)
		return r
	})
	return out, err
}

// ReplaceRollout stores r as its app's current rollout and, when archive is
// not nil, moves archive (the rollout r replaces) into the app's history,
// then drops all but the newest keep history entries of that app, and
// appends audit (see AppendAudit); audit records are never dropped. It is
// one transaction: a crash leaves either the old state or the new one.
func (b *Bolt) ReplaceRollout(_ context.Context, r, archive *cutoverv1.Rollout, keep int, audit ...*cutoverv1.AuditRecord) error {
	data, err := marshal(r)
	if err != nil {
		return fmt.Errorf("encode rollout %s: %w", r.GetName(), err)
	}
	var old []byte
	if archive != nil {
		if old, err = marshal(archive); err != nil {
			return fmt.Errorf("encode rollout %s: %w", archive.GetName(), err)
		}
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketRollouts).Put([]byte(r.GetName()), data); err != nil {
			return err
		}
		if err := b.appendAudit(tx, audit); err != nil {
			return err
		}
		if archive == nil {
			return nil
		}
		h := tx.Bucket(bucketHistory)
		if err := h.Put(historyKey(archive.GetName(), archive.GetStatus().GetRolloutNumber()), old); err != nil {
			return err
		}
		return trimHistory(h, tx.Bucket(bucketEvals), r.GetName(), keep)
	})
	if err != nil {
		return fmt.Errorf("replace rollout %s: %w", r.GetName(), err)
	}
	return nil
}

// History returns the app's archived rollouts, newest first.
func (b *Bolt) History(_ context.Context, name string) ([]*cutoverv1.Rollout, error) {
	var out []*cutoverv1.Rollout
	prefix := historyPrefix(name)
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			r := &cutoverv1.Rollout{}
			if err := proto.Unmarshal(v, r); err != nil {
				return fmt.Errorf("decode history %q: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", name, err)
	}
	slices.Reverse(out)
	return out, nil
}

// historyKey orders an app's entries by rollout number: "<name>/" and the
// number as 8 big-endian bytes. Names never contain '/'.
func historyKey(name string, number int64) []byte {
	return binary.BigEndian.AppendUint64(historyPrefix(name), uint64(number))
}

func historyPrefix(name string) []byte { return []byte(name + "/") }

// trimHistory drops all but the newest keep history entries of an app,
// each with its evaluation record (same key); never an audit record.
func trimHistory(h, evals *bolt.Bucket, name string, keep int) error {
	prefix := historyPrefix(name)
	var keys [][]byte
	c := h.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for len(keys) > max(keep, 0) {
		if err := h.Delete(keys[0]); err != nil {
			return err
		}
		if err := evals.Delete(keys[0]); err != nil {
			return err
		}
		keys = keys[1:]
	}
	return nil
}

func marshal(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// PutCluster stores a cluster, replacing any with the same name, and
// appends audit (see AppendAudit) in the same transaction.
func (b *Bolt) PutCluster(_ context.Context, c *cutoverv1.Cluster, audit ...*cutoverv1.AuditRecord) error {
	return b.put(bucketClusters, c.GetName(), c, audit)
}

// ListClusters returns every cluster ordered by name.
func (b *Bolt) ListClusters(_ context.Context) ([]*cutoverv1.Cluster, error) {
	var out []*cutoverv1.Cluster
	err := b.each(bucketClusters, func() proto.Message {
		c := &cutoverv1.Cluster{}
		out = append(out, c)
		return c
	})
	return out, err
}

func (b *Bolt) put(bucket []byte, key string, m proto.Message, audit []*cutoverv1.AuditRecord) error {
	if key == "" {
		return fmt.Errorf("put %s: empty key", bucket)
	}
	data, err := marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucket).Put([]byte(key), data); err != nil {
			return err
		}
		return b.appendAudit(tx, audit)
	})
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (b *Bolt) get(bucket []byte, key string, m proto.Message) error {
	return b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		return proto.Unmarshal(v, m)
	})
}

func (b *Bolt) each(bucket []byte, next func() proto.Message) error {
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			if err := proto.Unmarshal(v, next()); err != nil {
				return fmt.Errorf("decode %s/%s: %w", bucket, k, err)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", bucket, err)
	}
	return nil
}
