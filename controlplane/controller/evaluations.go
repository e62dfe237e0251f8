package controller

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/internal/gate"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// Bounds of the evaluation record. Gates are judged on every sample batch
// (ten times a second per cluster at the agents' default); the record keeps
// a digest of that: per rollout, cluster and gate, at most one point per
// evalResolution and at most evalMaxPoints points. Past that, points merge
// two by two (the resolution doubles), so a long rollout keeps its whole
// span at a coarser grain instead of losing its start.
const (
	evalResolution = time.Second
	evalMaxPoints  = 3600
	// evalFlushEvery is how often changed records are written, all in one
	// transaction; a rollout that ends is written at once.
	evalFlushEvery = 5 * time.Second
	// evalFinalFlush bounds the last write when the controller stops.
	evalFinalFlush = 5 * time.Second
)

// EvaluationStore keeps the evaluation records of rollouts.
type EvaluationStore interface {
	// PutEvaluations stores records in one transaction, each replacing
	// its rollout's; a record of a rollout the store no longer keeps is
	// left out. Idempotent; safe for concurrent use.
	PutEvaluations(ctx context.Context, recs ...*cutoverv1.RolloutEvaluations) error
	// Evaluations returns the stored record of one rollout, empty when
	// there is none. Safe for concurrent use.
	Evaluations(ctx context.Context, name string, number int64) (*cutoverv1.RolloutEvaluations, error)
}

// WithEvaluations makes the controller write the evaluation records of
// rollouts to s, and read them back for reports; call it before Run.
// Without it they are kept in memory only.
func (c *Controller) WithEvaluations(s EvaluationStore) *Controller {
	c.evals.store = s
	return c
}

// Evaluations returns the evaluation record of rollout number of app name:
// what the store holds merged with what is not written yet.
func (c *Controller) Evaluations(ctx context.Context, name string, number int64) (*cutoverv1.RolloutEvaluations, error) {
	mem, complete := c.evals.snapshot(name, number)
	if complete {
		return mem, nil
	}
	stored := &cutoverv1.RolloutEvaluations{Name: name, RolloutNumber: number}
	if c.evals.store != nil {
		var err error
		if stored, err = c.evals.store.Evaluations(ctx, name, number); err != nil {
			return nil, err
		}
	}
	if mem == nil {
		return stored, nil
	}
	rec := recordFrom(mem)
	rec.prepend(stored)
	return rec.proto(), nil
}

// recordEvaluation adds one verdict of gate i in cluster to r's record.
func (c *Controller) recordEvaluation(r *cutoverv1.Rollout, cluster string, i int, g *gate.Compiled,
	v gate.Verdict, ev fmt.Stringer, canary, stable *gate.Window) {
	p := point{at: c.now(), verdict: verdictOf(v), canaryN: canary.Requests, stableN: stable.Requests, evaluations: 1}
	switch e := ev.(type) {
	case gate.Evidence:
		p.canary, p.stable = e.Canary, e.Stable
		if v != gate.Inconclusive {
			p.threshold, p.hasThreshold = e.Threshold, true
		}
	default: // a statistical judge: its points show each side's p99
		p.canary, p.stable = canary.Value("latencyP99"), stable.Value("latencyP99")
	}
	switch v {
	case gate.Fail:
		p.failed, p.evidence = 1, ev.String()
	case gate.Inconclusive:
		p.inconclusive = 1
	}
	c.evals.add(r.GetName(), r.GetStatus().GetRolloutNumber(), seriesID{cluster, i}, g, p)
}

// endedRollout is the number of the rollout that next ends or replaces
// (0 for none): the moment to write its record without waiting. A
// rollout never runs again under the same number (a retry is a new one).
func endedRollout(cur, next *cutoverv1.Rollout) int64 {
	switch {
	case cur == nil || rollout.Terminal(cur.GetStatus().GetPhase()):
		return 0
	case cur.GetStatus().GetRolloutNumber() != next.GetStatus().GetRolloutNumber(),
		rollout.Terminal(next.GetStatus().GetPhase()):
		return cur.GetStatus().GetRolloutNumber()
	}
	return 0
}

