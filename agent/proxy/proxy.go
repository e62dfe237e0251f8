package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// drainSettle is longer than the gap between a request picking a backend
// and counting itself in flight.
const drainSettle = 20 * time.Millisecond

// Route sends Weight parts of the traffic to the Backends of one revision.
type Route struct {
	// Revision names the revision; it is also set as the X-Cutover-Revision
	// response header.
	Revision string
	// Weight is the share of traffic, relative to the other routes.
	Weight int
	// Backends are host:port addresses of ready instances.
	Backends []string
	// Match, when set, makes this a header route: it receives exactly the
	// requests whose Header equals Value (ignoring Weight), ahead of the
	// weighted routes.
	Match *Match
	// Mirror, when above 0, makes this a shadow route: it receives a copy
	// of Mirror percent of all requests (ignoring Weight); the answers are
	// discarded and nobody waits for them.
	Mirror int
}

// Match is an exact header match.
type Match struct {
	Header string
	Value  string
}

// table is an immutable routing table.
type table struct {
	routes  []route // weighted
	matches []route // header routes, tried first
	mirror  *route  // shadow route, gets copies
	total   int
}

type route struct {
	Route
	next *atomic.Uint64 // round-robin cursor, shared across tables for the same revision
}

// Proxy is safe for concurrent use.
type Proxy struct {
	log      *slog.Logger
	table    atomic.Pointer[table]
	mu       sync.Mutex
	cursors  map[string]*atomic.Uint64
	inflight sync.Map // backend address -> *atomic.Int64
	rp       *httputil.ReverseProxy
	mirrors  mirrors
}

// New returns a proxy with an empty table (every request gets 503).
func New(log *slog.Logger) *Proxy {
	p := &Proxy{log: log, cursors: map[string]*atomic.Uint64{}, mirrors: newMirrors()}
	p.table.Store(&table{})
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			backend, _ := pr.In.Context().Value(backendKey{}).(string)
			pr.SetURL(&url.URL{Scheme: "http", Host: backend})
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Debug("backend failed", "url", r.URL.String(), "err", err)
			http.Error(w, "bad gateway", http.StatusBadGateway)
		},
	}
	return p
}

// SetTable replaces the routing table. Routes without backends or weight
// receive nothing; the rest share traffic by weight.
func (p *Proxy) SetTable(routes []Route) {
	t := &table{}
	p.mu.Lock()
	for _, r := range routes {
		if len(r.Backends) == 0 || r.Match == nil && r.Mirror <= 0 && r.Weight <= 0 {
			continue
		}
		c := p.cursors[r.Revision]
		if c == nil {
			c = &atomic.Uint64{}
			p.cursors[r.Revision] = c
		}
		r.Backends = append([]string(nil), r.Backends...)
		if r.Mirror > 0 {
			t.mirror = &route{Route: r, next: c}
			continue
		}
		if r.Match != nil {
			m := *r.Match
			r.Match = &m
			t.matches = append(t.matches, route{Route: r, next: c})
			continue
		}
		t.routes = append(t.routes, route{Route: r, next: c})
		t.total += r.Weight
	}
	p.mu.Unlock()
	p.table.Store(t)
}

// InFlight returns the number of requests currently at a backend.
func (p *Proxy) InFlight(backend string) int64 {
	if v, ok := p.inflight.Load(backend); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Drain waits until no request is in flight at backend or ctx ends. Call it
// after the backend left the table: it first lets requests that picked the
// backend from the previous table register themselves.
func (p *Proxy) Drain(ctx context.Context, backend string) error {
	settle := time.NewTimer(drainSettle)
	defer settle.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("drain %s: %w", backend, ctx.Err())
	case <-settle.C:
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for p.InFlight(backend) > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s: %w", backend, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// ServeHTTP routes one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := p.table.Load()
	if m := t.mirror; m != nil && rand.IntN(100) < m.Mirror {
		r = p.mirrors.send(r, m.Revision, m.Backends[(m.next.Add(1)-1)%uint64(len(m.Backends))])
	}
	rev, backend, ok := t.pick(r.Header)
	if !ok {
		http.Error(w, "no ready instance", http.StatusServiceUnavailable)
		return
	}
	counter := p.counter(backend)
	counter.Add(1)
	defer counter.Add(-1)
	w.Header().Set("X-Cutover-Revision", rev)
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	p.rp.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), backendKey{}, backend)))
	p.mirrors.record(rev, sw.status(), time.Since(start))
}

func (p *Proxy) counter(backend string) *atomic.Int64 {
	if v, ok := p.inflight.Load(backend); ok {
		return v.(*atomic.Int64)
	}
	v, _ := p.inflight.LoadOrStore(backend, &atomic.Int64{})
	return v.(*atomic.Int64)
}

func (t *table) pick(h http.Header) (revision, backend string, ok bool) {
	for _, r := range t.matches {
		if h.Get(r.Match.Header) == r.Match.Value {
			i := r.next.Add(1) - 1
			return r.Revision, r.Backends[i%uint64(len(r.Backends))], true
		}
	}
	if t.total == 0 {
		return "", "", false
	}
	n := rand.IntN(t.total)
	for _, r := range t.routes {
		if n < r.Weight {
			i := r.next.Add(1) - 1
			return r.Revision, r.Backends[i%uint64(len(r.Backends))], true
		}
		n -= r.Weight
	}
	return "", "", false // unreachable: n < total
}

// Serve serves on ln until ctx ends, then stops accepting and waits up to
// grace for in-flight requests; those still open then are cut.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	hs := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("proxy %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("proxy %s shutdown: %w", ln.Addr(), err)
		}
		// Shutdown leaves unfinished requests running; once Serve has
		// returned nothing may still forward traffic for this app.
		_ = hs.Close()
	}
	return nil
}

// backendKey carries the chosen backend from ServeHTTP to Rewrite.
type backendKey struct{}

// statusWriter remembers the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming responses streaming.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
