package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// startChecks starts every check run of r that waits for results and is
// not running yet, and stops the runs of r's app that nothing waits for
// any longer (the rollout aborted, was promoted past them, or was
// replaced). Each run reports back as a ChecksDone event. After a restart
// the runs still pending are started again: hooks must tolerate running
// twice (HTTP hooks get an Idempotency-Key; an agent that ran a command
// answers a resend from the result it kept).
func (c *Controller) startChecks(ctx context.Context, r *cutoverv1.Rollout) {
	if r == nil || c.checker == nil {
		return
	}
	pending := map[string]*cutoverv1.CheckRun{}
	for _, run := range rollout.PendingChecks(r) {
		pending[checkKey(r, run)] = run
	}
	prefix := r.GetName() + "/"
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, ch := range c.checking {
		if !strings.HasPrefix(key, prefix) || pending[key] != nil {
			continue
		}
		// On-abort hooks of an earlier rollout (a retry or a new apply
		// replaced it) are cleanup: they run to the end.
		if ch.phase == rollout.CheckOnAbort && ch.number < r.GetStatus().GetRolloutNumber() {
			continue
		}
		ch.cancel()
		delete(c.checking, key)
	}
	for key, run := range pending {
		if c.checking[key].cancel != nil {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		c.checking[key] = checking{cancel: cancel, number: r.GetStatus().GetRolloutNumber(), phase: run.GetPhase()}
		c.running.Add(1)
		go func() {
			defer c.running.Done()
			defer cancel()
			c.runChecks(rctx, r, run)
			c.mu.Lock()
			delete(c.checking, key)
			c.mu.Unlock()
		}()
	}
}

// runChecks runs one check run and records its results, retrying the
// record with backoff: a run whose results were lost would hold the
// rollout in Checking until the next event.
func (c *Controller) runChecks(ctx context.Context, r *cutoverv1.Rollout, run *cutoverv1.CheckRun) {
	c.log.Info("running checks", "rollout", r.GetName(), "checks", run.GetId())
	results := c.checker.Run(ctx, r, run)
	ev := rollout.ChecksDone{RolloutNumber: r.GetStatus().GetRolloutNumber(), ID: run.GetId(), Results: results}
	for backoff := 100 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, 10*time.Second) {
		_, _, err := c.Do(ctx, r.GetName(), ev)
		if err == nil || errors.Is(err, rollout.ErrUnknownCheckRun) || errors.Is(err, ErrNotFound) {
			return // recorded, or nothing waits for it any longer
		}
		if ctx.Err() != nil {
			return // cancelled, or shutting down: a pending run starts again
		}
		c.log.Error("record check results", "rollout", r.GetName(), "checks", run.GetId(), "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// checking is a check run in progress.
type checking struct {
	cancel context.CancelFunc
	number int64  // the rollout's number
	phase  string // the run's phase
}

func checkKey(r *cutoverv1.Rollout, run *cutoverv1.CheckRun) string {
	return fmt.Sprintf("%s/%d/%s", r.GetName(), r.GetStatus().GetRolloutNumber(), run.GetId())
}
