package link_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cutover-dev/cutover/agent/link"
	"github.com/cutover-dev/cutover/agent/reconcile"
	"github.com/cutover-dev/cutover/agent/runtime/local"
	"github.com/cutover-dev/cutover/agent/state"
	"github.com/cutover-dev/cutover/agent/task"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

func (s *stream) sendTask(t *testing.T, rt *cutoverv1.RunTask) {
	t.Helper()
	if err := s.srv.Send(&cutoverv1.ConnectResponse{Payload: &cutoverv1.ConnectResponse_Task{Task: rt}}); err != nil {
		t.Fatalf("send task: %v", err)
	}
}

// taskResult returns the next task result, skipping other messages.
func (s *stream) taskResult(t *testing.T) *cutoverv1.TaskResult {
	t.Helper()
	for {
		if r := s.next(t).GetTaskResult(); r != nil {
			return r
		}
	}
}

// newTasks is a task runner for cluster eu-1 whose dry runs go to a real
// local runtime, stopped when the test ends.
func newTasks(t *testing.T) *task.Runner {
	t.Helper()
	db, err := state.Open(filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	r := task.New(ctx, task.Config{Cluster: "eu-1", AllowCommands: true, DryRunner: local.New(db, t.TempDir(), slog.New(slog.DiscardHandler)).WithMaxInstances(1)})
	t.Cleanup(func() {
		cancel()
		r.Wait()
	})
	return r
}

// appendHook appends a line to file, then waits until gate exists (none:
// at once) and exits 3.
func appendHook(id, file, gate string) *cutoverv1.RunTask {
	script := fmt.Sprintf("echo run >> %s; echo appended", file)
	if gate != "" {
		script += fmt.Sprintf("; while [ ! -e %s ]; do sleep 0.01; done", gate)
	}
	return &cutoverv1.RunTask{
		Id: id, App: "api", Timeout: "20s",
		Task: &cutoverv1.RunTask_Command{Command: &cutoverv1.CommandHook{Command: "sh", Args: []string{"-c", script + "; exit 3"}}},
	}
}

func runs(t *testing.T, file string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "run\n")
}

func TestTaskResultAndRepeat(t *testing.T) {
	t.Parallel()
	cp, addr := startControlPlane(t)
	startLink(t, link.Config{Server: addr, Hello: hello(), Tasks: newTasks(t)}, newApplier(nil), reconcile.NewOutbox(), nil)
	s := cp.accept(t)
	s.hello(t)

	file := filepath.Join(t.TempDir(), "runs")
	s.sendTask(t, appendHook("hook-1", file, ""))
	first := s.taskResult(t)
	if first.GetId() != "hook-1" || len(first.GetResults()) != 1 {
		t.Fatalf("result %v, want one check for hook-1", first)
	}
	c := first.GetResults()[0]
	if c.GetPassed() || c.GetMessage() != "exit code 3" || c.GetOutput() != "appended\n" || c.GetKind() != "command" || c.GetCluster() != "eu-1" {
		t.Errorf("check %v: want a failed command of eu-1, exit code 3, output kept", c)
	}

	s.sendTask(t, appendHook("hook-1", file, ""))
	again := s.taskResult(t)
	if !proto.Equal(again, first) {
		t.Errorf("repeat answered with %v, want %v", again, first)
	}
	if n := runs(t, file); n != 1 {
		t.Errorf("the hook ran %d times, want 1", n)
	}

	// The receive loop is free while a task runs: a desired state and a
	// dry run go through while the hook waits.
	gate := filepath.Join(t.TempDir(), "gate")
	s.sendTask(t, appendHook("hook-2", file, gate))
	s.sendTask(t, &cutoverv1.RunTask{Id: "dry-1", App: "api", Task: &cutoverv1.RunTask_DryRun{DryRun: &cutoverv1.DryRun{
		Desired: &cutoverv1.DesiredApp{App: "api", Revisions: []*cutoverv1.DesiredRevision{{
			Track: cutoverv1.Track_TRACK_STABLE, Weight: 100,
			Revision: &cutoverv1.Revision{Name: "v2", Command: filepath.Join(t.TempDir(), "missing")},
		}}},
		ExtraInstances: 2,
	}}})
	dry := s.taskResult(t)
	if dry.GetId() != "dry-1" {
		t.Fatalf("first result %s, want dry-1 (hook-2 still runs)", dry.GetId())
	}
	byName := map[string]*cutoverv1.CheckResult{}
	for _, c := range dry.GetResults() {
		byName[c.GetName()] = c
	}
	for name, pass := range map[string]bool{local.CheckArtifact: false, local.CheckPinned: false, local.CheckCapacity: false, local.CheckListen: true} {
		if c := byName[name]; c == nil || c.GetPassed() != pass || c.GetCluster() != "eu-1" || c.GetKind() != "builtin" {
			t.Errorf("dry run check %q = %v, want passed %v", name, c, pass)
		}
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.taskResult(t); r.GetId() != "hook-2" || r.GetResults()[0].GetMessage() != "exit code 3" {
		t.Errorf("result %v, want hook-2's", r)
	}
}

func TestTaskResentAfterReconnect(t *testing.T) {
	t.Parallel()
	cp, addr := startControlPlane(t)
	startLink(t, link.Config{Server: addr, Hello: hello(), Tasks: newTasks(t)}, newApplier(nil), reconcile.NewOutbox(), nil)
	s := cp.accept(t)
	s.hello(t)

	file, gate := filepath.Join(t.TempDir(), "runs"), filepath.Join(t.TempDir(), "gate")
	s.sendTask(t, appendHook("hook-1", file, gate))
	// The stream breaks while the hook runs.
	close(s.end)
	s.assertEnded(t)
	s = cp.accept(t)
	s.hello(t)
	s.sendTask(t, appendHook("hook-1", file, gate)) // the control plane resends
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.taskResult(t)
	if r.GetId() != "hook-1" || r.GetResults()[0].GetMessage() != "exit code 3" {
		t.Errorf("result %v, want hook-1's", r)
	}
	if n := runs(t, file); n != 1 {
		t.Errorf("the hook ran %d times across the reconnect, want 1", n)
	}
}
