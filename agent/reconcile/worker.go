package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/agent/metrics"
	"github.com/cutover-dev/cutover/agent/proxy"
	"github.com/cutover-dev/cutover/agent/runtime"
	"github.com/cutover-dev/cutover/internal/gate"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// Timing of a worker.
const (
	passInterval   = 50 * time.Millisecond
	restartBackoff = time.Second
	drainTimeout   = 10 * time.Second
	stopTimeout    = 15 * time.Second
	proxyGrace     = 5 * time.Second
	statsInterval  = time.Second
	// DefaultSampleInterval is how often traffic is sampled for the gates.
	DefaultSampleInterval = 100 * time.Millisecond
	// MinSampleInterval bounds the sampling interval from below.
	MinSampleInterval = 10 * time.Millisecond
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
	holds  holding // what the last pass left the app holding

	desired   *cutoverv1.DesiredApp
	revs      map[string]*cutoverv1.Revision // by revision key
	slots     map[string]map[int]runtime.Instance
	lastStart map[string]time.Time
	inForce   map[string]int32
	main      frontend          // the app's address: traffic split by weight
	preview   frontend          // blue-green: every request to the PREVIEW revision
	startErr  map[string]string // by slot, until a start succeeds
	failed    map[string]int32  // instance failures per desired revision key
	published time.Time         // when the report was last sent

	sampleEvery   time.Duration               // sampling interval
	sampleTried   time.Time                   // when the source was last read
	sampled       time.Time                   // when the source's counters last sampled were read
	counters      map[string]metrics.Counters // the source's counters then
	source        *source                     // the metrics source, unless it is the proxy
	sourceErr     string                      // why the source could not start
	prometheusURL string                      // the agent's default Prometheus
	seq           uint64                      // sequence of this app's samples

	connected    *atomic.Bool                   // the control plane is reachable
	recent       map[string][]*cutoverv1.Sample // per revision, for the local guard
	guardFails   map[int]int32                  // consecutive failures per gate
	guardTripped string                         // why the guard routed all to stable
	guardGates   []*gate.Compiled               // the desired state's critical gates, parsed
	scratch      [2]gate.Window                 // windows reused by every guard pass
	lastErr      string
	reported     *cutoverv1.ObservedApp

	placer    runtime.Placer    // set when the runtime places apps itself (kubernetes)
	placement runtime.Placement // what the placer last reported
	placeErr  string            // why the last placement failed
	smoke     smoke             // the preview's smoke checks
	httpc     *http.Client      // for smoke checks

	stopMu   sync.Mutex
	stopping map[runtime.Instance]struct{}
	stops    sync.WaitGroup
}

// frontend is one of the app's proxies: the listener it should have, the
// proxy serving there (nil while it cannot listen), and its table.
type frontend struct {
	name  string
	addr  string // as desired; empty for none
	px    *proxy.Proxy
	bound string // as bound
	stop  context.CancelFunc
	done  chan struct{}
	table []proxy.Route
	err   string // why it is not listening
}

