package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cutover-dev/cutover/controlplane/server"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/policy"
)

// startServer runs a real control plane with the given policies on loopback
// listeners and returns a client connection to its gRPC port.
func startServer(t *testing.T, policies *policy.Set) *grpc.ClientConn {
	t.Helper()
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), Policies: policies}, grpcLn, httpLn)
	}()
	conn, err := grpc.NewClient(grpcLn.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		stop()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return conn
}

// connectAgent says hello as cluster over the agent stream, so the cluster
// is known, and reports every desired state as in force.
func connectAgent(ctx context.Context, t *testing.T, conn *grpc.ClientConn, cluster string) {
	t.Helper()
	s, err := cutoverv1.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Hello{Hello: &cutoverv1.Hello{Cluster: cluster}}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			msg, err := s.Recv()
			if err != nil {
				return
			}
			if d := msg.GetDesired(); d != nil {
				_ = s.Send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Observed{Observed: &cutoverv1.ObservedApp{
					App: d.GetApp(), ObservedGeneration: d.GetGeneration(), Converged: true}}})
			}
		}
	}()
	clusters := cutoverv1.NewClusterServiceClient(conn)
	for {
		resp, err := clusters.ListClusters(ctx, &cutoverv1.ListClustersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.GetClusters() {
			if c.GetName() == cluster && c.GetStatus() == cutoverv1.ClusterStatus_CLUSTER_STATUS_CONNECTED {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster %s never connected: %v", cluster, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func manifest(name, strategy string) string {
	return fmt.Sprintf(`apiVersion: cutover.dev/v1
kind: Rollout
metadata: {name: %s}
spec:
  revision: {name: v2, command: /bin/true}
  endpoint: {listen: "127.0.0.1:9"}
  targets: {waves: [{clusters: [us-east]}]}
  strategy: %s
  approval: {required: 1}
`, name, strategy)
}

// Given a control plane started with release policies,
// when an app a policy matches is applied, the stored spec is the
// effective one: the policy named, its window and its approval floor; a
// retry reuses it. When no window of its policy admits a spec, the apply
// is refused with InvalidArgument naming the window and the field.
func TestApplyResolvesPolicies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	policies, err := policy.Load(filepath.Join("testdata", "policies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	conn := startServer(t, policies)
	connectAgent(ctx, t, conn, "us-east")
	rollouts := cutoverv1.NewRolloutServiceClient(conn)

	// A dry run shows what the policy makes of the spec and stores nothing.
	dry, err := rollouts.ApplyRollout(ctx, &cutoverv1.ApplyRolloutRequest{DryRun: true,
		Manifest: manifest("hft-pricer", "{canary: {steps: [{setWeight: 10}, {setWeight: 100}]}}")})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	checkEffective(t, "dry run", dry.GetRollout().GetSpec())
	if !dry.GetChanged() || dry.GetRollout().GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_CHECKING {
		t.Errorf("dry run: changed %t phase %s, want a new rollout about to run its pre-flight", dry.GetChanged(), dry.GetRollout().GetStatus().GetPhase())
	}
	if _, err := rollouts.GetRollout(ctx, &cutoverv1.GetRolloutRequest{Name: "hft-pricer"}); status.Code(err) != codes.NotFound {
		t.Fatalf("after a dry run: %v, want NotFound", err)
	}

	resp, err := rollouts.ApplyRollout(ctx, &cutoverv1.ApplyRolloutRequest{
		Manifest: manifest("hft-pricer", "{canary: {steps: [{setWeight: 10}, {setWeight: 100}]}}")})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	got, err := rollouts.GetRollout(ctx, &cutoverv1.GetRolloutRequest{Name: "hft-pricer"})
	if err != nil {
		t.Fatal(err)
	}
	for what, r := range map[string]*cutoverv1.Rollout{"apply response": resp.GetRollout(), "stored": got.GetRollout()} {
		checkEffective(t, what, r.GetSpec())
	}

	// After an abort, a retry starts again from the stored, effective spec.
	if _, err := rollouts.AbortRollout(ctx, &cutoverv1.AbortRolloutRequest{Name: "hft-pricer", Reason: "not today"}); err != nil {
		t.Fatalf("abort: %v", err)
	}
	retried, err := rollouts.RetryRollout(ctx, &cutoverv1.RetryRolloutRequest{Name: "hft-pricer"})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	checkEffective(t, "retried", retried.GetRollout().GetSpec())

	// Applying the same manifest again resolves to the same spec.
	again, err := rollouts.ApplyRollout(ctx, &cutoverv1.ApplyRolloutRequest{
		Manifest: manifest("hft-pricer", "{canary: {steps: [{setWeight: 10}, {setWeight: 100}]}}")})
	if err != nil || again.GetChanged() {
		t.Errorf("re-apply: changed %v, %v; want unchanged", again.GetChanged(), err)
	}

	for _, tc := range []struct{ app, strategy, want string }{
		{"strict-ledger", "{blueGreen: {previewListen: \"127.0.0.1:19\"}}",
			"policy strict: no window admits this rollout: window canaries-only: strategy blueGreen not allowed (spec.strategy; allowed: canary)"},
		{"web", "{canary: {steps: [{setWeight: 100}]}}\n  policy: trading",
			`policy trading: spec.policy: does not apply to app "web"`},
	} {
		_, err := rollouts.ApplyRollout(ctx, &cutoverv1.ApplyRolloutRequest{Manifest: manifest(tc.app, tc.strategy)})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
			t.Errorf("apply %s: %v; want InvalidArgument %q", tc.app, err, tc.want)
		}
		if _, err := rollouts.GetRollout(ctx, &cutoverv1.GetRolloutRequest{Name: tc.app}); status.Code(err) != codes.NotFound {
			t.Errorf("a refused %s was stored: %v", tc.app, err)
		}
	}
}

func checkEffective(t *testing.T, what string, s *cutoverv1.RolloutSpec) {
	t.Helper()
	if s.GetPolicy() != "trading" {
		t.Errorf("%s: spec.policy = %q, want trading", what, s.GetPolicy())
	}
	w := s.GetWindow()
	if w.GetTimeZone() != "America/New_York" || len(w.GetAllow()) != 3 || w.GetAllow()[0].GetStart() != "16:00" ||
		len(w.GetHolidays()) != 1 {
		t.Errorf("%s: window = %v, want the after-hours spans (market hours need shadow first) and the holiday", what, w)
	}
	if a := s.GetApproval(); a.GetRequired() != 2 || len(a.GetRoles()) != 1 || a.GetRoles()[0] != "approver" {
		t.Errorf("%s: approval = %v, want the policy's 2 approvers", what, a)
	}
}
