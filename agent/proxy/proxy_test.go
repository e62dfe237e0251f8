package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/agent/proxy"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// serveBackend runs h on a real HTTP server on a loopback port and returns
// its host:port.
func serveBackend(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().String()
}

// echo answers with its name and counts its requests.
type echo struct {
	name string
	hits atomic.Int64
}

func (e *echo) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.hits.Add(1)
	_, _ = io.WriteString(w, e.name)
}

func echoBackend(t *testing.T, name string) (*echo, string) {
	t.Helper()
	e := &echo{name: name}
	return e, serveBackend(t, e)
}

// slow answers with its name once released; arrived receives one value per
// request that reached it.
type slow struct {
	name    string
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *slow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.arrived <- struct{}{}
	select {
	case <-s.release:
		_, _ = io.WriteString(w, s.name)
	case <-r.Context().Done():
	}
}

func (s *slow) Release() { s.once.Do(func() { close(s.release) }) }

// awaitArrival waits until a request has reached the backend.
func (s *slow) awaitArrival(t *testing.T) {
	t.Helper()
	select {
	case <-s.arrived:
	case <-time.After(5 * time.Second):
		t.Fatalf("no request reached %s", s.name)
	}
}

func slowBackend(t *testing.T, name string) (*slow, string) {
	t.Helper()
	s := &slow{name: name, arrived: make(chan struct{}, 16), release: make(chan struct{})}
	addr := serveBackend(t, s)
	// Registered after the server's Close, so it runs first: Close waits
	// for the requests this handler holds.
	t.Cleanup(s.Release)
	return s, addr
}

// closeNotifier tells when Serve has closed its listener.
type closeNotifier struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *closeNotifier) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type running struct {
	url    string
	addr   string
	stop   context.CancelFunc
	done   chan error    // receives Serve's result
	closed chan struct{} // closed once Serve stops accepting
}