// runEvaluations writes changed records every evalFlushEvery and when
// asked, until final is closed (once every supervisor has stopped, so
// nothing they record is missed); then it writes what is left and closes
// done.
func (c *Controller) runEvaluations(ctx context.Context, final <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(evalFlushEvery)
	defer t.Stop()
	ctx = context.WithoutCancel(ctx) // writes go on while the supervisors stop
	for {
		select {
		case <-final:
			fctx, cancel := context.WithTimeout(ctx, evalFinalFlush)
			c.flushEvaluations(fctx)
			cancel()
			return
		case <-t.C:
		case <-c.evals.kick:
		}
		c.flushEvaluations(ctx)
	}
}

// flushEvaluations writes every changed record in one transaction. A
// record is first merged with what the store holds from before this
// process (a restart mid-rollout), so that no write loses those points.
func (c *Controller) flushEvaluations(ctx context.Context) {
	e := c.evals
	stored := map[recordKey]*cutoverv1.RolloutEvaluations{}
	for _, k := range e.unloaded() {
		s, err := e.store.Evaluations(ctx, k.name, k.number)
		if err != nil {
			c.log.Error("read evaluation record", "rollout", k.name, "number", k.number, "err", err)
			continue
		}
		stored[k] = s
	}
	batch, taken := e.take(stored)
	if len(batch) == 0 {
		return
	}
	if err := e.store.PutEvaluations(ctx, batch...); err != nil {
		c.log.Error("store evaluation records", "records", len(batch), "err", err)
		e.giveBack(taken)
		return
	}
	e.written(taken)
}

// evaluations keeps, per app, the evaluation record of its latest
// rollout in memory while it runs, and until it is written once it has
// ended; safe for concurrent use.
type evaluations struct {
	store EvaluationStore // nil: memory only
	kick  chan struct{}   // asks for a write now; never blocks a sender

	mu      sync.Mutex
	latest  map[string]*record // by app
	retired []*record          // replaced by a newer rollout, not written yet
}

func newEvaluations() *evaluations {
	return &evaluations{kick: make(chan struct{}, 1), latest: map[string]*record{}}
}

// flushSoon asks for a write without waiting for it.
func (e *evaluations) flushSoon() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

type recordKey struct {
	name   string
	number int64
}

// record is the evaluation record of one rollout.
type record struct {
	recordKey
	series map[seriesID]*series
	dirty  bool // changed since last written
	// loaded: what the store held when this process started recording is
	// merged in (or there was nothing), so the record is complete.
	loaded bool
	// ended: the rollout has ended; later points are dropped, and once
	// written the record leaves memory (released), the store has it.
	ended, released bool
}

type seriesID struct {
	cluster string
	gate    int
}

// series is one gate in one cluster, oldest point first, at most one point
// per res and at most evalMaxPoints points.
type series struct {
	id        seriesID
	gate      string
	metric    string
	condition string
	absolute  *float64 // the threshold of an absolute condition
	res       time.Duration
	points    []point
}

// point is one cutoverv1.GateEvaluation.
type point struct {
	at                  time.Time
	verdict             cutoverv1.GateVerdict
	canary, stable      float64
	threshold           float64
	hasThreshold        bool
	canaryN, stableN    int64
	evaluations, failed int32
	inconclusive        int32
	evidence            string
}

func verdictOf(v gate.Verdict) cutoverv1.GateVerdict {
	switch v {
	case gate.Pass:
		return cutoverv1.GateVerdict_GATE_VERDICT_PASS
	case gate.Fail:
		return cutoverv1.GateVerdict_GATE_VERDICT_FAIL
	}
	return cutoverv1.GateVerdict_GATE_VERDICT_INCONCLUSIVE
}

// add records p in the series id of rollout number of app name. A point
// of an older rollout than the app's latest is dropped: that rollout has
// ended and its record is written or about to be.
func (e *evaluations) add(name string, number int64, id seriesID, g *gate.Compiled, p point) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rec := e.latest[name]
	switch {
	case rec != nil && (rec.number > number || rec.number == number && rec.ended):
		return
	case rec == nil || rec.number < number:
		if rec != nil && rec.dirty {
			e.retired = append(e.retired, rec)
		}
		rec = &record{recordKey: recordKey{name, number}, series: map[seriesID]*series{}, loaded: e.store == nil}
		e.latest[name] = rec
	}
	s := rec.series[id]
	if s == nil {
		s = newSeries(id, g)
		rec.series[id] = s
	}
	if !p.hasThreshold && s.absolute != nil {
		p.threshold, p.hasThreshold = *s.absolute, true
	}
	s.add(p)
	rec.dirty = true
}

