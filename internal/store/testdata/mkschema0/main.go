// Command mkschema0 writes schema0.db, the store file as Cutover's first
// builds left it: a fresh bbolt file (bbolt v1.5.0, 4 KiB pages) with no
// buckets at all, so no meta bucket and no schema key. It was run once, from
// the repository root:
//
//	go run ./internal/store/testdata/mkschema0 internal/store/testdata/schema0.db
//
// and its output committed; TestOpenUpgradesSchema0 opens a copy.
package main

import (
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkschema0 FILE")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func write(path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists; remove it first", path)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	return db.Close()
}
