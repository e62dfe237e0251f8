package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cutover-dev/cutover/agent/proxy"
	"github.com/cutover-dev/cutover/agent/runtime"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Timing of a worker.
const (
	passInterval   = 50 * time.Millisecond
	restartBackoff = time.Second
	drainTimeout   = 10 * time.Second
	stopTimeout    = 15 * time.Second
	proxyGrace     = 5 * time.Second
)

// worker reconciles one app. Fields below the mutex are owned by run.
type worker struct {
	app string
	rt  runtime.Runtime
	out *Outbox
	log *slog.Logger

	mu     sync.Mutex
	latest *cutoverv1.DesiredApp
	wake   chan struct{}

	desired   *cutoverv1.DesiredApp
	revs      map[string]*cutoverv1.Revision // by revision key
	slots     map[string]map[int]runtime.Instance
	lastStart map[string]time.Time
	inForce   map[string]int32
	table     []proxy.Route
	px        *proxyRun
	listenErr string
	startErr  map[string]string // by slot, until a start succeeds
	lastErr   string
	reported  *cutoverv1.ObservedApp

	stopMu   sync.Mutex
	stopping map[runtime.Instance]struct{}
	stops    sync.WaitGroup
}

// proxyRun is a proxy serving on one listener.
type proxyRun struct {
	p      *proxy.Proxy
	addr   string // as desired
	bound  string // as bound
	cancel context.CancelFunc
	done   chan struct{}
}

func newWorker(d *cutoverv1.DesiredApp, rt runtime.Runtime, out *Outbox, log *slog.Logger) *worker {
	return &worker{
		app: d.GetApp(), rt: rt, out: out, log: log,
		latest:    d,
		wake:      make(chan struct{}, 1),
		revs:      map[string]*cutoverv1.Revision{},
		slots:     map[string]map[int]runtime.Instance{},
		lastStart: map[string]time.Time{},
		startErr:  map[string]string{},
		inForce:   map[string]int32{},
		stopping:  map[runtime.Instance]struct{}{},
	}
}

func (w *worker) set(d *cutoverv1.DesiredApp) {
	w.mu.Lock()
	w.latest = d
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) generation() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest.GetGeneration()
}

func (w *worker) run(ctx context.Context) {
	w.load()
	w.adopt(ctx)
	tick := time.NewTicker(passInterval)
	defer tick.Stop()
	for {
		w.pass(ctx)
		select {
		case <-ctx.Done():
			w.shutdown()
			return
		case <-w.wake:
		case <-tick.C:
		}
	}
}

// load takes the latest desired state as the one to work on.
func (w *worker) load() {
	w.mu.Lock()
	d := w.latest
	w.mu.Unlock()
	if d == w.desired {
		return
	}
	w.desired = d
	for _, dr := range d.GetRevisions() {
		w.revs[runtime.RevisionKey(dr.GetRevision())] = dr.GetRevision()
	}
}

func (w *worker) adopt(ctx context.Context) {
	insts, err := w.rt.Adopt(ctx, w.app, func(key string) *cutoverv1.Revision { return w.revs[key] })
	if err != nil {
		// Records that cannot be read cannot be adopted; the instances are
		// started afresh, which is safe though not seamless.
		w.log.Error("adopt instances", "err", err)
		return
	}
	for _, in := range insts {
		w.slot(in.Revision())[in.Index()] = in
	}
}

func (w *worker) pass(ctx context.Context) {
	w.load()
	w.ensureProxy()
	w.ensureInstances(ctx)
	w.route()
	if victims := w.retire(); len(victims) > 0 {
		w.route() // take them out of the table before draining
		for _, in := range victims {
			w.drainAndStop(in)
		}
	}
	w.noteErrors()
	w.report()
}

// noteErrors keeps the first current problem for the report, logging each
// problem once when it appears.
func (w *worker) noteErrors() {
	msg := w.listenErr
	for _, id := range sortedKeys(w.startErr) {
		if msg == "" {
			msg = w.startErr[id]
		}
	}
	if msg != w.lastErr && msg != "" {
		w.log.Error("reconcile", "err", msg)
	}
	w.lastErr = msg
}

func (w *worker) ensureProxy() {
	addr := w.desired.GetListen()
	if len(w.desired.GetRevisions()) == 0 {
		addr = ""
	}
	if w.px != nil && w.px.addr == addr {
		return
	}
	w.stopProxy()
	if addr == "" {
		w.listenErr = ""
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		w.listenErr = fmt.Sprintf("listen %s: %v", addr, err)
		return
	}
	w.listenErr = ""
	ctx, cancel := context.WithCancel(context.Background())
	px := &proxyRun{p: proxy.New(w.log), addr: addr, bound: ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(px.done)
		if err := px.p.Serve(ctx, ln, proxyGrace); err != nil {
			w.log.Error("proxy stopped", "err", err)
		}
	}()
	w.px = px
	w.table = nil
	w.log.Info("proxy listening", "addr", px.bound)
}

func (w *worker) stopProxy() {
	if w.px == nil {
		return
	}
	w.px.cancel()
	<-w.px.done
	w.px = nil
}

func (w *worker) ensureInstances(ctx context.Context) {
	for _, dr := range w.desired.GetRevisions() {
		key := runtime.RevisionKey(dr.GetRevision())
		slots := w.slot(key)
		for idx := range wanted(dr) {
			in := slots[idx]
			if in != nil && !in.Exited() {
				continue
			}
			if in != nil {
				w.log.Warn("instance exited", "revision", key, "index", idx)
				delete(slots, idx)
				_ = in.Stop(ctx) // forgets its record
			}
			id := fmt.Sprintf("%s/%d", key, idx)
			if time.Since(w.lastStart[id]) < restartBackoff {
				continue
			}
			w.lastStart[id] = time.Now()
			in, err := w.rt.Start(ctx, w.app, idx, dr.GetRevision())
			if err != nil {
				w.startErr[id] = err.Error()
				continue
			}
			delete(w.startErr, id)
			slots[idx] = in
		}
	}
}

