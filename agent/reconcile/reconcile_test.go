package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/cutover-dev/cutover/agent/reconcile"
	"github.com/cutover-dev/cutover/agent/runtime/local"
	"github.com/cutover-dev/cutover/agent/runtime/local/localtest"
	"github.com/cutover-dev/cutover/agent/state"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store/storetest"
)

// demoApp is the demo app binary, built once by TestMain.
var demoApp string

func TestMain(m *testing.M) { os.Exit(localtest.Run(m, &demoApp)) }

// Generous bounds: the race detector and a loaded machine slow everything.
const (
	convergeWithin = 20 * time.Second
	stopWithin     = 30 * time.Second
)

// env is one agent host for a test: a data directory whose state file
// outlives the agents started over it.
type env struct {
	t      *testing.T
	marker string
	path   string
	logDir string
	client *http.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(client.CloseIdleConnections)
	return &env{t: t, marker: localtest.Marker(t), path: filepath.Join(dir, "agent.db"), logDir: filepath.Join(dir, "logs"), client: client}
}

// rev is a revision of the demo app serving version; the app takes its
// port from $PORT.
func (e *env) rev(version string, instances int32, extraArgs ...string) *cutoverv1.Revision {
	return &cutoverv1.Revision{
		Name:         version,
		Command:      demoApp,
		Args:         append([]string{"--version", version}, extraArgs...),
		Env:          map[string]string{localtest.MarkerEnv: e.marker},
		Instances:    instances,
		ReadyTimeout: "20s",
	}
}

// pids returns the test's live app processes.
func (e *env) pids() []int { return localtest.Processes(e.marker) }

// agent is a running Reconciler over the env's state file, with the real
// local runtime.
type agent struct {
	t      *testing.T
	client *http.Client
	db     *state.DB
	out    *reconcile.Outbox
	rec    *reconcile.Reconciler
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
	runErr error         // what Run returned
	once   sync.Once

	seen   map[string]uint64
	latest map[string]*cutoverv1.ObservedApp
}

