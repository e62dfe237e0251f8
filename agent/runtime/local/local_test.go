package local_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/agent/runtime"
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
	readyWithin = 10 * time.Second
	stopWithin  = 15 * time.Second
)

// fixture is an agent's state file and a runtime over it, for one test.
type fixture struct {
	t      *testing.T
	marker string
	path   string
	logDir string
	db     *state.DB
	rt     *local.Runtime
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, marker: localtest.Marker(t), logDir: t.TempDir()}
	f.path = filepath.Join(t.TempDir(), "agent.db")
	f.open()
	return f
}

// open opens the state file and a new runtime over it, as a starting agent
// does. The file is checked and closed when the test ends.
func (f *fixture) open() {
	f.t.Helper()
	db, err := state.Open(f.path)
	if err != nil {
		f.t.Fatalf("open state: %v", err)
	}
	f.t.Cleanup(func() {
		storetest.Check(f.t, db.BoltDB())
		if err := db.Close(); err != nil {
			f.t.Errorf("close state: %v", err)
		}
	})
	f.db = db
	f.rt = local.New(db, f.logDir, localtest.Logger(f.t))
}

// restart closes the state file and opens it again with a new runtime, as
// an agent restarted after a crash does: the processes keep running.
func (f *fixture) restart() {
	f.t.Helper()
	storetest.Check(f.t, f.db.BoltDB())
	if err := f.db.Close(); err != nil {
		f.t.Fatalf("close state: %v", err)
	}
	f.open()
}

// rev is a revision of the demo app serving version; it listens on the
// port given through "$(PORT)" in its arguments.
func (f *fixture) rev(version string, extraArgs ...string) *cutoverv1.Revision {
	return &cutoverv1.Revision{
		Name:         version,
		Command:      demoApp,
		Args:         append([]string{"--version", version, "--listen", "127.0.0.1:$(PORT)"}, extraArgs...),
		Env:          map[string]string{localtest.MarkerEnv: f.marker},
		Instances:    1,
		ReadyTimeout: "20s",
	}
}

// start starts an instance and stops it when the test ends.
func (f *fixture) start(ctx context.Context, app string, index int, rev *cutoverv1.Revision) runtime.Instance {
	f.t.Helper()
	in, err := f.rt.Start(ctx, app, index, rev)
	if err != nil {
		f.t.Fatalf("Start(%s[%d]): %v", rev.GetName(), index, err)
	}
	f.stopAtEnd(in)
	return in
}

func (f *fixture) stopAtEnd(in runtime.Instance) {
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopWithin)
		defer cancel()
		if err := in.Stop(ctx); err != nil {
			f.t.Errorf("Stop: %v", err)
		}
	})
}

// records returns the app's recorded processes.
func (f *fixture) records(app string) []state.Instance {
	f.t.Helper()
	recs, err := f.db.Instances(app)
	if err != nil {
		f.t.Fatalf("Instances(%s): %v", app, err)
	}
	return recs
}

// record returns the one record of the app's instance index.
func (f *fixture) record(app string, index int) state.Instance {
	f.t.Helper()
	for _, r := range f.records(app) {
		if r.Index == index {
			return r
		}
	}
	f.t.Fatalf("no record of %s[%d] in %+v", app, index, f.records(app))
	return state.Instance{}
}

func waitReady(t *testing.T, in runtime.Instance) {
	t.Helper()
	localtest.WaitFor(t, readyWithin, in.Revision()+" ready", func() bool {
		if in.Exited() {
			t.Fatalf("%s[%d] exited before it was ready", in.Revision(), in.Index())
		}
		return in.Ready()
	})
}

// assertNotReady fails t if in ever reports Ready: asked many times, so a
// report that is right only by chance is caught.
func assertNotReady(t *testing.T, in runtime.Instance, when string) {
	t.Helper()
	for range 100 {
		if in.Ready() {
			t.Errorf("Ready %s", when)
			return
		}
	}
}

// version GETs / from addr and returns the X-Version header.
func version(t *testing.T, addr string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", addr, resp.StatusCode)
	}
	return resp.Header.Get("X-Version")
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("Addr %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("Addr %q: %v", addr, err)
	}
	return n
}

