package state_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/cutover-dev/cutover/agent/state"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
	"github.com/cutover-dev/cutover/internal/store/storetest"
)

// openState opens the state file at path; when the test ends it runs bbolt's
// consistency check on the file and closes it.
func openState(t *testing.T, path string) *state.DB {
	t.Helper()
	d, err := state.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		storetest.Check(t, d.BoltDB())
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

func newState(t *testing.T) (*state.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.db")
	return openState(t, path), path
}

// reopen checks and closes d, then opens its file again, as a restarted
// agent would.
func reopen(t *testing.T, d *state.DB, path string) *state.DB {
	t.Helper()
	storetest.Check(t, d.BoltDB())
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openState(t, path)
}

func desired(app string, gen int64, weights ...int32) *cutoverv1.DesiredApp {
	a := &cutoverv1.DesiredApp{App: app, Generation: gen, Listen: "127.0.0.1:8080"}
	tracks := []cutoverv1.Track{cutoverv1.Track_TRACK_STABLE, cutoverv1.Track_TRACK_CANARY}
	for i, w := range weights {
		a.Revisions = append(a.Revisions, &cutoverv1.DesiredRevision{
			Track: tracks[i%2],
			Revision: &cutoverv1.Revision{
				Name:      []string{"v1", "v2"}[i%2],
				Command:   "./" + app,
				Args:      []string{"--port", "$(PORT)"},
				Env:       map[string]string{"Z": "26", "A": "1"},
				Instances: 2,
			},
			Weight: w,
		})
	}
	return a
}

func assertApps(t *testing.T, d *state.DB, want ...*cutoverv1.DesiredApp) {
	t.Helper()
	got, err := d.Apps()
	if err != nil {
		t.Fatalf("Apps: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("Apps returned %d apps, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("Apps[%d] =\n%v\nwant\n%v", i, got[i], want[i])
		}
	}
}

func TestAppsRoundTrip(t *testing.T) {
	t.Parallel()
	d, path := newState(t)
	assertApps(t, d)

	web, api := desired("web", 3, 90, 10), desired("api", 1, 100)
	for _, a := range []*cutoverv1.DesiredApp{web, api} {
		if err := d.PutApp(a); err != nil {
			t.Fatalf("PutApp(%s): %v", a.GetApp(), err)
		}
	}
	assertApps(t, d, api, web)

	// A newer desired state replaces the old one.
	web4 := desired("web", 4, 50, 50)
	if err := d.PutApp(web4); err != nil {
		t.Fatal(err)
	}
	assertApps(t, d, api, web4)

	d = reopen(t, d, path)
	assertApps(t, d, api, web4)

	if err := d.DeleteApp("api"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteApp("never-stored"); err != nil {
		t.Errorf("DeleteApp of an unknown app: %v", err)
	}
	assertApps(t, d, web4)
	d = reopen(t, d, path)
	assertApps(t, d, web4)
}

func inst(app, rev string, index, pid int, ticks uint64) state.Instance {
	return state.Instance{App: app, Revision: rev, Index: index, PID: pid, Port: 40000 + pid%1000, StartTicks: ticks}
}

func assertInstances(t *testing.T, d *state.DB, app string, want ...state.Instance) {
	t.Helper()
	got, err := d.Instances(app)
	if err != nil {
		t.Fatalf("Instances(%s): %v", app, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Instances(%s) =\n %+v\nwant\n %+v", app, got, want)
	}
}

func TestInstancesRoundTrip(t *testing.T) {
	t.Parallel()
	d, path := newState(t)
	assertInstances(t, d, "demo")

	a := inst("demo", "v1-3f2a", 0, 101, 5000)
	b := inst("demo", "v1-3f2a", 1, 102, 5001)
	c := inst("demo", "v2-9c1d", 0, 201, 7000)
	for _, i := range []state.Instance{c, b, a} {
		if err := d.PutInstance(i); err != nil {
			t.Fatalf("PutInstance(%s): %v", i.Key(), err)
		}
	}
	// Ordered by key: revision, then index.
	assertInstances(t, d, "demo", a, b, c)

	// The agent restarts: every record is still there, field for field.
	d = reopen(t, d, path)
	assertInstances(t, d, "demo", a, b, c)

	if err := d.DeleteInstance(b); err != nil {
		t.Fatal(err)
	}
	assertInstances(t, d, "demo", a, c)
	// Deleting again, or deleting what was never stored, is harmless.
	if err := d.DeleteInstance(b); err != nil {
		t.Errorf("second DeleteInstance: %v", err)
	}
	if err := d.DeleteInstance(inst("ghost", "v1", 0, 1, 1)); err != nil {
		t.Errorf("DeleteInstance of an unknown record: %v", err)
	}
	assertInstances(t, d, "demo", a, c)
}

func TestInstanceKey(t *testing.T) {
	t.Parallel()
	if got := inst("demo", "v1-3f2a", 12, 1, 1).Key(); got != "demo/v1-3f2a/12" {
		t.Errorf("Key = %q, want demo/v1-3f2a/12", got)
	}
}

// Keys share a byte prefix ("demo" is a prefix of "demo2"): Instances must
// return exactly the app's own records, whichever apps sort around it.
func TestInstancesPrefixIsolation(t *testing.T) {
	t.Parallel()
	d, _ := newState(t)
	records := map[string][]state.Instance{
		"dem":    {inst("dem", "v1", 0, 11, 1)},
		"demo":   {inst("demo", "v1", 0, 21, 1), inst("demo", "v1", 1, 22, 1)},
		"demo-a": {inst("demo-a", "v1", 0, 31, 1)},
		"demo2":  {inst("demo2", "v1", 0, 41, 1), inst("demo2", "v3", 0, 42, 1)},
		"demoz":  {inst("demoz", "v1", 0, 51, 1)},
	}
	for _, rs := range records {
		for _, r := range rs {
			if err := d.PutInstance(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	for app, want := range records {
		assertInstances(t, d, app, want...)
	}
	assertInstances(t, d, "de")
	assertInstances(t, d, "demo3")
	assertInstances(t, d, "")
}

// A stopped process's record is deleted only if it still describes that
// process: a replacement started in the same slot (same key, another PID or
// start time) keeps its record.
func TestDeleteInstanceKeepsReplacement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		replacement state.Instance // now in the slot
		stopped     state.Instance // the process being forgotten
	}{
		{"other pid", inst("demo", "v1", 0, 200, 5000), inst("demo", "v1", 0, 100, 5000)},
		// The kernel reused the PID for the replacement.
		{"reused pid", inst("demo", "v1", 0, 100, 9000), inst("demo", "v1", 0, 100, 5000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, path := newState(t)
			if err := d.PutInstance(tt.stopped); err != nil {
				t.Fatal(err)
			}
			if err := d.PutInstance(tt.replacement); err != nil {
				t.Fatal(err)
			}
			if err := d.DeleteInstance(tt.stopped); err != nil {
				t.Fatal(err)
			}
			assertInstances(t, d, "demo", tt.replacement)
			d = reopen(t, d, path)
			assertInstances(t, d, "demo", tt.replacement)

			// The replacement itself can still be forgotten.
			if err := d.DeleteInstance(tt.replacement); err != nil {
				t.Fatal(err)
			}
			assertInstances(t, d, "demo")
		})
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "agent.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return store.EnsureSchema(tx, state.SchemaVersion+1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	d, err := state.Open(path)
	if !errors.Is(err, store.ErrNewerSchema) {
		t.Fatalf("Open of a newer file = %v, %v; want ErrNewerSchema", d, err)
	}
	// The refused file was released: it opens again at once.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("file still locked after refused Open: %v", err)
	}
	storetest.Check(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