// start opens the state file and runs a Reconciler over it until stop or
// the end of the test.
func (e *env) start() *agent {
	e.t.Helper()
	db, err := state.Open(e.path)
	if err != nil {
		e.t.Fatalf("open state: %v", err)
	}
	e.t.Cleanup(func() {
		storetest.Check(e.t, db.BoltDB())
		_ = db.Close()
	})
	log := localtest.Logger(e.t)
	out := reconcile.NewOutbox()
	a := &agent{
		t:      e.t,
		client: e.client,
		db:     db,
		out:    out,
		rec:    reconcile.New(local.New(db, e.logDir, log), db, out, log),
		done:   make(chan struct{}),
		seen:   map[string]uint64{},
		latest: map[string]*cutoverv1.ObservedApp{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() {
		a.runErr = a.rec.Run(ctx)
		close(a.done)
	}()
	e.t.Cleanup(a.stop)
	return a
}

// halt cancels Run and waits for it to return nil.
func (a *agent) halt() bool {
	// A connection the client opened but never used counts as active for
	// five seconds in http.Server.Shutdown, which would hold the proxy for
	// its whole grace period.
	a.client.CloseIdleConnections()
	a.cancel()
	select {
	case <-a.done:
		if a.runErr != nil {
			a.t.Errorf("Run = %v, want nil", a.runErr)
		}
		return true
	case <-time.After(stopWithin):
		a.t.Errorf("Run did not return within %v of cancel", stopWithin)
		return false
	}
}

// stop halts Run and closes the state file.
func (a *agent) stop() {
	a.once.Do(func() {
		if !a.halt() {
			return
		}
		storetest.Check(a.t, a.db.BoltDB())
		if err := a.db.Close(); err != nil {
			a.t.Errorf("close state: %v", err)
		}
	})
}

func (a *agent) apply(d *cutoverv1.DesiredApp) {
	a.t.Helper()
	if err := a.rec.Apply(d); err != nil {
		a.t.Fatalf("Apply(%s generation %d): %v", d.GetApp(), d.GetGeneration(), err)
	}
}

// waitObserved waits until the latest state the Outbox holds for app
// satisfies cond, and returns it.
func (a *agent) waitObserved(app, what string, cond func(*cutoverv1.ObservedApp) bool) *cutoverv1.ObservedApp {
	a.t.Helper()
	deadline := time.NewTimer(convergeWithin)
	defer deadline.Stop()
	for {
		for _, o := range a.out.Since(a.seen) {
			a.latest[o.GetApp()] = o
		}
		if o := a.latest[app]; o != nil && cond(o) {
			return o
		}
		select {
		case <-a.out.Changed():
		case <-deadline.C:
			a.t.Fatalf("%s: not %s within %v; last observed:\n%v", app, what, convergeWithin, a.latest[app])
		}
	}
}

func (a *agent) waitConverged(app string, gen int64) *cutoverv1.ObservedApp {
	a.t.Helper()
	return a.waitObserved(app, fmt.Sprintf("converged at generation %d", gen), func(o *cutoverv1.ObservedApp) bool {
		return o.GetObservedGeneration() == gen && o.GetConverged()
	})
}

func desired(app, listen string, gen int64, revs ...*cutoverv1.DesiredRevision) *cutoverv1.DesiredApp {
	return &cutoverv1.DesiredApp{App: app, Generation: gen, Listen: listen, Revisions: revs}
}

func stable(rev *cutoverv1.Revision, weight int32) *cutoverv1.DesiredRevision {
	return &cutoverv1.DesiredRevision{Track: cutoverv1.Track_TRACK_STABLE, Revision: rev, Weight: weight}
}

func canary(rev *cutoverv1.Revision, weight int32) *cutoverv1.DesiredRevision {
	return &cutoverv1.DesiredRevision{Track: cutoverv1.Track_TRACK_CANARY, Revision: rev, Weight: weight}
}

func observedRev(name string, track cutoverv1.Track, wanted, ready, weight int32) *cutoverv1.ObservedRevision {
	return &cutoverv1.ObservedRevision{Revision: name, Track: track, InstancesWanted: wanted, InstancesReady: ready, Weight: weight}
}

// assertRevisions compares what is observed per revision, in order,
// leaving out the traffic counters, which depend on the load.
func assertRevisions(t *testing.T, o *cutoverv1.ObservedApp, want ...*cutoverv1.ObservedRevision) {
	t.Helper()
	sameButCounters := func(a, b *cutoverv1.ObservedRevision) bool {
		x := proto.Clone(a).(*cutoverv1.ObservedRevision)
		x.Requests, x.StatusCodes, x.LatencyP99Micros = 0, nil, 0
		return proto.Equal(x, b)
	}
	if !slices.EqualFunc(o.GetRevisions(), want, sameButCounters) {
		t.Errorf("observed revisions:\n%v\nwant\n%v", o.GetRevisions(), want)
	}
}

// freeListen returns a loopback address that was free a moment ago.
func freeListen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// get sends one request through the proxy and returns the version that
// answered, or an error for anything but a 200 carrying a version.
func (e *env) get(ctx context.Context, listen string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+listen+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	v := resp.Header.Get("X-Version")
	if resp.StatusCode != http.StatusOK || v == "" {
		return "", fmt.Errorf("status %d, X-Version %q", resp.StatusCode, v)
	}
	if r := resp.Header.Get("X-Cutover-Revision"); r != v {
		return "", fmt.Errorf("X-Cutover-Revision %q answered by %q", r, v)
	}
	return v, nil
}

// sample sends n requests through the proxy, four at a time, and counts
// the versions that answered; every request must succeed.
func (e *env) sample(listen string, n int) map[string]int {
	e.t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	var errs []error
	var wg sync.WaitGroup
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range 4 {
		wg.Go(func() {
			for range next {
				v, err := e.get(e.t.Context(), listen)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					counts[v]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		e.t.Fatalf("%d of %d requests through %s failed; first: %v", len(errs), n, listen, errs[0])
	}
	return counts
}

// load is a client sending steady traffic through the proxy.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	versions map[string]int
	failures []error
}

func (e *env) startLoad(listen string) *load {
	ctx, cancel := context.WithCancel(e.t.Context())
	l := &load{cancel: cancel, versions: map[string]int{}}
	for range 2 {
		l.wg.Go(func() {
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				v, err := e.get(ctx, listen)
				if ctx.Err() != nil {
					return // cut short by finish, not a failure
				}
				l.mu.Lock()
				if err != nil {
					l.failures = append(l.failures, err)
				} else {
					l.versions[v]++
				}
				l.mu.Unlock()
			}
		})
	}
	e.t.Cleanup(func() { l.finish() })
	return l
}

// finish stops the load and returns what answered and what failed.
func (l *load) finish() (map[string]int, []error) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.versions, l.failures
}

func assertNoFailures(t *testing.T, versions map[string]int, failures []error, wantVersions ...string) {
	t.Helper()
	total := len(failures)
	for _, n := range versions {
		total += n
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests under load failed; first ones: %v", len(failures), total, failures[:min(len(failures), 5)])
	}
	for _, v := range wantVersions {
		if versions[v] == 0 {
			t.Errorf("no request under load was answered by %s: %v", v, versions)
		}
	}
}

func assertAllRunning(t *testing.T, pids []int, running bool) {
	t.Helper()
	for _, pid := range pids {
		if localtest.Running(pid) != running {
			t.Errorf("process %d running = %v, want %v", pid, !running, running)
		}
	}
}

func assertClosed(t *testing.T, listen string) {
	t.Helper()
	if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections", listen)
	}
}

// A canary's whole life on one agent: stable alone, a 20% canary, stale
// desired states ignored, promotion, removal; steady load sees no failed
// request throughout.
func TestCanaryLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start()
	listen := freeListen(t)
	v1, v2 := e.rev("v1", 2), e.rev("v2", 2)

	// Given v1 alone.
	a.apply(desired("web", listen, 1, stable(v1, 100)))
	o := a.waitConverged("web", 1)
	if o.GetListen() != listen || o.GetError() != "" {
		t.Errorf("observed listen %q, error %q; want %q, none", o.GetListen(), o.GetError(), listen)
	}
	assertRevisions(t, o, observedRev("v1", cutoverv1.Track_TRACK_STABLE, 2, 2, 100))
	if got := e.sample(listen, 100); got["v1"] != 100 {
		t.Errorf("versions = %v, want v1 only", got)
	}
	v1pids := e.pids()
	if len(v1pids) != 2 {
		t.Fatalf("processes = %v, want 2", v1pids)
	}
	ld := e.startLoad(listen)

	// When a canary gets 20%.
	gen2 := desired("web", listen, 2, stable(v1, 80), canary(v2, 20))
	a.apply(gen2)
	o = a.waitConverged("web", 2)
	assertRevisions(t, o,
		observedRev("v1", cutoverv1.Track_TRACK_STABLE, 2, 2, 80),
		observedRev("v2", cutoverv1.Track_TRACK_CANARY, 2, 2, 20))
	counts := e.sample(listen, 1000)
	if counts["v1"]+counts["v2"] != 1000 {
		t.Errorf("versions = %v, want only v1 and v2", counts)
	}
	if share := float64(counts["v2"]) / 10; share < 14 || share > 26 {
		t.Errorf("v2 answered %.1f%% of 1000 requests, want 20±6%%", share)
	}
	all := e.pids()
	assertAllRunning(t, v1pids, true)
	v2pids := slices.DeleteFunc(slices.Clone(all), func(p int) bool { return slices.Contains(v1pids, p) })
	if len(all) != 4 || len(v2pids) != 2 {
		t.Fatalf("processes = %v, want v1's %v and two more", all, v1pids)
	}

	// Older and equal generations change nothing, not even the stored state.
	for _, stale := range []*cutoverv1.DesiredApp{
		desired("web", listen, 1, stable(e.rev("v0", 1), 100)),
		desired("web", listen, 2, stable(v1, 50), canary(v2, 50)),
	} {
		a.apply(stale)
	}
	if got := a.rec.Generations(); len(got) != 1 || !proto.Equal(got[0], &cutoverv1.AppGeneration{App: "web", Generation: 2}) {
		t.Errorf("Generations = %v, want web at 2", got)
	}
	if stored, err := a.db.Apps(); err != nil || len(stored) != 1 || !proto.Equal(stored[0], gen2) {
		t.Errorf("stored desired states = %v, %v; want generation 2 as applied", stored, err)
	}

	// When v2 is promoted: v1 is drained and stopped, v2 keeps running.
	a.apply(desired("web", listen, 3, stable(v2, 100)))
	o = a.waitConverged("web", 3)
	assertRevisions(t, o, observedRev("v2", cutoverv1.Track_TRACK_STABLE, 2, 2, 100))
	assertAllRunning(t, v1pids, false)
	if got := e.pids(); !slices.Equal(got, v2pids) {
		t.Errorf("processes after promotion = %v, want v2's %v, untouched", got, v2pids)
	}
	if got := e.sample(listen, 100); got["v2"] != 100 {
		t.Errorf("versions = %v, want v2 only", got)
	}
	versions, failures := ld.finish()
	assertNoFailures(t, versions, failures, "v1", "v2")

	// When every revision is removed: everything stops, the listener closes.
	a.apply(desired("web", listen, 4))
	o = a.waitConverged("web", 4)
	if len(o.GetRevisions()) != 0 || o.GetListen() != "" {
		t.Errorf("observed after removal: %v, want no revisions and no listener", o)
	}
	if got := e.pids(); len(got) != 0 {
		t.Errorf("processes after removal = %v, want none", got)
	}
	if recs, err := a.db.Instances("web"); err != nil || len(recs) != 0 {
		t.Errorf("records after removal = %+v, %v; want none", recs, err)
	}
	assertClosed(t, listen)
}