// startProxy serves p on a loopback port until the test ends.
func startProxy(t *testing.T, p *proxy.Proxy, grace time.Duration) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cn := &closeNotifier{Listener: ln, closed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{
		url:    "http://" + ln.Addr().String(),
		addr:   ln.Addr().String(),
		stop:   cancel,
		done:   make(chan error, 1),
		closed: cn.closed,
	}
	go func() { r.done <- p.Serve(ctx, cn, grace) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(grace + 5*time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return r
}

func newProxy() *proxy.Proxy { return proxy.New(slog.New(slog.DiscardHandler)) }

func newClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type reply struct {
	status   int
	body     string
	revision string
}

func get(c *http.Client, url string) (reply, error) {
	resp, err := c.Get(url)
	if err != nil {
		return reply{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{resp.StatusCode, string(body), resp.Header.Get("X-Cutover-Revision")}, nil
}

func mustGet(t *testing.T, c *http.Client, url string) reply {
	t.Helper()
	r, err := get(c, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return r
}

// spread sends n requests from a few clients at once and counts the
// answering backends. Every answer must be a 200 whose revision header
// names the route (want maps backend body to revision).
func spread(t *testing.T, c *http.Client, url string, n int, want map[string]string) map[string]int {
	t.Helper()
	const workers = 8
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		bad    []string
		next   atomic.Int64
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				r, err := get(c, url)
				mu.Lock()
				switch {
				case err != nil:
					bad = append(bad, err.Error())
				case r.status != http.StatusOK || r.revision != want[r.body]:
					bad = append(bad, fmt.Sprintf("%+v", r))
				default:
					counts[r.body]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d requests went wrong, e.g. %s", len(bad), n, bad[0])
	}
	return counts
}

func TestEmptyTableAnswers503(t *testing.T) {
	t.Parallel()
	p := newProxy()
	px := startProxy(t, p, time.Second)
	c := newClient(t)
	if r := mustGet(t, c, px.url); r.status != http.StatusServiceUnavailable {
		t.Errorf("new proxy: status %d, want 503", r.status)
	}

	_, addr := echoBackend(t, "v1")
	p.SetTable([]proxy.Route{{Revision: "v1", Weight: 0, Backends: []string{addr}}, {Revision: "v2", Weight: 100}})
	if r := mustGet(t, c, px.url); r.status != http.StatusServiceUnavailable {
		t.Errorf("only empty routes: status %d, want 503", r.status)
	}

	p.SetTable([]proxy.Route{{Revision: "v1", Weight: 100, Backends: []string{addr}}})
	if r := mustGet(t, c, px.url); r.status != http.StatusOK {
		t.Fatalf("one route: status %d, want 200", r.status)
	}
	p.SetTable(nil)
	if r := mustGet(t, c, px.url); r.status != http.StatusServiceUnavailable {
		t.Errorf("table cleared: status %d, want 503", r.status)
	}
}

func TestWeightsSplitTraffic(t *testing.T) {
	t.Parallel()
	_, stable := echoBackend(t, "stable")
	_, canary := echoBackend(t, "canary")
	p := newProxy()
	p.SetTable([]proxy.Route{
		{Revision: "v1", Weight: 80, Backends: []string{stable}},
		{Revision: "v2", Weight: 20, Backends: []string{canary}},
	})
	px := startProxy(t, p, time.Second)

	const n = 2000
	counts := spread(t, newClient(t), px.url, n, map[string]string{"stable": "v1", "canary": "v2"})
	// The canary share is binomial with sd 0.9 points: ±5 points is over
	// five sd, so this does not flake.
	share := 100 * float64(counts["canary"]) / n
	if share < 15 || share > 25 {
		t.Errorf("canary got %.1f%% of %d requests (%v), want 20 ± 5", share, n, counts)
	}
	if counts["stable"]+counts["canary"] != n {
		t.Errorf("counts %v do not add up to %d", counts, n)
	}
}

func TestRoutesWithoutBackendsOrWeightGetNothing(t *testing.T) {
	t.Parallel()
	live, liveAddr := echoBackend(t, "live")
	zero, zeroAddr := echoBackend(t, "zero")
	negative, negativeAddr := echoBackend(t, "negative")
	p := newProxy()
	p.SetTable([]proxy.Route{
		{Revision: "v0", Weight: 0, Backends: []string{zeroAddr}},
		{Revision: "v1", Weight: 10, Backends: []string{liveAddr}},
		{Revision: "v2", Weight: 90}, // no ready instance yet
		{Revision: "v3", Weight: -50, Backends: []string{negativeAddr}},
	})
	px := startProxy(t, p, time.Second)

	counts := spread(t, newClient(t), px.url, 300, map[string]string{"live": "v1"})
	if counts["live"] != 300 {
		t.Errorf("live route answered %d of 300 (%v)", counts["live"], counts)
	}
	if live.hits.Load() != 300 || zero.hits.Load() != 0 || negative.hits.Load() != 0 {
		t.Errorf("backend hits: live %d, zero-weight %d, negative-weight %d; want 300, 0, 0",
			live.hits.Load(), zero.hits.Load(), negative.hits.Load())
	}
}

func TestRoundRobinWithinRoute(t *testing.T) {
	t.Parallel()
	want := map[string]string{}
	var addrs []string
	for i := range 3 {
		name := fmt.Sprintf("v1@%d", i)
		_, addr := echoBackend(t, name)
		addrs = append(addrs, addr)
		want[name] = "v1"
	}
	p := newProxy()
	p.SetTable([]proxy.Route{{Revision: "v1", Weight: 1, Backends: addrs}})
	px := startProxy(t, p, time.Second)

	// Each pick takes the next slot, so even concurrent requests share
	// exactly evenly.
	counts := spread(t, newClient(t), px.url, 300, want)
	for name := range want {
		if counts[name] != 100 {
			t.Errorf("round robin gave %v, want 100 each", counts)
			break
		}
	}
}

// The proxy forwards the client's Host and says who the client was.
func TestForwardedRequest(t *testing.T) {
	t.Parallel()
	type seen struct{ host, xff, path string }
	got := make(chan seen, 1)
	addr := serveBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Host, r.Header.Get("X-Forwarded-For"), r.URL.RequestURI()}
	}))
	p := newProxy()
	p.SetTable([]proxy.Route{{Revision: "v1", Weight: 1, Backends: []string{addr}}})
	px := startProxy(t, p, time.Second)

	r := mustGet(t, newClient(t), px.url+"/orders/42?limit=5")
	if r.status != http.StatusOK || r.revision != "v1" {
		t.Errorf("reply %+v, want 200 from v1", r)
	}
	s := <-got
	if want := (seen{px.addr, "127.0.0.1", "/orders/42?limit=5"}); s != want {
		t.Errorf("backend saw %+v, want %+v", s, want)
	}
}

// A dead backend gives 502, still labelled with the revision that failed.
func TestDeadBackend(t *testing.T) {
	t.Parallel()
	// It accepts connections and drops them unanswered. (A closed port
	// would do too, but another test may be given it meanwhile.)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}()
	dead := ln.Addr().String()
	p := newProxy()
	p.SetTable([]proxy.Route{{Revision: "v9", Weight: 1, Backends: []string{dead}}})
	px := startProxy(t, p, time.Second)
	r := mustGet(t, newClient(t), px.url)
	if r.status != http.StatusBadGateway || r.revision != "v9" {
		t.Errorf("reply %+v, want 502 labelled v9", r)
	}
	if n := p.InFlight(dead); n != 0 {
		t.Errorf("InFlight(dead) = %d after the reply, want 0", n)
	}
}

func TestSetTableDoesNotDisturbInFlight(t *testing.T) {
	t.Parallel()
	old, oldAddr := slowBackend(t, "old")
	_, newAddr := echoBackend(t, "new")
	p := newProxy()
	p.SetTable([]proxy.Route{{Revision: "v1", Weight: 100, Backends: []string{oldAddr}}})
	px := startProxy(t, p, 5*time.Second)
	c := newClient(t)

	slowReply := make(chan reply, 1)
	go func() {
		r, err := get(c, px.url)
		if err != nil {
			r = reply{body: err.Error()}
		}
		slowReply <- r
	}()
	old.awaitArrival(t)

	p.SetTable([]proxy.Route{{Revision: "v2", Weight: 100, Backends: []string{newAddr}}})
	counts := spread(t, c, px.url, 50, map[string]string{"new": "v2"})
	if counts["new"] != 50 {
		t.Errorf("after SetTable: %v, want all 50 at the new backend", counts)
	}
	if n := p.InFlight(oldAddr); n != 1 {
		t.Errorf("InFlight(old) = %d while its request waits, want 1", n)
	}

	old.Release()
	select {
	case r := <-slowReply:
		if want := (reply{http.StatusOK, "old", "v1"}); r != want {
			t.Errorf("in-flight request got %+v, want %+v", r, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request did not complete")
	}
	waitFor(t, "old backend to have nothing in flight", func() bool { return p.InFlight(oldAddr) == 0 })
}

func TestInFlightAndDrain(t *testing.T) {
	t.Parallel()
	s, addr := slowBackend(t, "v1")
	p := newProxy()
	p.SetTable([]proxy.Route{{Revision: "v1", Weight: 1, Backends: []string{addr}}})
	px := startProxy(t, p, 5*time.Second)
	c := newClient(t)

	if n := p.InFlight(addr); n != 0 {
		t.Fatalf("InFlight before any request = %d", n)
	}
	if n := p.InFlight("127.0.0.1:1"); n != 0 {
		t.Fatalf("InFlight of an unknown backend = %d", n)
	}
	// Nothing in flight: Drain returns once it has let stragglers settle.
	if err := p.Drain(context.Background(), addr); err != nil {
		t.Fatalf("Drain of an idle backend: %v", err)
	}

	const n = 3
	replies := make(chan reply, n)
	for range n {
		go func() {
			r, err := get(c, px.url)
			if err != nil {
				r = reply{body: err.Error()}
			}
			replies <- r
		}()
	}
	for range n {
		s.awaitArrival(t)
	}
	if got := p.InFlight(addr); got != n {
		t.Errorf("InFlight = %d, want %d", got, n)
	}
	// The backend leaves the table; its requests are still in flight.
	p.SetTable(nil)

	// A drain that runs out of time says so.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Drain(ctx, addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Drain with a short deadline = %v, want DeadlineExceeded", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := p.Drain(ctx2, addr); !errors.Is(err, context.Canceled) {
		t.Errorf("Drain with a cancelled context = %v, want Canceled", err)
	}

	// A patient drain waits for the requests, however long they take.
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(context.Background(), addr) }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v while %d requests were in flight", err, p.InFlight(addr))
	case <-time.After(200 * time.Millisecond): // well past the settle time
	}
	s.Release()
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("Drain: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return after the requests finished")
	}
	if got := p.InFlight(addr); got != 0 {
		t.Errorf("InFlight after Drain = %d, want 0", got)
	}
	for range n {
		if r := <-replies; r.status != http.StatusOK || r.body != "v1" {
			t.Errorf("drained request got %+v, want 200 from v1", r)
		}
	}
}

