package link_test

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/cutover-dev/cutover/agent/link"
	"github.com/cutover-dev/cutover/agent/reconcile"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// wait bounds every expected event; generous for the race detector.
const wait = 5 * time.Second

// controlPlane is a hand-written AgentService: every stream an agent opens
// is handed to the test on streams.
type controlPlane struct {
	cutoverv1.UnimplementedAgentServiceServer
	streams chan *stream
}

// stream is one Connect call as the control plane sees it.
type stream struct {
	srv  cutoverv1.AgentService_ConnectServer
	msgs chan *cutoverv1.ConnectRequest // what the agent sent, in order; closed when the stream ends
	end  chan struct{}                  // closed by the test to end the stream
}

func (cp *controlPlane) Connect(srv cutoverv1.AgentService_ConnectServer) error {
	s := &stream{srv: srv, msgs: make(chan *cutoverv1.ConnectRequest, 1024), end: make(chan struct{})}
	go func() {
		defer close(s.msgs)
		for {
			m, err := srv.Recv()
			if err != nil {
				return
			}
			s.msgs <- m
		}
	}()
	select {
	case cp.streams <- s:
	case <-srv.Context().Done():
		return srv.Context().Err()
	}
	select {
	case <-s.end:
		return nil
	case <-srv.Context().Done():
		return srv.Context().Err()
	}
}

// startControlPlane serves a controlPlane on a loopback port.
func startControlPlane(t *testing.T) (*controlPlane, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	cp := &controlPlane{streams: make(chan *stream, 8)}
	cutoverv1.RegisterAgentServiceServer(gs, cp)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return cp, ln.Addr().String()
}

// accept waits for the agent's next stream.
func (cp *controlPlane) accept(t *testing.T) *stream {
	t.Helper()
	select {
	case s := <-cp.streams:
		return s
	case <-time.After(wait):
		t.Fatalf("no stream opened within %v", wait)
		return nil
	}
}

// next returns the next message the agent sent.
func (s *stream) next(t *testing.T) *cutoverv1.ConnectRequest {
	t.Helper()
	select {
	case m, ok := <-s.msgs:
		if !ok {
			t.Fatal("stream ended")
		}
		return m
	case <-time.After(wait):
		t.Fatalf("no message within %v", wait)
		return nil
	}
}

func (s *stream) hello(t *testing.T) *cutoverv1.Hello {
	t.Helper()
	m := s.next(t)
	if m.GetHello() == nil {
		t.Fatalf("first message = %v, want a hello", m)
	}
	return m.GetHello()
}

// observed returns the next observed state, skipping heartbeats.
func (s *stream) observed(t *testing.T) *cutoverv1.ObservedApp {
	t.Helper()
	for {
		m := s.next(t)
		if m.GetHeartbeat() != nil {
			continue
		}
		if m.GetObserved() == nil {
			t.Fatalf("message = %v, want an observed state", m)
		}
		return m.GetObserved()
	}
}

func (s *stream) assertObserved(t *testing.T, want ...*cutoverv1.ObservedApp) {
	t.Helper()
	for _, w := range want {
		if got := s.observed(t); !proto.Equal(got, w) {
			t.Errorf("observed = %v, want %v", got, w)
		}
	}
}

// assertEnded checks the agent ends the stream soon.
func (s *stream) assertEnded(t *testing.T) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case _, ok := <-s.msgs:
			if !ok {
				return
			}
		case <-deadline:
			t.Errorf("stream still open %v later", wait)
			return
		}
	}
}

func (s *stream) sendDesired(t *testing.T, d *cutoverv1.DesiredApp) {
	t.Helper()
	if err := s.srv.Send(&cutoverv1.ConnectResponse{Payload: &cutoverv1.ConnectResponse_Desired{Desired: d}}); err != nil {
		t.Fatalf("send desired: %v", err)
	}
}

// applier is a hand-written link.Applier that keeps the newest generation
// per app, as the reconciler does, and hands each desired state on.
type applier struct {
	mu      sync.Mutex
	gens    map[string]int64
	applied chan *cutoverv1.DesiredApp
	ups     []bool // Connected calls, in order
}

func newApplier(gens map[string]int64) *applier {
	if gens == nil {
		gens = map[string]int64{}
	}
	return &applier{gens: gens, applied: make(chan *cutoverv1.DesiredApp, 16)}
}

