// Command cutover-demo is what `make demo` runs: a real control plane and
// two real agents (regions us-east and eu-west) on this machine, the demo
// app deployed at v1 behind each agent's traffic-splitting proxy, steady
// HTTP load through both proxies, and a canary rollout v1 -> v2 wave by
// wave, printed live. It exits 0 only when both regions serve every request
// from v2 and no request failed along the way; every process it started is
// stopped before it exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/test/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

type options struct {
	bin      string
	rate     int
	pause    time.Duration
	timeout  time.Duration
	keepLogs bool
}

func run() error {
	var o options
	fs := flag.NewFlagSet("cutover-demo", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bin", "directory with the cutover binaries")
	fs.IntVar(&o.rate, "rate", 50, "requests per second through each region's proxy")
	fs.DurationVar(&o.pause, "pause", 3*time.Second, "length of each canary pause step")
	fs.DurationVar(&o.timeout, "timeout", 90*time.Second, "give up after this long")
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep the temporary directory with every process's log")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if o.rate < 1 || o.rate > 1000 {
		return fmt.Errorf("--rate: must be between 1 and 1000, got %d", o.rate)
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return fmt.Errorf("--bin: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "cutover-demo-")
	if err != nil {
		return err
	}
	d := &demo{opts: o, out: os.Stdout, start: time.Now(), dir: dir}
	runErr := d.run(ctx, harness.Binaries{Dir: bin})
	if closeErr := d.close(); closeErr != nil {
		runErr = errors.Join(runErr, closeErr)
	}
	if runErr != nil || o.keepLogs {
		fmt.Fprintf(d.out, "logs kept in %s\n", dir)
	} else {
		_ = os.RemoveAll(dir)
	}
	return runErr
}

// errAborted marks a rollout that ended aborted.
var errAborted = errors.New("aborted")

type demo struct {
	allowErrors bool // the last phase expects the bad canary's errors
	opts        options
	out         io.Writer
	start       time.Time
	dir         string
	env         *harness.Env
	listen      map[string]string
	loads       map[string]*load
}

var clusters = []string{"us-east", "eu-west"}

func (d *demo) printf(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) run(ctx context.Context, bins harness.Binaries) error {
	fmt.Fprintln(d.out, "Cutover demo: a canary v1 -> v2, a blue-green switch v2 -> v3, and a bad v4 stopped by a gate, across two regions on this machine.")
	env, err := harness.NewEnv(ctx, bins, d.dir)
	if err != nil {
		return err
	}
	d.env = env
	d.printf("control plane up: gRPC %s, REST %s (try: curl %s/v1/rollouts)", env.Server.GRPC, env.Server.HTTP, "http://"+env.Server.HTTP)
	d.listen = map[string]string{}
	for _, c := range clusters {
		if _, err := env.StartAgent(ctx, c, c); err != nil {
			return err
		}
		if d.listen[c], err = harness.FreeAddr(); err != nil {
			return err
		}
		d.printf("agent %s connected (local runtime); the app will be served on %s", c, d.listen[c])
	}

	if err := d.deploy(ctx, "v1"); err != nil {
		return err
	}
	d.startLoad(ctx)
	if err := d.canary(ctx); err != nil {
		return err
	}
	if err := d.verify(ctx, "v2"); err != nil {
		return err
	}
	d.startLoad(ctx)
	if err := d.blueGreen(ctx); err != nil {
		return err
	}
	if err := d.verify(ctx, "v3"); err != nil {
		return err
	}
	d.startLoad(ctx)
	if err := d.badCanary(ctx); err != nil {
		return err
	}
	return d.verify(ctx, "v3")
}

// badCanary rolls out a v4 that answers 30% of requests with errors, under
// an errorRate gate: the gate aborts it while at its first step, and the
// demo shows the evidence and how long the bad canary got traffic.
func (d *demo) badCanary(ctx context.Context) error {
	for _, l := range d.loads {
		l.watchFor("v4")
	}
	a := d.app("v4", "setWeight: 20", "pause: {duration: 10s}", "setWeight: 50", "pause: {duration: 10s}")
	a.ExtraArgs = []string{"--error-rate", "0.3"}
	a.Gates = []string{"name: errors, metric: errorRate, condition: '<= 0.05', window: 1s, minSamples: 10"}
	out, stderr, code, err := d.env.CLI(ctx, a.Manifest(), "apply", "-f", "-")
	if err != nil || code != 0 {
		return fmt.Errorf("cutover apply: exit %d: %v %s", code, err, stderr)
	}
	d.printf("$ cutover apply -f demo-v4.yaml   ->  %s  (v4 answers 30%% errors; gate: errorRate <= 0.05 over 1s)", trimNL(out))
	if err := d.follow(ctx, "v4", nil); !errors.Is(err, errAborted) {
		return fmt.Errorf("the bad canary was not stopped: %v", err)
	}
	time.Sleep(time.Second) // let the load show traffic back on v3
	r, err := d.env.Get(ctx, "demo")
	if err != nil {
		return err
	}
	d.printf("gate tripped: %s", r.GetStatus().GetMessage())
	first, last := d.loads["us-east"].badSpan()
	if first.IsZero() {
		return errors.New("us-east never served v4")
	}
	d.printf("us-east: first failed request from v4 at +%.3fs, last request to v4 at +%.3fs: %d ms from the first bad answer to 0%% canary",
		first.Sub(d.start).Seconds(), last.Sub(d.start).Seconds(), last.Sub(first).Milliseconds())
	d.allowErrors = true // v4's errors were the point
	return nil
}

func (d *demo) app(rev string, steps ...string) harness.App {
	return harness.App{
		Name:      "demo",
		Revision:  rev,
		Command:   d.env.Bins.Path(harness.DemoApp),
		Instances: 2,
		Waves:     [][]string{{"us-east"}, {"eu-west"}},
		WaveNames: []string{"us-east", "eu-west"},
		Listen:    d.listen,
		Steps:     steps,
	}
}

func (d *demo) deploy(ctx context.Context, rev string) error {
	if _, err := d.env.Apply(ctx, d.app(rev, "setWeight: 100").Manifest()); err != nil {
		return fmt.Errorf("deploy %s: %w", rev, err)
	}
	_, err := d.env.WaitRollout(ctx, "demo", "healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	if err != nil {
		return err
	}
	d.printf("deployed v1 in both regions (2 instances each, first deploy needs no canary)")
	return nil
}

func (d *demo) canary(ctx context.Context) error {
	p := d.opts.pause.String()
	steps := []string{"setWeight: 10", "pause: {duration: " + p + "}", "setWeight: 50", "pause: {duration: " + p + "}"}
	manifest := d.app("v2", steps...).Manifest()
	out, stderr, code, err := d.env.CLI(ctx, manifest, "apply", "-f", "-")
	if err != nil || code != 0 {
		return fmt.Errorf("cutover apply: exit %d: %v %s", code, err, stderr)
	}
	d.printf("$ cutover apply -f demo-v2.yaml   ->  %s", trimNL(out))
	d.printf("canary steps: setWeight 10, pause %s, setWeight 50, pause %s, promote; wave us-east, then eu-west", p, p)
	return d.follow(ctx, "v2", nil)
}

// blueGreen starts v3 beside v2 behind a preview address in each region,
// checks the preview, and switches each wave with `cutover promote`.
func (d *demo) blueGreen(ctx context.Context) error {
	a := d.app("v3")
	preview := map[string]string{}
	for _, c := range clusters {
		addr, err := harness.FreeAddr()
		if err != nil {
			return err
		}
		preview[c] = addr
	}
	a.BlueGreen = &harness.BlueGreen{Preview: preview, ScaleDownSeconds: 5}
	out, stderr, code, err := d.env.CLI(ctx, a.Manifest(), "apply", "-f", "-")
	if err != nil || code != 0 {
		return fmt.Errorf("cutover apply: exit %d: %v %s", code, err, stderr)
	}
	d.printf("$ cutover apply -f demo-v3-bluegreen.yaml   ->  %s", trimNL(out))
	d.printf("blue-green: v3 starts beside v2, reachable only on each region's preview address; promote switches a wave at once")
	client := harness.NewClient()
	defer d.afterglow(ctx, "v3")
	return d.follow(ctx, "v3", func(r *cutoverv1.Rollout) error {
		c := clusters[r.GetStatus().GetCurrentWave()]
		// Let the load show the wave still on v2 while v3 waits on preview.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d.opts.pause):
		}
		counts := harness.Sample(ctx, client, harness.URL(preview[c]), 20)
		d.printf("smoke test of %s's preview %s: %d/20 requests served by v3", c, preview[c], counts["v3"])
		if counts["v3"] != 20 {
			return fmt.Errorf("preview of %s: %v", c, counts)
		}
		out, stderr, code, err := d.env.CLI(ctx, "", "promote", "demo")
		if err != nil || code != 0 {
			return fmt.Errorf("cutover promote: exit %d: %v %s", code, err, stderr)
		}
		d.printf("$ cutover promote demo   ->  %s (switch %s)", trimNL(out), c)
		return nil
	})
}

// follow prints the rollout's progress until it is Healthy. onPaused, when
// set, runs in the background once per wave that waits for a promote, while
// the progress keeps printing.
func (d *demo) follow(ctx context.Context, version string, onPaused func(*cutoverv1.Rollout) error) error {
	handled := map[int32]bool{}
	failed := make(chan error, 4)
	stream, err := d.env.Rollouts.WatchRollout(ctx, &cutoverv1.WatchRolloutRequest{Name: "demo"})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	updates := make(chan *cutoverv1.Rollout, 16)
	go func() {
		defer close(updates)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			updates <- resp.GetRollout()
		}
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var r *cutoverv1.Rollout
	var last string
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("rollout did not finish: %w", ctx.Err())
		case u, ok := <-updates:
			if !ok {
				return errors.New("watch stream ended")
			}
			r = u
			if line := d.progress(r, version); line != last {
				d.printf("%s", line)
				last = line
			}
			if wave := r.GetStatus().GetCurrentWave(); onPaused != nil && !handled[wave] &&
				r.GetStatus().GetPauseReason() == cutoverv1.PauseReason_PAUSE_REASON_STEP && harness.Settled(r) {
				handled[wave] = true
				go func(r *cutoverv1.Rollout) {
					if err := onPaused(r); err != nil {
						failed <- err
					}
				}(r)
			}
		case err := <-failed:
			return err
		case <-tick.C:
			if r != nil {
				d.printf("%s", d.progress(r, version))
			}
		}
		if r != nil && r.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY && harness.Settled(r) {
			d.printf("rollout Healthy: %s", r.GetStatus().GetMessage())
			return nil
		}
		if r != nil && r.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED && harness.Settled(r) {
			d.printf("%s", d.progress(r, version))
			return fmt.Errorf("rollout %w: %s", errAborted, r.GetStatus().GetMessage())
		}
	}
}

