package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// errUsage marks command-line errors the flag package has already printed.
var errUsage = errors.New("usage")

// shutdownTimeout bounds how long in-flight requests may delay exit after
// SIGTERM; supervisors escalate to SIGKILL not long after.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// Once shutdown has begun, a second signal gets the default behaviour
	// and kills the process at once.
	context.AfterFunc(ctx, stop)

	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "cutover-demoapp: %v\n", err)
		os.Exit(1)
	}
}

// run is main without the process globals. It returns nil once ctx has ended
// and the server has shut down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, listen, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	app, err := New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	logger.Info("listening", "version", cfg.Version, "addr", ln.Addr().String())
	if cfg.MetricsListen == "" {
		return serve(ctx, ln, app.Handler(), logger)
	}
	mln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	metricsDone := make(chan error, 1)
	go func() { metricsDone <- serve(ctx, mln, app.MetricsHandler(), logger) }()
	err = serve(ctx, ln, app.Handler(), logger)
	return errors.Join(err, <-metricsDone)
}

// parseFlags reads the command line; New validates the values. The default listen address follows
// $PORT, the convention of the platforms the demo imitates.
func parseFlags(args []string, getenv func(string) string, output io.Writer) (Config, string, error) {
	defaultListen := "127.0.0.1:8080"
	if port := getenv("PORT"); port != "" {
		defaultListen = net.JoinHostPort("127.0.0.1", port)
	}

	var cfg Config
	var listen string
	fs := flag.NewFlagSet("cutover-demoapp", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.Version, "version", "", "version to serve, e.g. v2 (required)")
	fs.StringVar(&listen, "listen", defaultListen, "address to listen on (default follows $PORT)")
	fs.Float64Var(&cfg.ErrorRate, "error-rate", 0, "fraction `0..1` of application requests answered 500")
	fs.DurationVar(&cfg.Latency, "latency", 0, "delay added to every application request")
	fs.DurationVar(&cfg.Jitter, "jitter", 0, "mean of a random, exponentially distributed delay added to every application request")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", "", "also serve /metrics on this address, e.g. 127.0.0.1:9100")
	fs.DurationVar(&cfg.ReadyDelay, "ready-delay", 0, "time during which /healthz answers 503")
	fs.StringVar(&cfg.ReadyFile, "ready-file", "", "answer 503 on /healthz while no file exists at this path")
	fs.StringVar(&cfg.ErrorFile, "error-file", "", "answer 500 to every request while a file exists at this path")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, "", err
		}
		// The flag package has already reported err, with the usage.
		return Config{}, "", fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return Config{}, "", fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return cfg, listen, nil
}

// serve answers requests on ln until ctx ends, then shuts down gracefully,
// giving in-flight requests up to shutdownTimeout. It returns nil after a
// clean shutdown.
func serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		// Serve only returns early on a listener failure.
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
