package state

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
)

// SchemaVersion is the schema this build writes.
const SchemaVersion = 1

var (
	bucketApps      = []byte("apps")
	bucketInstances = []byte("instances")
)

// Instance records one process the agent started.
type Instance struct {
	App      string `json:"app"`
	Revision string `json:"revision"` // revision key: name plus spec hash
	Index    int    `json:"index"`
	PID      int    `json:"pid"`
	Port     int    `json:"port"`
	// StartTicks is the process start time from /proc/<pid>/stat, in clock
	// ticks since boot; with PID it identifies the process uniquely.
	StartTicks uint64 `json:"startTicks"`
}

// Key is the instance's key in the instances bucket.
func (i Instance) Key() string {
	return i.App + "/" + i.Revision + "/" + strconv.Itoa(i.Index)
}

// DB is the agent's state file. It is safe for concurrent use.
type DB struct{ db *bolt.DB }

// Open opens or creates the state file and upgrades its schema.
func Open(path string) (*DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open agent state %s: %w", path, err)
	}
	if err := db.Update(upgrade); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("upgrade agent state %s: %w", path, err)
	}
	return &DB{db: db}, nil
}

func upgrade(tx *bolt.Tx) error {
	return store.EnsureSchema(tx, SchemaVersion, bucketApps, bucketInstances)
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// BoltDB exposes the handle for consistency checks in tests.
func (d *DB) BoltDB() *bolt.DB { return d.db }

// PutApp stores the desired state of an app.
func (d *DB) PutApp(app *cutoverv1.DesiredApp) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(app)
	if err != nil {
		return fmt.Errorf("encode app %s: %w", app.GetApp(), err)
	}
	return d.update("put app "+app.GetApp(), func(tx *bolt.Tx) error {
		return tx.Bucket(bucketApps).Put([]byte(app.GetApp()), data)
	})
}

// DeleteApp forgets an app.
func (d *DB) DeleteApp(name string) error {
	return d.update("delete app "+name, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketApps).Delete([]byte(name))
	})
}

// Apps returns every stored desired state.
func (d *DB) Apps() ([]*cutoverv1.DesiredApp, error) {
	var out []*cutoverv1.DesiredApp
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketApps).ForEach(func(k, v []byte) error {
			a := &cutoverv1.DesiredApp{}
			if err := proto.Unmarshal(v, a); err != nil {
				return fmt.Errorf("decode app %s: %w", k, err)
			}
			out = append(out, a)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	return out, nil
}

// PutInstance records a started process.
func (d *DB) PutInstance(i Instance) error {
	data, err := json.Marshal(i)
	if err != nil {
		return fmt.Errorf("encode instance %s: %w", i.Key(), err)
	}
	return d.update("put instance "+i.Key(), func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInstances).Put([]byte(i.Key()), data)
	})
}

// DeleteInstance forgets a process. A record that now holds another
// process (a replacement started in the same slot) is left alone.
func (d *DB) DeleteInstance(i Instance) error {
	return d.update("delete instance "+i.Key(), func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInstances)
		v := b.Get([]byte(i.Key()))
		if v == nil {
			return nil
		}
		var cur Instance
		if err := json.Unmarshal(v, &cur); err == nil && (cur.PID != i.PID || cur.StartTicks != i.StartTicks) {
			return nil
		}
		return b.Delete([]byte(i.Key()))
	})
}

// Instances returns the recorded processes of an app.
func (d *DB) Instances(app string) ([]Instance, error) {
	var out []Instance
	prefix := []byte(app + "/")
	err := d.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketInstances).Cursor()
		for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
			var i Instance
			if err := json.Unmarshal(v, &i); err != nil {
				return fmt.Errorf("decode instance %s: %w", k, err)
			}
			out = append(out, i)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list instances of %s: %w", app, err)
	}
	return out, nil
}

func (d *DB) update(op string, fn func(tx *bolt.Tx) error) error {
	if err := d.db.Update(fn); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
