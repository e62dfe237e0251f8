package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// crashSeed makes the kill moments reproducible; change it to explore.
const crashSeed = 20261125

// Given a two-wave canary with timed pauses under steady load, when the
// control plane is killed with SIGKILL at 20 or more random moments and
// restarted each time, the rollout still finishes, every step of every wave
// is recorded exactly once, no request fails (agents keep serving while the
// control plane is down), and eu-west never serves v2 while the stored
// state still has the first wave in progress.
func TestControlPlaneKilledRepeatedlyMidRollout(t *testing.T) {
	f := newTwoRegions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f.deploy(ctx, "v1")

	load := newRecorder(f)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, c := range []string{"us-east", "eu-west"} {
		wg.Add(1)
		go func() { defer wg.Done(); load.run(loadCtx, c) }()
	}

	applied := time.Now() // before this, v2 may answer nowhere
	steps := []string{"setWeight: 10", "pause: {duration: 1500ms}", "setWeight: 30", "pause: {duration: 1500ms}",
		"setWeight: 60", "pause: {duration: 1500ms}"}
	if _, err := f.env.Apply(ctx, f.app("v2", steps...).Manifest()); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(crashSeed, 0))
	kills := 0
	var lastWave0 time.Time // the latest moment the stored state had wave 0 in progress
	for {
		r, err := f.env.Get(ctx, "demo")
		if err != nil {
			t.Fatalf("after %d kills: %v", kills, err)
		}
		if r.GetStatus().GetCurrentWave() == 0 {
			lastWave0 = time.Now()
		}
		if r.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("rollout did not finish after %d kills: %v", kills, ctx.Err())
		case <-time.After(time.Duration(150+rng.IntN(750)) * time.Millisecond):
		}
		f.env.Server.Kill()
		kills++
		if err := f.env.StartServer(ctx); err != nil {
			t.Fatalf("restart %d: %v", kills, err)
		}
	}
	if kills < 20 {
		t.Errorf("the rollout finished after only %d kills; the test needs at least 20", kills)
	}
	r := f.wait(ctx, "settled", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	stopLoad()
	wg.Wait()

	// Every step of every wave exactly once, each wave promoted once.
	count := map[string]int{}
	for _, e := range r.GetStatus().GetTimeline() {
		switch e.GetType() {
		case cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED:
			count[fmt.Sprintf("step %d.%d", e.GetWave(), e.GetStep())]++
		case cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WAVE_PROMOTED, cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_HEALTHY:
			count[fmt.Sprintf("%s %d", e.GetType(), e.GetWave())]++
		}
	}
	if len(count) != 2*len(steps)+3 {
		t.Errorf("timeline has %d distinct steps and promotions, want %d: %v", len(count), 2*len(steps)+3, count)
	}
	for k, n := range count {
		if n != 1 {
			t.Errorf("%s recorded %d times", k, n)
		}
	}
	load.check(t, lastWave0, 100)
	load.checkNoV2Before(t, applied)
	t.Logf("%d SIGKILLs (seed %d); %d requests, all served", kills, crashSeed, load.total())
	f.expectShare(ctx, "eu-west", "v2", 1, 0)
}

// recorder sends steady requests to each region and keeps every answer.
type recorder struct {
	f       *twoRegions
	mu      sync.Mutex
	answers map[string][]answer
}

type answer struct {
	sent    time.Time
	version string
}

func newRecorder(f *twoRegions) *recorder {
	return &recorder{f: f, answers: map[string][]answer{}}
}

func (l *recorder) run(ctx context.Context, cluster string) {
	client := harness.NewClient()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		v := harness.Hit(ctx, client, harness.URL(l.f.listen[cluster]))
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		l.answers[cluster] = append(l.answers[cluster], answer{sent, v})
		l.mu.Unlock()
	}
}

func (l *recorder) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.answers {
		n += len(a)
	}
	return n
}

// check: no request failed, and eu-west served no v2 to a request sent
// before the last moment the state still had wave 0 in progress.
func (l *recorder) check(t *testing.T, lastWave0 time.Time, min int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for cluster, answers := range l.answers {
		if len(answers) < min {
			t.Errorf("%s: only %d requests recorded", cluster, len(answers))
		}
		for _, a := range answers {
			switch {
			case a.version != "v1" && a.version != "v2":
				t.Errorf("%s: request at %s answered %q", cluster, a.sent.Format(time.StampMilli), a.version)
			case cluster == "eu-west" && a.version == "v2" && a.sent.Before(lastWave0):
				t.Errorf("eu-west served v2 at %s while the stored state had wave 1 in progress until %s",
					a.sent.Format(time.StampMilli), lastWave0.Format(time.StampMilli))
			}
		}
	}
}

// checkNoV2Before: no request sent before the canary was applied was
// answered by v2, in any region.
func (l *recorder) checkNoV2Before(t *testing.T, applied time.Time) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for cluster, answers := range l.answers {
		for _, a := range answers {
			if a.version == "v2" && a.sent.Before(applied) {
				t.Errorf("%s served v2 at %s, before the canary was applied", cluster, a.sent.Format(time.StampMilli))
			}
		}
	}
}