func (a *applier) Apply(d *cutoverv1.DesiredApp) error {
	a.mu.Lock()
	a.gens[d.GetApp()] = max(a.gens[d.GetApp()], d.GetGeneration())
	a.mu.Unlock()
	a.applied <- d
	return nil
}

// Connected records the link's view of the control plane.
func (a *applier) Connected(up bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ups = append(a.ups, up)
}

func (a *applier) Generations() []*cutoverv1.AppGeneration {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*cutoverv1.AppGeneration
	for app, g := range a.gens {
		out = append(out, &cutoverv1.AppGeneration{App: app, Generation: g})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetApp() < out[j].GetApp() })
	return out
}

func (a *applier) next(t *testing.T) *cutoverv1.DesiredApp {
	t.Helper()
	select {
	case d := <-a.applied:
		return d
	case <-time.After(wait):
		t.Fatalf("nothing applied within %v", wait)
		return nil
	}
}

// logWatch is a slog handler that passes on each message logged.
type logWatch chan string

func (w logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w logWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w logWatch) WithGroup(string) slog.Handler            { return w }
func (w logWatch) Handle(_ context.Context, r slog.Record) error {
	select {
	case w <- r.Message:
	default:
	}
	return nil
}

// running is a link's Run in progress.
type running struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
	err    error         // what Run returned
}

// startLink runs a link until the test ends, then checks Run returned nil.
func startLink(t *testing.T, cfg link.Config, a link.Applier, out *reconcile.Outbox, log *slog.Logger) *running {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := link.New(cfg, a, out, log)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = l.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(wait):
			t.Errorf("Run did not return within %v of cancel", wait)
		}
	})
	return r
}

// stop cancels Run and checks it returns nil within a second.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run = %v, want nil", r.err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return within 1s of cancel")
	}
}

func hello() *cutoverv1.Hello {
	return &cutoverv1.Hello{
		Cluster:      "eu-1",
		Region:       "eu-west",
		Labels:       map[string]string{"tier": "gold", "rack": "r7"},
		Runtime:      "local",
		AgentVersion: "v0.0.0-test",
		Capabilities: []string{"canary"},
	}
}

func observed(app string, gen int64) *cutoverv1.ObservedApp {
	return &cutoverv1.ObservedApp{App: app, ObservedGeneration: gen, Converged: gen%2 == 0, Listen: "127.0.0.1:8080"}
}

func gens(kv ...any) []*cutoverv1.AppGeneration {
	var out []*cutoverv1.AppGeneration
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &cutoverv1.AppGeneration{App: kv[i].(string), Generation: kv[i+1].(int64)})
	}
	return out
}

func TestHelloObservedAndDesired(t *testing.T) {
	t.Parallel()
	cp, addr := startControlPlane(t)
	out := reconcile.NewOutbox()
	// Published before the link is up: only the latest per app is sent.
	out.Publish(observed("web", 1))
	out.Publish(observed("web", 2))
	out.Publish(observed("api", 1))
	a := newApplier(map[string]int64{"web": 4, "api": 9})
	cfg := link.Config{Server: addr, Hello: hello(), Heartbeat: time.Hour}
	r := startLink(t, cfg, a, out, nil)

	s := cp.accept(t)
	want := hello()
	want.Apps = gens("api", int64(9), "web", int64(4))
	want.Running = []*cutoverv1.ObservedApp{observed("api", 1), observed("web", 2)} // what it runs, latest per app
	if got := s.hello(t); !proto.Equal(got, want) {
		t.Errorf("hello =\n%v\nwant\n%v", got, want)
	}
	if cfg.Hello.GetApps() != nil {
		t.Errorf("the configured hello was changed: %v", cfg.Hello)
	}
	s.assertObserved(t, observed("api", 1), observed("web", 2))

	// A publication while connected is sent at once; web's generation 1
	// was never queued behind it.
	out.Publish(observed("web", 3))
	s.assertObserved(t, observed("web", 3))

	d := &cutoverv1.DesiredApp{App: "web", Generation: 5, Listen: "127.0.0.1:8080", Revisions: []*cutoverv1.DesiredRevision{{
		Track:    cutoverv1.Track_TRACK_STABLE,
		Revision: &cutoverv1.Revision{Name: "v2", Command: "demo", Args: []string{"--version", "v2"}, Instances: 2},
		Weight:   100,
	}}}
	s.sendDesired(t, d)
	if got := a.next(t); !proto.Equal(got, d) {
		t.Errorf("applied %v, want %v", got, d)
	}
	r.stop(t)
	s.assertEnded(t)
}

