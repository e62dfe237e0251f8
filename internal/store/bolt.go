package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// SchemaVersion is the schema this build writes.
const SchemaVersion = 1

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
	keySchema      = []byte("schema")
)

// Bolt is the bbolt-backed store. It is safe for concurrent use.
type Bolt struct {
	db *bolt.DB
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
	// Version 0 -> 1: create the buckets. Later versions add their steps here.
	return EnsureSchema(tx, SchemaVersion, bucketRollouts, bucketClusters)
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

// PutRollout stores a rollout, replacing any with the same name.
func (b *Bolt) PutRollout(_ context.Context, r *cutoverv1.Rollout) error {
	return b.put(bucketRollouts, r.GetName(), r)
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

// PutCluster stores a cluster, replacing any with the same name.
func (b *Bolt) PutCluster(_ context.Context, c *cutoverv1.Cluster) error {
	return b.put(bucketClusters, c.GetName(), c)
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

func (b *Bolt) put(bucket []byte, key string, m proto.Message) error {
	if key == "" {
		return fmt.Errorf("put %s: empty key", bucket)
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(key), data)
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
