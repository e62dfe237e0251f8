package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cutover-dev/cutover/agent/link"
	"github.com/cutover-dev/cutover/agent/reconcile"
	"github.com/cutover-dev/cutover/agent/runtime"
	"github.com/cutover-dev/cutover/agent/runtime/kubernetes"
	"github.com/cutover-dev/cutover/agent/runtime/local"
	"github.com/cutover-dev/cutover/agent/state"
	"github.com/cutover-dev/cutover/agent/task"
	"github.com/cutover-dev/cutover/internal/capability"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/pki"
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
	// TLSCA verifies the control plane's certificate; TLSCert and TLSKey
	// are this agent's client certificate, which names its cluster
	// (cutover certs issue-agent). All three or none; the files are
	// re-read when they change.
	TLSCA, TLSCert, TLSKey string
	// AllowInsecureRemote dials a non-loopback control plane without TLS.
	AllowInsecureRemote bool
	// KubeQPS and KubeBurst bound the kubernetes runtime's request rate.
	KubeQPS   float32
	KubeBurst int
	// MaxInstances bounds the app instances the local runtime's dry runs
	// let this agent plan for, across all apps (0: no bound).
	MaxInstances int
	// AllowCommandHooks lets rollouts' command hooks run on this agent.
	AllowCommandHooks bool
	Logger            *slog.Logger
}

// Capabilities the agent announces, per runtime.
var capabilities = map[string][]string{
	"local":      {"canary", "blueGreen", "rolling", "shadow", "headerRouting", "mirroring", "smokeChecks"},
	"kubernetes": {"canary", "blueGreen", "rolling", "smokeChecks", "httpRoute"},
}

// capabilitiesOf is what the agent's hello announces: its runtime's
// features, dry runs, and command hooks when allowed.
func capabilitiesOf(cfg Config) []string {
	out := append(slices.Clone(capabilities[cfg.Runtime]), capability.DryRun)
	if cfg.AllowCommandHooks {
		out = append(out, capability.CommandHooks)
	}
	return out
}

// Run runs the agent until ctx ends, then stops its apps gracefully.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Cluster == "" {
		return fmt.Errorf("--cluster: is required")
	}
	creds, err := transport(cfg)
	if err != nil {
		return err
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
		dry    runtime.DryRunner
	)
	switch cfg.Runtime {
	case "local":
		lrt := local.New(db, filepath.Join(cfg.DataDir, "logs"), cfg.Logger.With("component", "runtime")).WithMaxInstances(cfg.MaxInstances)
		rt, dry = lrt, lrt
	case "kubernetes":
		kcfg, err := kubernetes.Config(cfg.Kubeconfig, cfg.KubeQPS, cfg.KubeBurst)
		if err != nil {
			return err
		}
		kp, err := kubernetes.New(ctx, kcfg, cfg.Logger.With("component", "kubernetes"))
		if err != nil {
			return err
		}
		placer, dry = kp, kp
	default:
		return fmt.Errorf("--runtime: unknown runtime %q (supported: local, kubernetes)", cfg.Runtime)
	}
	out := reconcile.NewOutbox()
	rec := reconcile.New(rt, db, out, cfg.Logger.With("component", "reconciler")).
		WithSampleInterval(cfg.SampleInterval).WithPrometheus(cfg.PrometheusURL).WithPlacer(placer)
	tasks := task.New(ctx, task.Config{Cluster: cfg.Cluster, DryRunner: dry, Apps: rec,
		AllowCommands: cfg.AllowCommandHooks, Log: cfg.Logger.With("component", "task")})
	defer func() {
		cancel() // kills running commands
		tasks.Wait()
	}()
	lk := link.New(link.Config{
		Server:    cfg.Server,
		Creds:     creds,
		Heartbeat: cfg.Heartbeat,
		Tasks:     tasks,
		Hello: &cutoverv1.Hello{
			Cluster:      cfg.Cluster,
			Region:       cfg.Region,
			Labels:       cfg.Labels,
			Runtime:      cfg.Runtime,
			AgentVersion: version.String(),
			Capabilities: capabilitiesOf(cfg),
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

// transport is how the agent reaches the control plane: mutual TLS with
// its certificate, or plaintext, which is refused for a non-loopback
// address unless forced.
func transport(cfg Config) (credentials.TransportCredentials, error) {
	set := 0
	for _, f := range []string{cfg.TLSCA, cfg.TLSCert, cfg.TLSKey} {
		if f != "" {
			set++
		}
	}
	host, _, err := net.SplitHostPort(cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", cfg.Server, err)
	}
	switch set {
	case 3:
		kp, err := pki.NewKeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tc, err := pki.ClientTLS(cfg.TLSCA, kp, host)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		return credentials.NewTLS(tc), nil
	case 0:
	default:
		return nil, errors.New("--tls-ca, --tls-cert and --tls-key: give all three (mutual TLS) or none (loopback only)")
	}
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		return insecure.NewCredentials(), nil
	}
	if !cfg.AllowInsecureRemote {
		return nil, fmt.Errorf("--server %s is not a loopback address: the agent talks to a remote control plane only over mutual TLS; set --tls-ca, --tls-cert and --tls-key (see the README), or --insecure-allow-remote to send its traffic in the clear", cfg.Server)
	}
	cfg.Logger.Warn("INSECURE: talking to a non-loopback control plane without TLS; anyone on the path can read and forge desired states", "server", cfg.Server)
	return insecure.NewCredentials(), nil
}