func TestStartServesAndRecords(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rev := f.rev("v1")
	rev.Env["CUTOVER_SELF"] = "http://127.0.0.1:$(PORT)/"
	in := f.start(t.Context(), "web", 3, rev)

	waitReady(t, in)
	if got := version(t, in.Addr()); got != "v1" {
		t.Errorf("X-Version from %s = %q, want v1", in.Addr(), got)
	}
	if in.Revision() != runtime.RevisionKey(rev) || in.Index() != 3 || in.Exited() {
		t.Errorf("instance: revision %q, index %d, exited %v; want %q, 3, false",
			in.Revision(), in.Index(), in.Exited(), runtime.RevisionKey(rev))
	}

	// The record names the very process that serves, on the instance's port.
	p := port(t, in.Addr())
	recs := f.records("web")
	if len(recs) != 1 {
		t.Fatalf("records = %+v, want one", recs)
	}
	rec := recs[0]
	if rec.App != "web" || rec.Revision != in.Revision() || rec.Index != 3 || rec.Port != p || rec.StartTicks == 0 {
		t.Errorf("record = %+v, want web/%s/3 on port %d with a start time", rec, in.Revision(), p)
	}
	if got := localtest.Processes(f.marker); !slices.Equal(got, []int{rec.PID}) {
		t.Errorf("processes of the test = %v, want the recorded pid %d", got, rec.PID)
	}

	// "$(PORT)" was substituted in the arguments and the environment, and
	// PORT was set.
	env, err := localtest.Environ(rec.PID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PORT=" + strconv.Itoa(p), "CUTOVER_SELF=http://127.0.0.1:" + strconv.Itoa(p) + "/"} {
		if !slices.Contains(env, want) {
			t.Errorf("environment lacks %q", want)
		}
	}
	args, err := localtest.Cmdline(rec.PID)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{demoApp, "--version", "v1", "--listen", in.Addr()}; !slices.Equal(args, want) {
		t.Errorf("command line = %q, want %q", args, want)
	}
}

func TestStartGivesEachInstanceItsOwnPort(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rev := f.rev("v1")
	a := f.start(t.Context(), "web", 0, rev)
	b := f.start(t.Context(), "web", 1, rev)
	waitReady(t, a)
	waitReady(t, b)
	if a.Addr() == b.Addr() {
		t.Fatalf("both instances on %s", a.Addr())
	}
	for _, in := range []runtime.Instance{a, b} {
		if got := version(t, in.Addr()); got != "v1" {
			t.Errorf("X-Version from %s = %q, want v1", in.Addr(), got)
		}
	}
	if got := len(localtest.Processes(f.marker)); got != 2 {
		t.Errorf("%d processes run, want 2", got)
	}
}

func TestNotReadyInTimeIsKilled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rev := f.rev("v1", "--ready-delay", "1h")
	rev.ReadyTimeout = "500ms"
	started := time.Now()
	in := f.start(t.Context(), "web", 0, rev)
	pid := f.record("web", 0).PID

	localtest.WaitFor(t, readyWithin, "the unready instance to be killed", in.Exited)
	if elapsed := time.Since(started); elapsed < 500*time.Millisecond {
		t.Errorf("killed after %v, before its ready timeout of 500ms", elapsed)
	}
	assertNotReady(t, in, "after the process was killed")
	if localtest.Running(pid) {
		t.Errorf("process %d still runs", pid)
	}
}

func TestStopTerminatesAndForgets(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.start(t.Context(), "web", 0, f.rev("v1"))
	waitReady(t, in)
	pid := f.record("web", 0).PID

	if err := in.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Stop returns once the process is gone, not merely signalled.
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !os.IsNotExist(err) {
		t.Errorf("/proc/%d after Stop: %v, want it gone", pid, err)
	}
	if !in.Exited() {
		t.Error("not Exited after Stop")
	}
	assertNotReady(t, in, "after Stop")
	if recs := f.records("web"); len(recs) != 0 {
		t.Errorf("records after Stop = %+v, want none", recs)
	}
	if _, err := net.DialTimeout("tcp", in.Addr(), time.Second); err == nil {
		t.Errorf("%s still accepts connections", in.Addr())
	}
	if err := in.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// A process that ignores SIGTERM is killed, with everything in its process
// group, when Stop's context ends.
func TestStopKillsGroupWhenContextEnds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rev := &cutoverv1.Revision{
		Name:    "stubborn",
		Command: "/bin/sh",
		// The background sleep inherits the ignored SIGTERM and the marker.
		Args:         []string{"-c", "trap '' TERM; sleep 300 & wait"},
		Env:          map[string]string{localtest.MarkerEnv: f.marker},
		ReadyTimeout: "1h",
	}
	in := f.start(t.Context(), "web", 0, rev)
	localtest.WaitFor(t, readyWithin, "the shell and its sleep", func() bool { return len(localtest.Processes(f.marker)) == 2 })

	started := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := in.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if elapsed := time.Since(started); elapsed < 300*time.Millisecond {
		t.Errorf("Stop returned after %v, before its context ended: SIGTERM was not ignored?", elapsed)
	}
	if !in.Exited() {
		t.Error("not Exited after Stop")
	}
	localtest.WaitFor(t, stopWithin, "the whole process group to die", func() bool { return len(localtest.Processes(f.marker)) == 0 })
	if recs := f.records("web"); len(recs) != 0 {
		t.Errorf("records after Stop = %+v, want none", recs)
	}
}

