package controller_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/cutover-dev/cutover/controlplane/controller"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/internal/store"
)

const app = "shop"

// waitFor bounds every poll; the controller acts within milliseconds.
const waitFor = 5 * time.Second

// openStore opens a real bbolt store in a temporary directory and checks
// its consistency before closing it at the end of the test.
func openStore(t *testing.T) (*store.Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cutover.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := db.DB().View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				t.Errorf("consistency check: %v", err)
			}
			return nil
		})
		if err != nil {
			t.Errorf("consistency check: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return db, path
}

// publisher records every desired state it is given. onSet, when set, runs
// first, on the controller's goroutine.
type publisher struct {
	onSet func(cluster string, d *cutoverv1.DesiredApp)

	mu    sync.Mutex
	calls []published
}

type published struct {
	cluster string
	desired *cutoverv1.DesiredApp
}

func (p published) String() string { return fmt.Sprintf("%s: %v", p.cluster, p.desired) }

func (p *publisher) SetDesired(cluster string, d *cutoverv1.DesiredApp) {
	if p.onSet != nil {
		p.onSet(cluster, d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, published{cluster, proto.Clone(d).(*cutoverv1.DesiredApp)})
}

func (p *publisher) all() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]published(nil), p.calls...)
}

// latest is the last desired state published per cluster.
func (p *publisher) latest() map[string]*cutoverv1.DesiredApp {
	out := map[string]*cutoverv1.DesiredApp{}
	for _, c := range p.all() {
		out[c.cluster] = c.desired
	}
	return out
}

// clock is an injected clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// passingChecker passes every check run at once: the controller's own
// tests are about its event flow; controlplane/checks and the end-to-end
// tests run real checks against real agents.
type passingChecker struct{}

func (passingChecker) Run(_ context.Context, _ *cutoverv1.Rollout, run *cutoverv1.CheckRun) []*cutoverv1.CheckResult {
	return []*cutoverv1.CheckResult{{Name: run.GetId(), Kind: "builtin", Passed: true, Message: "passed by the test"}}
}

// start runs a controller until the returned stop is called (or the test
// ends) and waits for it to load.
func start(t *testing.T, db controller.Store, pub controller.Publisher, now func() time.Time) (*controller.Controller, func()) {
	t.Helper()
	return startWith(t, db, pub, now, passingChecker{})
}

// startWith is start with another checker.
func startWith(t *testing.T, db controller.Store, pub controller.Publisher, now func() time.Time, ch controller.Checker) (*controller.Controller, func()) {
	t.Helper()
	c := controller.New(db, pub, now, slog.New(slog.DiscardHandler)).WithChecker(ch)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-c.Loaded():
	case err := <-done:
		cancel()
		t.Fatalf("controller stopped while loading: %v", err)
	case <-time.After(waitFor):
		cancel()
		t.Fatal("controller did not load")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitFor):
				t.Error("controller did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

func revision(name string) *cutoverv1.Revision {
	return &cutoverv1.Revision{Name: name, Command: "/opt/shop/" + name, Instances: 1, ReadinessPath: "/healthz", ReadyTimeout: "30s"}
}

func newSpec(rev string, waves [][]string, steps ...*cutoverv1.CanaryStep) *cutoverv1.RolloutSpec {
	s := &cutoverv1.RolloutSpec{
		Revision: revision(rev),
		Endpoint: &cutoverv1.Endpoint{Listen: ":8080"},
		Targets:  &cutoverv1.Targets{},
		Strategy: &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Canary{Canary: &cutoverv1.CanaryStrategy{Steps: steps}}},
	}
	for i, clusters := range waves {
		s.Targets.Waves = append(s.Targets.Waves, &cutoverv1.Wave{Name: fmt.Sprintf("wave-%d", i+1), Clusters: clusters})
	}
	return s
}

func setWeight(w int32) *cutoverv1.CanaryStep {
	return &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_SetWeight{SetWeight: w}}
}