// progress is one line: the rollout's position and, per region, the canary
// weight the rollout asks for next to the share of v2 the load generator
// actually got in the last second.
func (d *demo) progress(r *cutoverv1.Rollout, version string) string {
	st := r.GetStatus()
	waves := r.GetSpec().GetTargets().GetWaves()
	steps := rollout.Steps(r.GetSpec())
	step := "promote"
	if int(st.GetCurrentStep()) < len(steps) {
		step = fmt.Sprintf("step %d/%d", st.GetCurrentStep()+1, len(steps))
	}
	line := fmt.Sprintf("wave %d/%d %-8s %-9s |", st.GetCurrentWave()+1, len(waves), waves[st.GetCurrentWave()].GetName(), step)
	label := "canary"
	if r.GetSpec().GetStrategy().GetBlueGreen() != nil {
		label = "switched"
	}
	for _, cp := range st.GetClusters() {
		weight := cp.GetCanaryWeight()
		if cp.GetPhase() == cutoverv1.ClusterPhase_CLUSTER_PHASE_PENDING {
			weight = 0
		}
		line += fmt.Sprintf(" %s: %s %3d%%, served by %s %3.0f%% |", cp.GetCluster(), label, weight, version, 100*d.loads[cp.GetCluster()].share(version))
	}
	return line
}