// Cancelling Serve's context closes its listener at once but lets a request
// in flight finish within the grace period.
func TestServeStopsGracefully(t *testing.T) {
	t.Parallel()
	s, addr := slowBackend(t, "v1")
	p := newProxy()
	p.SetTable([]proxy.Route{{Revision: "v1", Weight: 1, Backends: []string{addr}}})
	px := startProxy(t, p, 10*time.Second)
	c := newClient(t)

	slowReply := make(chan reply, 1)
	go func() {
		r, err := get(c, px.url)
		if err != nil {
			r = reply{body: err.Error()}
		}
		slowReply <- r
	}()
	s.awaitArrival(t)

	px.stop()
	select {
	case <-px.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve kept accepting after its context ended")
	}
	select {
	case err := <-px.done:
		t.Fatalf("Serve returned %v with a request in flight and grace left", err)
	default:
	}

	s.Release()
	select {
	case r := <-slowReply:
		if want := (reply{http.StatusOK, "v1", "v1"}); r != want {
			t.Errorf("in-flight request got %+v, want %+v", r, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request did not complete")
	}
	select {
	case err := <-px.done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
		px.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the last request finished")
	}
}

// When the grace period ends first, Serve returns and cuts the requests
// still open instead of leaving them running behind a stopped proxy.
func TestServeGraceExpires(t *testing.T) {
	t.Parallel()
	s, addr := slowBackend(t, "v1")
	p := newProxy()
	p.SetTable([]proxy.Route{{Revision: "v1", Weight: 1, Backends: []string{addr}}})
	const grace = 200 * time.Millisecond
	px := startProxy(t, p, grace)
	c := newClient(t)

	slowErr := make(chan error, 1)
	go func() {
		r, err := get(c, px.url)
		if err == nil {
			err = fmt.Errorf("got a reply %+v", r)
		}
		slowErr <- err
	}()
	s.awaitArrival(t)

	start := time.Now()
	px.stop()
	select {
	case err := <-px.done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
		if took := time.Since(start); took < grace {
			t.Errorf("Serve returned after %v, before the %v grace period", took, grace)
		}
		px.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the grace period")
	}
	select {
	case err := <-slowErr:
		t.Logf("cut request: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the request left in flight was not cut when Serve returned")
	}
	waitFor(t, "the cut request to leave the in-flight count", func() bool { return p.InFlight(addr) == 0 })
}

// Requests and table swaps at once: every request is answered by a backend
// of a route in the table it picked from, and the race detector stays quiet.
func TestConcurrentSetTable(t *testing.T) {
	t.Parallel()
	_, a := echoBackend(t, "a")
	_, b := echoBackend(t, "b")
	tables := [][]proxy.Route{
		{{Revision: "va", Weight: 1, Backends: []string{a}}},
		{{Revision: "vb", Weight: 1, Backends: []string{b}}},
		{{Revision: "va", Weight: 30, Backends: []string{a}}, {Revision: "vb", Weight: 70, Backends: []string{b, b}}},
	}
	p := newProxy()
	p.SetTable(tables[0])
	px := startProxy(t, p, time.Second)

	stop := make(chan struct{})
	swapped := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				swapped <- n
				return
			default:
				p.SetTable(tables[n%len(tables)])
				n++
				runtime.Gosched() // leave the requests room on one CPU
			}
		}
	}()
	counts := spread(t, newClient(t), px.url, 400, map[string]string{"a": "va", "b": "vb"})
	close(stop)
	if n := <-swapped; n < 2 {
		t.Errorf("only %d table swaps happened during the requests", n)
	}
	if counts["a"]+counts["b"] != 400 {
		t.Errorf("counts %v, want 400 answers", counts)
	}
}