func pause(d string) *cutoverv1.CanaryStep {
	return &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Pause{Pause: &cutoverv1.PauseStep{Duration: d}}}
}

var twoWaves = [][]string{{"eu-1"}, {"us-1"}}

// converged is an agent's report that generation gen is in force.
func converged(gen int64) *cutoverv1.ObservedApp {
	return &cutoverv1.ObservedApp{App: app, ObservedGeneration: gen, Converged: true}
}

func do(t *testing.T, c *controller.Controller, ev rollout.Event) *cutoverv1.Rollout {
	t.Helper()
	r, _, err := c.Do(t.Context(), app, ev)
	if err != nil {
		t.Fatalf("%T: %v", ev, err)
	}
	if len(rollout.PendingChecks(r)) > 0 { // the pre-flight runs on its own
		eventually(t, "the checks to pass", func() bool { return len(rollout.PendingChecks(current(t, c))) == 0 })
		return current(t, c)
	}
	return r
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func progress(r *cutoverv1.Rollout, cluster string) *cutoverv1.ClusterProgress {
	for _, cp := range r.GetStatus().GetClusters() {
		if cp.GetCluster() == cluster {
			return cp
		}
	}
	return nil
}

// current reads the rollout from the controller.
func current(t *testing.T, c *controller.Controller) *cutoverv1.Rollout {
	t.Helper()
	r, err := c.Get(app)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestApplyPersistsBeforePublishing(t *testing.T) {
	db, _ := openStore(t)
	var early []string // publishes the store did not yet hold
	pub := &publisher{}
	pub.onSet = func(cluster string, d *cutoverv1.DesiredApp) {
		r, err := db.GetRollout(context.Background(), d.GetApp())
		if err != nil || progress(r, cluster).GetDesiredGeneration() < d.GetGeneration() {
			early = append(early, fmt.Sprintf("%s g%d (stored: %v, %v)", cluster, d.GetGeneration(), r, err))
		}
	}
	c, stop := start(t, db, pub, time.Now)

	_, changed, err := c.Do(t.Context(), app, rollout.Apply{Name: app, Spec: newSpec("v1", twoWaves, setWeight(50))})
	if err != nil || !changed {
		t.Fatalf("apply: changed %t, err %v", changed, err)
	}
	if calls := pub.all(); len(calls) != 0 {
		t.Fatalf("published %v before the pre-flight passed", calls)
	}
	eventually(t, "the pre-flight to pass", func() bool { return len(rollout.PendingChecks(current(t, c))) == 0 })
	r := current(t, c)
	stored, err := db.ListRollouts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || !proto.Equal(stored[0], r) {
		t.Fatalf("store holds %v, want the applied rollout %v", stored, r)
	}
	calls := pub.all()
	if len(calls) != 1 || calls[0].cluster != "eu-1" {
		t.Fatalf("published %v, want one desired state for eu-1", calls)
	}
	want := &cutoverv1.DesiredApp{App: app, Generation: 1, Listen: ":8080", Revisions: []*cutoverv1.DesiredRevision{
		{Track: cutoverv1.Track_TRACK_STABLE, Revision: revision("v1"), Weight: 100},
	}, Strategy: "canary"}
	if !proto.Equal(calls[0].desired, want) {
		t.Errorf("published %v, want %v", calls[0].desired, want)
	}
	if got := current(t, c); !proto.Equal(got, r) {
		t.Errorf("Get = %v, want %v", got, r)
	}

	// The same spec again changes nothing, stores nothing, sends nothing.
	again, changed, err := c.Do(t.Context(), app, rollout.Apply{Name: app, Spec: newSpec("v1", twoWaves, setWeight(50))})
	if err != nil || changed || !proto.Equal(again, r) {
		t.Errorf("re-apply: changed %t, err %v, rollout changed %t", changed, err, !proto.Equal(again, r))
	}
	if n := len(pub.all()); n != 1 {
		t.Errorf("re-apply published %d more desired states", n-1)
	}
	stop() // onSet runs on the controller's goroutine; read early after it ends
	if len(early) != 0 {
		t.Errorf("published before the store held it: %v", early)
	}
}

func TestAFailedStoreWritePublishesNothing(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	pub := &publisher{}
	c, _ := start(t, db, pub, time.Now)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Do(t.Context(), app, rollout.Apply{Name: app, Spec: newSpec("v1", twoWaves)}); err == nil {
		t.Fatal("apply succeeded although the store is closed")
	}
	if calls := pub.all(); len(calls) != 0 {
		t.Errorf("published %v although nothing was stored", calls)
	}
	if _, err := c.Get(app); !errors.Is(err, controller.ErrNotFound) {
		t.Errorf("Get after a failed apply: %v, want ErrNotFound", err)
	}
}

func TestObserveMovesTheRollout(t *testing.T) {
	db, _ := openStore(t)
	pub := &publisher{}
	c, _ := start(t, db, pub, time.Now)
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v1", twoWaves)})

	// Reports about other apps and from other clusters change nothing.
	c.Observe(t.Context(), "eu-1", &cutoverv1.ObservedApp{App: "web", ObservedGeneration: 1, Converged: true})
	c.Observe(t.Context(), "xx-9", converged(1))

	c.Observe(t.Context(), "eu-1", converged(1))
	eventually(t, "wave 2 to start", func() bool { return current(t, c).GetStatus().GetCurrentWave() == 1 })
	if d := pub.latest()["us-1"]; d.GetGeneration() != 1 || d.GetRevisions()[0].GetRevision().GetName() != "v1" {
		t.Fatalf("us-1 was sent %v, want v1 at generation 1", d)
	}

	c.Observe(t.Context(), "us-1", converged(1))
	healthy := func(r *cutoverv1.Rollout) bool {
		return r.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
	}
	eventually(t, "the rollout to be healthy", func() bool { return healthy(current(t, c)) })
	stored, err := db.GetRollout(t.Context(), app)
	if err != nil || !healthy(stored) {
		t.Errorf("stored rollout %v (%v), want it healthy", stored, err)
	}
	if _, err := c.Get("web"); !errors.Is(err, controller.ErrNotFound) {
		t.Errorf("a report about an unknown app created a rollout: %v", err)
	}
}

func TestWatch(t *testing.T) {
	db, _ := openStore(t)
	c, _ := start(t, db, &publisher{}, time.Now)
	if _, _, err := c.Watch(app); !errors.Is(err, controller.ErrNotFound) {
		t.Fatalf("Watch of an unknown rollout: %v, want ErrNotFound", err)
	}
	applied := do(t, c, rollout.Apply{Name: app, Spec: newSpec("v1", twoWaves)})

	ch, stop, err := c.Watch(app)
	if err != nil {
		t.Fatal(err)
	}
	next := func() *cutoverv1.Rollout {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(waitFor):
			t.Fatal("no rollout on the watch")
			return nil
		}
	}
	// Do returns after watchers are notified, so an empty channel after a
	// Do means nothing more will come for it.
	none := func(why string) {
		t.Helper()
		select {
		case r := <-ch:
			t.Fatalf("%s, but the watch delivered %v", why, r.GetStatus())
		default:
		}
	}
	if got := next(); !proto.Equal(got, applied) {
		t.Fatalf("first value %v, want the current rollout %v", got, applied)
	}
	none("nothing changed")

	paused := do(t, c, rollout.Pause{})
	if got := next(); !proto.Equal(got, paused) {
		t.Fatalf("after pause got %v, want %v", got.GetStatus(), paused.GetStatus())
	}

	// A reader that falls behind gets only the latest state.
	do(t, c, rollout.Resume{})
	do(t, c, rollout.Pause{})
	aborted := do(t, c, rollout.Abort{Reason: "test"})
	if got := next(); !proto.Equal(got, aborted) {
		t.Fatalf("a slow reader got %v, want the latest %v", got.GetStatus(), aborted.GetStatus())
	}
	none("only the latest state is kept")

	// An event that changes nothing notifies nobody.
	if _, changed, err := c.Do(t.Context(), app, rollout.Abort{}); err != nil || changed {
		t.Fatalf("second abort: changed %t, err %v", changed, err)
	}
	none("the second abort changed nothing")

	stop()
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v2", twoWaves)})
	none("the watch was stopped")
}

func TestTimedPauseCompletesWithoutOtherEvents(t *testing.T) {
	db, _ := openStore(t)
	pub := &publisher{}
	c, _ := start(t, db, pub, time.Now)
	oneWave := [][]string{{"eu-1"}}
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v1", oneWave)})
	c.Observe(t.Context(), "eu-1", converged(1))
	eventually(t, "v1 to be healthy", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
	})

	const hold = 200 * time.Millisecond
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v2", oneWave, setWeight(10), pause(hold.String()), setWeight(50))})
	before := time.Now()
	c.Observe(t.Context(), "eu-1", converged(2)) // 10% in force: the pause starts
	eventually(t, "the pause to complete", func() bool { return current(t, c).GetStatus().GetCurrentStep() == 2 })

	r := current(t, c)
	if started := r.GetStatus().GetStepStartTime().AsTime(); started.Before(before.Add(hold)) {
		t.Errorf("the pause ended at %v, less than %v after it could start (%v)", started, hold, before)
	}
	d := pub.latest()["eu-1"]
	if d.GetGeneration() != 3 || len(d.GetRevisions()) != 2 || d.GetRevisions()[1].GetWeight() != 50 {
		t.Errorf("after the pause eu-1 was sent %v, want generation 3 at 50%%", d)
	}
	if !proto.Equal(d, rollout.Desired(r, progress(r, "eu-1"))) {
		t.Errorf("sent %v, but the rollout says %v", d, rollout.Desired(r, progress(r, "eu-1")))
	}
}