// A revision that replaces another gets no traffic before it is ready, and
// the old one keeps serving, and running, until then.
func TestReplacementWaitsForReadiness(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start()
	listen := freeListen(t)

	a.apply(desired("web", listen, 1, stable(e.rev("v1", 1), 100)))
	a.waitConverged("web", 1)
	v1pids := e.pids()
	ld := e.startLoad(listen)

	a.apply(desired("web", listen, 2, stable(e.rev("v2", 1, "--ready-delay", "3s"), 100)))
	// v2 cannot be ready for seconds: whatever is reported for generation 2
	// until then must show v1 carrying all the traffic.
	o := a.waitObserved("web", "working on generation 2", func(o *cutoverv1.ObservedApp) bool {
		return o.GetObservedGeneration() == 2
	})
	if o.GetConverged() {
		t.Error("converged while v2 is not ready")
	}
	assertRevisions(t, o,
		observedRev("v1", cutoverv1.Track_TRACK_UNSPECIFIED, 0, 1, 100),
		observedRev("v2", cutoverv1.Track_TRACK_STABLE, 1, 0, 0))
	if got := len(e.pids()); got != 2 {
		t.Errorf("%d processes run while v2 starts, want v1's and v2's", got)
	}
	assertAllRunning(t, v1pids, true)
	if got := e.sample(listen, 50); got["v1"] != 50 {
		t.Errorf("versions while v2 is not ready = %v, want v1 only", got)
	}

	o = a.waitConverged("web", 2)
	assertRevisions(t, o, observedRev("v2", cutoverv1.Track_TRACK_STABLE, 1, 1, 100))
	assertAllRunning(t, v1pids, false)
	if got := e.sample(listen, 50); got["v2"] != 50 {
		t.Errorf("versions after the switch = %v, want v2 only", got)
	}
	versions, failures := ld.finish()
	assertNoFailures(t, versions, failures, "v1", "v2")
}