func TestHeartbeats(t *testing.T) {
	t.Parallel()
	cp, addr := startControlPlane(t)
	const every = 100 * time.Millisecond
	before := time.Now()
	startLink(t, link.Config{Server: addr, Hello: hello(), Heartbeat: every}, newApplier(nil), reconcile.NewOutbox(), nil)

	s := cp.accept(t)
	s.hello(t)
	var sent []time.Time
	for range 5 {
		m := s.next(t)
		if m.GetHeartbeat() == nil {
			t.Fatalf("message = %v, want a heartbeat", m)
		}
		sent = append(sent, m.GetHeartbeat().GetTime().AsTime())
	}
	if first := sent[0].Sub(before); first < every {
		t.Errorf("first heartbeat %v after the link started, want at least %v", first, every)
	}
	if !slices.IsSortedFunc(sent, func(a, b time.Time) int { return a.Compare(b) }) || sent[4].After(time.Now()) {
		t.Errorf("heartbeat times out of order or in the future: %v", sent)
	}
	if mean := sent[4].Sub(sent[0]) / 4; mean < every*9/10 || mean > 3*every {
		t.Errorf("heartbeats every %v on average, want about %v", mean, every)
	}
}

func TestReconnect(t *testing.T) {
	t.Parallel()
	cp, addr := startControlPlane(t)
	out := reconcile.NewOutbox()
	out.Publish(observed("web", 1))
	out.Publish(observed("api", 1))
	a := newApplier(nil)
	startLink(t, link.Config{Server: addr, Hello: hello(), Heartbeat: time.Hour}, a, out, nil)

	s := cp.accept(t)
	if got := s.hello(t).GetApps(); len(got) != 0 {
		t.Errorf("first hello carries generations %v, want none", got)
	}
	s.assertObserved(t, observed("api", 1), observed("web", 1))
	s.sendDesired(t, &cutoverv1.DesiredApp{App: "web", Generation: 7})
	a.next(t)
	out.Publish(observed("web", 2))
	s.assertObserved(t, observed("web", 2))

	// Each time the control plane ends the stream the link comes back after
	// its backoff (at most 100ms, then 200ms, so far), says hello with what
	// it applied, and resends the latest observed state of every app.
	for i, ceiling := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
		ended := time.Now()
		close(s.end)
		s = cp.accept(t)
		h := s.hello(t)
		if elapsed := time.Since(ended); elapsed < 100*time.Millisecond || elapsed > ceiling+2*time.Second {
			t.Errorf("reconnect %d after %v, want between 100ms and about %v", i+1, elapsed, ceiling)
		}
		if want := gens("web", int64(7)); !slices.EqualFunc(h.GetApps(), want, func(a, b *cutoverv1.AppGeneration) bool { return proto.Equal(a, b) }) {
			t.Errorf("hello after reconnect carries %v, want %v", h.GetApps(), want)
		}
		s.assertObserved(t, observed("api", 1), observed("web", 2))
	}
}

func TestRunReturnsWhenCancelled(t *testing.T) {
	t.Parallel()
	t.Run("connected", func(t *testing.T) {
		t.Parallel()
		cp, addr := startControlPlane(t)
		r := startLink(t, link.Config{Server: addr, Hello: hello()}, newApplier(nil), reconcile.NewOutbox(), nil)
		s := cp.accept(t)
		s.hello(t)
		r.stop(t)
		s.assertEnded(t)
	})
	t.Run("control plane unreachable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		logs := make(logWatch, 64)
		r := startLink(t, link.Config{Server: addr, Hello: hello()}, newApplier(nil), reconcile.NewOutbox(), slog.New(logs))
		// Wait until it is backing off between failed attempts.
		deadline := time.After(wait)
		for down := 0; down < 2; {
			select {
			case msg := <-logs:
				if msg == "control plane link down" {
					down++
				}
			case <-deadline:
				t.Fatalf("no failed attempt logged within %v", wait)
			}
		}
		r.stop(t)
	})
}
