package kubecluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// stopTimeout bounds the graceful stop of one process; after it the process
// is killed.
const stopTimeout = 10 * time.Second

// spawner starts every child process of a cluster from one OS thread that
// stays locked until the cluster stops. Pdeathsig fires when the *thread*
// that forked a child ends, not the process; forking from an ordinary
// goroutine would tie the children's lives to whichever thread the scheduler
// happened to pick. When the test binary dies, so does this thread, and the
// kernel kills the children — nothing leaks even on SIGKILL or a test
// timeout.
type spawner struct {
	reqs chan spawnReq
	done chan struct{}
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		runtime.LockOSThread()
		// Never unlocked: when this goroutine returns, the runtime ends the
		// thread, which SIGKILLs any child still alive — the last line of
		// defence after a graceful stop.
		for r := range s.reqs {
			r.errc <- r.cmd.Start()
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, errc: errc}
	return <-errc
}

// close ends the spawner's thread; call it after every child was stopped.
func (s *spawner) close() {
	close(s.reqs)
	<-s.done
}

// proc is one running child process whose output goes to a log file.
type proc struct {
	name     string
	logPath  string
	cmd      *exec.Cmd
	cancel   context.CancelFunc
	done     chan struct{}
	err      error       // the result of Wait, set before done is closed
	reported atomic.Bool // exited has described the exit in an error
}

// startProc starts bin in its own process group with stdout and stderr
// going to logPath. The process lives until stop, independently of ctx's
// cancellation; only ctx's values are kept.
func startProc(ctx context.Context, sp *spawner, name, bin, logPath string, env []string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cmd := exec.CommandContext(pctx, bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Cancelling the context asks the whole group to terminate; WaitDelay
	// then bounds how long it may take before Go sends SIGKILL.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	if err := sp.start(cmd); err != nil {
		cancel()
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, cancel: cancel, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited returns a non-nil error, with the tail of the log, when the process
// has ended.
func (p *proc) exited() error {
	select {
	case <-p.done:
		p.reported.Store(true)
		return fmt.Errorf("%s exited (%v)%s", p.name, p.cmd.ProcessState, p.tail())
	default:
		return nil
	}
}

// stop terminates the process (SIGTERM, then SIGKILL after stopTimeout). It
// reports a process that had died before (unless exited already did), or had
// to be killed; how it exits on SIGTERM is its own business (kube-scheduler
// without leader election exits 1, for one).
func (p *proc) stop() error {
	select {
	case <-p.done:
		if p.reported.Load() {
			return nil
		}
		return fmt.Errorf("%s had exited before stop (%v)%s", p.name, p.cmd.ProcessState, p.tail())
	default:
	}
	p.cancel()
	<-p.done
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed%s", p.name, stopTimeout, p.tail())
	}
	return nil
}

// tailBytes is how much of a log an error quotes.
const tailBytes = 4 << 10

// tail returns the end of the process's log, formatted to be appended to an
// error message.
func (p *proc) tail() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > tailBytes {
		_, _ = f.Seek(st.Size()-tailBytes, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	if i := bytes.IndexByte(b, '\n'); i >= 0 && len(b) == tailBytes {
		b = b[i+1:] // drop the partial first line
	}
	return fmt.Sprintf("\n--- end of %s ---\n%s", p.logPath, strings.TrimRight(string(b), "\n"))
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func loopbackURL(scheme string, port int) string {
	return scheme + "://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// errNotYet marks a poll state that is expected to change.
var errNotYet = errors.New("not yet")

// poll calls cond every interval until it reports done, ctx ends, or one of
// the processes has died (then with that process's log tail).
func poll(ctx context.Context, what string, interval time.Duration, procs []*proc, cond func(context.Context) (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		ok, err := cond(ctx)
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
