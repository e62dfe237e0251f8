package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// PrometheusBinary finds a Prometheus server: $CUTOVER_PROMETHEUS, else
// prometheus on $PATH (Debian's package, which `make test` installs).
func PrometheusBinary() (string, error) {
	if p := os.Getenv("CUTOVER_PROMETHEUS"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("prometheus")
	if err != nil {
		return "", errors.New("no prometheus on $PATH: `make test` installs Debian's prometheus package (or set CUTOVER_PROMETHEUS)")
	}
	return p, nil
}

// StartPrometheus runs a real Prometheus server on loopback for a test,
// scraping targets (address -> revision label) every 100 ms, and returns
// its base URL once it is ready. It is stopped when the test ends.
func StartPrometheus(t testing.TB, targets map[string]string) string {
	t.Helper()
	bin, err := PrometheusBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\nscrape_configs:\n  - job_name: demo\n    static_configs:\n")
	addrs := make([]string, 0, len(targets))
	for a := range targets {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		fmt.Fprintf(&cfg, "      - targets: [%q]\n        labels: {revision: %q}\n", a, targets[a])
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	listen, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartProcess("prometheus", bin, filepath.Join(dir, "prometheus.log"),
		"--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(10 * time.Second); err != nil {
			t.Logf("stop prometheus: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(p.Log); err == nil {
				t.Logf("prometheus log:\n%s", b)
			}
		}
	})
	url := "http://" + listen
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Poll(ctx, 50*time.Millisecond, "prometheus ready", func() (bool, error) {
		if p.Exited() {
			return false, errors.New("prometheus exited; see its log")
		}
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return url
}