func TestExitIsSeen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		kill bool // kill the process once it is ready
	}{
		{name: "exits at start", args: []string{"--error-rate", "2"}},
		{name: "killed while serving", kill: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			in := f.start(t.Context(), "web", 0, f.rev("v1", tt.args...))
			pid := f.record("web", 0).PID
			if tt.kill {
				waitReady(t, in)
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			localtest.WaitFor(t, readyWithin, "the exit to be seen", in.Exited)
			assertNotReady(t, in, "after the process exited")
			// Stop still forgets an exited process's record.
			if err := in.Stop(t.Context()); err != nil {
				t.Errorf("Stop of an exited instance: %v", err)
			}
			if recs := f.records("web"); len(recs) != 0 {
				t.Errorf("records = %+v, want none", recs)
			}
		})
	}
}

func TestStartMissingCommand(t *testing.T) {
	t.Parallel()
	for _, command := range []string{"cutover-no-such-command", "/nonexistent/cutover-no-such-command"} {
		t.Run(command, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			rev := f.rev("v1")
			rev.Command = command
			in, err := f.rt.Start(t.Context(), "web", 0, rev)
			if err == nil {
				f.stopAtEnd(in)
				t.Fatal("Start of a missing command succeeded")
			}
			if !strings.Contains(err.Error(), command) {
				t.Errorf("error %q does not name %q", err, command)
			}
			if recs := f.records("web"); len(recs) != 0 {
				t.Errorf("records = %+v, want none", recs)
			}
		})
	}
}

