package hub_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/cutover-dev/cutover/controlplane/hub"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
)

// waitFor bounds every wait; the hub acts within milliseconds.
const waitFor = 5 * time.Second

// observer records every report the hub passes on.
type observer struct {
	mu      sync.Mutex
	seen    []observation
	samples []string // cluster/revision of every sample received
}

type observation struct {
	cluster string
	app     *cutoverv1.ObservedApp
}

func (o *observer) Observe(_ context.Context, cluster string, app *cutoverv1.ObservedApp) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, observation{cluster, proto.Clone(app).(*cutoverv1.ObservedApp)})
}

// Samples records the batch's samples under the sending cluster.
func (o *observer) Samples(_ context.Context, cluster string, batch *cutoverv1.SampleBatch) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range batch.GetSamples() {
		o.samples = append(o.samples, cluster+"/"+s.GetRevision())
	}
}

func (o *observer) all() []observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]observation(nil), o.seen...)
}

// env is a hub served over real gRPC on a loopback port, with a real store.
type env struct {
	t    *testing.T
	db   *store.Bolt
	obs  *observer
	hub  *hub.Hub
	reg  *prometheus.Registry
	conn *grpc.ClientConn
	// stop ends the hub's context, as the control plane does on shutdown.
	stop context.CancelFunc
}

func openStore(t *testing.T) *store.Bolt {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := db.DB().View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				t.Errorf("consistency check: %v", err)
			}
			return nil
		})
		if err != nil {
			t.Errorf("consistency check: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return db
}

func newHub(ctx context.Context, t *testing.T, db *store.Bolt, obs hub.Observer, opts hub.Options, reg prometheus.Registerer) *hub.Hub {
	t.Helper()
	h, err := hub.New(ctx, db, obs, opts, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func start(t *testing.T, opts hub.Options) *env {
	t.Helper()
	db := openStore(t)
	obs := &observer{}
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	h := newHub(ctx, t, db, obs, opts, reg)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	cutoverv1.RegisterAgentServiceServer(gs, h)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cancel()
		gs.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		gs.Stop()
		<-served
		waitHub(t, h)
	})
	return &env{t: t, db: db, obs: obs, hub: h, reg: reg, conn: conn, stop: cancel}
}

// waitHub fails the test unless every stream handler ends in time.
func waitHub(t *testing.T, h *hub.Hub) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		h.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Error("stream handlers did not end")
	}
}

// agent is the agent's end of one Connect stream.
type agent struct {
	t      *testing.T
	stream cutoverv1.AgentService_ConnectClient
	cancel context.CancelFunc
	got    chan *cutoverv1.DesiredApp // nil for an agent that never reads
	end    chan error                 // the stream's final error
}

// dial opens a stream, sends hello first unless it is nil, and keeps reading
// what the hub sends.
func (e *env) dial(hello *cutoverv1.Hello) *agent {
	a := e.dialQuiet(hello)
	a.got = make(chan *cutoverv1.DesiredApp, 1024)
	go func() {
		for {
			msg, err := a.stream.Recv()
			if err != nil {
				a.end <- err
				return
			}
			a.got <- msg.GetDesired()
		}
	}()
	return a
}

// dialQuiet opens a stream and sends hello, but never reads.
func (e *env) dialQuiet(hello *cutoverv1.Hello) *agent {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	stream, err := cutoverv1.NewAgentServiceClient(e.conn).Connect(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	a := &agent{t: e.t, stream: stream, cancel: cancel, end: make(chan error, 1)}
	if hello != nil {
		a.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Hello{Hello: hello}})
	}
	return a
}

func (a *agent) send(m *cutoverv1.ConnectRequest) {
	a.t.Helper()
	if err := a.stream.Send(m); err != nil {
		a.t.Fatalf("send: %v", err)
	}
}

func (a *agent) heartbeat() {
	a.t.Helper()
	a.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Heartbeat{Heartbeat: &cutoverv1.Heartbeat{}}})
}

// next is the next desired state the hub sends.
func (a *agent) next() *cutoverv1.DesiredApp {
	a.t.Helper()
	select {
	case d := <-a.got:
		return d
	case err := <-a.end:
		a.t.Fatalf("stream ended while waiting for a desired state: %v", err)
	case <-time.After(waitFor):
		a.t.Fatal("no desired state arrived")
	}
	return nil
}