// A taken listen address is reported, and the app is not converged.
func TestListenAddressTaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	listen := taken.Addr().String()

	a.apply(desired("web", listen, 1, stable(e.rev("v1", 1), 100)))
	o := a.waitObserved("web", "reporting an error", func(o *cutoverv1.ObservedApp) bool {
		return o.GetError() != ""
	})
	if !strings.Contains(o.GetError(), listen) {
		t.Errorf("error %q does not name %s", o.GetError(), listen)
	}
	if o.GetConverged() || o.GetListen() != "" || o.GetObservedGeneration() != 1 {
		t.Errorf("observed with a taken address: %v; want generation 1, not converged, no listener", o)
	}
	// The instance itself runs; only the proxy is missing.
	a.waitObserved("web", "v1 ready", func(o *cutoverv1.ObservedApp) bool {
		return len(o.GetRevisions()) == 1 && o.GetRevisions()[0].GetInstancesReady() == 1
	})
	if o := a.latest["web"]; o.GetConverged() || o.GetError() == "" {
		t.Errorf("observed with a taken address: %v; want an error, not converged", o)
	}
}

// The proxy comes up on its own once a taken address is released.
func TestListenAddressFreed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := taken.Addr().String()

	a.apply(desired("web", listen, 1, stable(e.rev("v1", 1), 100)))
	a.waitObserved("web", "reporting the taken address", func(o *cutoverv1.ObservedApp) bool {
		return o.GetError() != "" && !o.GetConverged()
	})
	if err := taken.Close(); err != nil {
		t.Fatal(err)
	}
	o := a.waitConverged("web", 1)
	if o.GetError() != "" || o.GetListen() != listen {
		t.Errorf("observed error %q, listen %q; want none, %q", o.GetError(), o.GetListen(), listen)
	}
	if got := e.sample(listen, 20); got["v1"] != 20 {
		t.Errorf("versions = %v, want v1 only", got)
	}
}

