package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cutover-dev/cutover/internal/audit"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// Store is the durable state the controller needs.
type Store interface {
	// PutRollout stores a rollout and appends audit records in one
	// transaction. Idempotent without records; safe for concurrent use.
	PutRollout(ctx context.Context, r *cutoverv1.Rollout, records ...*cutoverv1.AuditRecord) error
	// ListRollouts returns every stored rollout. Safe for concurrent use.
	ListRollouts(ctx context.Context) ([]*cutoverv1.Rollout, error)
	// ReplaceRollout stores r, moves archive (the rollout it replaces) into
	// history, keeping keep entries, and appends audit records, atomically.
	// Safe for concurrent use.
	ReplaceRollout(ctx context.Context, r, archive *cutoverv1.Rollout, keep int, records ...*cutoverv1.AuditRecord) error
	// History returns an app's archived rollouts, newest first. Safe for
	// concurrent use.
	History(ctx context.Context, name string) ([]*cutoverv1.Rollout, error)
}

// DefaultHistoryLimit is how many earlier rollouts of each app are kept.
const DefaultHistoryLimit = 10

// Publisher delivers desired states to agents.
type Publisher interface {
	// SetDesired records the latest desired state of an app in a cluster and
	// wakes that cluster's sender. It never blocks on an agent. Idempotent;
	// safe for concurrent use.
	SetDesired(cluster string, d *cutoverv1.DesiredApp)
}

// Checker runs a rollout's check runs (see rollout.ChecksDone).
type Checker interface {
	// Run carries out one check run and returns its results; it returns
	// when they are all in or ctx ends. Safe for concurrent use.
	Run(ctx context.Context, r *cutoverv1.Rollout, run *cutoverv1.CheckRun) []*cutoverv1.CheckResult
}

// Sentinel errors.
var (
	// ErrNotFound is returned for a rollout name that does not exist.
	ErrNotFound = errors.New("rollout not found")
	// ErrNoEarlierRevision is returned by Undo when history has nothing to
	// go back to.
	ErrNoEarlierRevision = errors.New("no earlier revision to go back to")
)

// Controller owns every rollout's state.
type Controller struct {
	store Store
	pub   Publisher
	now   func() time.Time
	log   *slog.Logger
	keep  int

	mu          sync.RWMutex
	rollouts    map[string]*cutoverv1.Rollout // immutable values, replaced on change
	watchers    map[string]map[chan *cutoverv1.Rollout]struct{}
	supervisors map[string]chan request // one goroutine per rollout owns its state
	runCtx      context.Context         // set by Run before loaded closes
	running     sync.WaitGroup
	loaded      chan struct{}
	gates       *gates
	evals       *evaluations
	checker     Checker
	checking    map[string]checking // check runs in progress, by checkKey
}

// supervisorQueue bounds the events waiting for one rollout's supervisor.
const supervisorQueue = 64

type request struct {
	name  string
	ev    rollout.Event
	cause audit.Cause // what the event's timeline alone does not say
	reply chan reply  // nil for fire-and-forget events
}

type reply struct {
	r       *cutoverv1.Rollout
	changed bool
	wake    time.Time // when the rollout wants a Tick; zero for never
	err     error
}

// New returns a controller; Run must be called for it to act.
func New(store Store, pub Publisher, now func() time.Time, log *slog.Logger) *Controller {
	return &Controller{
		store:       store,
		pub:         pub,
		now:         now,
		log:         log,
		keep:        DefaultHistoryLimit,
		rollouts:    map[string]*cutoverv1.Rollout{},
		watchers:    map[string]map[chan *cutoverv1.Rollout]struct{}{},
		supervisors: map[string]chan request{},
		loaded:      make(chan struct{}),
		gates:       newGates(),
		evals:       newEvaluations(),
		checking:    map[string]checking{},
	}
}

// WithChecker sets what runs pre-flight checks and hooks; call it before
// Run. Without one, a rollout waits in Checking until one is set.
func (c *Controller) WithChecker(ch Checker) *Controller {
	c.checker = ch
	return c
}

