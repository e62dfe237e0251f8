package pki

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

// identityHealth is a health service that records who called: the cluster
// of an agent, or "person" for a caller without a client certificate.
type identityHealth struct {
	healthpb.UnimplementedHealthServer
	mu      sync.Mutex
	callers []string
}

func (h *identityHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	p, _ := peer.FromContext(ctx)
	info, _ := p.AuthInfo.(credentials.TLSInfo)
	name, err := PeerCluster(info.State)
	if err != nil {
		name = "person"
	}
	h.mu.Lock()
	h.callers = append(h.callers, name)
	h.mu.Unlock()
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// TestGRPCOverMutualTLS checks the configurations with gRPC itself, which
// adds its own ALPN requirements: an agent and a person share one port and
// the service tells them apart.
func TestGRPCOverMutualTLS(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	srvKP := keyPair(t, serverIn(t, ca, year, time.Now, "localhost"), ServerCertFile, ServerKeyFile)
	agentKP := keyPair(t, agentIn(t, ca, year, time.Now), AgentCertFile, AgentKeyFile)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(ServerTLS(srvKP, caPool(t, filepath.Join(ca, CACertFile))))))
	svc := &identityHealth{}
	healthpb.RegisterHealthServer(s, svc)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Serve(lis) })
	t.Cleanup(func() {
		s.Stop()
		wg.Wait()
	})

	for _, kp := range []*KeyPair{agentKP, nil} {
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(t, ca, kp, "localhost"))))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		cc.Close()
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if len(svc.callers) != 2 || svc.callers[0] != cluster || svc.callers[1] != "person" {
		t.Errorf("the server saw callers %q, want [%s person]", svc.callers, cluster)
	}
}