// ensure makes the frontend listen on addr ("" for not at all), replacing a
// listener on another address.
func (f *frontend) ensure(addr string, log *slog.Logger) {
	if f.addr == addr && (f.px != nil || addr == "") {
		return
	}
	f.close()
	f.addr, f.err = addr, ""
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		f.err = fmt.Sprintf("%s listen %s: %v", f.name, addr, err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.px, f.bound, f.stop, f.done, f.table = proxy.New(log), ln.Addr().String(), cancel, make(chan struct{}), nil
	go func(px *proxy.Proxy, done chan struct{}) {
		defer close(done)
		if err := px.Serve(ctx, ln, proxyGrace); err != nil {
			log.Error("proxy stopped", "proxy", f.name, "err", err)
		}
	}(f.px, f.done)
	log.Info("proxy listening", "proxy", f.name, "addr", f.bound)
}

// close stops the proxy and waits for it.
func (f *frontend) close() {
	if f.px == nil {
		return
	}
	f.stop()
	<-f.done
	f.px, f.bound = nil, ""
}

// setTable installs routes when they differ from the table in force.
func (f *frontend) setTable(routes []proxy.Route) {
	if f.px != nil && !slices.EqualFunc(routes, f.table, sameRoute) {
		f.px.SetTable(routes)
		f.table = routes
	}
}

// serving reports whether the frontend listens where it should.
func (f *frontend) serving() bool { return f.addr == "" || f.px != nil }

func newWorker(d *cutoverv1.DesiredApp, rt runtime.Runtime, out *Outbox, log *slog.Logger) *worker {
	return &worker{
		app: d.GetApp(), rt: rt, out: out, log: log,
		latest:      d,
		wake:        make(chan struct{}, 1),
		main:        frontend{name: "app"},
		preview:     frontend{name: "preview"},
		revs:        map[string]*cutoverv1.Revision{},
		slots:       map[string]map[int]runtime.Instance{},
		lastStart:   map[string]time.Time{},
		startErr:    map[string]string{},
		failed:      map[string]int32{},
		sampleEvery: DefaultSampleInterval,
		recent:      map[string][]*cutoverv1.Sample{},
		guardFails:  map[int]int32{},
		inForce:     map[string]int32{},
		stopping:    map[runtime.Instance]struct{}{},
		httpc:       &http.Client{},
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
	var changed <-chan struct{} // the placer's objects changed
	if w.placer != nil {
		changed = w.placer.Changes(w.app)
	} else {
		w.adopt(ctx)
	}
	tick := time.NewTicker(min(passInterval, w.sampleEvery))
	defer tick.Stop()
	for {
		if w.placer != nil {
			w.passPlaced(ctx)
		} else {
			w.pass(ctx)
		}
		select {
		case <-ctx.Done():
			w.shutdown()
			return
		case <-w.wake:
		case <-changed:
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
	if w.desired != nil && d.GetGeneration() != w.desired.GetGeneration() {
		w.guardTripped, w.guardFails = "", map[int]int32{} // the control plane has decided since
	}
	w.guardGates = nil // parsed again from the new desired state
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
	w.ensureFrontends()
	w.ensureInstances(ctx)
	w.route()
	if victims := w.retire(); len(victims) > 0 {
		w.route() // take them out of the table before draining
		for _, in := range victims {
			w.drainAndStop(in)
		}
	}
	w.ensureSmoke(w.previewKey(), w.preview.bound, len(w.preview.table) > 0)
	w.ensureSource()
	w.noteErrors()
	w.report()
	w.sample()
	w.guard()
	w.noteHolding()
}

// holding is what an app holds after a pass, for the dry runs and command
// hooks, which read it from other goroutines.
type holding struct {
	instances int      // running or stopping
	listens   []string // the proxies' addresses, as desired
	endpoint  string   // placed apps: where clients reach the app
	preview   string   // placed apps: where the preview is served
}

// noteHolding records what the app holds now.
func (w *worker) noteHolding() {
	var h holding
	for _, slots := range w.slots {
		h.instances += len(slots)
	}
	w.stopMu.Lock()
	h.instances += len(w.stopping)
	w.stopMu.Unlock()
	for _, f := range []*frontend{&w.main, &w.preview} {
		if f.px != nil {
			h.listens = append(h.listens, f.addr)
		}
	}
	h.endpoint, h.preview = w.placement.Listen, w.placement.PreviewListen
	w.mu.Lock()
	w.holds = h
	w.mu.Unlock()
}

// holding returns what the app held after its last pass, and its latest
// desired state.
func (w *worker) holding() (holding, *cutoverv1.DesiredApp) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.holds, w.latest
}

// ensureSmoke runs the desired state's smoke checks against the preview
// (at addr) once its revision (key) is ready, and returns their result.
func (w *worker) ensureSmoke(key, addr string, ready bool) string {
	checks := w.desired.GetSmokeChecks()
	return w.smoke.ensure(smokeKey(key, checks), addr, checks, w.httpc, ready && addr != "")
}

// smokeResult is the preview's smoke result for the report, and whether
// it lets the app count as converged.
func (w *worker) smokeResult() (string, bool) {
	if len(w.desired.GetSmokeChecks()) == 0 || w.previewKey() == "" {
		return "", true
	}
	w.smoke.mu.Lock()
	defer w.smoke.mu.Unlock()
	if w.smoke.key != smokeKey(w.previewKey(), w.desired.GetSmokeChecks()) {
		return "", false // not run yet for this preview
	}
	return w.smoke.result, w.smoke.result == spec.SmokePassed
}

// sample turns what the app's metrics source (by default its proxies)
// counted since the last sample into one sample per revision, at most
// once per sampling interval and once per read of the source.
func (w *worker) sample() {
	now := time.Now()
	if now.Sub(w.sampleTried) < w.sampleEvery {
		return
	}
	w.sampleTried = now
	cur, at := w.readCounters(now)
	if cur == nil || !at.After(w.sampled) {
		return
	}
	if w.sampled.IsZero() { // the baseline
		w.counters, w.sampled = cur, at
		return
	}
	interval := at.Sub(w.sampled)
	tracks, weights := map[string]cutoverv1.Track{}, map[string]int32{}
	for _, dr := range w.desired.GetRevisions() {
		tracks[dr.GetRevision().GetName()] = dr.GetTrack()
	}
	for key, wt := range w.inForce {
		weights[w.revName(key)] += wt
	}
	if pct := w.desired.GetMirrorPercent(); pct > 0 && w.guardTripped == "" {
		if key := w.trackKey(cutoverv1.Track_TRACK_SHADOW); key != "" {
			weights[w.revName(key)] = pct
		}
	}
	var out []*cutoverv1.Sample
	for _, rev := range slices.Sorted(maps.Keys(cur)) {
		c, prev := cur[rev], w.counters[rev]
		if c.Requests < prev.Requests || c.Errors < prev.Errors { // the source restarted
			prev = metrics.Counters{}
		}
		if c.Requests == prev.Requests {
			continue
		}
		w.seq++
		s := &cutoverv1.Sample{
			App: w.app, Revision: rev, Track: tracks[rev], Seq: w.seq,
			EndTime: timestamppb.New(at), IntervalMicros: interval.Microseconds(),
			Requests: c.Requests - prev.Requests, Errors: c.Errors - prev.Errors,
			Weight: weights[rev],
		}
		if c.Latency != nil {
			for i, n := range c.Latency.Counts {
				var before uint64
				if prev.Latency != nil {
					before = prev.Latency.Counts[i]
				}
				if n > before {
					s.LatencyBuckets = append(s.LatencyBuckets, uint32(i))
					s.LatencyCounts = append(s.LatencyCounts, n-before)
				}
			}
		}
		out = append(out, s)
		w.remember(s)
	}
	w.counters, w.sampled = cur, at
	w.out.AddSamples(out)
}

// noteErrors keeps the first current problem for the report, logging each
// problem once when it appears.
func (w *worker) noteErrors() {
	msg := w.main.err
	if msg == "" {
		msg = w.placeErr
	}
	if msg == "" {
		msg = w.preview.err
	}
	if msg == "" {
		msg = w.sourceErr
	}
	for _, id := range slices.Sorted(maps.Keys(w.startErr)) {
		if msg == "" {
			msg = w.startErr[id]
		}
	}
	if msg != w.lastErr && msg != "" {
		w.log.Error("reconcile", "err", msg)
	}
	w.lastErr = msg
}

func (w *worker) ensureFrontends() {
	addr, preview := w.desired.GetListen(), w.desired.GetPreviewListen()
	if len(w.desired.GetRevisions()) == 0 {
		addr, preview = "", ""
	}
	w.main.ensure(addr, w.log)
	w.preview.ensure(preview, w.log)
}

func (w *worker) stopFrontends() {
	w.main.close()
	w.preview.close()
}

func (w *worker) ensureInstances(ctx context.Context) {
	// A start error of a slot no longer desired (its revision was
	// withdrawn) is no longer a problem of the app.
	desired := map[string]bool{}
	for _, dr := range w.desired.GetRevisions() {
		for idx := range wanted(dr) {
			desired[fmt.Sprintf("%s/%d", runtime.RevisionKey(dr.GetRevision()), idx)] = true
		}
	}
	for id := range w.startErr {
		if !desired[id] {
			delete(w.startErr, id)
		}
	}
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
				w.failed[key]++
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
	if w.guardTripped != "" { // the local guard: everything to stable
		want = map[string]int32{}
		for _, dr := range w.desired.GetRevisions() {
			if dr.GetTrack() == cutoverv1.Track_TRACK_STABLE {
				want[runtime.RevisionKey(dr.GetRevision())] = 100
			}
		}
	}
	ready := map[string][]string{}
	for key, slots := range w.slots {
		for _, idx := range sortedIdx(slots) {
			if slots[idx].Ready() {
				ready[key] = append(ready[key], slots[idx].Addr())
			}
		}
	}
	// New weights take effect only once every desired instance is ready:
	// traffic never moves to a revision that cannot serve it, and a
	// revision leaving is still in force (and running) until its
	// replacements can carry the load.
	if w.allReady() {
		w.inForce = want
	}
	var routes []proxy.Route
	for _, key := range slices.Sorted(maps.Keys(w.inForce)) {
		if wt := w.inForce[key]; wt > 0 {
			routes = append(routes, proxy.Route{Revision: w.revName(key), Weight: int(wt), Backends: ready[key]})
		}
	}
	for _, hr := range w.desired.GetHeaderRoutes() {
		if key := w.trackKey(hr.GetTrack()); key != "" && len(ready[key]) > 0 {
			routes = append(routes, proxy.Route{Revision: w.revName(key), Backends: ready[key],
				Match: &proxy.Match{Header: hr.GetMatch().GetHeader(), Value: hr.GetMatch().GetValue()}})
		}
	}
	if pct := w.desired.GetMirrorPercent(); pct > 0 {
		if key := w.trackKey(cutoverv1.Track_TRACK_SHADOW); key != "" && len(ready[key]) > 0 {
			routes = append(routes, proxy.Route{Revision: w.revName(key), Backends: ready[key], Mirror: int(pct)})
		}
	}
	w.main.setTable(routes)
	var preview []proxy.Route
	if key := w.previewKey(); key != "" && len(ready[key]) > 0 {
		preview = []proxy.Route{{Revision: w.revName(key), Weight: 100, Backends: ready[key]}}
	}
	w.preview.setTable(preview)
}

// previewKey is the revision key of the PREVIEW revision, if any.
func (w *worker) previewKey() string { return w.trackKey(cutoverv1.Track_TRACK_PREVIEW) }

// trackKey is the revision key of the desired revision on a track, if any.
func (w *worker) trackKey(t cutoverv1.Track) string {
	for _, dr := range w.desired.GetRevisions() {
		if dr.GetTrack() == t {
			return runtime.RevisionKey(dr.GetRevision())
		}
	}
	return ""
}

// retire takes out of their slots the instances that are neither desired
// nor carrying traffic in force, and returns them.
func (w *worker) retire() []runtime.Instance {
	n := map[string]int{}
	for _, dr := range w.desired.GetRevisions() {
		n[runtime.RevisionKey(dr.GetRevision())] = wanted(dr)
	}
	// Surge first: a desired revision keeps instances beyond its count
	// until every desired instance is ready, so capacity never drops, but
	// for the max_unavailable the desired state allows to stop early.
	allReady := w.allReady()
	// Ready instances may drop to the desired total less max_unavailable.
	wantTotal, readyTotal := 0, 0
	for key, count := range n {
		wantTotal += count
		for _, in := range w.slots[key] {
			if in.Ready() {
				readyTotal++
			}
		}
	}
	floor := wantTotal - int(w.desired.GetMaxUnavailable())
	var victims []runtime.Instance
	for _, key := range slices.Sorted(maps.Keys(w.slots)) {
		slots := w.slots[key]
		for _, idx := range sortedIdx(slots) {
			in := slots[idx]
			keep := idx < n[key] || (n[key] == 0 && w.inForce[key] > 0)
			if !keep && n[key] > 0 && !allReady && in.Ready() {
				if readyTotal-1 >= floor {
					readyTotal-- // may stop before its replacement is ready
				} else {
					keep = true
				}
			}
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

// allReady reports whether every desired instance is ready.
func (w *worker) allReady() bool {
	for _, dr := range w.desired.GetRevisions() {
		key := runtime.RevisionKey(dr.GetRevision())
		for idx := range wanted(dr) {
			if in := w.slots[key][idx]; in == nil || !in.Ready() {
				return false
			}
		}
	}
	return true
}

func (w *worker) drainAndStop(in runtime.Instance) {
	w.stopMu.Lock()
	w.stopping[in] = struct{}{}
	w.stopMu.Unlock()
	var pxs []*proxy.Proxy
	for _, f := range []*frontend{&w.main, &w.preview} {
		if f.px != nil {
			pxs = append(pxs, f.px)
		}
	}
	w.stops.Add(1)
	go func() {
		defer w.stops.Done()
		drainCtx, cancelDrain := context.WithTimeout(context.Background(), drainTimeout)
		for _, p := range pxs {
			if err := p.Drain(drainCtx, in.Addr()); err != nil {
				w.log.Warn("drain incomplete", "revision", in.Revision(), "index", in.Index(), "err", err)
			}
		}
		cancelDrain()
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
		GuardTripped:       w.guardTripped,
	}
	obs.Listen, obs.PreviewListen = w.main.bound, w.preview.bound
	previewReady := w.previewKey() == "" || len(w.preview.table) > 0
	converged := maps.Equal(w.inForce, want) && w.lastErr == "" && w.main.serving() && w.preview.serving() && previewReady
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
	var stats map[string]proxy.Stats
	if w.main.px != nil {
		stats = w.main.px.Stats()
	}
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		ready := 0
		for _, in := range w.slots[key] {
			if in.Ready() {
				ready++
			}
		}
		if ready < counts[key] || len(w.slots[key]) > counts[key] {
			converged = false
		}
		o := &cutoverv1.ObservedRevision{
			Revision:        w.revName(key),
			Track:           tracks[key],
			InstancesWanted: int32(counts[key]),
			InstancesReady:  int32(ready),
			Weight:          w.inForce[key],
			InstancesFailed: w.failed[key],
		}
		if w.main.px != nil {
			if st, ok := stats[o.GetRevision()]; ok {
				o.Requests, o.LatencyP99Micros = st.Requests, st.P99.Microseconds()
				o.StatusCodes = map[int32]int64{}
				for c, n := range st.Codes {
					o.StatusCodes[int32(c)] = n
				}
			}
		}
		obs.Revisions = append(obs.Revisions, o)
	}
	for key := range w.failed {
		if _, desired := counts[key]; !desired {
			delete(w.failed, key)
		}
	}
	if want := w.trackKey(cutoverv1.Track_TRACK_SHADOW); want != "" && w.desired.GetMirrorPercent() > 0 {
		converged = converged && w.mirroring()
	}
	smoke, passed := w.smokeResult()
	for _, o := range obs.GetRevisions() {
		if o.GetTrack() == cutoverv1.Track_TRACK_PREVIEW {
			o.Smoke = smoke
		}
	}
	converged = converged && passed
	w.stopMu.Lock()
	if len(w.stopping) > 0 {
		converged = false
	}
	w.stopMu.Unlock()
	obs.Converged = converged
	w.publish(obs)
}

// publish sends a report that differs from the last one sent; one that
// differs only in traffic counters at most once a second.
func (w *worker) publish(obs *cutoverv1.ObservedApp) {
	if proto.Equal(obs, w.reported) {
		return
	}
	// Traffic counters change all the time: on their own they are sent at
	// most once a second.
	if sameButCounters(obs, w.reported) && time.Since(w.published) < statsInterval {
		return
	}
	w.reported, w.published = obs, time.Now()
	w.out.Publish(obs)
}

// mirroring reports whether the main proxy's table mirrors to the shadow.
func (w *worker) mirroring() bool {
	for _, r := range w.main.table {
		if r.Mirror > 0 {
			return true
		}
	}
	return false
}

// sameButCounters compares two reports ignoring the traffic counters.
func sameButCounters(a, b *cutoverv1.ObservedApp) bool {
	if b == nil {
		return false
	}
	strip := func(o *cutoverv1.ObservedApp) *cutoverv1.ObservedApp {
		c := proto.Clone(o).(*cutoverv1.ObservedApp)
		for _, r := range c.GetRevisions() {
			r.Requests, r.StatusCodes, r.LatencyP99Micros = 0, nil, 0
		}
		return c
	}
	return proto.Equal(strip(a), strip(b))
}

func (w *worker) shutdown() {
	w.source.close()
	w.source = nil
	w.smoke.stop()
	if w.placer != nil { // the cluster's objects stay as they are
		w.placer.Forget(w.app)
		w.log.Info("app stopped")
		return
	}
	w.stopFrontends()
	for _, slots := range w.slots {
		for _, in := range slots {
			w.drainAndStop(in)
		}
	}
	w.slots = map[string]map[int]runtime.Instance{}
	w.stops.Wait()
	w.noteHolding()
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
	if n := dr.GetInstances(); n > 0 {
		return int(n)
	}
	return max(int(dr.GetRevision().GetInstances()), 1)
}

func sameRoute(a, b proxy.Route) bool {
	sameMatch := (a.Match == nil) == (b.Match == nil) && (a.Match == nil || *a.Match == *b.Match)
	return a.Revision == b.Revision && a.Weight == b.Weight && a.Mirror == b.Mirror && sameMatch && slices.Equal(a.Backends, b.Backends)
}

func sortedIdx(m map[int]runtime.Instance) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