// Ending Run stops every app: processes, records and listeners.
func TestCancelStopsEverything(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start()
	web, api := freeListen(t), freeListen(t)
	a.apply(desired("web", web, 1, stable(e.rev("v1", 2), 100)))
	a.apply(desired("api", api, 1, stable(e.rev("v1", 1), 50), canary(e.rev("v2", 1), 50)))
	a.waitConverged("web", 1)
	a.waitConverged("api", 1)
	pids := e.pids()
	if len(pids) != 4 {
		t.Fatalf("processes = %v, want 4", pids)
	}

	if !a.halt() {
		t.FailNow()
	}
	assertAllRunning(t, pids, false)
	for _, app := range []string{"web", "api"} {
		if recs, err := a.db.Instances(app); err != nil || len(recs) != 0 {
			t.Errorf("records of %s after Run = %+v, %v; want none", app, recs, err)
		}
	}
	assertClosed(t, web)
	assertClosed(t, api)
	if err := a.rec.Apply(desired("web", web, 2, stable(e.rev("v2", 1), 100))); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply after Run = %v, want context.Canceled", err)
	}
	// Stopping kept the desired states: the next run resumes them.
	if stored, err := a.db.Apps(); err != nil || len(stored) != 2 {
		t.Errorf("stored desired states after Run = %v, %v; want both apps", stored, err)
	}
}

