package controller_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// heldChecker passes every run at once, except those hold names, which
// it holds until their context ends; it remembers each run's context.
type heldChecker struct {
	hold func(number int64, id string) bool
	mu   sync.Mutex
	runs map[string]context.Context // by "number/id"
}

func (h *heldChecker) Run(ctx context.Context, r *cutoverv1.Rollout, run *cutoverv1.CheckRun) []*cutoverv1.CheckResult {
	n := r.GetStatus().GetRolloutNumber()
	h.mu.Lock()
	h.runs[fmt.Sprintf("%d/%s", n, run.GetId())] = ctx
	h.mu.Unlock()
	if h.hold(n, run.GetId()) {
		<-ctx.Done()
	}
	return []*cutoverv1.CheckResult{{Name: run.GetId(), Passed: true}}
}

func (h *heldChecker) ctx(n int64, id string) context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.runs[fmt.Sprintf("%d/%s", n, id)]
}

// The controller runs what the engine asks for, stops a run nothing
// waits for any longer (an abort), and lets an earlier rollout's on-abort
// hooks finish when a retry replaces it.
func TestCheckRunsStartAndStop(t *testing.T) {
	db, _ := openStore(t)
	h := &heldChecker{runs: map[string]context.Context{}, hold: func(n int64, id string) bool {
		return n == 1 && id == rollout.CheckPreflight || id == rollout.CheckOnAbort
	}}
	c, _ := startWith(t, db, &publisher{}, time.Now, h)
	sp := newSpec("v1", [][]string{{"eu-1"}}, setWeight(50))
	sp.Hooks = &cutoverv1.Hooks{OnAbort: []*cutoverv1.Hook{{Name: "page",
		Action: &cutoverv1.Hook_Http{Http: &cutoverv1.HTTPHook{Url: "http://127.0.0.1:9/x"}}}}}
	if _, _, err := c.Do(t.Context(), app, rollout.Apply{Name: app, Spec: sp}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the pre-flight to start", func() bool { return h.ctx(1, rollout.CheckPreflight) != nil })
	// Aborted while the pre-flight runs: the runner's context ends; no
	// on-abort hooks, nothing was touched.
	do(t, c, rollout.Abort{Reason: "changed my mind"})
	eventually(t, "the pre-flight's context to end", func() bool { return h.ctx(1, rollout.CheckPreflight).Err() != nil })
	if got := current(t, c); len(rollout.PendingChecks(got)) != 0 {
		t.Fatalf("pending after the abort: %v", rollout.PendingChecks(got))
	}

	// Rollout 2 moves eu-1, then aborts: its on-abort hooks run; a retry
	// (rollout 3) does not stop them.
	do(t, c, rollout.Retry{})
	eventually(t, "eu-1 sent the rollout", func() bool { return progress(current(t, c), "eu-1").GetDesiredGeneration() > 0 })
	if _, _, err := c.Do(t.Context(), app, rollout.Abort{Reason: "again"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the on-abort hooks to start", func() bool { return h.ctx(2, rollout.CheckOnAbort) != nil })
	if _, _, err := c.Do(t.Context(), app, rollout.Retry{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rollout 3's pre-flight", func() bool { return h.ctx(3, rollout.CheckPreflight) != nil })
	time.Sleep(50 * time.Millisecond)
	if err := h.ctx(2, rollout.CheckOnAbort).Err(); err != nil {
		t.Errorf("rollout 2's on-abort hooks were stopped by the retry: %v", err)
	}
}