// A restarted agent adopts the processes its previous run left serving:
// the same pids, probed ready again, and no new process.
func TestAdoptAfterRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rev := f.rev("v1")
	key := runtime.RevisionKey(rev)
	// The first agent's probes die with it.
	firstRun, crash := context.WithCancel(t.Context())
	var addrs []string
	for i := range 2 {
		in, err := f.rt.Start(firstRun, "web", i, rev)
		if err != nil {
			t.Fatal(err)
		}
		waitReady(t, in)
		addrs = append(addrs, in.Addr())
	}
	before := f.records("web")
	pids := localtest.Processes(f.marker)
	if len(pids) != 2 {
		t.Fatalf("processes = %v, want 2", pids)
	}
	crash()

	f.restart()
	var asked []string
	adopted, err := f.rt.Adopt(t.Context(), "web", func(k string) *cutoverv1.Revision {
		asked = append(asked, k)
		if k == key {
			return rev
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	for _, in := range adopted {
		f.stopAtEnd(in)
	}
	if len(adopted) != 2 {
		t.Fatalf("Adopt returned %d instances, want 2", len(adopted))
	}
	if !slices.Equal(asked, []string{key, key}) {
		t.Errorf("revisions looked up = %q, want %q twice", asked, key)
	}
	for i, in := range adopted {
		if in.Revision() != key || in.Index() != i || in.Addr() != addrs[i] {
			t.Errorf("adopted[%d] = %s[%d] on %s, want %s[%d] on %s", i, in.Revision(), in.Index(), in.Addr(), key, i, addrs[i])
		}
		waitReady(t, in)
		if got := version(t, in.Addr()); got != "v1" {
			t.Errorf("X-Version from adopted %s = %q, want v1", in.Addr(), got)
		}
	}
	if got := localtest.Processes(f.marker); !slices.Equal(got, pids) {
		t.Errorf("processes after Adopt = %v, want the same %v", got, pids)
	}
	if after := f.records("web"); !slices.Equal(after, before) {
		t.Errorf("records after Adopt = %+v, want unchanged %+v", after, before)
	}

	// Stopping an adopted instance (not a child of this runtime) waits for
	// the process to go and forgets it.
	pid := f.record("web", 0).PID
	if err := adopted[0].Stop(t.Context()); err != nil {
		t.Fatalf("Stop adopted: %v", err)
	}
	if localtest.Running(pid) || !adopted[0].Exited() {
		t.Errorf("after Stop: process %d running %v, Exited %v", pid, localtest.Running(pid), adopted[0].Exited())
	}
	if recs := f.records("web"); len(recs) != 1 || recs[0].Index != 1 {
		t.Errorf("records after Stop = %+v, want only index 1", recs)
	}
	// An adopted process that dies on its own is seen as Exited.
	if err := syscall.Kill(f.record("web", 1).PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	localtest.WaitFor(t, readyWithin, "the adopted process's death to be seen", adopted[1].Exited)
	assertNotReady(t, adopted[1], "after the adopted process died")
}

// Adopt drops a record whose process is gone, and one whose pid now belongs
// to another process (start time differs), and adopts only the live one.
func TestAdoptDropsStaleRecords(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rev := f.rev("v1")
	key := runtime.RevisionKey(rev)
	live := f.start(t.Context(), "web", 0, rev)
	waitReady(t, live)
	liveRec := f.record("web", 0)

	// A process that has come and gone.
	gone := exec.Command(demoApp, "--version", "v1", "--error-rate", "2")
	if err := gone.Run(); err == nil {
		t.Fatal("demo app with --error-rate 2 exited 0")
	}
	stale := []state.Instance{
		{App: "web", Revision: key, Index: 1, PID: gone.Process.Pid, Port: 1, StartTicks: liveRec.StartTicks},
		// The pid of a live process, started at another time: the kernel
		// reused the pid of the recorded process.
		{App: "web", Revision: key, Index: 2, PID: liveRec.PID, Port: 2, StartTicks: liveRec.StartTicks + 1},
	}
	for _, r := range stale {
		if err := f.db.PutInstance(r); err != nil {
			t.Fatal(err)
		}
	}

	adopted, err := f.rt.Adopt(t.Context(), "web", func(string) *cutoverv1.Revision { return rev })
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if len(adopted) != 1 || adopted[0].Index() != 0 || adopted[0].Addr() != live.Addr() {
		for _, in := range adopted {
			t.Errorf("adopted %s[%d] on %s", in.Revision(), in.Index(), in.Addr())
		}
		t.Fatalf("Adopt returned %d instances, want only index 0 on %s", len(adopted), live.Addr())
	}
	waitReady(t, adopted[0])
	if recs := f.records("web"); !slices.Equal(recs, []state.Instance{liveRec}) {
		t.Errorf("records after Adopt = %+v, want only %+v", recs, liveRec)
	}
	if !localtest.Running(liveRec.PID) {
		t.Error("the live process was disturbed")
	}
}

// Records of revisions the agent no longer knows are adopted too, so they
// can be stopped; they are probed on the default readiness path.
func TestAdoptUnknownRevision(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.start(t.Context(), "web", 0, f.rev("v1"))
	waitReady(t, in)

	adopted, err := f.rt.Adopt(t.Context(), "web", func(string) *cutoverv1.Revision { return nil })
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if len(adopted) != 1 {
		t.Fatalf("Adopt returned %d instances, want 1", len(adopted))
	}
	waitReady(t, adopted[0])
	if err := adopted[0].Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := localtest.Processes(f.marker); len(got) != 0 {
		t.Errorf("processes after Stop = %v, want none", got)
	}
}

// Adopt only reads the records of the app it is asked about.
func TestAdoptIsPerApp(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rev := f.rev("v1")
	waitReady(t, f.start(t.Context(), "web", 0, rev))
	waitReady(t, f.start(t.Context(), "web2", 0, rev))

	adopted, err := f.rt.Adopt(t.Context(), "web", func(string) *cutoverv1.Revision { return rev })
	if err != nil {
		t.Fatal(err)
	}
	if len(adopted) != 1 || adopted[0].Addr() != "127.0.0.1:"+strconv.Itoa(f.record("web", 0).Port) {
		t.Errorf("Adopt(web) = %d instances, want web's one", len(adopted))
	}
	none, err := f.rt.Adopt(t.Context(), "api", func(string) *cutoverv1.Revision { return rev })
	if err != nil || len(none) != 0 {
		t.Errorf("Adopt(api) = %d instances, %v; want none", len(none), err)
	}
}

// A revision that pins its binary's SHA-256 starts only that binary.
func TestStartChecksThePinnedDigest(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(demoApp)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	f := newFixture(t)
	rev := f.rev("v1")
	rev.Sha256 = strings.Repeat("0", 64)
	in, err := f.rt.Start(t.Context(), "web", 0, rev)
	if err == nil {
		f.stopAtEnd(in)
		t.Fatal("a binary with another digest was started")
	}
	if !strings.Contains(err.Error(), "revision v1: "+demoApp+" has sha256 "+hex.EncodeToString(sum[:])) || !strings.Contains(err.Error(), "refusing to start it") {
		t.Errorf("error %q does not name the binary and both digests", err)
	}
	if recs := f.records("web"); len(recs) != 0 {
		t.Errorf("records = %+v, want none", recs)
	}
	rev.Sha256 = strings.ToUpper(hex.EncodeToString(sum[:]))
	f.start(t.Context(), "web", 0, rev)
}
