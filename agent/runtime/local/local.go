package local

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cutover-dev/cutover/agent/runtime"
	"github.com/cutover-dev/cutover/agent/state"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// Timing of supervision.
const (
	probeInterval = 50 * time.Millisecond
	probeTimeout  = 2 * time.Second
	exitPoll      = 100 * time.Millisecond
	stopGrace     = 10 * time.Second
)

// Records is where instances are recorded.
type Records interface {
	// PutInstance records a started process. Idempotent; safe for concurrent use.
	PutInstance(i state.Instance) error
	// DeleteInstance forgets a process. Idempotent; safe for concurrent use.
	DeleteInstance(i state.Instance) error
	// Instances returns the recorded processes of an app. Safe for concurrent use.
	Instances(app string) ([]state.Instance, error)
}

// Runtime starts, adopts and stops app processes. Safe for concurrent use.
type Runtime struct {
	records Records
	logDir  string
	log     *slog.Logger
	client  *http.Client
	// maxInstances bounds the agent's instances for dry runs (0: none).
	maxInstances int
}

// New returns a runtime that writes instance output under logDir.
func New(records Records, logDir string, log *slog.Logger) *Runtime {
	return &Runtime{
		records: records,
		logDir:  logDir,
		log:     log,
		client:  &http.Client{Timeout: probeTimeout},
	}
}

// Instance is one supervised process.
type Instance struct {
	rec      state.Instance
	rt       *Runtime
	done     chan struct{} // closed when the process has exited
	ready    chan struct{} // closed when the readiness probe passed
	stopOnce sync.Once
}

// Addr is the instance's host:port.
func (i *Instance) Addr() string { return "127.0.0.1:" + strconv.Itoa(i.rec.Port) }

// Revision is the key of the revision the instance runs.
func (i *Instance) Revision() string { return i.rec.Revision }

// Index is the instance's slot within its revision.
func (i *Instance) Index() int { return i.rec.Index }

// Ready reports whether the readiness probe passed and the process runs.
func (i *Instance) Ready() bool {
	// Two selects: one select with both channels closed picks a case at
	// random, and would call an exited process ready half the time.
	select {
	case <-i.ready:
	default:
		return false
	}
	return !i.Exited()
}

// Exited reports whether the process has exited.
func (i *Instance) Exited() bool {
	select {
	case <-i.done:
		return true
	default:
		return false
	}
}

