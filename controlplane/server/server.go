package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/cutover-dev/cutover/controlplane/api"
	"github.com/cutover-dev/cutover/controlplane/checks"
	"github.com/cutover-dev/cutover/controlplane/controller"
	"github.com/cutover-dev/cutover/controlplane/hub"
	"github.com/cutover-dev/cutover/controlplane/notify"
	"github.com/cutover-dev/cutover/internal/apidoc"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/policy"
	"github.com/cutover-dev/cutover/internal/store"
)

// DBFile is the name of the bbolt file inside the data directory.
const DBFile = "cutover.db"

// maxStreams bounds the concurrent calls of one connection.
const maxStreams = 1000

// Policies are the release policies in force: a policy.Set, or a
// policy.Live that a reload replaces.
type Policies interface {
	api.PolicyResolver
	// Names lists the policies, for the log.
	Names() []string
}

// Config configures a control plane.
type Config struct {
	// DataDir holds the bbolt file; created if missing.
	DataDir string
	// Logger receives structured logs.
	Logger *slog.Logger
	// Hub tunes agent streams.
	Hub hub.Options
	// ShutdownTimeout bounds the graceful stop (default 10s).
	ShutdownTimeout time.Duration
	// HistoryLimit is how many earlier rollouts of each app are kept
	// (default controller.DefaultHistoryLimit).
	HistoryLimit int
	// Security: TLS, agent certificates and tokens (zero: loopback only).
	Security Security
	// Notify lists where rollout events are sent (zero: nowhere).
	Notify notify.Config
	// Policies are the release policies merged into every applied spec
	// (nil: none; a spec naming spec.policy is then refused).
	Policies Policies
}

// Run serves the control plane on the two listeners until ctx ends, then
// stops gracefully. It closes both listeners.
func Run(ctx context.Context, cfg Config, grpcLn, httpLn net.Listener) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	sec, err := setUpSecurity(cfg.Security, log, grpcLn, httpLn)
	if err != nil {
		_ = grpcLn.Close()
		_ = httpLn.Close()
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	db, err := store.Open(filepath.Join(cfg.DataDir, DBFile))
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	stopNotify, err := startNotifier(cfg.Notify, db, reg, log)
	if err != nil {
		return err
	}
	defer stopNotify()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	fwd := &observerRef{}
	agents, err := hub.New(ctx, db, fwd, cfg.Hub, reg, log.With("component", "hub"))
	if err != nil {
		return err
	}
	if cfg.HistoryLimit <= 0 {
		cfg.HistoryLimit = controller.DefaultHistoryLimit
	}
	ctrl := controller.New(db, agents, time.Now, log.With("component", "controller")).WithHistoryLimit(cfg.HistoryLimit).WithEvaluations(db).
		WithChecker(checks.New(agents, nil, time.Now, log.With("component", "checks")))
	fwd.set(ctrl)
	reg.MustRegister(newRolloutCollector(ctrl))

	g := &guard{
		authn:      sec.authenticator(),
		agentCerts: sec.tlsOn(),
		clustersOf: func(app string) []string {
			r, err := ctrl.Get(app)
			if err != nil {
				return nil
			}
			var out []string
			for _, w := range r.GetSpec().GetTargets().GetWaves() {
				out = append(out, w.GetClusters()...)
			}
			return out
		},
		extra:  auditMethods,
		denied: auditDenied(db, log),
	}
	gs := grpc.NewServer(
		grpc.Creds(sec.grpcCreds()),
		grpc.MaxConcurrentStreams(maxStreams),
		grpc.ChainUnaryInterceptor(g.unary),
		grpc.ChainStreamInterceptor(g.stream),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	if cfg.Policies == nil {
		cfg.Policies = policy.NewLive(nil) // none: a spec naming spec.policy is refused
	}
	cutoverv1.RegisterRolloutServiceServer(gs, api.NewRollouts(ctrl, agents).WithPolicies(cfg.Policies))
	cutoverv1.RegisterClusterServiceServer(gs, api.NewClusters(agents))
	cutoverv1.RegisterAgentServiceServer(gs, agents)
	cutoverv1.RegisterAuditServiceServer(gs, api.NewAudit(db))
	cutoverv1.RegisterReportServiceServer(gs, api.NewReports(ctrl, db))

	var ready atomic.Bool
	handler, err := httpHandler(ctx, dialAddr(grpcLn.Addr()), sec.gatewayCreds(), reg, &ready)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 3)
	ctrlDone := make(chan struct{}) // the store stays open until the controller's last write
	go func() { errc <- ctrl.Run(ctx); close(ctrlDone) }()
	go func() { errc <- serveGRPC(gs, grpcLn) }()
	go func() { errc <- serveHTTP(hs, sec.httpListener(httpLn)) }()
	go sec.reloadOnSIGHUP(ctx.Done(), log)
	go func() {
		select {
		case <-ctrl.Loaded():
			ready.Store(true)
		case <-ctx.Done():
		}
	}()
	log.Info("control plane serving", "grpc", grpcLn.Addr().String(), "http", httpLn.Addr().String(), "data_dir", cfg.DataDir,
		"tls", sec.tlsOn(), "tokens", sec.tokens != nil, "policies", cfg.Policies.Names())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	ready.Store(false)
	cancel()
	shutdown(gs, hs, cfg.ShutdownTimeout, log)
	agents.Wait()
	<-ctrlDone
	return runErr
}

func serveGRPC(gs *grpc.Server, ln net.Listener) error {
	if err := gs.Serve(ln); err != nil {
		return fmt.Errorf("grpc server: %w", err)
	}
	return errors.New("grpc server stopped")
}

func serveHTTP(hs *http.Server, ln net.Listener) error {
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return errors.New("http server stopped")
}

// shutdown drains both servers, forcing them after the timeout. Agent
// streams never end on their own, so GracefulStop is bounded.
func shutdown(gs *grpc.Server, hs *http.Server, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		gs.Stop()
	}
	log.Info("control plane stopped")
}

// dialAddr is where this process reaches its own gRPC listener: a
// wildcard address is dialled on loopback.
func dialAddr(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		// A wildcard socket also accepts IPv4 loopback, even "::" (dual
		// stack), and 127.0.0.1 works where IPv6 loopback is off.
		return net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
	}
	return a.String()
}

func httpHandler(ctx context.Context, grpcAddr string, creds credentials.TransportCredentials, reg *prometheus.Registry, ready *atomic.Bool) (http.Handler, error) {
	gw := runtime.NewServeMux()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))} // reports are large
	if err := cutoverv1.RegisterRolloutServiceHandlerFromEndpoint(ctx, gw, grpcAddr, opts); err != nil {
		return nil, fmt.Errorf("rest gateway: %w", err)
	}
	if err := cutoverv1.RegisterClusterServiceHandlerFromEndpoint(ctx, gw, grpcAddr, opts); err != nil {
		return nil, fmt.Errorf("rest gateway: %w", err)
	}
	if err := cutoverv1.RegisterAuditServiceHandlerFromEndpoint(ctx, gw, grpcAddr, opts); err != nil {
		return nil, fmt.Errorf("rest gateway: %w", err)
	}
	if err := cutoverv1.RegisterReportServiceHandlerFromEndpoint(ctx, gw, grpcAddr, opts); err != nil {
		return nil, fmt.Errorf("rest gateway: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gw)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(apidoc.OpenAPI())
	})
	return mux, nil
}
