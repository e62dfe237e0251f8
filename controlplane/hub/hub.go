package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/internal/audit"
	"github.com/cutover-dev/cutover/internal/auth"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// ClusterStore keeps the cluster registry durable.
type ClusterStore interface {
	// PutCluster stores a cluster and appends audit records in one
	// transaction. Idempotent without records; safe for concurrent use.
	PutCluster(ctx context.Context, c *cutoverv1.Cluster, records ...*cutoverv1.AuditRecord) error
	// ListClusters returns every stored cluster. Safe for concurrent use.
	ListClusters(ctx context.Context) ([]*cutoverv1.Cluster, error)
}

// Observer receives what agents report.
type Observer interface {
	// Observe takes an agent's observed state of one app. It may block
	// briefly; it must return when ctx ends. Safe for concurrent use.
	Observe(ctx context.Context, cluster string, app *cutoverv1.ObservedApp)
	// Samples takes a batch of an agent's metric samples. It must not
	// block on anything but memory. Safe for concurrent use.
	Samples(ctx context.Context, cluster string, batch *cutoverv1.SampleBatch)
}

// Options tune the hub.
type Options struct {
	// HelloTimeout bounds the wait for the first message (default 10s).
	HelloTimeout time.Duration
	// SilenceTimeout closes a stream that sent nothing for this long
	// (default 15s); agents heartbeat well within it.
	SilenceTimeout time.Duration
}

// Hub is the AgentService implementation and the registry of clusters.
type Hub struct {
	cutoverv1.UnimplementedAgentServiceServer

	store    ClusterStore
	observer Observer
	opts     Options
	log      *slog.Logger
	metrics  *metrics

	life    context.Context // ends every stream when the control plane stops
	streams sync.WaitGroup

	mu       sync.Mutex
	clusters map[string]*cutoverv1.Cluster
	desired  map[string]map[string]*cutoverv1.DesiredApp // cluster -> app -> latest
	sessions map[string]*session
	tasks    map[string]map[string]*task // cluster -> task id -> waiting for its result
}

// New loads the cluster registry and returns a hub. Every stored cluster
// starts disconnected: no stream survives a restart. When ctx ends every
// stream is closed; Wait then returns once their handlers are done.
func New(ctx context.Context, store ClusterStore, observer Observer, opts Options, reg prometheus.Registerer, log *slog.Logger) (*Hub, error) {
	if opts.HelloTimeout <= 0 {
		opts.HelloTimeout = 10 * time.Second
	}
	if opts.SilenceTimeout <= 0 {
		opts.SilenceTimeout = 15 * time.Second
	}
	stored, err := store.ListClusters(ctx)
	if err != nil {
		return nil, fmt.Errorf("load clusters: %w", err)
	}
	h := &Hub{
		life:     ctx,
		store:    store,
		observer: observer,
		opts:     opts,
		log:      log,
		metrics:  newMetrics(reg),
		clusters: map[string]*cutoverv1.Cluster{},
		desired:  map[string]map[string]*cutoverv1.DesiredApp{},
		sessions: map[string]*session{},
		tasks:    map[string]map[string]*task{},
	}
	for _, c := range stored {
		c.Status = cutoverv1.ClusterStatus_CLUSTER_STATUS_DISCONNECTED
		h.clusters[c.GetName()] = c
	}
	return h, nil
}

// SetDesired records the latest desired state of an app in a cluster and
// wakes the cluster's sender, if connected. It never blocks on an agent.
func (h *Hub) SetDesired(cluster string, d *cutoverv1.DesiredApp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	apps := h.desired[cluster]
	if apps == nil {
		apps = map[string]*cutoverv1.DesiredApp{}
		h.desired[cluster] = apps
	}
	if cur := apps[d.GetApp()]; cur != nil && cur.GetGeneration() > d.GetGeneration() {
		return // an older generation never replaces a newer one
	}
	apps[d.GetApp()] = d
	if s := h.sessions[cluster]; s != nil {
		s.wake()
	}
}

// Wait returns once every stream handler has finished, so the store can be
// closed after the last disconnect is recorded.
func (h *Hub) Wait() { h.streams.Wait() }

// Known reports whether an agent has ever connected as cluster.
func (h *Hub) Known(cluster string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.clusters[cluster]
	return ok
}

