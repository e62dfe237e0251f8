// Package checks runs what a rollout's check runs ask for: the built-in
// pre-flight checks (every target agent connected, each agent's dry run of
// the new revision), custom pre-flight checks, and the hooks of every
// phase, either as HTTP calls from the control plane or as commands the
// agents run next to the app.
package checks

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/internal/capability"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/internal/spec"
)

// Kinds of results.
const (
	KindBuiltin = "builtin"
	KindHTTP    = "http"
	KindCommand = "command"
)

// maxOutput bounds the output kept per result.
const maxOutput = 4 << 10

// dryRunTimeout bounds an agent's dry run.
const dryRunTimeout = 30 * time.Second

// deliveryGrace is how long beyond a command's own timeout its result may
// take to come back (the agent may be reconnecting).
const deliveryGrace = 10 * time.Second

// Agents reach the clusters' agents.
type Agents interface {
	// Connected reports whether the cluster's agent holds its stream open.
	Connected(cluster string) bool
	// Capable reports whether the cluster's agent announced a capability
	// (package capability) when it connected.
	Capable(cluster, capability string) bool
	// RunTask has the cluster's agent run a task once and returns its
	// result, or an error when ctx ends first.
	RunTask(ctx context.Context, cluster string, t *cutoverv1.RunTask) (*cutoverv1.TaskResult, error)
}

// Runner runs check runs. Safe for concurrent use.
type Runner struct {
	agents Agents
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
}

// New returns a runner that reaches agents through agents and calls HTTP
// hooks with client (nil for a default client).
func New(agents Agents, client *http.Client, now func() time.Time, log *slog.Logger) *Runner {
	if client == nil {
		client = &http.Client{}
	}
	return &Runner{agents: agents, client: client, now: now, log: log}
}

// Run carries out one check run of r and returns its results. Hooks run in
// order and stop at the first failure; the pre-flight runs its built-in
// checks in every cluster at once, and its custom checks only when those
// passed.
func (x *Runner) Run(ctx context.Context, r *cutoverv1.Rollout, run *cutoverv1.CheckRun) []*cutoverv1.CheckResult {
	var out []*cutoverv1.CheckResult
	if run.GetPhase() == rollout.CheckPreflight {
		out = x.builtin(ctx, r, run)
		if failed(out) {
			return out
		}
	}
	for _, h := range rollout.Hooks(r.GetSpec(), run.GetPhase()) {
		res := x.hook(ctx, r, run, h)
		out = append(out, res...)
		if failed(res) && run.GetPhase() != rollout.CheckOnAbort {
			break
		}
	}
	return out
}

func failed(rs []*cutoverv1.CheckResult) bool {
	for _, r := range rs {
		if !r.GetPassed() {
			return true
		}
	}
	return false
}

// builtin checks every cluster of the run: its agent is connected, and its
// dry run of the new revision passes.
func (x *Runner) builtin(ctx context.Context, r *cutoverv1.Rollout, run *cutoverv1.CheckRun) []*cutoverv1.CheckResult {
	per := make([][]*cutoverv1.CheckResult, len(run.GetClusters()))
	var wg sync.WaitGroup
	for i, cluster := range run.GetClusters() {
		wg.Go(func() {
			start := x.now()
			if !x.agents.Connected(cluster) {
				per[i] = []*cutoverv1.CheckResult{x.result("agent connected", KindBuiltin, cluster, start, false,
					"the cluster's agent is not connected: no traffic moves until it is and the rollout is retried", "")}
				return
			}
			per[i] = []*cutoverv1.CheckResult{x.result("agent connected", KindBuiltin, cluster, start, true, "connected", "")}
			if !x.agents.Capable(cluster, capability.DryRun) {
				per[i] = append(per[i], x.result("dry run", KindBuiltin, cluster, start, false,
					"the agent does not run dry runs: upgrade it to this control plane's version", ""))
				return
			}
			per[i] = append(per[i], x.dryRun(ctx, r, run, cluster)...)
		})
	}
	wg.Wait()
	var out []*cutoverv1.CheckResult
	for _, rs := range per {
		out = append(out, rs...)
	}
	return out
}