// ended waits for the stream to end and returns its status code.
func (a *agent) ended() codes.Code {
	a.t.Helper()
	for {
		select {
		case <-a.got:
		case err := <-a.end:
			return status.Code(err)
		case <-time.After(waitFor):
			a.t.Fatal("the stream did not end")
			return codes.OK
		}
	}
}

func hello(cluster string, apps ...*cutoverv1.AppGeneration) *cutoverv1.Hello {
	return &cutoverv1.Hello{Cluster: cluster, Region: "region-of-" + cluster, Runtime: "local", AgentVersion: "1.2.3", Apps: apps}
}

func applied(app string, gen int64) *cutoverv1.AppGeneration {
	return &cutoverv1.AppGeneration{App: app, Generation: gen}
}

func desired(app string, gen int64) *cutoverv1.DesiredApp {
	return &cutoverv1.DesiredApp{App: app, Generation: gen, Listen: ":8080", Revisions: []*cutoverv1.DesiredRevision{{
		Track:    cutoverv1.Track_TRACK_STABLE,
		Revision: &cutoverv1.Revision{Name: fmt.Sprintf("r%d", gen), Command: "/opt/" + app},
		Weight:   100,
	}}}
}

// expect checks that the next desired state is want.
func (a *agent) expect(want *cutoverv1.DesiredApp) {
	a.t.Helper()
	if got := a.next(); !proto.Equal(got, want) {
		a.t.Fatalf("received %v, want %v", got, want)
	}
}