// Clusters returns every known cluster, ordered by name.
func (h *Hub) Clusters() []*cutoverv1.Cluster {
	h.mu.Lock()
	out := make([]*cutoverv1.Cluster, 0, len(h.clusters))
	for _, c := range h.clusters {
		out = append(out, proto.Clone(c).(*cutoverv1.Cluster))
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// Connect serves one agent stream until it ends.
func (h *Hub) Connect(stream cutoverv1.AgentService_ConnectServer) error {
	h.streams.Add(1)
	defer h.streams.Done()
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(h.life, cancel)()

	hello, err := h.awaitHello(ctx, stream)
	if err != nil {
		return err
	}
	s := h.open(ctx, cancel, hello)
	defer h.close(s)
	for _, app := range hello.GetRunning() {
		h.observer.Observe(ctx, s.cluster, app)
	}

	// Neither goroutine is waited for. The receiver may be blocked in Recv
	// and the sender in Send (an agent that does not read fills its
	// flow-control window); neither call watches ctx, and both return only
	// once this handler has returned and gRPC has torn the stream down.
	// Waiting would let a silent, replaced or slow agent hold its handler,
	// and Wait, forever. No other goroutine sends on the stream.
	sendErr := make(chan error, 1)
	recvErr := make(chan error, 1)
	go func() { sendErr <- h.send(ctx, s, stream) }()
	go func() { recvErr <- h.receive(ctx, s, stream) }()
	select {
	case err = <-sendErr:
	case err = <-recvErr:
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel()
	if errors.Is(err, context.Canceled) && s.replaced.Load() {
		return status.Error(codes.Aborted, "another agent connected as the same cluster")
	}
	return err
}

func (h *Hub) awaitHello(ctx context.Context, stream cutoverv1.AgentService_ConnectServer) (*cutoverv1.Hello, error) {
	type result struct {
		msg *cutoverv1.ConnectRequest
		err error
	}
	got := make(chan result, 1)
	go func() {
		msg, err := stream.Recv()
		got <- result{msg, err}
	}()
	timer := time.NewTimer(h.opts.HelloTimeout)
	defer timer.Stop()
	select {
	case r := <-got:
		if r.err != nil {
			return nil, r.err
		}
		hello := r.msg.GetHello()
		if hello == nil {
			return nil, status.Error(codes.InvalidArgument, "first message must be hello")
		}
		if hello.GetCluster() == "" {
			return nil, status.Error(codes.InvalidArgument, "hello.cluster: is required")
		}
		// With agent certificates, the cluster is the certificate's: an
		// agent cannot speak for another cluster.
		if cert, ok := auth.AgentFrom(ctx); ok && cert != hello.GetCluster() {
			h.log.Warn("agent refused: hello names another cluster than its certificate", "certificate", cert, "hello", hello.GetCluster())
			return nil, status.Errorf(codes.PermissionDenied, "hello.cluster %q: this agent's certificate is for cluster %q", hello.GetCluster(), cert)
		}
		return hello, nil
	case <-timer.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "no hello within %s", h.opts.HelloTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// open registers a session, replacing any older one for the same cluster.
func (h *Hub) open(ctx context.Context, cancel context.CancelFunc, hello *cutoverv1.Hello) *session {
	now := time.Now()
	s := newSession(hello.GetCluster(), cancel)
	for _, a := range hello.GetApps() {
		s.sent[a.GetApp()] = a.GetGeneration()
	}
	c := &cutoverv1.Cluster{
		Name:              hello.GetCluster(),
		Region:            hello.GetRegion(),
		Labels:            hello.GetLabels(),
		Runtime:           hello.GetRuntime(),
		AgentVersion:      hello.GetAgentVersion(),
		Capabilities:      hello.GetCapabilities(),
		Status:            cutoverv1.ClusterStatus_CLUSTER_STATUS_CONNECTED,
		LastHeartbeatTime: timestamppb.New(now),
		ConnectTime:       timestamppb.New(now),
	}
	h.mu.Lock()
	if old := h.sessions[c.GetName()]; old != nil {
		old.replaced.Store(true)
		old.cancel()
	}
	// Counted before anyone can see the cluster connected.
	h.metrics.connected.Inc()
	h.sessions[c.GetName()] = s
	h.clusters[c.GetName()] = c
	// The registry's copy is touched under h.mu by receivers, including a
	// replaced session's that is still draining; store a private one.
	stored := proto.Clone(c).(*cutoverv1.Cluster)
	s.wake()
	h.mu.Unlock()
	h.persist(ctx, stored, audit.Agent(c.GetName(), true,
		fmt.Sprintf("region %s, runtime %s, agent %s", c.GetRegion(), c.GetRuntime(), c.GetAgentVersion())))
	h.log.Info("agent connected", "cluster", c.GetName(), "region", c.GetRegion(), "version", c.GetAgentVersion())
	return s
}

func (h *Hub) close(s *session) {
	h.metrics.connected.Dec()
	h.mu.Lock()
	current := h.sessions[s.cluster] == s
	var c *cutoverv1.Cluster
	if current {
		delete(h.sessions, s.cluster)
		c = h.clusters[s.cluster]
		c.Status = cutoverv1.ClusterStatus_CLUSTER_STATUS_DISCONNECTED
		c = proto.Clone(c).(*cutoverv1.Cluster)
	}
	h.mu.Unlock()
	if c != nil {
		// The stream's context is gone; the registry write gets its own.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.persist(ctx, c, audit.Agent(s.cluster, false, ""))
		h.log.Info("agent disconnected", "cluster", s.cluster)
	}
}

// persist stores the registry's copy of a cluster with the audit record of
// what changed it.
func (h *Hub) persist(ctx context.Context, c *cutoverv1.Cluster, rec *cutoverv1.AuditRecord) {
	if err := h.store.PutCluster(ctx, c, rec); err != nil {
		h.log.Error("store cluster", "cluster", c.GetName(), "err", err)
	}
}

func (h *Hub) receive(ctx context.Context, s *session, stream cutoverv1.AgentService_ConnectServer) error {
	silence := time.AfterFunc(h.opts.SilenceTimeout, s.cancel)
	defer silence.Stop()
	for {
		msg, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		silence.Reset(h.opts.SilenceTimeout)
		h.touch(s.cluster)
		switch p := msg.GetPayload().(type) {
		case *cutoverv1.ConnectRequest_Heartbeat:
			h.metrics.messages.WithLabelValues("heartbeat").Inc()
		case *cutoverv1.ConnectRequest_Observed:
			h.metrics.messages.WithLabelValues("observed").Inc()
			h.observer.Observe(ctx, s.cluster, p.Observed)
		case *cutoverv1.ConnectRequest_Samples:
			h.metrics.messages.WithLabelValues("samples").Inc()
			h.observer.Samples(ctx, s.cluster, p.Samples)
		case *cutoverv1.ConnectRequest_TaskResult:
			h.metrics.messages.WithLabelValues("task_result").Inc()
			h.taskDone(s.cluster, p.TaskResult)
		case *cutoverv1.ConnectRequest_Hello:
			return status.Error(codes.InvalidArgument, "hello may only be sent once per stream")
		default:
			h.metrics.messages.WithLabelValues("unknown").Inc()
		}
	}
}

func (h *Hub) touch(cluster string) {
	h.mu.Lock()
	if c := h.clusters[cluster]; c != nil {
		c.LastHeartbeatTime = timestamppb.Now()
	}
	h.mu.Unlock()
}

// send pushes every desired state newer than what the agent has, each time
// the session is woken.
func (h *Hub) send(ctx context.Context, s *session, stream cutoverv1.AgentService_ConnectServer) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.notify:
		}
		for _, t := range h.pendingTasks(s) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := stream.Send(&cutoverv1.ConnectResponse{Payload: &cutoverv1.ConnectResponse_Task{Task: t}}); err != nil {
				return fmt.Errorf("send task %s to %s: %w", t.GetId(), s.cluster, err)
			}
		}
		for _, d := range h.pending(s) {
			if ctx.Err() != nil {
				return ctx.Err() // the session ended; Connect may have returned
			}
			if err := stream.Send(&cutoverv1.ConnectResponse{Payload: &cutoverv1.ConnectResponse_Desired{Desired: d}}); err != nil {
				return fmt.Errorf("send desired %s to %s: %w", d.GetApp(), s.cluster, err)
			}
			s.sent[d.GetApp()] = d.GetGeneration()
			h.metrics.desiredSent.Inc()
		}
	}
}

func (h *Hub) pending(s *session) []*cutoverv1.DesiredApp {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*cutoverv1.DesiredApp
	for app, d := range h.desired[s.cluster] {
		if d.GetGeneration() > s.sent[app] {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetApp() < out[j].GetApp() })
	return out
}
