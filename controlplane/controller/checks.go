package controller

import (
	"context"
	"errors"
	"fmt"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// startChecks starts every check run of r that waits for results and is
// not running yet. Each reports back as a ChecksDone event. After a
// restart the runs still pending are started again: hooks must tolerate
// running twice (HTTP hooks get an Idempotency-Key; agents answer a
// resent command from the result they kept).
func (c *Controller) startChecks(ctx context.Context, r *cutoverv1.Rollout) {
	if r == nil || c.checker == nil {
		return
	}
	for _, run := range rollout.PendingChecks(r) {
		key := checkKey(r, run)
		c.mu.Lock()
		if c.checking[key] {
			c.mu.Unlock()
			continue
		}
		c.checking[key] = true
		c.running.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.running.Done()
			defer func() {
				c.mu.Lock()
				delete(c.checking, key)
				c.mu.Unlock()
			}()
			c.log.Info("running checks", "rollout", r.GetName(), "checks", run.GetId())
			results := c.checker.Run(ctx, r, run)
			if ctx.Err() != nil {
				return // shutting down: the run stays pending and starts again
			}
			ev := rollout.ChecksDone{RolloutNumber: r.GetStatus().GetRolloutNumber(), ID: run.GetId(), Results: results}
			if _, _, err := c.Do(ctx, r.GetName(), ev); err != nil && !errors.Is(err, rollout.ErrUnknownCheckRun) {
				c.log.Error("record check results", "rollout", r.GetName(), "checks", run.GetId(), "err", err)
			}
		}()
	}
}

func checkKey(r *cutoverv1.Rollout, run *cutoverv1.CheckRun) string {
	return fmt.Sprintf("%s/%d/%s", r.GetName(), r.GetStatus().GetRolloutNumber(), run.GetId())
}
