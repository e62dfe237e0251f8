package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// stopTimeout bounds a graceful stop of any Cutover process.
const stopTimeout = 20 * time.Second

// Env is a running control plane with its agents, all in one directory.
type Env struct {
	Bins     Binaries
	Dir      string
	Server   *ServerProc
	Agents   map[string]*AgentProc
	Rollouts cutoverv1.RolloutServiceClient
	Clusters cutoverv1.ClusterServiceClient
	conn     *grpc.ClientConn
}

// ServerProc is a running cutover-server.
type ServerProc struct {
	*Process
	GRPC, HTTP, DataDir string
	// Flags are more flags for every (re)start, e.g. "--notify-config".
	Flags []string
}

// AgentProc is a running cutover-agent.
type AgentProc struct {
	*Process
	Cluster, Region, DataDir string
}

// NewEnv starts a control plane in dir on free loopback ports.
func NewEnv(ctx context.Context, bins Binaries, dir string) (*Env, error) {
	return NewEnvWith(ctx, bins, dir)
}

// NewEnvWith is NewEnv with more cutover-server flags, kept for restarts.
func NewEnvWith(ctx context.Context, bins Binaries, dir string, serverFlags ...string) (*Env, error) {
	addrs, err := FreeAddrs(2)
	if err != nil {
		return nil, err
	}
	grpcAddr, httpAddr := addrs[0], addrs[1]
	e := &Env{Bins: bins, Dir: dir, Agents: map[string]*AgentProc{}}
	e.Server = &ServerProc{GRPC: grpcAddr, HTTP: httpAddr, DataDir: filepath.Join(dir, "server"), Flags: serverFlags}
	if err := e.StartServer(ctx); err != nil {
		return nil, err
	}
	e.conn, err = grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial control plane: %w", err)
	}
	e.Rollouts = cutoverv1.NewRolloutServiceClient(e.conn)
	e.Clusters = cutoverv1.NewClusterServiceClient(e.conn)
	return e, nil
}

// StartServer (re)starts the control plane on its ports and data dir and
// waits until /readyz answers 200.
func (e *Env) StartServer(ctx context.Context) error {
	s := e.Server
	args := append([]string{"--data-dir", s.DataDir, "--grpc-listen", s.GRPC, "--http-listen", s.HTTP}, s.Flags...)
	p, err := StartProcess("cutover-server", e.Bins.Path(Server), filepath.Join(e.Dir, "server.log"), args...)
	if err != nil {
		return err
	}
	s.Process = p
	return Poll(ctx, 20*time.Millisecond, "control plane ready", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("cutover-server exited; see %s", p.Log)
		}
		code, _, err := e.HTTP(ctx, http.MethodGet, "/readyz", "")
		return code == http.StatusOK, err
	})
}

// StartAgent starts an agent for cluster and waits until the control plane
// lists it as connected. Restarting an agent reuses its data dir.
func (e *Env) StartAgent(ctx context.Context, cluster, region string) (*AgentProc, error) {
	return e.StartAgentWith(ctx, cluster, region, "--runtime", "local")
}

// StartAgentWith is StartAgent with more flags, e.g. "--runtime",
// "kubernetes", "--kubeconfig", path.
func (e *Env) StartAgentWith(ctx context.Context, cluster, region string, flags ...string) (*AgentProc, error) {
	a := &AgentProc{Cluster: cluster, Region: region, DataDir: filepath.Join(e.Dir, "agent-"+cluster)}
	args := append([]string{"--server", e.Server.GRPC, "--cluster", cluster, "--region", region,
		"--labels", "region=" + region, "--data-dir", a.DataDir, "--heartbeat", "500ms"}, flags...)
	p, err := StartProcess("cutover-agent "+cluster, e.Bins.Path(Agent), filepath.Join(e.Dir, "agent-"+cluster+".log"), args...)
	if err != nil {
		return nil, err
	}
	a.Process = p
	e.Agents[cluster] = a
	err = Poll(ctx, 20*time.Millisecond, "agent "+cluster+" connected", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("agent %s exited; see %s", cluster, p.Log)
		}
		return e.connected(ctx, cluster)
	})
	return a, err
}

func (e *Env) connected(ctx context.Context, cluster string) (bool, error) {
	resp, err := e.Clusters.ListClusters(ctx, &cutoverv1.ListClustersRequest{})
	if err != nil {
		return false, err
	}
	for _, c := range resp.GetClusters() {
		if c.GetName() == cluster {
			return c.GetStatus() == cutoverv1.ClusterStatus_CLUSTER_STATUS_CONNECTED, nil
		}
	}
	return false, nil
}