// storedCluster is the cluster as the store holds it, or nil.
func (e *env) storedCluster(name string) *cutoverv1.Cluster {
	e.t.Helper()
	cs, err := e.db.ListClusters(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range cs {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// liveStatus is the cluster's status in the hub's registry.
func (e *env) liveStatus(name string) cutoverv1.ClusterStatus {
	for _, c := range e.hub.Clusters() {
		if c.GetName() == name {
			return c.GetStatus()
		}
	}
	return cutoverv1.ClusterStatus_CLUSTER_STATUS_UNSPECIFIED
}

// metric is the value of one of the hub's unlabelled metrics.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return 0
}

// blockSender feeds a cluster whose agent never reads newer and newer large
// desired states until one stays unsent: its sender is then blocked in Send
// on a full flow-control window, which only the end of the stream releases.
func (e *env) blockSender(cluster string) {
	e.t.Helper()
	blob := strings.Repeat("x", 1<<20)
	for gen := int64(1); gen <= 64; gen++ {
		sent := e.metric("cutover_desired_states_sent_total")
		d := desired("shop", gen)
		d.Revisions[0].Revision.Env = map[string]string{"BLOB": blob}
		e.hub.SetDesired(cluster, d)
		for stalled := time.Now().Add(300 * time.Millisecond); e.metric("cutover_desired_states_sent_total") == sent; {
			if time.Now().After(stalled) {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	e.t.Fatalf("64 MiB went out to %s, which never reads; flow control should have stopped it", cluster)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const (
	connected    = cutoverv1.ClusterStatus_CLUSTER_STATUS_CONNECTED
	disconnected = cutoverv1.ClusterStatus_CLUSTER_STATUS_DISCONNECTED
)

func TestFirstMessageMustBeAHello(t *testing.T) {
	tests := []struct {
		name  string
		first *cutoverv1.ConnectRequest
	}{
		{"heartbeat", &cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Heartbeat{Heartbeat: &cutoverv1.Heartbeat{}}}},
		{"observed", &cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Observed{Observed: &cutoverv1.ObservedApp{App: "shop"}}}},
		{"empty message", &cutoverv1.ConnectRequest{}},
		{"hello without a cluster", &cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Hello{Hello: &cutoverv1.Hello{Region: "eu"}}}},
	}
	e := start(t, hub.Options{})
	for _, tt := range tests {
		a := e.dial(nil)
		a.send(tt.first)
		if code := a.ended(); code != codes.InvalidArgument {
			t.Errorf("first message %s: stream ended with %v, want InvalidArgument", tt.name, code)
		}
	}
	if cs := e.hub.Clusters(); len(cs) != 0 {
		t.Errorf("clusters registered without a hello: %v", cs)
	}
	if cs, err := e.db.ListClusters(context.Background()); err != nil || len(cs) != 0 {
		t.Errorf("clusters stored without a hello: %v (%v)", cs, err)
	}
	if obs := e.obs.all(); len(obs) != 0 {
		t.Errorf("reports passed on without a hello: %v", obs)
	}
}

func TestASecondHelloIsRejected(t *testing.T) {
	e := start(t, hub.Options{})
	a := e.dial(hello("eu-1"))
	a.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Hello{Hello: hello("us-1")}})
	if code := a.ended(); code != codes.InvalidArgument {
		t.Errorf("stream ended with %v, want InvalidArgument", code)
	}
	if e.hub.Known("us-1") {
		t.Error("the second hello registered its cluster")
	}
}

func TestHelloRegistersTheClusterAndADisconnectIsRecorded(t *testing.T) {
	e := start(t, hub.Options{})
	h := hello("eu-1", applied("shop", 3))
	h.Labels = map[string]string{"tier": "gold"}
	h.Capabilities = []string{"canary", "mirror"}
	before := time.Now()
	a := e.dial(h)

	eventually(t, "eu-1 to be stored as connected", func() bool {
		return e.storedCluster("eu-1").GetStatus() == connected
	})
	want := &cutoverv1.Cluster{
		Name: "eu-1", Region: h.Region, Labels: h.Labels, Runtime: h.Runtime,
		AgentVersion: h.AgentVersion, Capabilities: h.Capabilities, Status: connected,
	}
	for where, c := range map[string]*cutoverv1.Cluster{"store": e.storedCluster("eu-1"), "registry": e.hub.Clusters()[0]} {
		if c.GetConnectTime().AsTime().Before(before.Add(-time.Second)) || c.GetLastHeartbeatTime() == nil {
			t.Errorf("%s: connect time %v, last heartbeat %v", where, c.GetConnectTime(), c.GetLastHeartbeatTime())
		}
		got := proto.Clone(c).(*cutoverv1.Cluster)
		got.ConnectTime, got.LastHeartbeatTime = nil, nil
		if !proto.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", where, got, want)
		}
	}
	if !e.hub.Known("eu-1") || e.hub.Known("us-1") {
		t.Errorf("Known(eu-1) = %t, Known(us-1) = %t", e.hub.Known("eu-1"), e.hub.Known("us-1"))
	}

	// A control plane that restarts treats every stored cluster as
	// disconnected: no stream survives a restart.
	reloaded := newHub(context.Background(), t, e.db, &observer{}, hub.Options{}, prometheus.NewRegistry())
	if cs := reloaded.Clusters(); len(cs) != 1 || cs[0].GetStatus() != disconnected || !reloaded.Known("eu-1") {
		t.Errorf("a new hub over the store has %v, want eu-1 disconnected", cs)
	}

	a.cancel() // the agent goes away
	eventually(t, "eu-1 to be stored as disconnected", func() bool {
		return e.storedCluster("eu-1").GetStatus() == disconnected
	})
	if s := e.liveStatus("eu-1"); s != disconnected {
		t.Errorf("registry status %v, want disconnected", s)
	}
	if !e.hub.Known("eu-1") {
		t.Error("a disconnected cluster is no longer known")
	}
}

func TestDesiredStateSetBeforeConnectIsDeliveredAfterHello(t *testing.T) {
	e := start(t, hub.Options{})
	e.hub.SetDesired("eu-1", desired("shop", 1))
	e.hub.SetDesired("eu-1", desired("api", 2))
	e.hub.SetDesired("us-1", desired("shop", 5))

	a := e.dial(hello("eu-1"))
	a.expect(desired("api", 2)) // every pending app, ordered by name
	a.expect(desired("shop", 1))
	// Nothing of us-1's: the next message is the marker.
	e.hub.SetDesired("eu-1", desired("zz-marker", 1))
	a.expect(desired("zz-marker", 1))

	// While connected, a new generation goes out at once.
	e.hub.SetDesired("eu-1", desired("shop", 2))
	a.expect(desired("shop", 2))
}

func TestHelloGenerationsAreNotSentAgain(t *testing.T) {
	e := start(t, hub.Options{})
	e.hub.SetDesired("eu-1", desired("shop", 3))
	e.hub.SetDesired("eu-1", desired("api", 1))

	a := e.dial(hello("eu-1", applied("shop", 3)))
	a.expect(desired("api", 1))
	e.hub.SetDesired("eu-1", desired("zz-marker", 1))
	a.expect(desired("zz-marker", 1)) // and not shop 3, which the agent has
	e.hub.SetDesired("eu-1", desired("shop", 4))
	a.expect(desired("shop", 4))
	a.cancel()

	// An agent that has already applied a newer generation gets nothing.
	b := e.dial(hello("eu-1", applied("shop", 7), applied("api", 1), applied("zz-marker", 1)))
	e.hub.SetDesired("eu-1", desired("zz-marker", 2))
	b.expect(desired("zz-marker", 2))
}