func TestRestartRepublishesEveryDesiredState(t *testing.T) {
	db, _ := openStore(t)
	first := &publisher{}
	c, stop := start(t, db, first, time.Now)
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v1", twoWaves)})
	c.Observe(t.Context(), "eu-1", converged(1))
	c.Observe(t.Context(), "us-1", converged(1))
	eventually(t, "v1 to be healthy", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
	})
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v2", twoWaves, setWeight(20), pause(""))})
	c.Observe(t.Context(), "eu-1", converged(2))
	eventually(t, "the canary to wait for promote", func() bool {
		return current(t, c).GetStatus().GetPauseReason() == cutoverv1.PauseReason_PAUSE_REASON_STEP
	})
	// A second rollout, of another app, is reloaded too.
	do(t, c, rollout.Apply{Name: "web", Spec: newSpec("w1", [][]string{{"us-1"}})})
	before := current(t, c)
	stop()

	second := &publisher{}
	c2, _ := start(t, db, second, time.Now) // returns once loaded and republished
	if got := current(t, c2); !proto.Equal(got, before) {
		t.Fatalf("reloaded %v, want %v", got, before)
	}
	type key struct{ cluster, app string }
	want := map[key]*cutoverv1.DesiredApp{}
	for _, p := range first.all() {
		want[key{p.cluster, p.desired.GetApp()}] = p.desired
	}
	got := map[key]*cutoverv1.DesiredApp{}
	for _, p := range second.all() {
		k := key{p.cluster, p.desired.GetApp()}
		if got[k] != nil {
			t.Errorf("%v republished twice", k)
		}
		got[k] = p.desired
	}
	if len(got) != len(want) || len(want) != 3 {
		t.Errorf("republished %d desired states, want the %d last sent (3)", len(got), len(want))
	}
	for k, d := range want {
		if !proto.Equal(got[k], d) {
			t.Errorf("%v republished as %v, want the last sent %v", k, got[k], d)
		}
	}

	// And it carries on from where it was.
	r := do(t, c2, rollout.Promote{})
	if cp := progress(r, "eu-1"); cp.GetPhase() != cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED || cp.GetDesiredGeneration() != 3 {
		t.Errorf("after promote eu-1 is %v", cp)
	}
}