func newSeries(id seriesID, g *gate.Compiled) *series {
	s := &series{id: id, gate: g.Gate.GetName(), metric: g.Gate.GetMetric(), condition: gate.Describe(g.Gate), res: evalResolution}
	if g.Gate.GetJudge() == nil {
		if c, err := gate.Parse(g.Gate.GetMetric(), g.Gate.GetCondition()); err == nil && !c.Stable {
			s.absolute = &c.Value
		}
	}
	return s
}

// add merges p into the last point when both fall in the same interval,
// else appends it, compacting the series past its bound.
func (s *series) add(p point) {
	if n := len(s.points); n > 0 && sameInterval(s.points[n-1].at, p.at, s.res) {
		s.points[n-1] = merge(s.points[n-1], p)
		return
	}
	s.points = append(s.points, p)
	s.compact()
}

// compact doubles the resolution, merging the points that then share an
// interval, until the series is within its bound.
func (s *series) compact() {
	for len(s.points) > evalMaxPoints {
		s.res *= 2
		s.points = rebucket(s.points, s.res)
	}
}

// rebucket merges neighbouring points in the same interval of res, in
// place.
func rebucket(points []point, res time.Duration) []point {
	out := points[:0]
	for _, p := range points {
		if n := len(out); n > 0 && sameInterval(out[n-1].at, p.at, res) {
			out[n-1] = merge(out[n-1], p)
			continue
		}
		out = append(out, p)
	}
	return out
}

func sameInterval(a, b time.Time, res time.Duration) bool {
	return a.Truncate(res).Equal(b.Truncate(res))
}

// merge is the point standing for older and newer: the newer one, unless
// only the older failed (a failure is never hidden), counting both.
func merge(older, newer point) point {
	keep := newer
	if older.verdict == cutoverv1.GateVerdict_GATE_VERDICT_FAIL && newer.verdict != cutoverv1.GateVerdict_GATE_VERDICT_FAIL {
		keep = older
	}
	keep.evaluations = older.evaluations + newer.evaluations
	keep.failed = older.failed + newer.failed
	keep.inconclusive = older.inconclusive + newer.inconclusive
	return keep
}

// end marks the record of a rollout that ended and asks for its write.
func (e *evaluations) end(name string, number int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.all() {
		if r.name == name && r.number == number && !r.ended {
			r.ended = true
			e.flushSoon()
		}
	}
}

// written releases the points of ended records that are now stored and
// have not changed since: only a tombstone stays, so that late points of
// that rollout are still dropped.
func (e *evaluations) written(recs []*record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range recs {
		if r.ended && !r.dirty {
			r.series, r.released = nil, true
		}
	}
}

// unloaded lists the records not yet merged with what the store holds.
func (e *evaluations) unloaded() []recordKey {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []recordKey
	for _, r := range e.all() {
		if !r.loaded {
			out = append(out, r.recordKey)
		}
	}
	return out
}

func (e *evaluations) all() []*record {
	out := slices.Clone(e.retired)
	for _, r := range e.latest {
		out = append(out, r)
	}
	return out
}

// take merges what the store held into records not loaded yet, then
// returns a copy of every changed, complete record, marked written, and
// the records themselves. A record still incomplete waits for the next
// write.
func (e *evaluations) take(stored map[recordKey]*cutoverv1.RolloutEvaluations) ([]*cutoverv1.RolloutEvaluations, []*record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var batch []*cutoverv1.RolloutEvaluations
	var taken []*record
	for _, r := range e.all() {
		if s, ok := stored[r.recordKey]; ok && !r.loaded {
			r.prepend(s)
			r.loaded = true
		}
		if !r.loaded || !r.dirty {
			continue
		}
		batch = append(batch, r.proto())
		r.dirty = false
		taken = append(taken, r)
	}
	e.retired = slices.DeleteFunc(e.retired, func(r *record) bool { return r.loaded && !r.dirty })
	return batch, taken
}

