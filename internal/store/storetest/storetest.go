// Package storetest holds test helpers shared by Cutover's bbolt files (the
// control plane's store and the agent's state).
package storetest

import (
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Check runs bbolt's consistency check on db and reports every problem it
// finds as a test error. Call it before closing the file, typically from
// t.Cleanup. A db that is already closed is not checked: a test that closes
// a file early (to reopen it) checks it before closing it.
func Check(tb testing.TB, db *bolt.DB) {
	tb.Helper()
	var problems []error
	err := db.View(func(tx *bolt.Tx) error {
		// Drain the channel: the checker goroutine ends only when it
		// has sent every error.
		for err := range tx.Check() {
			problems = append(problems, err)
		}
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return
	}
	if err != nil {
		tb.Errorf("consistency check of %s: %v", db.Path(), err)
	}
	for _, p := range problems {
		tb.Errorf("consistency check of %s: %v", db.Path(), p)
	}
}
