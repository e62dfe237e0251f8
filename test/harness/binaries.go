package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries locates the Cutover binaries.
type Binaries struct{ Dir string }

// Names of the binaries the harness runs.
const (
	CLI     = "cutover"
	Server  = "cutover-server"
	Agent   = "cutover-agent"
	DemoApp = "cutover-demoapp"
)

// Path returns the path of one binary.
func (b Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

// FindBinaries uses $CUTOVER_BIN when set, else builds the binaries into dir
// from the module that contains the working directory.
func FindBinaries(ctx context.Context, dir string) (Binaries, error) {
	if d := os.Getenv("CUTOVER_BIN"); d != "" {
		b := Binaries{Dir: d}
		for _, n := range []string{CLI, Server, Agent, DemoApp} {
			if _, err := os.Stat(b.Path(n)); err != nil {
				return Binaries{}, fmt.Errorf("CUTOVER_BIN=%s: %w", d, err)
			}
		}
		return b, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return Binaries{}, err
	}
	build := func(out string, pkgs ...string) error {
		args := append([]string{"build", "-o", out}, pkgs...)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, b)
		}
		return nil
	}
	if err := build(dir+"/", "./cli/cmd/cutover", "./controlplane/cmd/cutover-server", "./agent/cmd/cutover-agent"); err != nil {
		return Binaries{}, err
	}
	if err := build(filepath.Join(dir, DemoApp), "./test/demoapp"); err != nil {
		return Binaries{}, err
	}
	return Binaries{Dir: dir}, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the cutover module; set CUTOVER_BIN")
	}
	return filepath.Dir(mod), nil
}