func TestAnOlderGenerationNeverReplacesANewerOne(t *testing.T) {
	e := start(t, hub.Options{})
	e.hub.SetDesired("eu-1", desired("shop", 3))
	e.hub.SetDesired("eu-1", desired("shop", 2))
	a := e.dial(hello("eu-1"))
	a.expect(desired("shop", 3))

	e.hub.SetDesired("eu-1", desired("shop", 1))
	e.hub.SetDesired("eu-1", desired("zz-marker", 1))
	a.expect(desired("zz-marker", 1))
	a.cancel()

	// An agent that lost its state is sent the newest generation.
	b := e.dial(hello("eu-1"))
	b.expect(desired("shop", 3))
	b.expect(desired("zz-marker", 1))
}

func TestObservedStateReachesTheObserver(t *testing.T) {
	e := start(t, hub.Options{})
	eu := e.dial(hello("eu-1"))
	us := e.dial(hello("us-1"))
	report := func(gen int64) *cutoverv1.ObservedApp {
		return &cutoverv1.ObservedApp{App: "shop", ObservedGeneration: gen, Converged: true, Listen: ":8080",
			Revisions: []*cutoverv1.ObservedRevision{{Revision: "v1", Track: cutoverv1.Track_TRACK_STABLE, InstancesWanted: 2, InstancesReady: 2, Weight: 100}}}
	}
	eu.heartbeat()
	eu.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Observed{Observed: report(4)}})
	us.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Observed{Observed: report(9)}})

	eventually(t, "two reports", func() bool { return len(e.obs.all()) == 2 })
	got := map[string]*cutoverv1.ObservedApp{}
	for _, o := range e.obs.all() {
		got[o.cluster] = o.app
	}
	if !proto.Equal(got["eu-1"], report(4)) || !proto.Equal(got["us-1"], report(9)) {
		t.Errorf("observer got %v, want eu-1 generation 4 and us-1 generation 9", got)
	}
}

func TestASecondAgentForTheSameClusterReplacesTheFirst(t *testing.T) {
	e := start(t, hub.Options{})
	e.hub.SetDesired("eu-1", desired("shop", 1))
	first := e.dial(hello("eu-1"))
	first.expect(desired("shop", 1)) // its session is open

	second := e.dial(hello("eu-1", applied("shop", 1)))
	if code := first.ended(); code != codes.Aborted {
		t.Fatalf("the first stream ended with %v, want Aborted", code)
	}
	// The replaced session's end must not mark the cluster disconnected.
	if s := e.liveStatus("eu-1"); s != connected {
		t.Errorf("after the replacement eu-1 is %v, want connected", s)
	}
	e.hub.SetDesired("eu-1", desired("shop", 2))
	second.expect(desired("shop", 2))
	if s := e.storedCluster("eu-1").GetStatus(); s != connected {
		t.Errorf("after the replacement eu-1 is stored as %v, want connected", s)
	}

	// Reports now come from the second stream.
	second.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Observed{Observed: &cutoverv1.ObservedApp{App: "shop", ObservedGeneration: 2}}})
	eventually(t, "the report", func() bool { return len(e.obs.all()) == 1 })
}

// Agents of one cluster that keep talking while they replace each other
// (a rolling restart of the agent) are each registered and replaced cleanly.
func TestAgentsThatKeepTalkingReplaceEachOther(t *testing.T) {
	e := start(t, hub.Options{})
	var agents []*agent
	var talkers sync.WaitGroup
	defer func() {
		for _, a := range agents {
			a.cancel()
		}
		talkers.Wait()
	}()
	for i := range 10 {
		a := e.dial(hello("eu-1"))
		agents = append(agents, a)
		e.hub.SetDesired("eu-1", desired("shop", int64(i+1)))
		a.expect(desired("shop", int64(i+1))) // its session is open
		talkers.Add(1)
		go func() {
			defer talkers.Done()
			for a.stream.Send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Heartbeat{Heartbeat: &cutoverv1.Heartbeat{}}}) == nil {
			}
		}()
	}
	eventually(t, "the replaced sessions to close", func() bool {
		return e.metric("cutover_agents_connected") == 1
	})
	if s := e.storedCluster("eu-1").GetStatus(); s != connected {
		t.Errorf("eu-1 is stored as %v, want connected", s)
	}
}

