// Command cutover-bench measures what `make bench` reports beyond Go's
// benchmarks, one "name value unit" line per figure. Everything runs on
// loopback and is bounded in count and time.
//
//	proxy_overhead_p50_us, proxy_overhead_p99_us: latency the local proxy
//	  adds to a request, against calling the backend directly, measured in
//	  one run (sequential requests, interleaved).
//	sample_ingest_per_sec: metric samples per second one control plane
//	  ingests and evaluates against a gate, sent by N agents over real gRPC.
//	gate_reaction_p50_ms, gate_reaction_p99_ms: over --trials bad canaries
//	  under --rate requests/s through a real agent's proxy (100 ms
//	  sampling), the time from the first failed request the canary served
//	  to the first moment the proxy sends it nothing.
//	preflight_p50_ms, preflight_p99_ms: over the same rollouts, the
//	  pre-flight (agent connected, the agent's dry run) from the apply to
//	  its results being recorded.
//	false_rollbacks: of --canaries good canaries with the same noise as
//	  stable, how many a gate rolled back (or paused).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cutover-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("cutover-bench", flag.ContinueOnError)
	requests := fs.Int("requests", 4000, "requests per path for the proxy overhead")
	agents := fs.Int("agents", 8, "simulated agents for the sample ingest")
	seconds := fs.Duration("ingest-for", 3*time.Second, "how long the agents send samples")
	trials := fs.Int("trials", 50, "bad canaries for the gate reaction")
	canaries := fs.Int("canaries", 50, "good canaries for the false rollbacks")
	rate := fs.Int("rate", 1000, "requests per second through the proxy during the rollouts")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	switch {
	case *requests < 100:
		return errors.New("--requests must be at least 100")
	case *agents < 1:
		return errors.New("--agents must be at least 1")
	case *seconds <= 0:
		return errors.New("--ingest-for must be positive")
	case *trials < 0 || *canaries < 0:
		return errors.New("--trials and --canaries must not be negative")
	case *rate < 100 || *rate > 5000:
		return errors.New("--rate must be between 100 and 5000")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	p50, p99, err := proxyOverhead(ctx, *requests)
	if err != nil {
		return fmt.Errorf("proxy overhead: %w", err)
	}
	fmt.Printf("proxy_overhead_p50_us %.1f us\n", p50)
	fmt.Printf("proxy_overhead_p99_us %.1f us\n", p99)
	ingest, err := sampleIngest(ctx, *agents, *seconds)
	if err != nil {
		return fmt.Errorf("sample ingest: %w", err)
	}
	fmt.Printf("sample_ingest_per_sec %.0f samples/s (%d agents)\n", ingest, *agents)
	if *trials > 0 {
		ds, pre, err := gateReaction(ctx, *trials, *rate)
		if err != nil {
			return fmt.Errorf("gate reaction: %w", err)
		}
		slices.Sort(ds)
		fmt.Printf("gate_reaction_p50_ms %.1f ms\n", float64(quantile(ds, 0.5))/float64(time.Millisecond))
		fmt.Printf("gate_reaction_p99_ms %.1f ms (%d trials, %d req/s)\n", float64(quantile(ds, 0.99))/float64(time.Millisecond), len(ds), *rate)
		if len(pre) > 0 {
			slices.Sort(pre)
			fmt.Printf("preflight_p50_ms %.1f ms\n", float64(quantile(pre, 0.5))/float64(time.Millisecond))
			fmt.Printf("preflight_p99_ms %.1f ms (%d rollouts)\n", float64(quantile(pre, 0.99))/float64(time.Millisecond), len(pre))
		}
	}
	if *canaries > 0 {
		n, err := falseRollbacks(ctx, *canaries, *rate)
		if err != nil {
			return fmt.Errorf("false rollbacks: %w", err)
		}
		fmt.Printf("false_rollbacks %d canaries (of %d good ones)\n", n, *canaries)
	}
	return nil
}
