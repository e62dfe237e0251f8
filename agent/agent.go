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
	Logger        *slog.Logger
}

// Capabilities the agent announces.
var capabilities = []string{"canary", "blueGreen", "rolling", "shadow", "headerRouting", "mirroring"}

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
	rt, err := newRuntime(cfg, db)
	if err != nil {
		return err
	}
	out := reconcile.NewOutbox()
	rec := reconcile.New(rt, db, out, cfg.Logger.With("component", "reconciler")).WithSampleInterval(cfg.SampleInterval).WithPrometheus(cfg.PrometheusURL)
	lk := link.New(link.Config{
		Server:    cfg.Server,
		Heartbeat: cfg.Heartbeat,
		Hello: &cutoverv1.Hello{
			Cluster:      cfg.Cluster,
			Region:       cfg.Region,
			Labels:       cfg.Labels,
			Runtime:      cfg.Runtime,
			AgentVersion: version.String(),
			Capabilities: capabilities,
		},
	}, rec, out, cfg.Logger.With("component", "link"))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	linkErr := make(chan error, 1)
	go func() { linkErr <- lk.Run(ctx) }()
	recErr := rec.Run(ctx) // returns once ctx ends and every app stopped
	cancel()
	if err := <-linkErr; err != nil {
		return err
	}
	return recErr
}

// newRuntime is the runtime factory; an unknown kind is an error, never a
// silent fallback.
func newRuntime(cfg Config, db *state.DB) (runtime.Runtime, error) {
	switch cfg.Runtime {
	case "local":
		return local.New(db, filepath.Join(cfg.DataDir, "logs"), cfg.Logger.With("component", "runtime")), nil
	default:
		return nil, fmt.Errorf("--runtime: unknown runtime %q (supported: local)", cfg.Runtime)
	}
}
