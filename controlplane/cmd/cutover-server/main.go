// Command cutover-server runs the Cutover control plane.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/cutover-dev/cutover/controlplane/notify"
	"github.com/cutover-dev/cutover/controlplane/server"
	"github.com/cutover-dev/cutover/internal/policy"
	"github.com/cutover-dev/cutover/internal/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cutover-server:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("cutover-server", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./data", "directory holding the bbolt state file")
	grpcAddr := fs.String("grpc-listen", "127.0.0.1:7070", "gRPC listen address (API and agent streams)")
	httpAddr := fs.String("http-listen", "127.0.0.1:7080", "HTTP listen address (REST, /metrics, /healthz, /readyz, /openapi.json)")
	historyLimit := fs.Int("history-limit", 10, "earlier rollouts kept per app")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	var sec server.Security
	fs.StringVar(&sec.TLSCert, "tls-cert", "", "serve both ports over TLS with this certificate (cutover certs issue-server); reloaded on change and SIGHUP")
	fs.StringVar(&sec.TLSKey, "tls-key", "", "the key of --tls-cert")
	fs.StringVar(&sec.AgentCA, "agent-ca", "", "CA certificate that issued the agents' client certificates (cutover certs init)")
	fs.StringVar(&sec.TokensFile, "tokens-file", "", "bearer tokens of people and automation, with their roles (cutover tokens create); reloaded on SIGHUP")
	fs.BoolVar(&sec.AllowInsecureRemote, "insecure-allow-remote", false, "serve without TLS and tokens on a non-loopback address (dangerous: anyone who reaches it can deploy)")
	notifyFile := fs.String("notify-config", "", "send rollout events to Slack-compatible and JSON webhooks as this YAML file says (docs/notifications.md)")
	var policyFiles []string
	fs.Func("policy", "load release policies from this YAML file (repeatable; docs/policies.md)", func(f string) error {
		policyFiles = append(policyFiles, f)
		return nil
	})
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.String())
		return nil
	}
	if *historyLimit < 1 {
		return fmt.Errorf("--history-limit: must be at least 1, got %d", *historyLimit)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	var notifications notify.Config
	if *notifyFile != "" {
		var err error
		if notifications, err = notify.Load(*notifyFile); err != nil {
			return fmt.Errorf("--notify-config: %w", err)
		}
	}
	policies, err := policy.Load(policyFiles...)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// Caught from now on: a reload right after start must not end the
	// process (SIGHUP's default).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	grpcLn, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		return fmt.Errorf("--grpc-listen: %w", err)
	}
	httpLn, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		_ = grpcLn.Close()
		return fmt.Errorf("--http-listen: %w", err)
	}
	live := policy.NewLive(policies)
	go reloadPolicies(ctx, hup, live, policyFiles, log)
	return server.Run(ctx, server.Config{DataDir: *dataDir, Logger: log, HistoryLimit: *historyLimit, Security: sec,
		Notify: notifications, Policies: live}, grpcLn, httpLn)
}

// reloadPolicies loads the policy files again on every SIGHUP and puts
// them in force; files that do not load leave the policies in force as
// they are, and say why.
func reloadPolicies(ctx context.Context, hup <-chan os.Signal, live *policy.Live, files []string, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		set, err := policy.Load(files...)
		if err != nil {
			log.Error("reload policies: keeping the policies in force", "err", err, "policies", live.Names())
			continue
		}
		live.Store(set)
		log.Info("policies reloaded", "policies", set.Names())
	}
}