// BenchmarkProxy measures requests per second through the proxy to one
// local backend, over loopback keep-alive connections.
func BenchmarkProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(backend.Close)
	p := newProxy()
	p.SetTable([]proxy.Route{{Revision: "v1", Weight: 1, Backends: []string{backend.Listener.Addr().String()}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, time.Second) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	c := newClient(b)
	url := "http://" + ln.Addr().String()

	b.ResetTimer()
	for range b.N {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// A header route takes every matching request, whatever the weights, and
// nothing else.
func TestHeaderRouteWinsOverWeights(t *testing.T) {
	_, stable := echoBackend(t, "v1")
	_, canary := echoBackend(t, "v2")
	p := proxy.New(slog.New(slog.DiscardHandler))
	url := startProxy(t, p, time.Second).url
	p.SetTable([]proxy.Route{
		{Revision: "v1", Weight: 100, Backends: []string{stable}},
		{Revision: "v2", Backends: []string{canary}, Match: &proxy.Match{Header: "X-Canary", Value: "always"}},
	})
	for i := range 200 {
		want, hdr := "v1", ""
		if i%2 == 0 {
			want, hdr = "v2", "always"
		}
		if i%4 == 1 {
			hdr = "sometimes" // another value does not match
		}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if hdr != "" {
			req.Header.Set("X-Canary", hdr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := resp.Header.Get("X-Cutover-Revision"); got != want {
			t.Fatalf("request %d with X-Canary %q went to %s, want %s", i, hdr, got, want)
		}
	}
}

// A shadow route gets copies of its share of requests; clients only ever
// get the primary's answers, and the copies' codes and latency are counted.
func TestMirrorCopiesWithoutAffectingClients(t *testing.T) {
	primary, stable := echoBackend(t, "v1")
	shadow, shadowAddr := echoBackend(t, "v2")
	p := proxy.New(slog.New(slog.DiscardHandler))
	url := startProxy(t, p, time.Second).url
	p.SetTable([]proxy.Route{
		{Revision: "v1", Weight: 100, Backends: []string{stable}},
		{Revision: "v2", Backends: []string{shadowAddr}, Mirror: 50},
	})
	const n = 400
	for range n {
		resp, err := http.Post(url, "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(body) != "v1" {
			t.Fatalf("a client got %q, want only the primary's answers", body)
		}
	}
	if got := primary.hits.Load(); got != n {
		t.Errorf("primary got %d requests, want %d", got, n)
	}
	waitFor(t, "mirrored copies counted", func() bool {
		st := p.Stats()["v2"]
		return st.Requests == shadow.hits.Load() && st.Requests > 0
	})
	st := p.Stats()["v2"]
	if st.Requests < n*35/100 || st.Requests > n*65/100 {
		t.Errorf("shadow got %d copies of %d requests at 50%%", st.Requests, n)
	}
	if st.Codes[200] != st.Requests || st.P99 <= 0 {
		t.Errorf("shadow stats: codes %v p99 %v", st.Codes, st.P99)
	}
}
