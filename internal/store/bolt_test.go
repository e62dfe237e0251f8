package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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

// openStore opens the store file at path; when the test ends it runs bbolt's
// consistency check on the file and closes it.
func openStore(t *testing.T, path string) *store.Bolt {
	t.Helper()
	b, err := store.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		storetest.Check(t, b.DB())
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// newStore opens a new store in the test's temporary directory and returns
// it with its path.
func newStore(t *testing.T) (*store.Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cutover.db")
	return openStore(t, path), path
}

// reopen checks and closes b, then opens its file again.
func reopen(t *testing.T, b *store.Bolt, path string) *store.Bolt {
	t.Helper()
	storetest.Check(t, b.DB())
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openStore(t, path)
}

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

func rollout(name, revision string, phase cutoverv1.RolloutPhase) *cutoverv1.Rollout {
	return &cutoverv1.Rollout{
		Name: name,
		Spec: &cutoverv1.RolloutSpec{
			Revision: &cutoverv1.Revision{
				Name:          revision,
				Command:       "./" + name,
				Args:          []string{"--port", "$(PORT)"},
				Env:           map[string]string{"B": "2", "A": "1", "C": "3"},
				Instances:     2,
				ReadinessPath: "/healthz",
				ReadyTimeout:  "30s",
			},
			Endpoint: &cutoverv1.Endpoint{Listen: ":8080", ListenOverrides: map[string]string{"us-1": ":9090"}},
			Targets: &cutoverv1.Targets{Waves: []*cutoverv1.Wave{
				{Name: "canary", Clusters: []string{"eu-1"}},
				{Name: "rest", Clusters: []string{"us-1", "us-2"}},
			}},
			Strategy: &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Canary{Canary: &cutoverv1.CanaryStrategy{
				Steps: []*cutoverv1.CanaryStep{
					{Step: &cutoverv1.CanaryStep_SetWeight{SetWeight: 0}},
					{Step: &cutoverv1.CanaryStep_Pause{Pause: &cutoverv1.PauseStep{Duration: "30s"}}},
				},
			}}},
		},
		Status: &cutoverv1.RolloutStatus{
			Phase:         phase,
			PauseReason:   cutoverv1.PauseReason_PAUSE_REASON_OPERATOR,
			Message:       "paused by operator",
			CurrentWave:   1,
			CurrentStep:   1,
			StepStartTime: timestamppb.New(t0.Add(time.Minute)),
			StartTime:     timestamppb.New(t0),
			RolloutNumber: 7,
			Clusters: []*cutoverv1.ClusterProgress{{
				Cluster:            "eu-1",
				Phase:              cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED,
				StableRevision:     &cutoverv1.Revision{Name: "v1", Command: "./" + name},
				CanaryWeight:       100,
				DesiredGeneration:  4,
				ObservedGeneration: 4,
				Converged:          true,
				ObservedRevisions: []*cutoverv1.ObservedRevision{{
					Revision: revision, Track: cutoverv1.Track_TRACK_CANARY, InstancesWanted: 2, InstancesReady: 2, Weight: 100,
				}},
			}},
		},
		CreateTime: timestamppb.New(t0),
		UpdateTime: timestamppb.New(t0.Add(time.Second)),
	}
}

func cluster(name, region string) *cutoverv1.Cluster {
	return &cutoverv1.Cluster{
		Name:              name,
		Region:            region,
		Labels:            map[string]string{"tier": "prod", "dc": name},
		Runtime:           "local",
		AgentVersion:      "0.1.0",
		Capabilities:      []string{"canary", "proxy"},
		Status:            cutoverv1.ClusterStatus_CLUSTER_STATUS_CONNECTED,
		LastHeartbeatTime: timestamppb.New(t0.Add(2 * time.Second)),
		ConnectTime:       timestamppb.New(t0),
	}
}

func TestRolloutsRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newStore(t)

	// Put out of order: List orders by name.
	want := map[string]*cutoverv1.Rollout{
		"web":  rollout("web", "v2", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED),
		"api":  rollout("api", "v7", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING),
		"zeta": rollout("zeta", "v1", cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY),
	}
	for _, name := range []string{"web", "zeta", "api"} {
		if err := b.PutRollout(ctx, want[name]); err != nil {
			t.Fatalf("PutRollout(%s): %v", name, err)
		}
	}
	for name, w := range want {
		got, err := b.GetRollout(ctx, name)
		if err != nil {
			t.Fatalf("GetRollout(%s): %v", name, err)
		}
		if !proto.Equal(got, w) {
			t.Errorf("GetRollout(%s) =\n%v\nwant\n%v", name, got, w)
		}
	}
	assertRollouts(t, b, want["api"], want["web"], want["zeta"])

	// A put with an existing name replaces the record.
	changed := proto.Clone(want["web"]).(*cutoverv1.Rollout)
	changed.Status.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED
	changed.Status.Clusters = nil
	changed.Spec.Revision.Name = "v3"
	if err := b.PutRollout(ctx, changed); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetRollout(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, changed) {
		t.Errorf("after replace GetRollout(web) =\n%v\nwant\n%v", got, changed)
	}
	assertRollouts(t, b, want["api"], changed, want["zeta"])
}

func assertRollouts(t *testing.T, b *store.Bolt, want ...*cutoverv1.Rollout) {
	t.Helper()
	got, err := b.ListRollouts(context.Background())
	if err != nil {
		t.Fatalf("ListRollouts: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("ListRollouts returned %d rollouts, want %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("ListRollouts[%d] =\n%v\nwant\n%v", i, got[i], want[i])
		}
	}
}

func TestClustersRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newStore(t)

	got, err := b.ListClusters(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("ListClusters on a new store = %v, %v; want none", got, err)
	}
	us, eu := cluster("us-1", "us-east"), cluster("eu-1", "eu-west")
	for _, c := range []*cutoverv1.Cluster{us, eu} {
		if err := b.PutCluster(ctx, c); err != nil {
			t.Fatalf("PutCluster(%s): %v", c.GetName(), err)
		}
	}
	// The agent reconnects and describes itself anew.
	eu2 := proto.Clone(eu).(*cutoverv1.Cluster)
	eu2.Status = cutoverv1.ClusterStatus_CLUSTER_STATUS_DISCONNECTED
	eu2.Capabilities = nil
	if err := b.PutCluster(ctx, eu2); err != nil {
		t.Fatal(err)
	}

	got, err = b.ListClusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []*cutoverv1.Cluster{eu2, us}
	if len(got) != len(want) {
		t.Fatalf("ListClusters returned %d clusters, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("ListClusters[%d] =\n%v\nwant\n%v", i, got[i], want[i])
		}
	}
}

func TestGetRolloutNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newStore(t)

	rs, err := b.ListRollouts(ctx)
	if err != nil || len(rs) != 0 {
		t.Fatalf("ListRollouts on a new store = %v, %v; want none", rs, err)
	}
	if err := b.PutRollout(ctx, rollout("web", "v2", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api", "we", "web2", ""} {
		r, err := b.GetRollout(ctx, name)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRollout(%q) = %v, %v; want ErrNotFound", name, r, err)
		}
		if r != nil {
			t.Errorf("GetRollout(%q) returned %v with the error", name, r)
		}
	}
}

