package task_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/agent/runtime"
	"github.com/cutover-dev/cutover/agent/task"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// wait bounds every expected result; generous for the race detector.
const wait = 10 * time.Second

// apps is a hand-written task.Apps.
type apps struct {
	held      func(app string) runtime.Held
	endpoints func(app string) (string, string)
}

func (a apps) Held(app string) runtime.Held {
	if a.held == nil {
		return runtime.Held{}
	}
	return a.held(app)
}

func (a apps) Endpoints(app string) (string, string) {
	if a.endpoints == nil {
		return "", ""
	}
	return a.endpoints(app)
}

func newRunner(t *testing.T, a task.Apps) *task.Runner {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := task.New(ctx, task.Config{Cluster: "c1", Apps: a, AllowCommands: true})
	t.Cleanup(func() {
		cancel()
		r.Wait()
	})
	return r
}

// result waits for the next result of the runner.
func result(t *testing.T, r *task.Runner) *cutoverv1.TaskResult {
	t.Helper()
	deadline := time.After(wait)
	for {
		if got := r.Take(); len(got) > 0 {
			if len(got) != 1 {
				t.Fatalf("%d results at once, want 1: %v", len(got), got)
			}
			return got[0]
		}
		select {
		case <-r.Ready():
		case <-deadline:
			t.Fatalf("no result within %v", wait)
		}
	}
}

func sh(id, script, timeout string) *cutoverv1.RunTask {
	return &cutoverv1.RunTask{
		Id: id, App: "api", Timeout: timeout,
		Task: &cutoverv1.RunTask_Command{Command: &cutoverv1.CommandHook{Command: "sh", Args: []string{"-c", script}}},
	}
}

// one returns a task result's only check.
func one(t *testing.T, res *cutoverv1.TaskResult) *cutoverv1.CheckResult {
	t.Helper()
	if len(res.GetResults()) != 1 {
		t.Fatalf("task %s: %d results, want 1: %v", res.GetId(), len(res.GetResults()), res)
	}
	c := res.GetResults()[0]
	if c.GetKind() != task.KindCommand || c.GetCluster() != "c1" || c.GetName() != "" || c.GetAttempts() != 1 || c.GetStartTime() == nil {
		t.Errorf("result %v: want kind command, cluster c1, no name, 1 attempt, a start time", c)
	}
	return c
}

func TestCommandExitCodes(t *testing.T) {
	r := newRunner(t, nil)
	r.Submit(sh("ok", "echo fine", ""))
	c := one(t, result(t, r))
	if !c.GetPassed() || c.GetMessage() != "exit code 0" || c.GetOutput() != "fine\n" {
		t.Errorf("exit 0: passed %v, message %q, output %q", c.GetPassed(), c.GetMessage(), c.GetOutput())
	}

	r.Submit(sh("fail", "echo out; echo err >&2; exit 3", ""))
	res := result(t, r)
	c = one(t, res)
	if res.GetId() != "fail" || c.GetPassed() || c.GetMessage() != "exit code 3" || !strings.Contains(c.GetOutput(), "out\n") || !strings.Contains(c.GetOutput(), "err\n") {
		t.Errorf("exit 3: id %s, passed %v, message %q, output %q", res.GetId(), c.GetPassed(), c.GetMessage(), c.GetOutput())
	}

	r.Submit(&cutoverv1.RunTask{Id: "missing", Task: &cutoverv1.RunTask_Command{Command: &cutoverv1.CommandHook{Command: "no-such-command-cutover"}}})
	c = one(t, result(t, r))
	if c.GetPassed() || c.GetMessage() != `command "no-such-command-cutover" not found` {
		t.Errorf("missing command: passed %v, message %q", c.GetPassed(), c.GetMessage())
	}

	r.Submit(sh("bad-timeout", "exit 0", "soon"))
	if c := one(t, result(t, r)); c.GetPassed() || !strings.Contains(c.GetMessage(), `timeout "soon"`) {
		t.Errorf("bad timeout: passed %v, message %q", c.GetPassed(), c.GetMessage())
	}
}

func TestCommandOutputKeepsTheEnd(t *testing.T) {
	r := newRunner(t, nil)
	r.Submit(sh("big", `i=0; while [ $i -lt 2000 ]; do printf 'line %04d\n' $i; i=$((i+1)); done`, ""))
	c := one(t, result(t, r))
	if len(c.GetOutput()) != task.OutputLimit || !strings.HasSuffix(c.GetOutput(), "line 1999\n") || strings.Contains(c.GetOutput(), "line 0000") {
		t.Errorf("output of %d bytes ending %q, want the last %d bytes", len(c.GetOutput()), c.GetOutput()[max(0, len(c.GetOutput())-20):], task.OutputLimit)
	}
}

// gone reports whether a process no longer runs (a zombie does not).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] == "Z"
}