func (x *Runner) dryRun(ctx context.Context, r *cutoverv1.Rollout, run *cutoverv1.CheckRun, cluster string) []*cutoverv1.CheckResult {
	start := x.now()
	ctx, cancel := context.WithTimeout(ctx, dryRunTimeout)
	defer cancel()
	task := &cutoverv1.RunTask{
		Id:      taskID(r, run, "builtin:dry-run", 1),
		App:     r.GetName(),
		Task:    &cutoverv1.RunTask_DryRun{DryRun: rollout.DryRun(r, cluster, r.GetSpec().GetPreflight().GetRequirePinned())},
		Timeout: dryRunTimeout.String(),
	}
	res, err := x.agents.RunTask(ctx, cluster, task)
	if err != nil {
		return []*cutoverv1.CheckResult{x.result("dry run", KindBuiltin, cluster, start, false,
			fmt.Sprintf("the agent did not answer the dry run within %s", dryRunTimeout), "")}
	}
	if len(res.GetResults()) == 0 {
		return []*cutoverv1.CheckResult{x.result("dry run", KindBuiltin, cluster, start, false, "the agent answered the dry run with no checks", "")}
	}
	for _, c := range res.GetResults() {
		c.Cluster = cluster
		if c.GetKind() == "" {
			c.Kind = KindBuiltin
		}
	}
	return res.GetResults()
}

// hook runs one hook: over HTTP once, or as a command in every cluster of
// the run at once.
func (x *Runner) hook(ctx context.Context, r *cutoverv1.Rollout, run *cutoverv1.CheckRun, h *cutoverv1.Hook) []*cutoverv1.CheckResult {
	if h.GetHttp() != nil {
		return []*cutoverv1.CheckResult{x.webhook(ctx, r, run, h)}
	}
	per := make([]*cutoverv1.CheckResult, len(run.GetClusters()))
	var wg sync.WaitGroup
	for i, cluster := range run.GetClusters() {
		wg.Go(func() { per[i] = x.command(ctx, r, run, h, cluster) })
	}
	wg.Wait()
	return per
}

// command has one cluster's agent run a command hook, with its retries.
func (x *Runner) command(ctx context.Context, r *cutoverv1.Rollout, run *cutoverv1.CheckRun, h *cutoverv1.Hook, cluster string) *cutoverv1.CheckResult {
	start := x.now()
	if !x.agents.Capable(cluster, capability.CommandHooks) {
		return x.result(h.GetName(), KindCommand, cluster, start, false,
			"the agent does not run command hooks: start it with --allow-command-hooks (and this build or later)", "")
	}
	timeout := spec.HookTimeout(h)
	var last *cutoverv1.CheckResult
	attempts := int(h.GetRetries()) + 1
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 && !sleep(ctx, time.Second) {
			break
		}
		actx, cancel := context.WithTimeout(ctx, timeout+deliveryGrace)
		res, err := x.agents.RunTask(actx, cluster, &cutoverv1.RunTask{
			Id:      taskID(r, run, "hook:"+h.GetName(), attempt),
			App:     r.GetName(),
			Task:    &cutoverv1.RunTask_Command{Command: h.GetCommand()},
			Timeout: timeout.String(),
			Env: map[string]string{
				"CUTOVER_ROLLOUT":  r.GetName(),
				"CUTOVER_REVISION": r.GetSpec().GetRevision().GetName(),
				"CUTOVER_PHASE":    run.GetPhase(),
			},
		})
		cancel()
		switch {
		case err != nil:
			last = x.result(h.GetName(), KindCommand, cluster, start, false,
				fmt.Sprintf("the agent did not report the command within %s", timeout+deliveryGrace), "")
		case len(res.GetResults()) == 0:
			last = x.result(h.GetName(), KindCommand, cluster, start, false, "the agent reported no result", "")
		default:
			last = res.GetResults()[0]
			last.Name, last.Kind, last.Cluster = h.GetName(), KindCommand, cluster
		}
		last.Attempts = int32(attempt)
		if last.GetPassed() || err != nil {
			break // unanswered, the attempt may still run: another would overlap it
		}
	}
	last.StartTime = timestamppb.New(start)
	last.DurationMillis = x.now().Sub(start).Milliseconds()
	return last
}

// taskID names a task uniquely across rollouts, runs, hooks and attempts,
// so an agent can tell a resend from a new task.
func taskID(r *cutoverv1.Rollout, run *cutoverv1.CheckRun, name string, attempt int) string {
	return fmt.Sprintf("%s/%d/%s/%s/%d", r.GetName(), r.GetStatus().GetRolloutNumber(), run.GetId(), name, attempt)
}

func (x *Runner) result(name, kind, cluster string, start time.Time, passed bool, msg, output string) *cutoverv1.CheckResult {
	return &cutoverv1.CheckResult{
		Name: name, Kind: kind, Cluster: cluster, Passed: passed, Message: msg, Output: output,
		StartTime: timestamppb.New(start), DurationMillis: x.now().Sub(start).Milliseconds(), Attempts: 1,
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// tail keeps the last maxOutput bytes of s.
func tail(s []byte) string {
	if len(s) > maxOutput {
		s = s[len(s)-maxOutput:]
	}
	return string(s)
}