func TestPutRefusesEmptyName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newStore(t)

	if err := b.PutRollout(ctx, rollout("", "v2", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING)); err == nil {
		t.Error("PutRollout with an empty name succeeded")
	}
	if err := b.PutCluster(ctx, cluster("", "eu")); err == nil {
		t.Error("PutCluster with an empty name succeeded")
	}
	rs, err := b.ListRollouts(ctx)
	if err != nil || len(rs) != 0 {
		t.Errorf("ListRollouts = %v, %v; want none", rs, err)
	}
	cs, err := b.ListClusters(ctx)
	if err != nil || len(cs) != 0 {
		t.Errorf("ListClusters = %v, %v; want none", cs, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, path := newStore(t)
	web := rollout("web", "v2", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED)
	eu := cluster("eu-1", "eu-west")
	if err := b.PutRollout(ctx, web); err != nil {
		t.Fatal(err)
	}
	if err := b.PutCluster(ctx, eu); err != nil {
		t.Fatal(err)
	}

	b = reopen(t, b, path)
	got, err := b.GetRollout(ctx, "web")
	if err != nil {
		t.Fatalf("GetRollout after reopen: %v", err)
	}
	if !proto.Equal(got, web) {
		t.Errorf("after reopen GetRollout(web) =\n%v\nwant\n%v", got, web)
	}
	cs, err := b.ListClusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || !proto.Equal(cs[0], eu) {
		t.Errorf("after reopen ListClusters = %v, want [%v]", cs, eu)
	}
	if v := schemaOf(t, b.DB()); v != strconv.Itoa(store.SchemaVersion) {
		t.Errorf("schema after reopen = %q, want %d", v, store.SchemaVersion)
	}
}

// schemaOf reads the recorded schema version straight from the file.
func schemaOf(t *testing.T, db *bolt.DB) string {
	t.Helper()
	var v string
	err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if meta == nil {
			return errors.New("no meta bucket")
		}
		v = string(meta.Get([]byte("schema")))
		return nil
	})
	if err != nil {
		t.Fatalf("read schema of %s: %v", db.Path(), err)
	}
	return v
}