// route installs the desired weights once every revision that should get
// traffic has a ready instance; until then the weights in force stay.
func (w *worker) route() {
	want := w.wantWeights()
	ready := map[string][]string{}
	for key, slots := range w.slots {
		for _, idx := range sortedIdx(slots) {
			if slots[idx].Ready() {
				ready[key] = append(ready[key], slots[idx].Addr())
			}
		}
	}
	ok := true
	for key, wt := range want {
		if wt > 0 && len(ready[key]) == 0 {
			ok = false
		}
	}
	if ok {
		w.inForce = want
	}
	var routes []proxy.Route
	for _, key := range sortedKeys(w.inForce) {
		if wt := w.inForce[key]; wt > 0 {
			routes = append(routes, proxy.Route{Revision: w.revName(key), Weight: int(wt), Backends: ready[key]})
		}
	}
	if w.px != nil && !slices.EqualFunc(routes, w.table, sameRoute) {
		w.px.p.SetTable(routes)
		w.table = routes
	}
}

// retire takes out of their slots the instances that are neither desired
// nor carrying traffic in force, and returns them.
func (w *worker) retire() []runtime.Instance {
	n := map[string]int{}
	for _, dr := range w.desired.GetRevisions() {
		n[runtime.RevisionKey(dr.GetRevision())] = wanted(dr)
	}
	var victims []runtime.Instance
	for key, slots := range w.slots {
		for idx, in := range slots {
			keep := idx < n[key] || (n[key] == 0 && w.inForce[key] > 0)
			if !keep {
				delete(slots, idx)
				victims = append(victims, in)
			}
		}
		if len(slots) == 0 {
			delete(w.slots, key)
		}
	}
	return victims
}

func (w *worker) drainAndStop(in runtime.Instance) {
	w.stopMu.Lock()
	w.stopping[in] = struct{}{}
	w.stopMu.Unlock()
	var p *proxy.Proxy
	if w.px != nil {
		p = w.px.p
	}
	w.stops.Add(1)
	go func() {
		defer w.stops.Done()
		if p != nil {
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			if err := p.Drain(ctx, in.Addr()); err != nil {
				w.log.Warn("drain incomplete", "revision", in.Revision(), "index", in.Index(), "err", err)
			}
			cancel()
		}
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := in.Stop(ctx); err != nil {
			w.log.Error("stop instance", "revision", in.Revision(), "index", in.Index(), "err", err)
		}
		w.stopMu.Lock()
		delete(w.stopping, in)
		w.stopMu.Unlock()
	}()
}

func (w *worker) report() {
	want := w.wantWeights()
	obs := &cutoverv1.ObservedApp{
		App:                w.app,
		ObservedGeneration: w.desired.GetGeneration(),
		Error:              w.lastErr,
	}
	if w.px != nil {
		obs.Listen = w.px.bound
	}
	converged := maps.Equal(w.inForce, want) && w.lastErr == "" && (w.px != nil) == (len(want) > 0)
	tracks := map[string]cutoverv1.Track{}
	counts := map[string]int{}
	for _, dr := range w.desired.GetRevisions() {
		key := runtime.RevisionKey(dr.GetRevision())
		tracks[key], counts[key] = dr.GetTrack(), wanted(dr)
	}
	keys := map[string]bool{}
	for k := range w.slots {
		keys[k] = true
	}
	for k := range counts {
		keys[k] = true
	}
	for _, key := range sortedKeys(keys) {
		ready := 0
		for _, in := range w.slots[key] {
			if in.Ready() {
				ready++
			}
		}
		if ready < counts[key] || len(w.slots[key]) > counts[key] {
			converged = false
		}
		obs.Revisions = append(obs.Revisions, &cutoverv1.ObservedRevision{
			Revision:        w.revName(key),
			Track:           tracks[key],
			InstancesWanted: int32(counts[key]),
			InstancesReady:  int32(ready),
			Weight:          w.inForce[key],
		})
	}
	w.stopMu.Lock()
	if len(w.stopping) > 0 {
		converged = false
	}
	w.stopMu.Unlock()
	obs.Converged = converged
	if !proto.Equal(obs, w.reported) {
		w.reported = obs
		w.out.Publish(obs)
	}
}

func (w *worker) shutdown() {
	w.stopProxy()
	for _, slots := range w.slots {
		for _, in := range slots {
			w.drainAndStop(in)
		}
	}
	w.slots = map[string]map[int]runtime.Instance{}
	w.stops.Wait()
	w.log.Info("app stopped")
}

func (w *worker) wantWeights() map[string]int32 {
	want := map[string]int32{}
	for _, dr := range w.desired.GetRevisions() {
		want[runtime.RevisionKey(dr.GetRevision())] = dr.GetWeight()
	}
	return want
}

func (w *worker) slot(key string) map[int]runtime.Instance {
	s := w.slots[key]
	if s == nil {
		s = map[int]runtime.Instance{}
		w.slots[key] = s
	}
	return s
}

func (w *worker) revName(key string) string {
	if r := w.revs[key]; r != nil {
		return r.GetName()
	}
	return key
}

func wanted(dr *cutoverv1.DesiredRevision) int {
	return max(int(dr.GetRevision().GetInstances()), 1)
}

func sameRoute(a, b proxy.Route) bool {
	return a.Revision == b.Revision && a.Weight == b.Weight && slices.Equal(a.Backends, b.Backends)
}

func sortedIdx(m map[int]runtime.Instance) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
