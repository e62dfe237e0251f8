package task

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// KindCommand is the kind of a command hook's result.
const KindCommand = "command"

// Environment variables a command gets from the agent.
const (
	EnvCluster  = "CUTOVER_CLUSTER"
	EnvEndpoint = "ENDPOINT"
	EnvPreview  = "PREVIEW"
)

// OutputLimit is how much of a command's output a result keeps: the end.
const OutputLimit = 4 << 10

// pipeGrace bounds the wait for the output of a command's leftover
// children once the command itself has exited.
const pipeGrace = time.Second

// command runs a command hook and returns its one result (nameless: the
// control plane names it after the hook).
func (r *Runner) command(ctx context.Context, t *cutoverv1.RunTask, hook *cutoverv1.CommandHook, timeout time.Duration) *cutoverv1.CheckResult {
	start := time.Now()
	res := &cutoverv1.CheckResult{Kind: KindCommand, Cluster: r.cfg.Cluster, StartTime: timestamppb.New(start), Attempts: 1}
	defer func() { res.DurationMillis = time.Since(start).Milliseconds() }()
	if !r.cfg.AllowCommands {
		res.Message = "command hooks are off on this agent: start it with --allow-command-hooks to run them"
		return res
	}
	path, err := exec.LookPath(hook.GetCommand())
	if err != nil {
		res.Message = fmt.Sprintf("command %q not found", hook.GetCommand())
		if !errors.Is(err, exec.ErrNotFound) {
			res.Message = fmt.Sprintf("command %q: %v", hook.GetCommand(), err)
		}
		return res
	}
	out := &tail{limit: OutputLimit}
	cmd := exec.CommandContext(ctx, path, hook.GetArgs()...)
	cmd.Env = r.env(t, hook)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, killed whole: what the command started dies
	// with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = pipeGrace
	err = cmd.Run()
	if cmd.Process != nil {
		// What it left running in its group goes with it: nobody would
		// supervise it. The group's id stays reserved while it has
		// members, so this never reaches another process.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	res.Output = out.String()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil && (cmd.ProcessState == nil || !cmd.ProcessState.Success()):
		res.Message = fmt.Sprintf("timed out after %s", timeout)
		if r.ctx.Err() != nil {
			res.Message = "killed: the agent is stopping"
		}
	case err == nil || errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay: it exited, but something it started kept the
		// output open; its exit code stands.
		code := cmd.ProcessState.ExitCode()
		res.Passed = code == 0
		res.Message = fmt.Sprintf("exit code %d", code)
	case errors.As(err, &exitErr):
		res.Message = exitMessage(exitErr.ProcessState)
	default:
		res.Message = fmt.Sprintf("run %s: %v", hook.GetCommand(), err)
	}
	return res
}

// exitMessage says how a failed process ended.
func exitMessage(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("killed by signal %s", ws.Signal())
	}
	return fmt.Sprintf("exit code %d", ps.ExitCode())
}

// inherited are the only variables of the agent's own environment a
// command gets: never its credentials.
var inherited = []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "SHELL"}

// env is a few of the agent's variables (inherited), then the task's,
// then the hook's, then what the agent knows (CUTOVER_CLUSTER, ENDPOINT,
// PREVIEW); a later value replaces an earlier one of the same name.
func (r *Runner) env(t *cutoverv1.RunTask, hook *cutoverv1.CommandHook) []string {
	var env []string
	for _, k := range inherited {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, m := range []map[string]string{t.GetEnv(), hook.GetEnv()} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			env = append(env, k+"="+m[k])
		}
	}
	env = append(env, EnvCluster+"="+r.cfg.Cluster)
	if r.cfg.Apps != nil {
		endpoint, preview := r.cfg.Apps.Endpoints(t.GetApp())
		if endpoint != "" {
			env = append(env, EnvEndpoint+"="+endpoint)
		}
		if preview != "" {
			env = append(env, EnvPreview+"="+preview)
		}
	}
	return env
}

// tail keeps the last limit bytes written to it. Safe for concurrent use.
type tail struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) > t.limit {
		p = p[len(p)-t.limit:]
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

// String is what was kept, as valid UTF-8 (a protobuf string must be): a
// character cut in two at the front, or bytes that are not text, become
// U+FFFD.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.ToValidUTF8(string(t.buf), "\uFFFD")
}
