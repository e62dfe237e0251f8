package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/controlplane/hub"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// tasks reads what the hub sends on a stream and keeps the tasks.
func (a *agent) tasks() chan *cutoverv1.RunTask {
	out := make(chan *cutoverv1.RunTask, 16)
	go func() {
		for {
			msg, err := a.stream.Recv()
			if err != nil {
				a.end <- err
				return
			}
			if t := msg.GetTask(); t != nil {
				out <- t
			}
		}
	}()
	return out
}

func nextTask(t *testing.T, ch chan *cutoverv1.RunTask) *cutoverv1.RunTask {
	t.Helper()
	select {
	case task := <-ch:
		return task
	case <-time.After(waitFor):
		t.Fatal("no task arrived")
	}
	return nil
}

// A task waits for its agent, is sent again on the agent's next stream
// until answered, and its result reaches the caller; asked for again, it
// is sent again.
func TestRunTaskReachesTheAgentAcrossReconnects(t *testing.T) {
	e := start(t, hub.Options{})
	type outcome struct {
		res *cutoverv1.TaskResult
		err error
	}
	run := func(id string) chan outcome {
		done := make(chan outcome, 1)
		go func() {
			res, err := e.hub.RunTask(context.Background(), "eu-1", &cutoverv1.RunTask{Id: id, App: "shop",
				Task: &cutoverv1.RunTask_Command{Command: &cutoverv1.CommandHook{Command: "true"}}})
			done <- outcome{res, err}
		}()
		return done
	}
	done := run("shop/1/preflight/hook:x/1")
	if e.hub.Connected("eu-1") {
		t.Fatal("eu-1 connected before any agent dialled")
	}

	first := e.dialQuiet(hello("eu-1"))
	got := nextTask(t, first.tasks())
	if got.GetId() != "shop/1/preflight/hook:x/1" || got.GetCommand().GetCommand() != "true" {
		t.Fatalf("task %v", got)
	}
	first.cancel() // gone before answering
	eventually(t, "eu-1 disconnected", func() bool { return !e.hub.Connected("eu-1") })

	second := e.dialQuiet(hello("eu-1"))
	ch := second.tasks()
	if again := nextTask(t, ch); again.GetId() != got.GetId() {
		t.Fatalf("resent %q, want %q", again.GetId(), got.GetId())
	}
	second.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_TaskResult{TaskResult: &cutoverv1.TaskResult{
		Id: got.GetId(), Results: []*cutoverv1.CheckResult{{Passed: true, Message: "exit code 0"}}}}})
	select {
	case o := <-done:
		if o.err != nil || len(o.res.GetResults()) != 1 || !o.res.GetResults()[0].GetPassed() {
			t.Fatalf("RunTask: %v, %v", o.res, o.err)
		}
	case <-time.After(waitFor):
		t.Fatal("RunTask did not return")
	}
	// The same id asked for again is sent again on the same stream.
	done = run(got.GetId())
	if again := nextTask(t, ch); again.GetId() != got.GetId() {
		t.Fatalf("sent %q, want %q again", again.GetId(), got.GetId())
	}
	second.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_TaskResult{TaskResult: &cutoverv1.TaskResult{
		Id: got.GetId(), Results: []*cutoverv1.CheckResult{{Passed: false, Message: "exit code 1"}}}}})
	if o := <-done; o.err != nil || o.res.GetResults()[0].GetPassed() {
		t.Fatalf("second RunTask: %v, %v", o.res, o.err)
	}

	// A caller that gives up gets its context's error.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.hub.RunTask(ctx, "ap-1", &cutoverv1.RunTask{Id: "x"}); err == nil {
		t.Error("RunTask for a cluster without an agent returned no error")
	}
}
