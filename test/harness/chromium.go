package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ChromiumBinary finds a Chromium: $CUTOVER_CHROMIUM, else chromium on
// $PATH (Debian's package, which `make test` installs).
func ChromiumBinary() (string, error) {
	if p := os.Getenv("CUTOVER_CHROMIUM"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		return "", errors.New("no chromium on $PATH: `make test` installs Debian's chromium package (or set CUTOVER_CHROMIUM)")
	}
	return p, nil
}

// Chromium runs headless Chromium on local files. Every run gets a fresh
// profile and the flags that keep it off the network (no sync, component
// updates, background requests or QUIC): the machines that run the tests
// have none.
type Chromium struct{ Bin string }

// DumpDOM loads a local file and returns its DOM as serialised after its
// scripts ran.
func (c Chromium) DumpDOM(ctx context.Context, file string) (string, error) {
	out, err := c.run(ctx, "--dump-dom", fileURL(file))
	if err != nil {
		return "", err
	}
	if !strings.Contains(out, "<html") {
		return "", fmt.Errorf("chromium --dump-dom %s printed no document: %.200q", file, out)
	}
	return out, nil
}

// Screenshot renders a local file into a PNG of width by height pixels.
func (c Chromium) Screenshot(ctx context.Context, file, png string, width, height int) error {
	if _, err := c.run(ctx, "--screenshot="+png, fmt.Sprintf("--window-size=%d,%d", width, height), "--hide-scrollbars", fileURL(file)); err != nil {
		return err
	}
	if _, err := os.Stat(png); err != nil {
		return fmt.Errorf("chromium wrote no screenshot: %w", err)
	}
	return nil
}

func (c Chromium) run(ctx context.Context, args ...string) (string, error) {
	profile, err := os.MkdirTemp("", "cutover-chromium-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(profile)
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile}
	cmd := exec.CommandContext(ctx, c.Bin, append(flags, args...)...)
	// Chromium forks helpers that hold the output pipes: kill the whole
	// process group on timeout, and stop waiting for the pipes soon after.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tail := stderr.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return "", fmt.Errorf("%s %s: %w\n%s", c.Bin, strings.Join(args, " "), err, tail)
	}
	return stdout.String(), nil
}

func fileURL(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return "file://" + filepath.ToSlash(abs)
}
