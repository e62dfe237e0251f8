package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/controlplane/server"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// batchSize is how many samples one simulated agent sends per message: 50
// series (apps' stable and canary revisions) of a 100 ms interval.
const batchSize = 100

// sampleIngest runs a real control plane in-process, connects n simulated
// agents over gRPC, puts one rollout with a gate into a canary step on all
// of them (so every batch is evaluated), has them stream samples for d, and
// returns the samples per second the control plane took in.
func sampleIngest(ctx context.Context, n int, d time.Duration) (float64, error) {
	dir, err := os.MkdirTemp("", "cutover-bench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	sctx, stop := context.WithCancel(ctx)
	serverDone := make(chan error, 1)
	go func() {
		serverDone <- server.Run(sctx, server.Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)}, grpcLn, httpLn)
	}()
	defer func() { stop(); <-serverDone }()

	conn, err := grpc.NewClient(grpcLn.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	actx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()
	agents := make([]*agent, n)
	for i := range agents {
		if agents[i], err = connect(actx, conn, fmt.Sprintf("c-%d", i)); err != nil {
			return 0, err
		}
	}
	if err := waitConnected(ctx, cutoverv1.NewClusterServiceClient(conn), n); err != nil {
		return 0, err
	}
	rollouts := cutoverv1.NewRolloutServiceClient(conn)
	clusters := ""
	for i := range n {
		clusters += fmt.Sprintf("c-%d, ", i)
	}
	if err := applyAndWait(ctx, rollouts, manifest("v1", clusters, ""), cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY); err != nil {
		return 0, err
	}
	gate := "  gates:\n    - {metric: errorRate, condition: '<= 0.5', window: 1s, minSamples: 1}\n"
	if err := applyAndWait(ctx, rollouts, manifest("v2", clusters, gate), cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED); err != nil {
		return 0, err
	}

	var sent atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.stream(deadline, &sent)
		}()
	}
	start := time.Now()
	wg.Wait()
	elapsed := time.Since(start)
	// A batch the control plane has not taken in blocks its sender (the
	// stream is flow-controlled), so what was sent was ingested.
	r, err := rollouts.GetRollout(ctx, &cutoverv1.GetRolloutRequest{Name: "bench"})
	if err != nil {
		return 0, err
	}
	if p := r.GetRollout().GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED {
		return 0, fmt.Errorf("the rollout left its canary step during the run: %s", p)
	}
	return float64(sent.Load()) / elapsed.Seconds(), nil
}

func waitConnected(ctx context.Context, c cutoverv1.ClusterServiceClient, n int) error {
	for ctx.Err() == nil {
		resp, err := c.ListClusters(ctx, &cutoverv1.ListClustersRequest{})
		if err != nil {
			return err
		}
		up := 0
		for _, cl := range resp.GetClusters() {
			if cl.GetStatus() == cutoverv1.ClusterStatus_CLUSTER_STATUS_CONNECTED {
				up++
			}
		}
		if up == n {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ctx.Err()
}

func manifest(rev, clusters, gates string) string {
	return fmt.Sprintf(`apiVersion: cutover.dev/v1
kind: Rollout
metadata: {name: bench}
spec:
  revision: {name: %s, command: /bin/true}
  endpoint: {listen: "127.0.0.1:9"}
  targets:
    waves: [{clusters: [%s]}]
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {}}]
%s`, rev, clusters, gates)
}

func applyAndWait(ctx context.Context, c cutoverv1.RolloutServiceClient, m string, phase cutoverv1.RolloutPhase) error {
	if _, err := c.ApplyRollout(ctx, &cutoverv1.ApplyRolloutRequest{Manifest: m}); err != nil {
		return err
	}
	for ctx.Err() == nil {
		r, err := c.GetRollout(ctx, &cutoverv1.GetRolloutRequest{Name: "bench"})
		if err != nil {
			return err
		}
		switch p := r.GetRollout().GetStatus().GetPhase(); p {
		case phase:
			return nil
		case cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED:
			return fmt.Errorf("rollout aborted: %s", r.GetRollout().GetStatus().GetMessage())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ctx.Err()
}

// agent is a simulated agent: it reports every desired state as converged
// and, when asked to, streams samples.
type agent struct {
	s       cutoverv1.AgentService_ConnectClient
	mu      sync.Mutex // one sender at a time
	cluster string
}

func connect(ctx context.Context, conn *grpc.ClientConn, cluster string) (*agent, error) {
	s, err := cutoverv1.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		return nil, err
	}
	a := &agent{s: s, cluster: cluster}
	if err := a.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Hello{Hello: &cutoverv1.Hello{Cluster: cluster}}}); err != nil {
		return nil, err
	}
	go func() {
		for {
			msg, err := s.Recv()
			if err != nil {
				return
			}
			if d := msg.GetDesired(); d != nil {
				_ = a.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Observed{Observed: &cutoverv1.ObservedApp{
					App: d.GetApp(), ObservedGeneration: d.GetGeneration(), Converged: true}}})
			}
			if t := msg.GetTask(); t != nil { // the pre-flight's dry run: nothing to check here
				_ = a.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_TaskResult{TaskResult: &cutoverv1.TaskResult{
					Id: t.GetId(), Results: []*cutoverv1.CheckResult{{Name: "simulated", Passed: true, Message: "a simulated agent runs nothing"}}}}})
			}
		}
	}()
	return a, nil
}

func (a *agent) send(m *cutoverv1.ConnectRequest) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.s.Send(m)
}

// stream sends batches until deadline, counting the samples sent.
func (a *agent) stream(deadline time.Time, sent *atomic.Int64) {
	var seq uint64
	for time.Now().Before(deadline) {
		batch := &cutoverv1.SampleBatch{Samples: make([]*cutoverv1.Sample, batchSize)}
		now := timestamppb.Now()
		for i := range batch.Samples {
			rev := "v1"
			if i%2 == 1 {
				rev = "v2"
			}
			seq++
			batch.Samples[i] = &cutoverv1.Sample{App: "bench", Revision: rev, Seq: seq, EndTime: now, IntervalMicros: 100000,
				Requests: 100, Errors: 0, LatencyBuckets: []uint32{100, 101, 102, 103, 104, 105, 106, 107},
				LatencyCounts: []uint64{10, 20, 30, 20, 10, 5, 3, 2}}
		}
		if err := a.send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Samples{Samples: batch}}); err != nil {
			return
		}
		sent.Add(batchSize)
	}
}
