// Command cutover-bench measures what `make bench` reports beyond Go's
// benchmarks, one "name value unit" line per figure. Everything runs on
// loopback and is bounded in count and time.
//
//	proxy_overhead_p50_us, proxy_overhead_p99_us: latency the local proxy
//	  adds to a request, against calling the backend directly, measured in
//	  one run (sequential requests, interleaved).
//	sample_ingest_per_sec: metric samples per second one control plane
//	  ingests and evaluates against a gate, sent by N agents over real gRPC.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
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
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *requests < 100 || *agents < 1 || *seconds <= 0 {
		return errors.New("--requests must be at least 100, --agents at least 1, --ingest-for positive")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p50, p99, err := proxyOverhead(ctx, *requests)
	if err != nil {
		return fmt.Errorf("proxy overhead: %w", err)
	}
	fmt.Printf("proxy_overhead_p50_us %.1f us\n", p50)
	fmt.Printf("proxy_overhead_p99_us %.1f us\n", p99)
	rate, err := sampleIngest(ctx, *agents, *seconds)
	if err != nil {
		return fmt.Errorf("sample ingest: %w", err)
	}
	fmt.Printf("sample_ingest_per_sec %.0f samples/s (%d agents)\n", rate, *agents)
	return nil
}