// Start launches instance index of rev for app and begins probing it.
func (rt *Runtime) Start(ctx context.Context, app string, index int, rev *cutoverv1.Revision) (runtime.Instance, error) {
	if want := rev.GetSha256(); want != "" {
		if err := verifyDigest(rev.GetCommand(), want); err != nil {
			return nil, fmt.Errorf("revision %s: %w", rev.GetName(), err)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	key := runtime.RevisionKey(rev)
	args := make([]string, len(rev.GetArgs()))
	for i, a := range rev.GetArgs() {
		args[i] = strings.ReplaceAll(a, "$(PORT)", strconv.Itoa(port))
	}
	cmd := exec.Command(rev.GetCommand(), args...)
	cmd.Env = os.Environ()
	for k, v := range rev.GetEnv() {
		cmd.Env = append(cmd.Env, k+"="+strings.ReplaceAll(v, "$(PORT)", strconv.Itoa(port)))
	}
	cmd.Env = append(cmd.Env, "PORT="+strconv.Itoa(port))
	// Own process group: an interrupt aimed at the agent's terminal does not
	// reach the app, and Stop can signal everything the app spawned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logFile, err := rt.openLog(app, key, index)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s[%d]: %w", app, key, index, err)
	}
	ticks, _, err := procStart(cmd.Process.Pid)
	if err != nil {
		_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, err
	}
	inst := rt.newInstance(state.Instance{App: app, Revision: key, Index: index, PID: cmd.Process.Pid, Port: port, StartTicks: ticks})
	if err := rt.records.PutInstance(inst.rec); err != nil {
		_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, err
	}
	go func() {
		_ = cmd.Wait()
		close(inst.done)
	}()
	go inst.probe(ctx, rev)
	rt.log.Info("instance started", "app", app, "revision", key, "index", index, "pid", inst.rec.PID, "port", port)
	return inst, nil
}

// Adopt takes over the recorded processes of app that still run, and
// forgets the records of those that do not. rev looks up a revision's spec
// by key (for its readiness path); records of unknown revisions are adopted
// too, so they can be drained and stopped.
func (rt *Runtime) Adopt(ctx context.Context, app string, rev func(key string) *cutoverv1.Revision) ([]runtime.Instance, error) {
	recs, err := rt.records.Instances(app)
	if err != nil {
		return nil, err
	}
	var out []runtime.Instance
	for _, rec := range recs {
		if !sameProcess(rec.PID, rec.StartTicks) {
			rt.log.Info("recorded instance is gone", "app", app, "revision", rec.Revision, "pid", rec.PID)
			if err := rt.records.DeleteInstance(rec); err != nil {
				return nil, err
			}
			continue
		}
		inst := rt.newInstance(rec)
		go inst.watchAdopted()
		go inst.probe(ctx, rev(rec.Revision))
		rt.log.Info("instance adopted", "app", app, "revision", rec.Revision, "index", rec.Index, "pid", rec.PID)
		out = append(out, inst)
	}
	return out, nil
}

func (rt *Runtime) newInstance(rec state.Instance) *Instance {
	return &Instance{rec: rec, rt: rt, done: make(chan struct{}), ready: make(chan struct{})}
}

// watchAdopted closes done when an adopted process (not our child, so it
// cannot be waited for) disappears. Like cmd.Wait for children, it lives as
// long as the process.
func (i *Instance) watchAdopted() {
	t := time.NewTicker(exitPoll)
	defer t.Stop()
	for sameProcess(i.rec.PID, i.rec.StartTicks) {
		<-t.C
	}
	close(i.done)
}

// probe polls the readiness path until it answers 2xx, the process exits,
// or the ready timeout passes (then the instance is killed, to be replaced).
func (i *Instance) probe(ctx context.Context, rev *cutoverv1.Revision) {
	path := rev.GetReadinessPath()
	if path == "" {
		path = spec.DefaultReadinessPath
	}
	url := "http://" + i.Addr() + path
	deadline := time.NewTimer(spec.ReadyTimeout(rev))
	defer deadline.Stop()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		if i.check(ctx, url) {
			close(i.ready)
			i.rt.log.Info("instance ready", "app", i.rec.App, "revision", i.rec.Revision, "index", i.rec.Index)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-i.done:
			return
		case <-deadline.C:
			i.rt.log.Warn("instance not ready in time; stopping it", "app", i.rec.App, "revision", i.rec.Revision, "index", i.rec.Index)
			_ = signalGroup(i.rec.PID, syscall.SIGKILL)
			return
		case <-t.C:
		}
	}
}

func (i *Instance) check(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := i.rt.client.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

// Stop terminates the process group (SIGTERM, then SIGKILL after a grace
// period or when ctx ends) and forgets the record. Idempotent.
func (i *Instance) Stop(ctx context.Context) error {
	var err error
	i.stopOnce.Do(func() { err = i.stop(ctx) })
	return err
}

func (i *Instance) stop(ctx context.Context) error {
	if err := signalGroup(i.rec.PID, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop %s: %w", i.rec.Key(), err)
	}
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-i.done:
	case <-grace.C:
		_ = signalGroup(i.rec.PID, syscall.SIGKILL)
		<-i.done
	case <-ctx.Done():
		_ = signalGroup(i.rec.PID, syscall.SIGKILL)
		<-i.done
	}
	i.rt.log.Info("instance stopped", "app", i.rec.App, "revision", i.rec.Revision, "index", i.rec.Index, "pid", i.rec.PID)
	return i.rt.records.DeleteInstance(i.rec)
}

func (rt *Runtime) openLog(app, key string, index int) (*os.File, error) {
	dir := filepath.Join(rt.logDir, app)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%s-%d.log", key, index)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open instance log: %w", err)
	}
	return f, nil
}

// freePort asks the kernel for an unused loopback port. Another process may
// take it before the app binds; the app then exits and is started again on
// another port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer ln.Close()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("find free port: unexpected address %s", ln.Addr())
	}
	return addr.Port, nil
}

// verifyDigest checks that the executable a command resolves to has the
// SHA-256 the spec pins.
func verifyDigest(command, want string) error {
	path, err := exec.LookPath(command)
	if err != nil {
		return fmt.Errorf("verify %s: %w", command, err)
	}
	got, err := fileDigest(path)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !strings.EqualFold(got, want) {
		return fmt.Errorf("%s has sha256 %s, but spec.revision.sha256 pins %s: refusing to start it", path, got, strings.ToLower(want))
	}
	return nil
}