// giveBack marks records whose write failed as changed again, so that
// the next write retries them.
func (e *evaluations) giveBack(recs []*record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range recs {
		r.dirty = true
		if e.latest[r.name] != r && !slices.Contains(e.retired, r) {
			e.retired = append(e.retired, r)
		}
	}
}

// snapshot copies the record of a rollout held in memory (nil when there
// is none) and says whether it is complete without the store's.
func (e *evaluations) snapshot(name string, number int64) (*cutoverv1.RolloutEvaluations, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.all() {
		if r.name == name && r.number == number && !r.released {
			return r.proto(), r.loaded
		}
	}
	return nil, false
}

// prepend merges an older record of the same rollout (what the store held
// before this process recorded) in front of r's points. Older points from
// r's first point on are left out: a write that raced the read already
// holds them.
func (r *record) prepend(older *cutoverv1.RolloutEvaluations) {
	for _, o := range older.GetSeries() {
		id := seriesID{o.GetCluster(), int(o.GetGateIndex())}
		s := r.series[id]
		if s == nil {
			s = &series{id: id, gate: o.GetGate(), metric: o.GetMetric(), condition: o.GetCondition(), res: evalResolution}
			r.series[id] = s
		}
		merged := make([]point, 0, len(o.GetPoints())+len(s.points))
		for _, p := range o.GetPoints() {
			if len(s.points) == 0 || p.GetTime().AsTime().Before(s.points[0].at) {
				merged = append(merged, pointFrom(p))
			}
		}
		s.res = max(s.res, time.Duration(o.GetResolutionSeconds())*time.Second)
		s.points = rebucket(append(merged, s.points...), s.res)
		s.compact()
	}
}

// proto copies r, series ordered by cluster then gate.
func (r *record) proto() *cutoverv1.RolloutEvaluations {
	out := &cutoverv1.RolloutEvaluations{Name: r.name, RolloutNumber: r.number}
	for _, s := range r.series {
		ps := &cutoverv1.GateEvaluationSeries{Cluster: s.id.cluster, GateIndex: int32(s.id.gate), Gate: s.gate,
			Metric: s.metric, Condition: s.condition, ResolutionSeconds: int64(s.res / time.Second),
			Points: make([]*cutoverv1.GateEvaluation, 0, len(s.points))}
		for _, p := range s.points {
			ps.Points = append(ps.Points, p.proto())
		}
		out.Series = append(out.Series, ps)
	}
	slices.SortFunc(out.Series, func(a, b *cutoverv1.GateEvaluationSeries) int {
		return cmp.Or(cmp.Compare(a.GetCluster(), b.GetCluster()), cmp.Compare(a.GetGateIndex(), b.GetGateIndex()))
	})
	return out
}

// recordFrom is a record holding a copy of p, complete.
func recordFrom(p *cutoverv1.RolloutEvaluations) *record {
	r := &record{recordKey: recordKey{p.GetName(), p.GetRolloutNumber()}, series: map[seriesID]*series{}, loaded: true}
	r.prepend(p)
	return r
}

func (p point) proto() *cutoverv1.GateEvaluation {
	out := &cutoverv1.GateEvaluation{Time: timestamppb.New(p.at), Verdict: p.verdict, Canary: p.canary, Stable: p.stable,
		CanaryRequests: p.canaryN, StableRequests: p.stableN, Evaluations: p.evaluations, Failed: p.failed, Evidence: p.evidence,
		Inconclusive: p.inconclusive}
	if p.hasThreshold {
		out.Threshold = proto.Float64(p.threshold)
	}
	return out
}

func pointFrom(g *cutoverv1.GateEvaluation) point {
	return point{at: g.GetTime().AsTime(), verdict: g.GetVerdict(), canary: g.GetCanary(), stable: g.GetStable(),
		threshold: g.GetThreshold(), hasThreshold: g.Threshold != nil, canaryN: g.GetCanaryRequests(), stableN: g.GetStableRequests(),
		evaluations: g.GetEvaluations(), failed: g.GetFailed(), inconclusive: g.GetInconclusive(), evidence: g.GetEvidence()}
}
