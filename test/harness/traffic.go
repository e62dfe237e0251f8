package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Sample sends n sequential GET requests to url and counts the answers by
// the X-Version header; failed requests count under "error".
func Sample(ctx context.Context, client *http.Client, url string, n int) map[string]int {
	counts := map[string]int{}
	for range n {
		counts[Hit(ctx, client, url)]++
	}
	return counts
}

// Hit sends one request and returns the version that answered, or "error".
func Hit(ctx context.Context, client *http.Client, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "error"
	}
	resp, err := client.Do(req)
	if err != nil {
		return "error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "error"
	}
	return resp.Header.Get("X-Version")
}

// Share returns the fraction of counts that are version.
func Share(counts map[string]int, version string) float64 {
	total := 0
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return 0
	}
	return float64(counts[version]) / float64(total)
}

// NewClient returns an HTTP client for traffic through the proxies.
func NewClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
}

// URL is the address of an app's proxy as a URL.
func URL(listen string) string { return fmt.Sprintf("http://%s/", listen) }
