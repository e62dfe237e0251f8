package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cutover-dev/cutover/agent/link"
	"github.com/cutover-dev/cutover/agent/reconcile"
	"github.com/cutover-dev/cutover/agent/runtime"
	"github.com/cutover-dev/cutover/agent/runtime/kubernetes"
	"github.com/cutover-dev/cutover/agent/runtime/local"
	"github.com/cutover-dev/cutover/agent/state"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/version"
)

// StateFile is the name of the bbolt file inside the data directory.
const StateFile = "agent.db"

// Config configures an agent.
type Config struct {
	Server    string
	Cluster   string
	Region    string
	Labels    map[string]string
	Runtime   string
	DataDir   string
	Heartbeat time.Duration
	// SampleInterval is how often traffic is sampled for the gates.
	SampleInterval time.Duration
	// PrometheusURL is the Prometheus server of apps whose spec.metrics
	// names none.
	PrometheusURL string
	// Kubeconfig is the kubernetes runtime's kubeconfig file; empty for the
	// in-cluster configuration.
	Kubeconfig string
	// KubeQPS and KubeBurst bound the kubernetes runtime's request rate.
	KubeQPS   float32
	KubeBurst int
	Logger    *slog.Logger
}

// Capabilities the agent announces, per runtime.
var capabilities = map[string][]string{
	"local":      {"canary", "blueGreen", "rolling", "shadow", "headerRouting", "mirroring", "smokeChecks"},
	"kubernetes": {"canary", "blueGreen", "rolling", "smokeChecks", "httpRoute"},
}

// Run runs the agent until ctx ends, then stops its apps gracefully.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Cluster == "" {
		return fmt.Errorf("--cluster: is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	db, err := state.Open(filepath.Join(cfg.DataDir, StateFile))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		rt     runtime.Runtime
		placer runtime.Placer
	)
	switch cfg.Runtime {
	case "local":
		rt = local.New(db, filepath.Join(cfg.DataDir, "logs"), cfg.Logger.With("component", "runtime"))
	case "kubernetes":
		kcfg, err := kubernetes.Config(cfg.Kubeconfig, cfg.KubeQPS, cfg.KubeBurst)
		if err != nil {
			return err
		}
		if placer, err = kubernetes.New(ctx, kcfg, cfg.Logger.With("component", "kubernetes")); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--runtime: unknown runtime %q (supported: local, kubernetes)", cfg.Runtime)
	}
	out := reconcile.NewOutbox()
	rec := reconcile.New(rt, db, out, cfg.Logger.With("component", "reconciler")).
		WithSampleInterval(cfg.SampleInterval).WithPrometheus(cfg.PrometheusURL).WithPlacer(placer)
	lk := link.New(link.Config{
		Server:    cfg.Server,
		Heartbeat: cfg.Heartbeat,
		Hello: &cutoverv1.Hello{
			Cluster:      cfg.Cluster,
			Region:       cfg.Region,
			Labels:       cfg.Labels,
			Runtime:      cfg.Runtime,
			AgentVersion: version.String(),
			Capabilities: capabilities[cfg.Runtime],
		},
	}, rec, out, cfg.Logger.With("component", "link"))

	linkErr := make(chan error, 1)
	go func() { linkErr <- lk.Run(ctx) }()
	recErr := rec.Run(ctx) // returns once ctx ends and every app stopped
	cancel()
	if err := <-linkErr; err != nil {
		return err
	}
	return recErr
}
