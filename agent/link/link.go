package link

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/agent/reconcile"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Backoff bounds between reconnect attempts.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// A session that lasted this long resets the backoff.
	stableSession = time.Second
)

// Applier takes desired states.
type Applier interface {
	// Apply stores and acts on a desired state; older generations are
	// ignored. Idempotent; safe for concurrent use.
	Apply(d *cutoverv1.DesiredApp) error
	// Generations reports the generation applied per app. Safe for
	// concurrent use.
	Generations() []*cutoverv1.AppGeneration
	// Connected says whether the control plane is reachable (the local
	// guard acts only when it is not). Idempotent; safe for concurrent use.
	Connected(up bool)
}

// Tasks runs the control plane's one-off tasks.
type Tasks interface {
	// Submit starts a task, or answers a repeated id, and returns at once.
	// Safe for concurrent use.
	Submit(t *cutoverv1.RunTask)
	// Take returns and forgets the results waiting to be sent. Safe for
	// concurrent use.
	Take() []*cutoverv1.TaskResult
	// Ready is signalled when results wait; signals coalesce.
	Ready() <-chan struct{}
}

// Config configures a link.
type Config struct {
	// Server is the control plane's gRPC address.
	Server string
	// Creds secure the connection (nil: plaintext, for loopback).
	Creds credentials.TransportCredentials
	// Hello describes the agent; its Apps field is filled on each connect.
	Hello *cutoverv1.Hello
	// Heartbeat is the interval between heartbeats (default 1s).
	Heartbeat time.Duration
	// Tasks runs tasks (nil: tasks are ignored, with a warning).
	Tasks Tasks
}

// Link keeps one stream to the control plane open.
type Link struct {
	cfg     Config
	applier Applier
	out     *reconcile.Outbox
	log     *slog.Logger
}

// New returns a link; Run starts it.
func New(cfg Config, applier Applier, out *reconcile.Outbox, log *slog.Logger) *Link {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	return &Link{cfg: cfg, applier: applier, out: out, log: log}
}

// Run connects and reconnects until ctx ends.
func (l *Link) Run(ctx context.Context) error {
	creds := l.cfg.Creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(l.cfg.Server, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("--server %q: %w", l.cfg.Server, err)
	}
	defer conn.Close()
	client := cutoverv1.NewAgentServiceClient(conn)
	attempt := 0
	for {
		start := time.Now()
		err := l.session(ctx, client)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > stableSession {
			attempt = 0
		}
		delay := backoff(attempt)
		attempt++
		l.log.Warn("control plane link down", "server", l.cfg.Server, "err", err, "retry_in", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is full-jitter exponential: uniform in [min, min*2^attempt],
// capped, so many agents losing one control plane do not return in step.
func backoff(attempt int) time.Duration {
	ceiling := minBackoff << min(attempt, 16)
	if ceiling > maxBackoff || ceiling <= 0 {
		ceiling = maxBackoff
	}
	return minBackoff + rand.N(ceiling-minBackoff+1)
}

func (l *Link) session(ctx context.Context, client cutoverv1.AgentServiceClient) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Connect(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	hello := cloneHello(l.cfg.Hello)
	hello.Apps = l.applier.Generations()
	hello.Running = l.out.All()
	if err := stream.Send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Hello{Hello: hello}}); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	l.log.Info("connected to control plane", "server", l.cfg.Server, "cluster", hello.GetCluster())
	l.applier.Connected(true)
	defer l.applier.Connected(false)

	recvErr := make(chan error, 1)
	go func() { recvErr <- l.receive(stream) }()
	return l.send(ctx, stream, recvErr)
}

func (l *Link) receive(stream cutoverv1.AgentService_ConnectClient) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		if d := msg.GetDesired(); d != nil {
			if err := l.applier.Apply(d); err != nil {
				return fmt.Errorf("apply desired %s: %w", d.GetApp(), err)
			}
		}
		if t := msg.GetTask(); t != nil {
			if l.cfg.Tasks == nil {
				l.log.Warn("task ignored: this agent runs no tasks", "task", t.GetId(), "app", t.GetApp())
				continue
			}
			l.cfg.Tasks.Submit(t)
		}
	}
}

// send is the only goroutine that writes to the stream.
func (l *Link) send(ctx context.Context, stream cutoverv1.AgentService_ConnectClient, recvErr <-chan error) error {
	seen := map[string]uint64{}
	beat := time.NewTicker(l.cfg.Heartbeat)
	defer beat.Stop()
	flush := func() error {
		for _, o := range l.out.Since(seen) {
			if err := stream.Send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Observed{Observed: o}}); err != nil {
				return fmt.Errorf("send observed: %w", err)
			}
		}
		if s := l.out.TakeSamples(); len(s) > 0 {
			batch := &cutoverv1.SampleBatch{Samples: s}
			if err := stream.Send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Samples{Samples: batch}}); err != nil {
				return fmt.Errorf("send samples: %w", err)
			}
		}
		return nil
	}
	var taskReady <-chan struct{}
	if l.cfg.Tasks != nil {
		taskReady = l.cfg.Tasks.Ready()
	}
	// A result lost with a broken stream is not kept for the next one: the
	// control plane resends the task, and it is answered again then.
	sendResults := func() error {
		for _, r := range l.cfg.Tasks.Take() {
			if err := stream.Send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_TaskResult{TaskResult: r}}); err != nil {
				return fmt.Errorf("send task result %s: %w", r.GetId(), err)
			}
		}
		return nil
	}
	if err := flush(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			return err
		case <-l.out.Changed():
			if err := flush(); err != nil {
				return err
			}
		case <-taskReady:
			if err := sendResults(); err != nil {
				return err
			}
		case <-beat.C:
			hb := &cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Heartbeat{Heartbeat: &cutoverv1.Heartbeat{Time: timestamppb.Now()}}}
			if err := stream.Send(hb); err != nil {
				return fmt.Errorf("send heartbeat: %w", err)
			}
		}
	}
}

func cloneHello(h *cutoverv1.Hello) *cutoverv1.Hello {
	return &cutoverv1.Hello{
		Cluster:      h.GetCluster(),
		Region:       h.GetRegion(),
		Labels:       h.GetLabels(),
		Runtime:      h.GetRuntime(),
		AgentVersion: h.GetAgentVersion(),
		Capabilities: h.GetCapabilities(),
	}
}
