package task

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/agent/runtime"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Defaults of a runner.
const (
	// DefaultTimeout is how long a task may take when it names no timeout.
	DefaultTimeout = 30 * time.Second
	// DefaultKeep is how many finished results are kept for repeats.
	DefaultKeep = 256
)

// Apps is what tasks need to know of the agent's apps.
type Apps interface {
	// Held reports what the agent holds now, with app's listen addresses.
	// Safe for concurrent use.
	Held(app string) runtime.Held
	// Endpoints reports the host:port of app and of its preview, "" when
	// unknown. Safe for concurrent use.
	Endpoints(app string) (endpoint, preview string)
}

// Config configures a runner.
type Config struct {
	// Cluster is the agent's cluster, for results and CUTOVER_CLUSTER.
	Cluster string
	// DryRunner checks desired states (nil: dry runs fail, saying so).
	DryRunner runtime.DryRunner
	// Apps tells about the agent's apps.
	Apps Apps
	// AllowCommands lets command hooks run; without it they fail, saying
	// how to allow them (cutover-agent --allow-command-hooks).
	AllowCommands bool
	// Keep is how many finished results are kept (default DefaultKeep).
	Keep int
	// Log receives one line per task started and finished.
	Log *slog.Logger
}

// Runner runs tasks and queues their results for the link. Safe for
// concurrent use.
type Runner struct {
	cfg Config
	ctx context.Context // tasks run within it
	wg  sync.WaitGroup

	mu      sync.Mutex
	running map[string]bool
	done    map[string]*cutoverv1.TaskResult
	order   []string // finished ids, oldest first, at most cfg.Keep
	pending []*cutoverv1.TaskResult
	notify  chan struct{}
}

// New returns a runner whose tasks live as long as ctx: when it ends,
// running commands are killed.
func New(ctx context.Context, cfg Config) *Runner {
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Runner{
		cfg:     cfg,
		ctx:     ctx,
		running: map[string]bool{},
		done:    map[string]*cutoverv1.TaskResult{},
		notify:  make(chan struct{}, 1),
	}
}

// Submit starts a task on its own goroutine and returns at once. A task id
// that finished is answered with its stored result; one still running is
// left to finish. A task without an id cannot be answered and is dropped.
func (r *Runner) Submit(t *cutoverv1.RunTask) {
	id := t.GetId()
	if id == "" {
		r.cfg.Log.Warn("task without id dropped", "app", t.GetApp())
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if res, ok := r.done[id]; ok {
		r.cfg.Log.Info("task repeated: answering with its result", "task", id, "app", t.GetApp())
		r.queue(res)
		return
	}
	if r.running[id] {
		r.cfg.Log.Info("task repeated while running", "task", id, "app", t.GetApp())
		return
	}
	r.running[id] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		res := &cutoverv1.TaskResult{Id: id, Results: r.run(t)}
		r.finish(res)
	}()
}

// Take returns and forgets the results waiting to be sent.
func (r *Runner) Take() []*cutoverv1.TaskResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.pending
	r.pending = nil
	return out
}

// Ready is signalled when results wait to be sent; signals coalesce.
func (r *Runner) Ready() <-chan struct{} { return r.notify }

// Wait waits for the tasks started so far to finish.
func (r *Runner) Wait() { r.wg.Wait() }

// finish stores a result, queues it, and forgets the oldest beyond Keep.
func (r *Runner) finish(res *cutoverv1.TaskResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, res.GetId())
	r.done[res.GetId()] = res
	r.order = append(r.order, res.GetId())
	if over := len(r.order) - r.cfg.Keep; over > 0 {
		for _, id := range r.order[:over] {
			delete(r.done, id)
		}
		r.order = append([]string(nil), r.order[over:]...)
	}
	r.queue(res)
}

// queue must be called with r.mu held.
func (r *Runner) queue(res *cutoverv1.TaskResult) {
	r.pending = append(r.pending, res)
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// run runs one task within its timeout and returns its results.
func (r *Runner) run(t *cutoverv1.RunTask) []*cutoverv1.CheckResult {
	start := time.Now()
	log := r.cfg.Log.With("task", t.GetId(), "app", t.GetApp())
	timeout, err := Timeout(t.GetTimeout())
	if err != nil {
		return []*cutoverv1.CheckResult{r.failed(kindOf(t), start, err.Error())}
	}
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	defer cancel()
	var out []*cutoverv1.CheckResult
	switch task := t.GetTask().(type) {
	case *cutoverv1.RunTask_DryRun:
		log.Info("dry run started", "extra_instances", task.DryRun.GetExtraInstances(), "require_pinned", task.DryRun.GetRequirePinned())
		out = r.dryRun(ctx, t.GetApp(), task.DryRun, start)
	case *cutoverv1.RunTask_Command:
		log.Info("command hook started", "command", task.Command.GetCommand())
		out = []*cutoverv1.CheckResult{r.command(ctx, t, task.Command, timeout)}
	default:
		out = []*cutoverv1.CheckResult{r.failed(runtime.CheckKind, start, "unknown task: this agent runs dry runs and commands")}
	}
	for _, c := range out {
		log.Info("task check done", "check", c.GetName(), "kind", c.GetKind(), "passed", c.GetPassed(), "message", c.GetMessage(), "duration", time.Since(start).Round(time.Millisecond))
	}
	return out
}

func (r *Runner) dryRun(ctx context.Context, app string, dr *cutoverv1.DryRun, start time.Time) []*cutoverv1.CheckResult {
	if dr.GetDesired() == nil {
		return []*cutoverv1.CheckResult{r.failed(runtime.CheckKind, start, "dry run without a desired state")}
	}
	if r.cfg.DryRunner == nil {
		return []*cutoverv1.CheckResult{r.failed(runtime.CheckKind, start, "this agent's runtime cannot dry-run")}
	}
	if name := dr.GetDesired().GetApp(); name != "" {
		app = name
	}
	var held runtime.Held
	if r.cfg.Apps != nil {
		held = r.cfg.Apps.Held(app)
	}
	out := r.cfg.DryRunner.DryRun(ctx, r.cfg.Cluster, dr, held)
	if ctx.Err() != nil && r.ctx.Err() == nil {
		// The runtime's checks saw the deadline; say so once, plainly.
		out = append(out, r.failed(runtime.CheckKind, start, fmt.Sprintf("timed out after %s", time.Since(start).Round(time.Second))))
	}
	return out
}

// CheckDryRun names the result that says why a dry run as a whole failed.
const CheckDryRun = "dry run"

// failed is a result that says why a task could not run. A command's is
// nameless, as the control plane names it after the hook.
func (r *Runner) failed(kind string, start time.Time, msg string) *cutoverv1.CheckResult {
	name := ""
	if kind != KindCommand {
		name = CheckDryRun
	}
	return &cutoverv1.CheckResult{
		Name: name, Kind: kind, Cluster: r.cfg.Cluster, Message: msg,
		StartTime: timestamppb.New(start), DurationMillis: time.Since(start).Milliseconds(), Attempts: 1,
	}
}

func kindOf(t *cutoverv1.RunTask) string {
	if t.GetCommand() != nil {
		return KindCommand
	}
	return runtime.CheckKind
}

// Timeout parses a task's timeout: empty is DefaultTimeout.
func Timeout(s string) (time.Duration, error) {
	if s == "" {
		return DefaultTimeout, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("timeout %q: want a positive duration such as \"30s\"", s)
	}
	return d, nil
}