// A restarted agent serves its stored desired state before the control
// plane sends anything.
func TestRestartResumesStoredState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	listen := freeListen(t)
	first := e.start()
	first.apply(desired("web", listen, 5, stable(e.rev("v1", 2), 100)))
	first.waitConverged("web", 5)
	first.stop()
	if got := e.pids(); len(got) != 0 {
		t.Fatalf("processes after a graceful stop = %v, want none", got)
	}

	second := e.start()
	if got := second.rec.Generations(); len(got) != 1 || !proto.Equal(got[0], &cutoverv1.AppGeneration{App: "web", Generation: 5}) {
		t.Errorf("Generations after restart = %v, want web at 5", got)
	}
	o := second.waitConverged("web", 5)
	assertRevisions(t, o, observedRev("v1", cutoverv1.Track_TRACK_STABLE, 2, 2, 100))
	if got := e.sample(listen, 50); got["v1"] != 50 {
		t.Errorf("versions after restart = %v, want v1 only", got)
	}
}

// An agent that died abruptly left its processes serving; the next one
// adopts them instead of starting duplicates.
func TestRestartAdoptsRunningProcesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	listen := freeListen(t)
	v1 := e.rev("v1", 2)
	d := desired("web", listen, 7, stable(v1, 100))

	// What a crashed agent leaves: its desired state and its processes.
	db, err := state.Open(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutApp(d); err != nil {
		t.Fatal(err)
	}
	crashed, crash := context.WithCancel(t.Context())
	rt := local.New(db, e.logDir, localtest.Logger(t))
	for i := range 2 {
		in, err := rt.Start(crashed, "web", i, v1)
		if err != nil {
			t.Fatal(err)
		}
		localtest.WaitFor(t, convergeWithin, "the crashed agent's instance ready", in.Ready)
	}
	crash()
	storetest.Check(t, db.BoltDB())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	pids := e.pids()
	if len(pids) != 2 {
		t.Fatalf("processes = %v, want 2", pids)
	}

	a := e.start()
	o := a.waitConverged("web", 7)
	assertRevisions(t, o, observedRev("v1", cutoverv1.Track_TRACK_STABLE, 2, 2, 100))
	if got := e.pids(); !slices.Equal(got, pids) {
		t.Errorf("processes after restart = %v, want the adopted %v only", got, pids)
	}
	if got := e.sample(listen, 50); got["v1"] != 50 {
		t.Errorf("versions after restart = %v, want v1 only", got)
	}

	// The adopted processes are the agent's own now: stopping it stops them.
	a.stop()
	assertAllRunning(t, pids, false)
}

// A state file that cannot be read fails Run, and releases the callers
// that wait for Run (the link asks for Generations on every connect)
// instead of blocking them forever.
func TestRunFailsOnUnreadableState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db, err := state.Open(e.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		storetest.Check(t, db.BoltDB())
		_ = db.Close()
	})
	err = db.BoltDB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("apps")).Put([]byte("web"), []byte{0xff, 0xff, 0xff})
	})
	if err != nil {
		t.Fatal(err)
	}
	log := localtest.Logger(t)
	rec := reconcile.New(local.New(db, e.logDir, log), db, reconcile.NewOutbox(), log)
	if err := rec.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "web") {
		t.Fatalf("Run over a corrupt record = %v, want an error naming the app", err)
	}

	d := desired("web", freeListen(t), 1, stable(e.rev("v1", 1), 100))
	released := make(chan error, 1)
	go func() {
		if got := rec.Generations(); len(got) != 0 {
			released <- fmt.Errorf("Generations = %v, want none", got)
			return
		}
		released <- rec.Apply(d)
	}()
	select {
	case err := <-released:
		if err == nil || !strings.Contains(err.Error(), "not running") {
			t.Errorf("Apply after a failed Run = %v, want an error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Generations or Apply still blocked 5s after Run failed")
	}
	if got := e.pids(); len(got) != 0 {
		t.Errorf("processes after a failed Run = %v, want none", got)
	}
}
