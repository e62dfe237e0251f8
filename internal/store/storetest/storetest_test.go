package storetest_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/cutover-dev/cutover/internal/store/storetest"
)

// recorder is a testing.TB that keeps what Check reports.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func fill(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := range 100 {
			if err := b.Put(fmt.Appendf(nil, "key-%03d", i), []byte("value")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestCheckPassesSoundFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ok.db")
	fill(t, path)
	r := &recorder{TB: t}
	storetest.Check(r, open(t, path))
	if len(r.errs) != 0 {
		t.Errorf("Check reported %q on a sound file", r.errs)
	}
}

// A page both in use and on the freelist would be handed out again and
// overwritten: the check must say so.
func TestCheckReportsCorruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.db")
	fill(t, path)
	db := open(t, path)
	var root uint64
	err := db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket([]byte("b")).Root())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Rewrite every freelist page (bbolt's page header: id u64, flags u16,
	// count u16, overflow u32; then the free page ids) to list only the
	// bucket's root page. Stale freelist pages are never read, so this
	// reaches the live one without parsing the meta pages.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize, freelistFlag = 4096, 0x10
	rewritten := 0
	for off := 0; off+pageSize <= len(data); off += pageSize {
		page := data[off : off+pageSize]
		if binary.LittleEndian.Uint16(page[8:]) != freelistFlag {
			continue
		}
		binary.LittleEndian.PutUint16(page[10:], 1)
		binary.LittleEndian.PutUint64(page[16:], root)
		rewritten++
	}
	if rewritten == 0 {
		t.Fatal("no freelist page found")
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	r := &recorder{TB: t}
	storetest.Check(r, open(t, path))
	want := fmt.Sprintf("page %d: reachable freed", root)
	if !strings.Contains(strings.Join(r.errs, "\n"), want) {
		t.Errorf("Check reported %q, want an error containing %q", r.errs, want)
	}
}

func TestCheckSkipsClosedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ok.db")
	fill(t, path)
	db := open(t, path)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	storetest.Check(r, db)
	if len(r.errs) != 0 {
		t.Errorf("Check of a closed file reported %q", r.errs)
	}
}