// WithHistoryLimit sets how many earlier rollouts of each app are kept; call
// it before Run.
func (c *Controller) WithHistoryLimit(n int) *Controller {
	c.keep = n
	return c
}

// Loaded is closed once stored rollouts are loaded and their desired states
// published.
func (c *Controller) Loaded() <-chan struct{} { return c.loaded }

// Run loads the stored rollouts, republishes their desired states and
// starts one supervisor per rollout; it returns once ctx has ended and every
// supervisor has stopped.
func (c *Controller) Run(ctx context.Context) error {
	stored, err := c.store.ListRollouts(ctx)
	if err != nil {
		return fmt.Errorf("load rollouts: %w", err)
	}
	c.mu.Lock()
	c.runCtx = ctx
	c.mu.Unlock()
	evalsDone, evalsFinal := make(chan struct{}), make(chan struct{})
	if c.evals.store != nil {
		go c.runEvaluations(ctx, evalsFinal, evalsDone)
	} else {
		close(evalsDone)
	}
	for _, r := range stored {
		c.setSnapshot(r)
		for _, cp := range r.GetStatus().GetClusters() {
			if cp.GetDesiredGeneration() > 0 {
				c.pub.SetDesired(cp.GetCluster(), rollout.Desired(r, cp))
			}
		}
		// A restarted control plane re-evaluates every rollout at once:
		// pauses that ran out while it was down complete now, and a finished
		// blue-green still scales its old revision down.
		c.supervisor(r.GetName())
	}
	close(c.loaded)
	c.log.Info("rollouts loaded", "count", len(stored))
	<-ctx.Done()
	c.running.Wait()
	close(evalsFinal)
	<-evalsDone
	return nil
}

// supervisor returns the event queue of a rollout's supervisor, starting it
// if needed. A new supervisor ticks its rollout once at start.
func (c *Controller) supervisor(name string) chan request {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q, ok := c.supervisors[name]; ok {
		return q
	}
	q := make(chan request, supervisorQueue)
	c.supervisors[name] = q
	c.running.Add(1)
	go func() {
		defer c.running.Done()
		c.supervise(c.runCtx, name, q)
	}()
	return q
}

