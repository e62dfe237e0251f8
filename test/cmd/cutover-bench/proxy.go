package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/cutover-dev/cutover/agent/proxy"
)

// proxyOverhead times requests to a loopback backend directly and through
// the proxy, interleaved, and returns how much the proxy adds at the median
// and the 99th percentile, in microseconds.
func proxyOverhead(ctx context.Context, n int) (p50, p99 float64, err error) {
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = backend.Serve(backendLn) }()
	defer backend.Close()

	px := proxy.New(slog.New(slog.DiscardHandler))
	px.SetTable([]proxy.Route{{Revision: "v1", Weight: 100, Backends: []string{backendLn.Addr().String()}}})
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = px.Serve(pctx, proxyLn, time.Second) }()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 5 * time.Second}
	direct, proxied := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	hit := func(url string) (time.Duration, error) {
		start := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%s: status %d", url, resp.StatusCode)
		}
		return time.Since(start), nil
	}
	for i := range n + 100 { // the first 100 of each warm up connections
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		d, err := hit("http://" + backendLn.Addr().String() + "/")
		if err != nil {
			return 0, 0, err
		}
		p, err := hit("http://" + proxyLn.Addr().String() + "/")
		if err != nil {
			return 0, 0, err
		}
		if i >= 100 {
			direct, proxied = append(direct, d), append(proxied, p)
		}
	}
	q := func(ds []time.Duration, f float64) float64 {
		slices.Sort(ds)
		return float64(ds[int(f*float64(len(ds)-1))]) / float64(time.Microsecond)
	}
	return q(proxied, 0.5) - q(direct, 0.5), q(proxied, 0.99) - q(direct, 0.99), nil
}