func TestASlowAgentIsReplacedToo(t *testing.T) {
	e := start(t, hub.Options{})
	e.dialQuiet(hello("eu-1")) // never reads
	eventually(t, "eu-1 to connect", func() bool { return e.liveStatus("eu-1") == connected })
	e.blockSender("eu-1")

	second := e.dial(hello("eu-1"))
	second.next() // the latest desired state, which the first never took
	eventually(t, "the replaced session to close", func() bool {
		return e.metric("cutover_agents_connected") == 1
	})
	if s := e.liveStatus("eu-1"); s != connected {
		t.Errorf("eu-1 is %v, want connected", s)
	}
}

func TestASlowAgentDoesNotStallTheOthers(t *testing.T) {
	e := start(t, hub.Options{})
	slow := e.dialQuiet(hello("slow-1")) // does not read
	fast := e.dial(hello("fast-1"))
	eventually(t, "both agents to connect", func() bool {
		return e.liveStatus("slow-1") == connected && e.liveStatus("fast-1") == connected
	})
	e.blockSender("slow-1")

	const n = 500
	done := make(chan struct{})
	go func() {
		defer close(done)
		for gen := int64(100); gen < 100+n; gen++ {
			e.hub.SetDesired("slow-1", desired("shop", gen))
			e.hub.SetDesired("fast-1", desired("shop", gen))
		}
	}()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("SetDesired blocked behind an agent that does not read")
	}
	// The fast agent gets newer and newer generations, up to the last.
	for last := int64(0); last < 100+n-1; {
		d := fast.next()
		if d.GetGeneration() <= last {
			t.Fatalf("fast agent got generation %d after %d", d.GetGeneration(), last)
		}
		last = d.GetGeneration()
	}

	// Once the slow agent reads, it catches up with the latest.
	for {
		msg, err := slow.stream.Recv()
		if err != nil {
			t.Fatalf("slow agent: %v", err)
		}
		if msg.GetDesired().GetGeneration() == 100+n-1 {
			if !proto.Equal(msg.GetDesired(), desired("shop", 100+n-1)) {
				t.Fatalf("the slow agent's last desired state is %v", msg.GetDesired())
			}
			break
		}
	}
}

func TestASilentStreamIsClosed(t *testing.T) {
	const silence = 500 * time.Millisecond
	e := start(t, hub.Options{SilenceTimeout: silence})
	talker := e.dial(hello("us-1"))
	before := time.Now()
	quiet := e.dial(hello("eu-1"))

	// The talker heartbeats well within the timeout for longer than it.
	stopTalking := make(chan struct{})
	talked := make(chan struct{})
	go func() {
		defer close(talked)
		tick := time.NewTicker(silence / 10)
		defer tick.Stop()
		for {
			select {
			case <-stopTalking:
				return
			case <-tick.C:
				if err := talker.stream.Send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Heartbeat{Heartbeat: &cutoverv1.Heartbeat{}}}); err != nil {
					return
				}
			}
		}
	}()
	defer func() { close(stopTalking); <-talked }()

	if code := quiet.ended(); code == codes.OK {
		t.Errorf("the silent stream ended with %v, want an error", code)
	}
	if took := time.Since(before); took < silence {
		t.Errorf("the silent stream was closed after %v, before the %v timeout", took, silence)
	}
	eventually(t, "eu-1 to be stored as disconnected", func() bool {
		return e.storedCluster("eu-1").GetStatus() == disconnected
	})
	for time.Since(before) < 3*silence {
		select {
		case err := <-talker.end:
			t.Fatalf("the heartbeating stream was closed: %v", err)
		case <-time.After(silence / 5):
		}
	}
	if s := e.liveStatus("us-1"); s != connected {
		t.Errorf("the heartbeating cluster is %v, want connected", s)
	}
}

