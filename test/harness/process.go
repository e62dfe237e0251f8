package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a started child process whose output goes to a log file.
type Process struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProcess starts bin with args, writing stdout and stderr to logPath.
func StartProcess(name, bin, logPath string, args ...string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group, so ^C in the demo reaches only the demo driver,
	// which then stops everything in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to timeout, then kills. It returns the
// process's exit error when it did not exit cleanly.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s after SIGTERM", p.Name, timeout)
	}
}

// Kill sends SIGKILL, as a crash would, and waits for the process to end.
// Its children are left running.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Ports handed out by FreeAddr and FreeAddrs come from below the kernel's
// ephemeral range, so no port-0 listener (an app instance the agent starts,
// a client's source port) can take one between the moment it is chosen and
// the moment the process under test binds it.
const (
	portFloor   = 20000
	portCeiling = 32000 // below the usual ephemeral range (32768-60999)
)

// FreeAddr returns a loopback address with a port that was free a moment
// ago, outside the ephemeral range.
func FreeAddr() (string, error) {
	addrs, err := FreeAddrs(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// FreeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago, outside the ephemeral range; all are held open until every
// one is chosen.
func FreeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	out := make([]string, 0, n)
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			return nil, fmt.Errorf("free port: none free between %d and %d", portFloor, portCeiling)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", portFloor+rand.IntN(portCeiling-portFloor))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken
		}
		lns = append(lns, ln)
		out = append(out, addr)
	}
	return out, nil
}

// Poll calls cond every interval until it returns true, an error, or ctx
// ends; on timeout the last error or state is reported.
func Poll(ctx context.Context, interval time.Duration, what string, cond func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("waiting for %s: %w (last: %w)", what, ctx.Err(), last)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// errNotYet is a poll state, not a failure.
var errNotYet = errors.New("not yet")