func (d *demo) startLoad(ctx context.Context) {
	d.loads = map[string]*load{}
	for _, c := range clusters {
		l := newLoad(harness.URL(d.listen[c]), d.opts.rate)
		d.loads[c] = l
		go l.run(ctx)
	}
	d.printf("steady load started: %d requests/s through each region's proxy", d.opts.rate)
}

func (d *demo) verify(ctx context.Context, version string) error {
	for _, l := range d.loads {
		l.stop()
	}
	client := harness.NewClient()
	var failed error
	for _, c := range clusters {
		counts := harness.Sample(ctx, client, harness.URL(d.listen[c]), 200)
		total, errs := d.loads[c].totals()
		d.printf("%s: %d/200 final requests served by %s; during the rollout %d requests, %d failed", c, counts[version], version, total, errs)
		if counts[version] != 200 {
			failed = errors.Join(failed, fmt.Errorf("%s: only %d/200 requests served by %s: %v", c, counts[version], version, counts))
		}
		if errs > 0 && !d.allowErrors {
			failed = errors.Join(failed, fmt.Errorf("%s: %d requests failed during the rollout", c, errs))
		}
	}
	if failed == nil && !d.allowErrors {
		d.printf("both regions serve %s and no request failed", version)
	} else if failed == nil {
		d.printf("both regions serve %s again; the only failed requests were the bad canary's", version)
	}
	return failed
}

func (d *demo) close() error {
	if d.env == nil {
		return nil
	}
	return d.env.Close()
}

func trimNL(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}

// afterglow lets the load run a moment longer so the last switch shows in
// the live shares.
func (d *demo) afterglow(ctx context.Context, version string) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(1500 * time.Millisecond):
	}
	r, err := d.env.Get(ctx, "demo")
	if err == nil {
		d.printf("%s", d.progress(r, version))
	}
}
