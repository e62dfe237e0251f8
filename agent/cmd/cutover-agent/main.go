// Command cutover-agent runs the Cutover agent for one cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cutover-dev/cutover/agent"
	"github.com/cutover-dev/cutover/internal/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cutover-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("cutover-agent", flag.ContinueOnError)
	server := fs.String("server", "127.0.0.1:7070", "control plane gRPC address")
	cluster := fs.String("cluster", "", "name of the cluster this agent serves (required)")
	region := fs.String("region", "", "region of the cluster")
	labels := fs.String("labels", "", "labels as k=v,k=v")
	rt := fs.String("runtime", "local", "where apps run: local (processes behind the agent's proxy) or kubernetes")
	kubeconfig := fs.String("kubeconfig", "", "kubernetes runtime: kubeconfig file (default: the in-cluster configuration)")
	kubeQPS := fs.Float64("kube-qps", 20, "kubernetes runtime: sustained requests per second to the API server")
	kubeBurst := fs.Int("kube-burst", 40, "kubernetes runtime: request burst to the API server")
	tlsCA := fs.String("tls-ca", "", "CA certificate that signed the control plane's certificate")
	tlsCert := fs.String("tls-cert", "", "this agent's client certificate, naming its cluster (cutover certs issue-agent); re-read when it changes")
	tlsKey := fs.String("tls-key", "", "the key of --tls-cert")
	insecureRemote := fs.Bool("insecure-allow-remote", false, "talk to a non-loopback control plane without TLS (dangerous)")
	dataDir := fs.String("data-dir", "./agent-data", "directory for the agent's state file and app logs")
	heartbeat := fs.Duration("heartbeat", time.Second, "interval between heartbeats")
	sampleEvery := fs.Duration("sample-interval", 100*time.Millisecond, "how often traffic is sampled for the gates (at least 10ms)")
	maxInstances := fs.Int("max-instances", 0, "local runtime: app instances this agent may run across all apps, as pre-flight dry runs check (0: unlimited)")
	allowCommands := fs.Bool("allow-command-hooks", false, "run the command hooks of rollouts (spec.hooks ... command) on this host; off, they fail the rollout")
	promURL := fs.String("prometheus-url", "", "Prometheus server for apps whose spec.metrics.prometheus names no address, e.g. http://127.0.0.1:9090")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.String())
		return nil
	}
	if *sampleEvery < 10*time.Millisecond {
		return fmt.Errorf("--sample-interval: must be at least 10ms, got %s", *sampleEvery)
	}
	if *promURL != "" {
		if u, err := url.Parse(*promURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--prometheus-url: want an http or https URL, got %q", *promURL)
		}
	}
	if *maxInstances < 0 {
		return fmt.Errorf("--max-instances: must be 0 (unlimited) or more, got %d", *maxInstances)
	}
	if *kubeQPS <= 0 || *kubeBurst <= 0 {
		return fmt.Errorf("--kube-qps and --kube-burst: must be positive, got %g and %d", *kubeQPS, *kubeBurst)
	}
	lbls, err := parseLabels(*labels)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("cluster", *cluster)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return agent.Run(ctx, agent.Config{
		Server:              *server,
		Cluster:             *cluster,
		Region:              *region,
		Labels:              lbls,
		Runtime:             *rt,
		DataDir:             *dataDir,
		Heartbeat:           *heartbeat,
		SampleInterval:      *sampleEvery,
		PrometheusURL:       *promURL,
		Kubeconfig:          *kubeconfig,
		TLSCA:               *tlsCA,
		TLSCert:             *tlsCert,
		TLSKey:              *tlsKey,
		AllowInsecureRemote: *insecureRemote,
		KubeQPS:             float32(*kubeQPS),
		KubeBurst:           *kubeBurst,
		MaxInstances:        *maxInstances,
		AllowCommandHooks:   *allowCommands,
		Logger:              log,
	})
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--labels: %q is not key=value", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}