// Close stops every agent gracefully (which stops their apps), then the
// control plane. It returns the first problem met.
func (e *Env) Close() error {
	var errs []error
	for _, a := range e.Agents {
		if err := a.Stop(stopTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	if e.conn != nil {
		_ = e.conn.Close()
	}
	if e.Server.Process != nil {
		if err := e.Server.Stop(stopTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Apply applies a manifest through the gRPC API.
func (e *Env) Apply(ctx context.Context, manifest string) (*cutoverv1.Rollout, error) {
	resp, err := e.Rollouts.ApplyRollout(ctx, &cutoverv1.ApplyRolloutRequest{Manifest: manifest})
	if err != nil {
		return nil, err
	}
	return resp.GetRollout(), nil
}

// Get returns a rollout.
func (e *Env) Get(ctx context.Context, name string) (*cutoverv1.Rollout, error) {
	resp, err := e.Rollouts.GetRollout(ctx, &cutoverv1.GetRolloutRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetRollout(), nil
}

// WaitRollout polls the rollout until cond holds.
func (e *Env) WaitRollout(ctx context.Context, name, what string, cond func(*cutoverv1.Rollout) bool) (*cutoverv1.Rollout, error) {
	var last *cutoverv1.Rollout
	err := Poll(ctx, 20*time.Millisecond, name+" "+what, func() (bool, error) {
		r, err := e.Get(ctx, name)
		if err != nil {
			return false, err
		}
		last = r
		if cond(r) {
			return true, nil
		}
		return false, fmt.Errorf("%w: phase %s wave %d step %d: %s", errNotYet,
			r.GetStatus().GetPhase(), r.GetStatus().GetCurrentWave(), r.GetStatus().GetCurrentStep(), r.GetStatus().GetMessage())
	})
	return last, err
}

// Settled reports whether every cluster of the rollout reports its desired
// state converged: what the rollout says is what the proxies do.
func Settled(r *cutoverv1.Rollout) bool {
	for _, cp := range r.GetStatus().GetClusters() {
		if cp.GetDesiredGeneration() > 0 && (!cp.GetConverged() || cp.GetObservedGeneration() != cp.GetDesiredGeneration()) {
			return false
		}
	}
	return true
}

// InPhase returns a condition: the rollout is in phase and settled.
func InPhase(phase cutoverv1.RolloutPhase) func(*cutoverv1.Rollout) bool {
	return func(r *cutoverv1.Rollout) bool { return r.GetStatus().GetPhase() == phase && Settled(r) }
}

// AtStep returns a condition: paused at a step of a wave, settled.
func AtStep(wave, step int32) func(*cutoverv1.Rollout) bool {
	return func(r *cutoverv1.Rollout) bool {
		st := r.GetStatus()
		return st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED &&
			st.GetCurrentWave() == wave && st.GetCurrentStep() == step && Settled(r)
	}
}

// AtStepSettled returns a condition: at a step of a wave (paused or not),
// settled.
func AtStepSettled(wave, step int32) func(*cutoverv1.Rollout) bool {
	return func(r *cutoverv1.Rollout) bool {
		st := r.GetStatus()
		return st.GetCurrentWave() == wave && st.GetCurrentStep() == step && Settled(r)
	}
}

// CLI runs the cutover command against the control plane and returns its
// stdout, stderr and exit code.
func (e *Env) CLI(ctx context.Context, stdin string, args ...string) (stdout, stderr string, code int, err error) {
	wait, err := e.StartCLI(ctx, stdin, args...)
	if err != nil {
		return "", "", 0, err
	}
	return wait()
}

// StartCLI starts the cutover command and returns a function that waits for
// it and returns its stdout, stderr and exit code.
func (e *Env) StartCLI(ctx context.Context, stdin string, args ...string) (func() (string, string, int, error), error) {
	cmd := exec.CommandContext(ctx, e.Bins.Path(CLI), args...)
	cmd.Env = append(os.Environ(), "CUTOVER_SERVER="+e.Server.GRPC)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start cutover: %w", err)
	}
	return func() (string, string, int, error) {
		runErr := cmd.Wait()
		var exit *exec.ExitError
		code := 0
		switch {
		case runErr == nil:
		case errors.As(runErr, &exit):
			code = exit.ExitCode()
		default:
			return "", "", 0, fmt.Errorf("run cutover: %w", runErr)
		}
		return out.String(), errb.String(), code, nil
	}, nil
}

// HTTP sends a request to the control plane's HTTP port.
func (e *Env) HTTP(ctx context.Context, method, path, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+e.Server.HTTP+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