// An agent cut off by the network neither reads nor sends: its sender is
// stuck on a full window and its receiver hears nothing. Silence must still
// close its stream.
func TestASilentStreamWithABlockedSenderIsClosed(t *testing.T) {
	const silence = 500 * time.Millisecond
	e := start(t, hub.Options{SilenceTimeout: silence})
	a := e.dialQuiet(hello("eu-1"))
	eventually(t, "eu-1 to connect", func() bool { return e.liveStatus("eu-1") == connected })

	// Heartbeats keep the stream open while its sender fills up.
	stopTalking := make(chan struct{})
	talked := make(chan struct{})
	go func() {
		defer close(talked)
		tick := time.NewTicker(silence / 10)
		defer tick.Stop()
		for {
			select {
			case <-stopTalking:
				return
			case <-tick.C:
				if err := a.stream.Send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Heartbeat{Heartbeat: &cutoverv1.Heartbeat{}}}); err != nil {
					return
				}
			}
		}
	}()
	e.blockSender("eu-1")
	close(stopTalking)
	<-talked

	eventually(t, "eu-1 to be stored as disconnected", func() bool {
		return e.storedCluster("eu-1").GetStatus() == disconnected
	})
	if n := e.metric("cutover_agents_connected"); n != 0 {
		t.Errorf("%v sessions open, want 0", n)
	}
}

func TestStoppingTheHubEndsEveryStream(t *testing.T) {
	e := start(t, hub.Options{})
	a := e.dial(hello("eu-1"))
	b := e.dial(hello("us-1"))
	e.dialQuiet(hello("ap-1")) // never reads
	eventually(t, "three agents to connect", func() bool {
		return e.liveStatus("eu-1") == connected && e.liveStatus("us-1") == connected && e.liveStatus("ap-1") == connected
	})
	e.blockSender("ap-1")

	e.stop() // no grpc.Server.Stop: the hub's context alone must end the streams
	for name, ag := range map[string]*agent{"eu-1": a, "us-1": b} {
		if code := ag.ended(); code == codes.OK {
			t.Errorf("%s stream ended with %v, want an error", name, code)
		}
	}
	waitHub(t, e.hub)
	// Wait returns after every disconnect is recorded.
	for _, name := range []string{"eu-1", "us-1", "ap-1"} {
		if s := e.storedCluster(name).GetStatus(); s != disconnected {
			t.Errorf("%s is stored as %v after Wait, want disconnected", name, s)
		}
	}

	// A stream opened after the stop ends at once; it may end before its
	// hello is even sent, so that send's io.EOF is no failure.
	late := e.dialQuiet(nil)
	_ = late.stream.Send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Hello{Hello: hello("eu-1")}})
	ended := make(chan error, 1)
	go func() {
		_, err := late.stream.Recv()
		ended <- err
	}()
	select {
	case err := <-ended:
		if code := status.Code(err); code == codes.OK {
			t.Errorf("a stream opened after the stop ended with %v, want an error", err)
		}
	case <-time.After(waitFor):
		t.Error("a stream opened after the stop did not end")
	}
}

// What an agent says it runs in its hello reaches the observer like an
// observed message, under the cluster the hello names.
func TestHelloRunningReachesTheObserver(t *testing.T) {
	e := start(t, hub.Options{})
	h := hello("eu-1")
	running := &cutoverv1.ObservedApp{App: "shop", ObservedGeneration: 3, Converged: true}
	h.Running = []*cutoverv1.ObservedApp{running}
	e.dial(h)
	eventually(t, "the hello's report", func() bool { return len(e.obs.all()) == 1 })
	if o := e.obs.all()[0]; o.cluster != "eu-1" || !proto.Equal(o.app, running) {
		t.Errorf("observer got %s %v, want eu-1 %v", o.cluster, o.app, running)
	}
}

// Samples from an agent reach the observer under the hello's cluster.
func TestSamplesReachTheObserver(t *testing.T) {
	e := start(t, hub.Options{})
	eu := e.dial(hello("eu-1"))
	eu.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Samples{Samples: &cutoverv1.SampleBatch{
		Samples: []*cutoverv1.Sample{{App: "shop", Revision: "v2", Requests: 10}, {App: "shop", Revision: "v1", Requests: 90}}}}})
	eventually(t, "two samples", func() bool {
		e.obs.mu.Lock()
		defer e.obs.mu.Unlock()
		return len(e.obs.samples) == 2
	})
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	if e.obs.samples[0] != "eu-1/v2" || e.obs.samples[1] != "eu-1/v1" {
		t.Errorf("samples %v", e.obs.samples)
	}
}