func TestRestartCompletesAPauseThatRanOutWhileDown(t *testing.T) {
	db, _ := openStore(t)
	clk := &clock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	c, stop := start(t, db, &publisher{}, clk.Now)
	oneWave := [][]string{{"eu-1"}}
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v1", oneWave)})
	c.Observe(t.Context(), "eu-1", converged(1))
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v2", oneWave, setWeight(10), pause("1m"), setWeight(50))})
	c.Observe(t.Context(), "eu-1", converged(2))
	eventually(t, "the pause to start", func() bool { return current(t, c).GetStatus().GetCurrentStep() == 1 })
	stop()

	clk.Add(2 * time.Minute)
	pub := &publisher{}
	c2, _ := start(t, db, pub, clk.Now)
	eventually(t, "the pause to complete", func() bool { return current(t, c2).GetStatus().GetCurrentStep() == 2 })
	eventually(t, "50% to be sent", func() bool { return pub.latest()["eu-1"].GetGeneration() == 3 })
	if w := pub.latest()["eu-1"].GetRevisions()[1].GetWeight(); w != 50 {
		t.Errorf("canary weight %d, want 50", w)
	}
}

func TestUnknownRollouts(t *testing.T) {
	db, _ := openStore(t)
	c, _ := start(t, db, &publisher{}, time.Now)
	if _, err := c.Get("nope"); !errors.Is(err, controller.ErrNotFound) {
		t.Errorf("Get: %v, want ErrNotFound", err)
	}
	if _, _, err := c.Watch("nope"); !errors.Is(err, controller.ErrNotFound) {
		t.Errorf("Watch: %v, want ErrNotFound", err)
	}
	for _, ev := range []rollout.Event{rollout.Promote{}, rollout.Abort{}, rollout.Pause{}, rollout.Resume{}, rollout.Tick{}} {
		if _, _, err := c.Do(t.Context(), "nope", ev); !errors.Is(err, controller.ErrNotFound) {
			t.Errorf("Do(%T): %v, want ErrNotFound", ev, err)
		}
	}
	if got := c.List(); len(got) != 0 {
		t.Errorf("List = %v, want nothing", got)
	}

	for _, name := range []string{"web", "shop", "api"} {
		if _, _, err := c.Do(t.Context(), name, rollout.Apply{Name: name, Spec: newSpec("v1", twoWaves)}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, r := range c.List() {
		names = append(names, r.GetName())
	}
	if fmt.Sprint(names) != "[api shop web]" {
		t.Errorf("List names %v, want [api shop web]", names)
	}
	if _, err := c.Get("nope"); !errors.Is(err, controller.ErrNotFound) {
		t.Errorf("Get among others: %v, want ErrNotFound", err)
	}
}

func TestDoReturnsTheEnginesErrors(t *testing.T) {
	db, _ := openStore(t)
	c, _ := start(t, db, &publisher{}, time.Now)
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v1", [][]string{{"eu-1"}})})
	c.Observe(t.Context(), "eu-1", converged(1))
	eventually(t, "v1 to be healthy", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
	})
	if _, changed, err := c.Do(t.Context(), app, rollout.Promote{}); !errors.Is(err, rollout.ErrTerminal) || changed {
		t.Errorf("promote of a healthy rollout: changed %t, err %v, want ErrTerminal", changed, err)
	}
	if _, _, err := c.Do(t.Context(), app, rollout.Observe{Cluster: "xx-9", App: converged(1)}); !errors.Is(err, rollout.ErrUnknownCluster) {
		t.Errorf("observe from a non-target: %v, want ErrUnknownCluster", err)
	}
}

func TestDoGivesUpWithItsContext(t *testing.T) {
	db, _ := openStore(t)
	c := controller.New(db, &publisher{}, time.Now, slog.New(slog.DiscardHandler)) // never run
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := c.Do(ctx, app, rollout.Apply{Name: app, Spec: newSpec("v1", twoWaves)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do on a controller that is not running: %v, want DeadlineExceeded", err)
	}
}