func TestCommandTimeoutKillsItsGroup(t *testing.T) {
	r := newRunner(t, nil)
	pids := filepath.Join(t.TempDir(), "pids")
	// The shell and a background child it starts, which stays in its group.
	r.Submit(sh("slow", fmt.Sprintf("sleep 300 & echo $$ $! > %s; echo started; wait", pids), "500ms"))
	start := time.Now()
	c := one(t, result(t, r))
	if c.GetPassed() || c.GetMessage() != "timed out after 500ms" || c.GetOutput() != "started\n" {
		t.Errorf("timeout: passed %v, message %q, output %q", c.GetPassed(), c.GetMessage(), c.GetOutput())
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a 500ms timeout took %v", took)
	}
	data, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		t.Fatalf("pids file %q", data)
	}
	for _, f := range fields {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(wait)
		for !gone(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d of the timed-out command still runs", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestCommandEnvironment(t *testing.T) {
	r := newRunner(t, apps{endpoints: func(app string) (string, string) {
		if app != "api" {
			return "", ""
		}
		return "127.0.0.1:8080", "127.0.0.1:8081"
	}})
	t.Setenv("CUTOVER_TEST_AGENT_ENV", "not passed on")
	t.Setenv("LANG", "C.UTF-8")
	tk := sh("env", "env", "")
	tk.Env = map[string]string{"CUTOVER_ROLLOUT": "api", "CUTOVER_REVISION": "v2", "CUTOVER_PHASE": "preRollout", "CUTOVER_CLUSTER": "forged"}
	tk.GetCommand().Env = map[string]string{"FOO": "bar", "CUTOVER_PHASE": "from-hook"}
	r.Submit(tk)
	c := one(t, result(t, r))
	env := map[string]string{}
	for _, line := range strings.Split(c.GetOutput(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	want := map[string]string{
		"CUTOVER_CLUSTER": "c1", "ENDPOINT": "127.0.0.1:8080", "PREVIEW": "127.0.0.1:8081",
		"CUTOVER_ROLLOUT": "api", "CUTOVER_REVISION": "v2", "CUTOVER_PHASE": "from-hook",
		"FOO": "bar", "CUTOVER_TEST_AGENT_ENV": "", "LANG": "C.UTF-8",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}

	// An app the agent does not serve has no ENDPOINT.
	tk = sh("env2", "env", "")
	tk.App = "other"
	r.Submit(tk)
	if out := one(t, result(t, r)).GetOutput(); strings.Contains(out, "ENDPOINT=") || !strings.Contains(out, "CUTOVER_CLUSTER=c1") {
		t.Errorf("env of an unknown app: %s", out)
	}
}

func TestRepeatedIDRunsOnce(t *testing.T) {
	r := newRunner(t, nil)
	runs := filepath.Join(t.TempDir(), "runs")
	gate := filepath.Join(t.TempDir(), "gate")
	// Runs until the test creates the gate file, so the repeat arrives
	// while it runs.
	hook := sh("once", fmt.Sprintf("echo run >> %s; while [ ! -e %s ]; do sleep 0.01; done; exit 3", runs, gate), "")
	r.Submit(hook)
	r.Submit(hook)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	first := result(t, r)
	r.Submit(hook) // finished: answered from the stored result
	again := result(t, r)
	if one(t, again).GetMessage() != "exit code 3" || again != first {
		t.Errorf("repeat answered with %v, want the stored %v", again, first)
	}
	if extra := r.Take(); len(extra) != 0 {
		t.Errorf("results beyond one per submission after the first finished: %v", extra)
	}
	data, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "run\n"); n != 1 {
		t.Errorf("the command ran %d times, want 1", n)
	}
}

func TestKeepsTheLastResults(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := task.New(ctx, task.Config{Cluster: "c1", Keep: 2, AllowCommands: true})
	defer r.Wait()
	runs := filepath.Join(t.TempDir(), "runs")
	hook := func(id string) *cutoverv1.RunTask { return sh(id, fmt.Sprintf("echo %s >> %s", id, runs), "") }
	for _, id := range []string{"a", "b", "c"} {
		r.Submit(hook(id))
		result(t, r)
	}
	r.Submit(hook("c")) // kept
	result(t, r)
	r.Submit(hook("a")) // forgotten: runs again
	result(t, r)
	data, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(data)); strings.Join(got, ",") != "a,b,c,a" {
		t.Errorf("runs %v, want a,b,c,a", got)
	}
}

// Command hooks run only where the agent allows them, and never see the
// agent's own credentials in their environment.
func TestCommandHooksNeedTheAgentsConsent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	off := task.New(ctx, task.Config{Cluster: "c1"})
	t.Cleanup(func() {
		cancel()
		off.Wait()
	})
	off.Submit(sh("t-off", "echo ran", "5s"))
	got := result(t, off).GetResults()[0]
	if got.GetPassed() || !strings.Contains(got.GetMessage(), "--allow-command-hooks") || got.GetOutput() != "" {
		t.Errorf("with hooks off: %v", got)
	}

	t.Setenv("CUTOVER_AGENT_SECRET", "s3cret")
	on := newRunner(t, apps{})
	on.Submit(sh("t-env", `echo "secret=$CUTOVER_AGENT_SECRET path=${PATH:+set}"`, "5s"))
	got = result(t, on).GetResults()[0]
	if !got.GetPassed() || !strings.Contains(got.GetOutput(), "secret= path=set") {
		t.Errorf("environment: %v", got)
	}
}
