package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cutover-dev/cutover/agent/runtime"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Store keeps accepted desired states.
type Store interface {
	// PutApp stores an app's desired state. Idempotent; safe for concurrent use.
	PutApp(app *cutoverv1.DesiredApp) error
	// DeleteApp forgets an app. Idempotent; safe for concurrent use.
	DeleteApp(name string) error
	// Apps returns every stored desired state. Safe for concurrent use.
	Apps() ([]*cutoverv1.DesiredApp, error)
}

// Reconciler owns one worker per app.
type Reconciler struct {
	rt     runtime.Runtime
	placer runtime.Placer
	db     Store
	out    *Outbox
	log    *slog.Logger

	sampleEvery   time.Duration
	prometheusURL string
	connected     atomic.Bool // the control plane is reachable

	mu      sync.Mutex
	ctx     context.Context // set by Run; workers live within it
	workers map[string]*worker
	wg      sync.WaitGroup
	started chan struct{}
}

// New returns a reconciler; Run starts it.
func New(rt runtime.Runtime, db Store, out *Outbox, log *slog.Logger) *Reconciler {
	return &Reconciler{rt: rt, db: db, out: out, log: log, workers: map[string]*worker{}, started: make(chan struct{})}
}

// WithPlacer makes a runtime that places apps itself (kubernetes) run
// every app instead of the local runtime; call it before Run.
func (r *Reconciler) WithPlacer(p runtime.Placer) *Reconciler {
	r.placer = p
	return r
}

// WithSampleInterval sets how often each app's traffic is sampled (default
// DefaultSampleInterval, at least MinSampleInterval); call it before Run.
func (r *Reconciler) WithSampleInterval(d time.Duration) *Reconciler {
	r.sampleEvery = max(d, MinSampleInterval)
	return r
}

// WithPrometheus sets the Prometheus server of apps whose spec.metrics
// names none; call it before Run.
func (r *Reconciler) WithPrometheus(url string) *Reconciler {
	r.prometheusURL = url
	return r
}

// Connected records whether the control plane is reachable; while it is
// not, each app's local guard evaluates the gates it was given.
func (r *Reconciler) Connected(up bool) { r.connected.Store(up) }

// Run resumes every stored app, then serves until ctx ends, when it stops
// every app's proxy and instances.
func (r *Reconciler) Run(ctx context.Context) error {
	apps, err := r.db.Apps()
	if err != nil {
		// Apply and Generations wait for Run to start: release them as
		// after a run that has ended, or they would block forever.
		ended, cancel := context.WithCancel(ctx)
		cancel()
		r.mu.Lock()
		r.ctx = ended
		r.mu.Unlock()
		close(r.started)
		return fmt.Errorf("load desired apps: %w", err)
	}
	r.mu.Lock()
	r.ctx = ctx
	for _, d := range apps {
		r.startWorker(d)
	}
	r.mu.Unlock()
	close(r.started)
	<-ctx.Done()
	r.wg.Wait()
	return nil
}

// Apply accepts a desired state from the control plane. Older or equal
// generations are ignored; newer ones are stored, then acted on.
func (r *Reconciler) Apply(d *cutoverv1.DesiredApp) error {
	<-r.started
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ctx.Err(); err != nil {
		return fmt.Errorf("apply %s: reconciler not running: %w", d.GetApp(), err)
	}
	w := r.workers[d.GetApp()]
	if w != nil && w.generation() >= d.GetGeneration() {
		return nil
	}
	if err := r.db.PutApp(d); err != nil {
		return fmt.Errorf("store desired %s: %w", d.GetApp(), err)
	}
	if w == nil {
		r.startWorker(d)
		return nil
	}
	w.set(d)
	return nil
}

// Generations reports the generation accepted for every app, for the hello.
func (r *Reconciler) Generations() []*cutoverv1.AppGeneration {
	<-r.started
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*cutoverv1.AppGeneration, 0, len(r.workers))
	for name, w := range r.workers {
		out = append(out, &cutoverv1.AppGeneration{App: name, Generation: w.generation()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetApp() < out[j].GetApp() })
	return out
}

// startWorker must be called with r.mu held.
func (r *Reconciler) startWorker(d *cutoverv1.DesiredApp) {
	w := newWorker(d, r.rt, r.out, r.log.With("app", d.GetApp()))
	w.connected = &r.connected
	w.placer = r.placer
	w.prometheusURL = r.prometheusURL
	if r.sampleEvery > 0 {
		w.sampleEvery = r.sampleEvery
	}
	r.workers[d.GetApp()] = w
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		w.run(r.ctx)
	}()
}

// Held reports what the agent holds now, for dry runs: its instances
// across all apps, and the addresses the app's proxies listen on. Safe for
// concurrent use.
func (r *Reconciler) Held(app string) runtime.Held {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out runtime.Held
	for name, w := range r.workers {
		h, _ := w.holding()
		out.Instances += h.instances
		if name == app {
			out.Listens = slices.Clone(h.listens)
		}
	}
	return out
}

// Endpoints reports where a client on this host reaches app and its
// preview (host:port; "" when unknown): the proxies' addresses of its
// latest desired state, an unspecified host made loopback (":8080" is
// "127.0.0.1:8080"), or where a placer serves them. Safe for concurrent
// use.
func (r *Reconciler) Endpoints(app string) (endpoint, preview string) {
	r.mu.Lock()
	w := r.workers[app]
	r.mu.Unlock()
	if w == nil {
		return "", ""
	}
	h, d := w.holding()
	if w.placer != nil {
		return h.endpoint, h.preview
	}
	if len(d.GetRevisions()) == 0 {
		return "", ""
	}
	return Dialable(d.GetListen()), Dialable(d.GetPreviewListen())
}

// Dialable turns a listen address into one to dial on this host: an
// unspecified host (":8080", "0.0.0.0:8080", "[::]:8080") becomes
// 127.0.0.1. An empty or malformed address is returned as it is.
func Dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