// supervise owns one rollout: it applies its events in order and ticks it
// when the engine asks to be woken.
func (c *Controller) supervise(ctx context.Context, name string, q chan request) {
	timer := time.NewTimer(0) // a first tick re-evaluates after a restart
	defer timer.Stop()
	var wake time.Time
	checked := false // the check runs of the rollout as loaded are started
	for {
		var req request
		select {
		case <-ctx.Done():
			return
		case req = <-q:
		case <-timer.C:
			req = request{name: name, ev: rollout.Tick{}}
		}
		rep := c.step(ctx, req)
		if rep.err == nil {
			wake = rep.wake
		}
		// Check runs start and stop only with a change of the rollout (and
		// once after a restart): most events, agents' reports, change
		// nothing and skip the controller's lock here.
		if rep.changed || !checked {
			c.startChecks(ctx, rep.r)
			checked = rep.r != nil
		}
		if req.reply != nil {
			req.reply <- rep
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !wake.IsZero() {
			timer.Reset(max(wake.Sub(c.now()), 0))
		}
	}
}

func (c *Controller) step(ctx context.Context, req request) reply {
	cur := c.snapshot(req.name)
	if cur == nil {
		if _, ok := req.ev.(rollout.Apply); !ok {
			return reply{err: fmt.Errorf("%w: %q", ErrNotFound, req.name)}
		}
	}
	res, err := rollout.Step(cur, req.ev, c.now())
	if err != nil {
		return reply{r: cur, err: err}
	}
	if !res.Changed {
		return reply{r: cur, wake: res.WakeAt}
	}
	// Durable before any effect: a crash after this line resends the same
	// desired states on restart; a crash before it loses only the event.
	if err := c.persist(ctx, cur, res.Rollout, causeOf(req)); err != nil {
		c.log.Error("store rollout", "rollout", req.name, "err", err)
		return reply{r: cur, err: fmt.Errorf("store rollout %q: %w", req.name, err)}
	}
	for cluster, d := range res.Desired {
		c.pub.SetDesired(cluster, d)
	}
	c.setSnapshot(res.Rollout)
	c.notify(res.Rollout)
	if n := endedRollout(cur, res.Rollout); n > 0 {
		c.evals.end(req.name, n)
	}
	if cur == nil || cur.GetStatus().GetPhase() != res.Rollout.GetStatus().GetPhase() ||
		cur.GetStatus().GetCurrentStep() != res.Rollout.GetStatus().GetCurrentStep() ||
		cur.GetStatus().GetCurrentWave() != res.Rollout.GetStatus().GetCurrentWave() {
		st := res.Rollout.GetStatus()
		c.log.Info("rollout progressed", "rollout", req.name, "phase", rollout.PhaseName(st.GetPhase()),
			"wave", st.GetCurrentWave(), "step", st.GetCurrentStep(), "message", st.GetMessage())
	}
	return reply{r: res.Rollout, changed: true, wake: res.WakeAt}
}

// persist stores next with one audit record per new timeline event; when
// it is a new rollout of the app, the one it replaces goes to history in
// the same transaction, with the record of its end.
func (c *Controller) persist(ctx context.Context, cur, next *cutoverv1.Rollout, cause audit.Cause) error {
	if cur == nil || cur.GetStatus().GetRolloutNumber() == next.GetStatus().GetRolloutNumber() {
		return c.store.PutRollout(ctx, next, audit.Timeline(cur, next, cause)...)
	}
	archived := rollout.Archive(cur, c.now())
	recs := append(audit.Timeline(cur, archived, audit.Cause{}), audit.Timeline(cur, next, cause)...)
	return c.store.ReplaceRollout(ctx, next, archived, c.keep, recs...)
}

// causeOf is what the audit records of a request's events must say beyond
// their timeline: a retry, or an abort by an agent's local guard, is told
// by the event itself; an undo or a gate's action by its caller.
func causeOf(req request) audit.Cause {
	switch e := req.ev.(type) {
	case rollout.Retry:
		return audit.Cause{Event: cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STARTED, Action: audit.ActionRetry}
	case rollout.Observe:
		if e.App.GetGuardTripped() != "" {
			return audit.Cause{Event: cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_ABORTED,
				Action: audit.ActionGateTripped, Actor: audit.AgentActor(e.Cluster), Cluster: e.Cluster}
		}
	}
	return req.cause
}

// History returns the app's rollouts, newest first, the current one first.
func (c *Controller) History(ctx context.Context, name string) ([]*cutoverv1.Rollout, error) {
	cur, err := c.Get(name)
	if err != nil {
		return nil, err
	}
	past, err := c.store.History(ctx, name)
	if err != nil {
		return nil, err
	}
	// An apply between the two reads archives cur; never list it twice.
	out := []*cutoverv1.Rollout{cur}
	for _, r := range past {
		if r.GetStatus().GetRolloutNumber() < cur.GetStatus().GetRolloutNumber() {
			out = append(out, r)
		}
	}
	return out, nil
}

// Undo starts a rollout back to an earlier revision through the rollout's
// current strategy: toRevision, or else the newest earlier rollout that
// ended Healthy with another revision than the current one.
func (c *Controller) Undo(ctx context.Context, name, toRevision, actor string) (*cutoverv1.Rollout, error) {
	hist, err := c.History(ctx, name)
	if err != nil {
		return nil, err
	}
	cur := hist[0]
	target := undoTarget(hist, toRevision)
	if target == nil {
		if toRevision != "" {
			return nil, fmt.Errorf("undo %s: revision %q is not in the kept history: %w", name, toRevision, ErrNoEarlierRevision)
		}
		return nil, fmt.Errorf("undo %s: %w", name, ErrNoEarlierRevision)
	}
	spec := proto.Clone(cur.GetSpec()).(*cutoverv1.RolloutSpec)
	spec.Revision = proto.Clone(target).(*cutoverv1.Revision)
	r, _, err := c.do(ctx, name, rollout.Apply{Name: name, Spec: spec, Actor: actor,
		Reason: fmt.Sprintf("undo from %s", cur.GetSpec().GetRevision().GetName())},
		audit.Cause{Event: cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STARTED, Action: audit.ActionUndo})
	if err != nil || spec.GetStrategy().GetBlueGreen() == nil {
		return r, err
	}
	// A blue-green undo is the switch back: no preview to look at (the
	// revision served before), and within the scale-down delay its
	// processes are still warm, so it takes effect at once.
	r, _, err = c.Do(ctx, name, rollout.Promote{Full: true, Actor: actor})
	return r, err
}

func undoTarget(hist []*cutoverv1.Rollout, toRevision string) *cutoverv1.Revision {
	current := hist[0].GetSpec().GetRevision().GetName()
	for _, r := range hist[1:] {
		rev := r.GetSpec().GetRevision()
		if toRevision != "" {
			if rev.GetName() == toRevision {
				return rev
			}
			continue
		}
		if r.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY && rev.GetName() != current {
			return rev
		}
	}
	return nil
}

// Do applies an event and waits for the result. It returns the rollout after
// the event and whether it changed.
func (c *Controller) Do(ctx context.Context, name string, ev rollout.Event) (*cutoverv1.Rollout, bool, error) {
	return c.do(ctx, name, ev, audit.Cause{})
}

// do is Do with what the audit records of the event's timeline must say.
func (c *Controller) do(ctx context.Context, name string, ev rollout.Event, cause audit.Cause) (*cutoverv1.Rollout, bool, error) {
	select {
	case <-c.loaded:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	if _, apply := ev.(rollout.Apply); !apply && c.snapshot(name) == nil {
		return nil, false, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	req := request{name: name, ev: ev, cause: cause, reply: make(chan reply, 1)}
	select {
	case c.supervisor(name) <- req:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	select {
	case rep := <-req.reply:
		return rep.r, rep.changed, rep.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// Observe queues an agent's report about an app. It blocks only while the
// event queue is full, and never past ctx.
func (c *Controller) Observe(ctx context.Context, cluster string, app *cutoverv1.ObservedApp) {
	select {
	case <-c.loaded:
	case <-ctx.Done():
		return
	}
	if c.snapshot(app.GetApp()) == nil {
		return
	}
	select {
	case c.supervisor(app.GetApp()) <- request{name: app.GetApp(), ev: rollout.Observe{Cluster: cluster, App: app}}:
	case <-ctx.Done():
	}
}

// Get returns a rollout.
func (c *Controller) Get(name string) (*cutoverv1.Rollout, error) {
	if r := c.snapshot(name); r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
}

// List returns every rollout ordered by name.
func (c *Controller) List() []*cutoverv1.Rollout {
	c.mu.RLock()
	out := make([]*cutoverv1.Rollout, 0, len(c.rollouts))
	for _, r := range c.rollouts {
		out = append(out, r)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// Watch returns a channel that receives the rollout now and after every
// change, keeping only the latest when the reader falls behind, and a
// function that stops the watch.
func (c *Controller) Watch(name string) (<-chan *cutoverv1.Rollout, func(), error) {
	ch := make(chan *cutoverv1.Rollout, 1)
	c.mu.Lock()
	r, ok := c.rollouts[name]
	if !ok {
		c.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if c.watchers[name] == nil {
		c.watchers[name] = map[chan *cutoverv1.Rollout]struct{}{}
	}
	c.watchers[name][ch] = struct{}{}
	ch <- r
	c.mu.Unlock()
	stop := func() {
		c.mu.Lock()
		delete(c.watchers[name], ch)
		c.mu.Unlock()
	}
	return ch, stop, nil
}

func (c *Controller) notify(r *cutoverv1.Rollout) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.watchers[r.GetName()] {
		select { // drop the stale value, keep the latest
		case <-ch:
		default:
		}
		ch <- r
	}
}

func (c *Controller) snapshot(name string) *cutoverv1.Rollout {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rollouts[name]
}

func (c *Controller) setSnapshot(r *cutoverv1.Rollout) {
	c.mu.Lock()
	c.rollouts[r.GetName()] = proto.Clone(r).(*cutoverv1.Rollout)
	c.mu.Unlock()
}