// bucketsOf lists the top-level buckets of a file.
func bucketsOf(t *testing.T, db *bolt.DB) []string {
	t.Helper()
	var names []string
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// writeRaw creates a bbolt file at path with meta/schema set to schema,
// as some other build of Cutover would have left it.
func writeRaw(t *testing.T, path, schema string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return meta.Put([]byte("schema"), []byte(schema))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// openRaw opens a file with bbolt alone. The short timeout proves nothing
// else still holds the file's lock.
func openRaw(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("bbolt open %s: %v", path, err)
	}
	t.Cleanup(func() {
		storetest.Check(t, db)
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cutover.db")
	newer := strconv.Itoa(store.SchemaVersion + 1)
	writeRaw(t, path, newer)

	b, err := store.Open(path)
	if !errors.Is(err, store.ErrNewerSchema) {
		t.Fatalf("Open of a schema %s file = %v, %v; want ErrNewerSchema", newer, b, err)
	}
	if b != nil {
		t.Errorf("Open returned a store with the error")
	}
	// The file is untouched (the upgrade rolled back) and released.
	db := openRaw(t, path)
	if v := schemaOf(t, db); v != newer {
		t.Errorf("schema after refused open = %q, want %q", v, newer)
	}
	if got := bucketsOf(t, db); len(got) != 1 || got[0] != "meta" {
		t.Errorf("buckets after refused open = %q, want only meta", got)
	}
}

func TestOpenRefusesUnreadableSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cutover.db")
	writeRaw(t, path, "one")

	_, err := store.Open(path)
	if err == nil {
		t.Fatal("Open of a file with schema \"one\" succeeded")
	}
	if errors.Is(err, store.ErrNewerSchema) {
		t.Errorf("Open = %v; an unreadable version is not a newer one", err)
	}
	if v := schemaOf(t, openRaw(t, path)); v != "one" {
		t.Errorf("schema after refused open = %q, want it untouched", v)
	}
}

func TestOpenNewFile(t *testing.T) {
	t.Parallel()
	b, _ := newStore(t)
	if v := schemaOf(t, b.DB()); v != strconv.Itoa(store.SchemaVersion) {
		t.Errorf("schema of a new file = %q, want %d", v, store.SchemaVersion)
	}
	want := []string{"audit", "clusters", "evaluations", "history", "meta", "rollouts"}
	if got := bucketsOf(t, b.DB()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("buckets of a new file = %q, want %q", got, want)
	}
}

// testdata/schema0.db is a file from before the schema was recorded: a bbolt
// file with no buckets (testdata/mkschema0 says how it was made). Open must
// upgrade it to the current schema in place.
func TestOpenUpgradesSchema0(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	orig, err := os.ReadFile(filepath.Join("testdata", "schema0.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cutover.db")
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	// It really is schema 0.
	raw, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Check(t, raw)
	if got := bucketsOf(t, raw); len(got) != 0 {
		t.Fatalf("testdata/schema0.db has buckets %q; want none", got)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	b := openStore(t, path)
	if v := schemaOf(t, b.DB()); v != strconv.Itoa(store.SchemaVersion) {
		t.Errorf("schema after upgrade = %q, want %d", v, store.SchemaVersion)
	}
	want := []string{"audit", "clusters", "evaluations", "history", "meta", "rollouts"}
	if got := bucketsOf(t, b.DB()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("buckets after upgrade = %q, want %q", got, want)
	}
	web := rollout("web", "v2", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING)
	if err := b.PutRollout(ctx, web); err != nil {
		t.Fatalf("PutRollout on the upgraded file: %v", err)
	}
	if err := b.PutCluster(ctx, cluster("eu-1", "eu")); err != nil {
		t.Fatalf("PutCluster on the upgraded file: %v", err)
	}

	// The upgrade is durable: a reopen finds schema 1 and the data.
	b = reopen(t, b, path)
	if v := schemaOf(t, b.DB()); v != strconv.Itoa(store.SchemaVersion) {
		t.Errorf("schema after reopen = %q, want %d", v, store.SchemaVersion)
	}
	got, err := b.GetRollout(ctx, "web")
	if err != nil || !proto.Equal(got, web) {
		t.Errorf("GetRollout after upgrade and reopen = %v, %v; want %v", got, err, web)
	}
}

func TestEnsureSchema(t *testing.T) {
	t.Parallel()
	db := openRaw(t, filepath.Join(t.TempDir(), "x.db"))
	ensure := func(version int, buckets ...string) error {
		return db.Update(func(tx *bolt.Tx) error {
			var names [][]byte
			for _, b := range buckets {
				names = append(names, []byte(b))
			}
			return store.EnsureSchema(tx, version, names...)
		})
	}
	if err := ensure(1, "a"); err != nil {
		t.Fatal(err)
	}
	if err := ensure(1, "a"); err != nil {
		t.Fatalf("EnsureSchema again at the same version: %v", err)
	}
	// A later build adds a bucket and moves the version on.
	if err := ensure(2, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if v := schemaOf(t, db); v != "2" {
		t.Errorf("schema = %q, want 2", v)
	}
	if got := fmt.Sprint(bucketsOf(t, db)); got != "[a b meta]" {
		t.Errorf("buckets = %s, want [a b meta]", got)
	}
	// The older build then refuses the file and changes nothing.
	if err := ensure(1, "a", "c"); !errors.Is(err, store.ErrNewerSchema) {
		t.Errorf("EnsureSchema(1) on a schema 2 file = %v, want ErrNewerSchema", err)
	}
	if v := schemaOf(t, db); v != "2" {
		t.Errorf("schema after refusal = %q, want 2", v)
	}
	if got := fmt.Sprint(bucketsOf(t, db)); got != "[a b meta]" {
		t.Errorf("buckets after refusal = %s, want [a b meta]", got)
	}
}

// The store is used by the controller, the API and the hub at once.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newStore(t)
	const workers, each = 8, 20
	var wg sync.WaitGroup
	errc := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("app-%d-%d", w, i)
				if err := b.PutRollout(ctx, rollout(name, "v1", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING)); err != nil {
					errc <- err
					return
				}
				if _, err := b.GetRollout(ctx, name); err != nil {
					errc <- err
					return
				}
				if _, err := b.ListRollouts(ctx); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	rs, err := b.ListRollouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != workers*each {
		t.Errorf("ListRollouts returned %d rollouts, want %d", len(rs), workers*each)
	}
}
