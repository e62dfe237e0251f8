package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"k8s.io/apimachinery/pkg/api/equality"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	agentkube "github.com/cutover-dev/cutover/agent/runtime/kubernetes"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
	"github.com/cutover-dev/cutover/test/kubecluster"
)

// wait bounds every wait of these tests.
const waitFor = 90 * time.Second

var (
	setupOnce sync.Once
	setupErr  error
	bins      harness.Binaries
)

// setup finds the Cutover binaries and installs deploy/kubernetes (the
// agent's ServiceAccount and RBAC among them) into the test cluster, once.
func setup(t *testing.T) {
	t.Helper()
	setupOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		dir, err := os.MkdirTemp("", "cutover-kube-bin-")
		if err != nil {
			setupErr = err
			return
		}
		if bins, setupErr = harness.FindBinaries(ctx, dir); setupErr != nil {
			return
		}
		setupErr = applyKustomization(ctx, filepath.Join(repoRoot(), "deploy", "kubernetes"))
	})
	if setupErr != nil {
		t.Fatalf("setup: %v", setupErr)
	}
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..")
}

// applyKustomization applies every resource a kustomization lists, as
// `kubectl apply -k` would for one without patches.
func applyKustomization(ctx context.Context, dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return err
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		return fmt.Errorf("kustomization.yaml: %w", err)
	}
	if len(k.Resources) == 0 {
		return fmt.Errorf("kustomization.yaml lists no resources")
	}
	for _, r := range k.Resources {
		if err := cluster.ApplyFile(ctx, filepath.Join(dir, r), ""); err != nil {
			return fmt.Errorf("apply %s: %w", r, err)
		}
	}
	return nil
}

// kenv is a control plane with one agent in kubernetes mode, running as
// deploy/kubernetes's ServiceAccount.
type kenv struct {
	*harness.Env
	t          *testing.T
	kubeconfig string
}

const clusterName = "k8s-1"

func newKEnv(t *testing.T) *kenv {
	t.Helper()
	setup(t)
	e := harness.TestEnv(t, bins)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	token, err := cluster.ServiceAccountToken(ctx, "cutover-system", "cutover-agent", time.Hour)
	if err != nil {
		t.Fatalf("agent token: %v", err)
	}
	k := &kenv{Env: e, t: t, kubeconfig: filepath.Join(e.Dir, "agent.kubeconfig")}
	if err := cluster.WriteKubeconfig(k.kubeconfig, token); err != nil {
		t.Fatal(err)
	}
	k.startAgent()
	return k
}

// startAgent starts the cluster's agent with the kubernetes runtime and
// any more flags.
func (k *kenv) startAgent(flags ...string) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	args := append([]string{"--runtime", "kubernetes", "--kubeconfig", k.kubeconfig, "--log-level", "debug"}, flags...)
	if _, err := k.StartAgentWith(ctx, clusterName, "eu", args...); err != nil {
		k.t.Fatalf("start agent: %v", err)
	}
}

func (k *kenv) apply(manifest string) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := k.Apply(ctx, manifest); err != nil {
		k.t.Fatalf("apply: %v\n%s", err, manifest)
	}
}

func (k *kenv) waitRollout(name, what string, cond func(*cutoverv1.Rollout) bool) *cutoverv1.Rollout {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := k.WaitRollout(ctx, name, what, cond)
	if err != nil {
		k.t.Fatalf("%s: %v (last: %s)", what, err, r.GetStatus().GetMessage())
	}
	return r
}

func (k *kenv) promote(name string) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := k.Rollouts.PromoteRollout(ctx, &cutoverv1.PromoteRolloutRequest{Name: name}); err != nil {
		k.t.Fatalf("promote %s: %v", name, err)
	}
}

// waitKube polls the cluster (not the agent) until cond holds.
func waitKube(t *testing.T, what string, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	last := ""
	err := harness.Poll(ctx, 50*time.Millisecond, what, func() (bool, error) {
		ok, state := cond(ctx)
		last = state
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: %v; last seen: %s", what, err, last)
	}
}

func deployment(ctx context.Context, ns, name string) (*appsv1.Deployment, error) {
	return cluster.Clientset().AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
}

// waitReplicas waits until a Deployment runs version with want replicas,
// all ready and rolled out.
func waitReplicas(t *testing.T, ns, name, version string, want int32) {
	t.Helper()
	waitKube(t, fmt.Sprintf("%s/%s at %d x %s", ns, name, want, version), func(ctx context.Context) (bool, string) {
		d, err := deployment(ctx, ns, name)
		if err != nil {
			return false, err.Error()
		}
		st := d.Status
		state := fmt.Sprintf("spec %d x %s, status replicas=%d updated=%d ready=%d", *d.Spec.Replicas, d.Spec.Template.Labels["version"], st.Replicas, st.UpdatedReplicas, st.ReadyReplicas)
		ok := *d.Spec.Replicas == want && st.ObservedGeneration >= d.Generation && st.Replicas == want && st.ReadyReplicas == want &&
			st.UpdatedReplicas == want && (want == 0 || d.Spec.Template.Labels["version"] == version)
		return ok, state
	})
}

func selector(ctx context.Context, ns, name string) string {
	s, err := cluster.Clientset().CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	return s.Spec.Selector["environment"]
}

func waitSelector(t *testing.T, ns, svc, colour string) {
	t.Helper()
	waitKube(t, "service "+svc+" selects "+colour, func(ctx context.Context) (bool, string) {
		got := selector(ctx, ns, svc)
		return got == colour, got
	})
}

func createNamespace(t *testing.T, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err := cluster.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
}

// smokeTarget is a real HTTP server on loopback standing in for the
// preview (kwok pods serve nothing): it answers /good with 200 and
// anything else with 503.
func smokeTarget(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/good" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// blueGreenManifest takes over the seed's objects: Deployments
// myapp-blue/myapp-green, Service myapp-service, colour label environment.
// A second wave, a local-runtime cluster (the demo app behind the agent's
// proxy), keeps the rollout open after the Kubernetes cluster switched.
func blueGreenManifest(rev, smokeURL string, autoPromote, scaleDown int, demoApp, listen, preview string) string {
	return fmt.Sprintf(`apiVersion: cutover.dev/v1
kind: Rollout
metadata:
  name: myapp
spec:
  revision:
    name: %[1]s
    image: myapp:%[1]s
    command: %[6]s
    args: ["--version", "%[1]s"]
    instances: 3
  endpoint:
    listen: %[7]s
  targets:
    waves:
    - clusters: [%[2]s]
    - clusters: [local-1]
  progressDeadline: 60s
  kubernetes:
    namespace: production
    deployment: myapp
    service: myapp-service
    colorLabel: environment
    selector: {app: myapp}
  strategy:
    blueGreen:
      previewListen: %[8]s
      autoPromotionSeconds: %[4]d
      scaleDownDelaySeconds: %[5]d
      smokeChecks:
      - name: health
        url: %[3]s
        attempts: 1
        timeout: 2s
`, rev, clusterName, smokeURL, autoPromote, scaleDown, demoApp, listen, preview)
}

// The seed's blue-green manifests, applied unchanged, are taken over by a
// Cutover blue-green rollout: the active colour is adopted as it is, the
// new revision goes to the other colour, the smoke check runs against the
// preview, the Service switches, and the old colour scales to 0 after the
// delay; a failing smoke check leaves the selector on the old colour, and
// an abort after the switch puts it back.
func TestBlueGreenSeed(t *testing.T) {
	k := newKEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	createNamespace(t, "production")
	if err := cluster.ApplyFile(ctx, filepath.Join("testdata", "seed-blue-green.yaml"), ""); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, "production", "myapp-blue", "v1.0.0", 3)
	blue, err := deployment(ctx, "production", "myapp-blue")
	if err != nil {
		t.Fatal(err)
	}
	green, err := deployment(ctx, "production", "myapp-green")
	if err != nil {
		t.Fatal(err)
	}
	target := smokeTarget(t)
	if _, err := k.StartAgent(ctx, "local-1", "eu"); err != nil {
		t.Fatal(err)
	}
	listen, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	preview, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	manifest := func(rev, path string, autoPromote, scaleDown int) string {
		return blueGreenManifest(rev, target+path, autoPromote, scaleDown, bins.Path(harness.DemoApp), listen, preview)
	}

	// 1. Adopt: Cutover's first revision is what blue runs.
	k.apply(manifest("v1.0.0", "/good", 1, 2))
	k.waitRollout("myapp", "v1.0.0 adopted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	waitSelector(t, "production", "myapp-service", "blue")
	waitReplicas(t, "production", "myapp-green", "", 0) // nothing desired runs there
	now, err := deployment(ctx, "production", "myapp-blue")
	if err != nil {
		t.Fatal(err)
	}
	// Adopting changes no pod template, so nothing rolls (the generation
	// moves with the revision annotation alone).
	if now.UID != blue.UID || !equality.Semantic.DeepEqual(now.Spec.Template, blue.Spec.Template) {
		a, _ := json.Marshal(blue.Spec.Template)
		b, _ := json.Marshal(now.Spec.Template)
		t.Errorf("adopting blue changed it: uid %s -> %s\nbefore %s\nafter  %s", blue.UID, now.UID, a, b)
	}
	if rs, err := cluster.Clientset().AppsV1().ReplicaSets("production").List(ctx, metav1.ListOptions{LabelSelector: "environment=blue"}); err != nil || len(rs.Items) != 1 {
		t.Errorf("blue has %d ReplicaSets after adoption, want 1 (%v)", len(rs.Items), err)
	}
	if c := now.Spec.Template.Spec.Containers[0]; c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/ready" || len(c.Env) != 1 {
		t.Errorf("the seed's own probe and env were not kept: %+v", c)
	}

	// 2. v2.0.0 goes to green, passes its smoke check, takes the traffic;
	// blue scales to 0 after the 2 s delay.
	k.apply(manifest("v2.0.0", "/good", 1, 2))
	waitReplicas(t, "production", "myapp-green", "v2.0.0", 3)
	waitSelector(t, "production", "myapp-service", "green")
	switched := time.Now()
	if got := selector(ctx, "production", "myapp-service-preview"); got != "green" {
		t.Errorf("preview service selects %q, want green", got)
	}
	waitReplicas(t, "production", "myapp-blue", "", 0)
	if d := time.Since(switched); d < time.Second {
		t.Errorf("blue scaled down %s after the switch, before the 2 s delay", d)
	}
	r := k.waitRollout("myapp", "v2.0.0 healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	if cp := r.GetStatus().GetClusters()[0]; cp.GetPhase() != cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED {
		t.Errorf("cluster phase %s", cp.GetPhase())
	}
	for name, was := range map[string]*appsv1.Deployment{"myapp-blue": blue, "myapp-green": green} {
		if d, err := deployment(ctx, "production", name); err != nil || d.UID != was.UID {
			t.Errorf("%s was recreated (%v)", name, err)
		}
	}

	// 3. v3.0.0 fails its smoke check: aborted, traffic never left green.
	k.apply(manifest("v3.0.0", "/bad", 1, 2))
	r = k.waitRollout("myapp", "v3.0.0 aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if msg := r.GetStatus().GetMessage(); !strings.Contains(msg, "smoke check") || !strings.Contains(msg, "status 503") {
		t.Errorf("abort message %q does not name the smoke check", msg)
	}
	if got := selector(ctx, "production", "myapp-service"); got != "green" {
		t.Errorf("after a failed smoke check the service selects %q, want green", got)
	}
	waitReplicas(t, "production", "myapp-blue", "", 0)
	waitReplicas(t, "production", "myapp-green", "v2.0.0", 3)

	// 4. v4.0.0 passes and takes the Kubernetes cluster's traffic on
	// promote; while the next wave waits, an abort switches the selector
	// back to the old colour, still warm.
	k.apply(manifest("v4.0.0", "/good", 0, 600))
	k.waitRollout("myapp", "v4.0.0 in preview", harness.AtStepSettled(0, 1))
	if got := selector(ctx, "production", "myapp-service"); got != "green" {
		t.Errorf("before promote the service selects %q, want green", got)
	}
	k.promote("myapp")
	waitSelector(t, "production", "myapp-service", "blue")
	k.waitRollout("myapp", "next wave in preview", harness.AtStepSettled(1, 1))
	waitReplicas(t, "production", "myapp-green", "v2.0.0", 3) // kept warm
	if _, err := k.Rollouts.AbortRollout(ctx, &cutoverv1.AbortRolloutRequest{Name: "myapp"}); err != nil {
		t.Fatal(err)
	}
	waitSelector(t, "production", "myapp-service", "green")
	waitReplicas(t, "production", "myapp-green", "v2.0.0", 3)
	waitReplicas(t, "production", "myapp-blue", "", 0)
}

func canaryManifest(app, ns, rev string, instances int, route string, steps ...string) string {
	routeLine := ""
	if route != "" {
		routeLine = "\n    httpRoute: {name: " + route + "}"
	}
	var b strings.Builder
	for _, s := range steps {
		b.WriteString("      - " + s + "\n")
	}
	return fmt.Sprintf(`apiVersion: cutover.dev/v1
kind: Rollout
metadata:
  name: %[1]s
spec:
  revision:
    name: %[3]s
    image: %[1]s:%[3]s
    instances: %[4]d
  targets:
    waves:
    - clusters: [%[5]s]
  progressDeadline: 60s
  kubernetes:
    namespace: %[2]s%[6]s
  strategy:
    canary:
      steps:
%[7]s`, app, ns, rev, instances, clusterName, routeLine, b.String())
}

// Canary without a router: the weight is approximated by the replica
// ratio of "<app>" and "<app>-canary" (ReplicaSplit); an abort restores
// stable. An agent restart mid-rollout resumes without recreating objects.
func TestCanaryReplicaRatio(t *testing.T) {
	k := newKEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ns = "canary-ratio"
	createNamespace(t, ns)
	k.apply(canaryManifest("web", ns, "v1", 4, "", "setWeight: 50"))
	k.waitRollout("web", "v1 deployed", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	waitReplicas(t, ns, "web", "v1", 4)
	svc, err := cluster.Clientset().CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || svc.Spec.Selector["app"] != "web" || svc.Labels[agentkube.LabelManagedBy] != "cutover" {
		t.Fatalf("service web: %v %v", svc, err)
	}

	k.apply(canaryManifest("web", ns, "v2", 4, "", "setWeight: 25", "pause: {}", "setWeight: 75", "pause: {}"))
	k.waitRollout("web", "at 25%", harness.AtStepSettled(0, 1))
	waitReplicas(t, ns, "web-canary", "v2", 1) // ceil(4 x 25%)
	waitReplicas(t, ns, "web", "v1", 3)        // 4 - floor(4 x 25%)

	// The agent restarts mid-rollout: nothing is recreated or rolled.
	before := map[string]*appsv1.Deployment{}
	for _, name := range []string{"web", "web-canary"} {
		if before[name], err = deployment(ctx, ns, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Agents[clusterName].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	k.startAgent()
	k.promote("web")
	k.waitRollout("web", "at 75%", harness.AtStepSettled(0, 3))
	waitReplicas(t, ns, "web-canary", "v2", 3)
	waitReplicas(t, ns, "web", "v1", 1)
	for name, was := range before {
		d, err := deployment(ctx, ns, name)
		if err != nil || d.UID != was.UID || d.Spec.Template.Labels["version"] != was.Spec.Template.Labels["version"] {
			t.Errorf("%s was recreated or re-templated across the agent restart (%v)", name, err)
		}
	}
	r, err := k.Get(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range r.GetStatus().GetClusters()[0].GetObservedRevisions() {
		if o.GetRevision() == "v2" && o.GetWeight() != 75 {
			t.Errorf("canary weight in force %d%%, want 75%% (3 of 4 pods)", o.GetWeight())
		}
	}

	if _, err := k.Rollouts.AbortRollout(ctx, &cutoverv1.AbortRolloutRequest{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, ns, "web", "v1", 4)
	waitReplicas(t, ns, "web-canary", "", 0)
	k.waitRollout("web", "abort settled", func(r *cutoverv1.Rollout) bool {
		return r.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED && harness.Settled(r)
	})
}

// Canary with a Gateway API HTTPRoute: each step's weight is set exactly on
// the route's backendRefs; an abort puts 100% back on stable.
func TestCanaryHTTPRoute(t *testing.T) {
	k := newKEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ns = "canary-route"
	createNamespace(t, ns)
	route := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "shop", "namespace": ns},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "edge"}},
			"rules": []any{map[string]any{
				"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/"}}},
				"backendRefs": []any{map[string]any{"name": "shop-stable", "port": int64(80)}},
			}},
		},
	}}
	if _, err := cluster.Dynamic().Resource(agentkube.HTTPRoutes).Namespace(ns).Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create httproute: %v", err)
	}
	weights := func(ctx context.Context) (int32, int32, string) {
		u, err := cluster.Dynamic().Resource(agentkube.HTTPRoutes).Namespace(ns).Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			return -1, -1, err.Error()
		}
		rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		var s, c int64 = -1, -1
		for _, x := range rules[0].(map[string]any)["backendRefs"].([]any) {
			ref := x.(map[string]any)
			w, _ := ref["weight"].(int64)
			switch ref["name"] {
			case "shop-stable":
				s = w
			case "shop-canary":
				c = w
			}
		}
		return int32(s), int32(c), fmt.Sprintf("stable=%d canary=%d", s, c)
	}
	waitWeights := func(stable, canary int32) {
		t.Helper()
		waitKube(t, fmt.Sprintf("route weights %d/%d", stable, canary), func(ctx context.Context) (bool, string) {
			s, c, state := weights(ctx)
			return s == stable && c == canary, state
		})
	}

	k.apply(canaryManifest("shop", ns, "v1", 2, "shop", "setWeight: 50"))
	k.waitRollout("shop", "v1 deployed", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	waitWeights(100, 0)
	waitReplicas(t, ns, "shop", "v1", 2)

	k.apply(canaryManifest("shop", ns, "v2", 2, "shop", "setWeight: 10", "pause: {}", "setWeight: 35", "pause: {}"))
	k.waitRollout("shop", "at 10%", harness.AtStepSettled(0, 1))
	waitWeights(90, 10)
	waitReplicas(t, ns, "shop-canary", "v2", 2) // with a router the canary runs its full count
	waitReplicas(t, ns, "shop", "v1", 2)
	for _, svc := range []string{"shop-stable", "shop-canary"} {
		s, err := cluster.Clientset().CoreV1().Services(ns).Get(ctx, svc, metav1.GetOptions{})
		if err != nil || s.Spec.Selector[agentkube.LabelTrack] == "" {
			t.Errorf("service %s: %v %v", svc, s.Spec.Selector, err)
		}
	}
	k.promote("shop")
	k.waitRollout("shop", "at 35%", harness.AtStepSettled(0, 3))
	waitWeights(65, 35)

	if _, err := k.Rollouts.AbortRollout(ctx, &cutoverv1.AbortRolloutRequest{Name: "shop"}); err != nil {
		t.Fatal(err)
	}
	waitWeights(100, 0)
	waitReplicas(t, ns, "shop-canary", "", 0)
	waitReplicas(t, ns, "shop", "v1", 2)
	u, err := cluster.Dynamic().Resource(agentkube.HTTPRoutes).Namespace(ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if parents, _, _ := unstructured.NestedSlice(u.Object, "spec", "parentRefs"); len(parents) != 1 {
		t.Errorf("the route's parentRefs were not kept: %v", parents)
	}
}

func rollingManifest(app, ns, rev, image string, instances int, batch, pause string) string {
	return fmt.Sprintf(`apiVersion: cutover.dev/v1
kind: Rollout
metadata:
  name: %[1]s
spec:
  revision:
    name: %[3]s
    image: %[4]s
    instances: %[5]d
    readyTimeout: 2s
  targets:
    waves:
    - clusters: [%[6]s]
  progressDeadline: 60s
  kubernetes:
    namespace: %[2]s
  strategy:
    rolling:
      batchSize: "%[7]s"
      pauseBetweenBatches: %[8]s
      failureThreshold: 1
`, app, ns, rev, image, instances, clusterName, batch, pause)
}

// Rolling in batches the agent controls: each batch moves pods from "<app>"
// to "<app>-canary", surge first; a batch whose pods never become Ready
// fails the rollout and the pods go back to the old revision.
func TestRollingBatches(t *testing.T) {
	k := newKEnv(t)
	const ns = "rolling"
	createNamespace(t, ns)
	k.apply(rollingManifest("api", ns, "v1", "api:v1", 4, "2", "1h"))
	k.waitRollout("api", "v1 deployed", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	waitReplicas(t, ns, "api", "v1", 4)

	k.apply(rollingManifest("api", ns, "v2", "api:v2", 4, "2", "1h"))
	k.waitRollout("api", "batch 1 of 2", harness.AtStepSettled(0, 1))
	waitReplicas(t, ns, "api-canary", "v2", 2)
	waitReplicas(t, ns, "api", "v1", 2)
	k.promote("api") // ends the pause between batches
	k.waitRollout("api", "v2 healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	waitReplicas(t, ns, "api", "v2", 4)
	waitReplicas(t, ns, "api-canary", "", 0)

	// v3's pods never become Ready: the first batch fails, and everything
	// goes back to v2 at full strength.
	k.apply(rollingManifest("api", ns, "v3", kubecluster.NeverReadyImage, 4, "2", "1h"))
	r := k.waitRollout("api", "v3 aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if msg := r.GetStatus().GetMessage(); !strings.Contains(msg, "failed") {
		t.Errorf("abort message %q", msg)
	}
	waitReplicas(t, ns, "api", "v2", 4)
	waitReplicas(t, ns, "api-canary", "", 0)
}

// The Prometheus metrics source works on Kubernetes: a canary's gate reads
// what a real Prometheus scraped and aborts the rollout on it. kwok's pods
// serve nothing, so two demo-app processes on loopback stand in for the
// revisions' pods, with the revision label Prometheus gives them.
func TestCanaryPrometheusGate(t *testing.T) {
	k := newKEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "canary-prom"
	createNamespace(t, ns)
	targets, listen := map[string]string{}, map[string]string{}
	for _, rev := range []string{"v1", "v2"} {
		metrics, err := harness.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		if listen[rev], err = harness.FreeAddr(); err != nil {
			t.Fatal(err)
		}
		targets[metrics] = rev
		args := []string{"--version", rev, "--listen", listen[rev], "--metrics-listen", metrics}
		if rev == "v2" {
			args = append(args, "--error-rate", "0.2")
		}
		p, err := harness.StartProcess("demoapp "+rev, bins.Path(harness.DemoApp), filepath.Join(t.TempDir(), rev+".log"), args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	}
	url := harness.StartPrometheus(t, targets)
	const requests = "cutover_demoapp_requests_total"
	manifest := func(rev string) string {
		return canaryManifest("pay", ns, rev, 2, "", "setWeight: 50", "pause: {duration: 30s}") + fmt.Sprintf(`  gates:
  - {name: errors, metric: errorRate, condition: '<= 0.05', window: 3s, minSamples: 50}
  metrics:
    provider: prometheus
    interval: 200ms
    prometheus:
      address: %q
      requests: '%s{revision="{{revision}}"}'
      errors: '%s{revision="{{revision}}",code=~"5.."}'
`, url, requests, requests)
	}
	k.apply(manifest("v1"))
	k.waitRollout("pay", "v1 deployed", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	// Load on both stand-ins, bounded in time and count.
	lctx, stopLoad := context.WithTimeout(ctx, time.Minute)
	defer stopLoad()
	for _, rev := range []string{"v1", "v2"} {
		go func(addr string) {
			client := harness.NewClient()
			for i := 0; i < 100000 && lctx.Err() == nil; i++ {
				harness.Hit(lctx, client, harness.URL(addr))
			}
		}(listen[rev])
	}
	k.apply(manifest("v2"))
	r := k.waitRollout("pay", "v2 aborted by its gate", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if msg := r.GetStatus().GetMessage(); !strings.Contains(msg, "gate errors") || !strings.Contains(msg, "failed in "+clusterName) {
		t.Errorf("abort message lacks the evidence: %q", msg)
	}
	waitReplicas(t, ns, "pay", "v1", 2)
	waitReplicas(t, ns, "pay-canary", "", 0)
}

// Delegated rolling: the new revision goes on the one Deployment's
// template and its own rolling update replaces the pods; no canary
// Deployment appears, and a revision whose pods never become Ready is
// rolled back on the same Deployment.
func TestRollingDelegated(t *testing.T) {
	k := newKEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "rolling-delegated"
	createNamespace(t, ns)
	manifest := func(rev, image string) string {
		m := rollingManifest("batch", ns, rev, image, 3, "1", "1h")
		return strings.Replace(m, "    namespace: "+ns+"\n", "    namespace: "+ns+"\n    delegateRolling: true\n", 1)
	}
	k.apply(manifest("v1", "batch:v1"))
	k.waitRollout("batch", "v1 deployed", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	waitReplicas(t, ns, "batch", "v1", 3)
	first, err := deployment(ctx, ns, "batch")
	if err != nil {
		t.Fatal(err)
	}
	k.apply(manifest("v2", "batch:v2"))
	r := k.waitRollout("batch", "v2 healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	if n := len(r.GetStatus().GetTimeline()); n == 0 {
		t.Error("no timeline")
	}
	waitReplicas(t, ns, "batch", "v2", 3)
	if d, err := deployment(ctx, ns, "batch"); err != nil || d.UID != first.UID {
		t.Errorf("the Deployment was recreated (%v)", err)
	}
	if _, err := deployment(ctx, ns, "batch-canary"); err == nil {
		t.Error("a canary Deployment appeared in delegated mode")
	}
	k.apply(manifest("v3", kubecluster.NeverReadyImage))
	k.waitRollout("batch", "v3 aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	waitReplicas(t, ns, "batch", "v2", 3)
}

// The manifests in deploy/kubernetes start the binaries with flags they
// have: a renamed flag fails here rather than in a user's cluster.
func TestDeployManifestFlags(t *testing.T) {
	setup(t)
	for file, bin := range map[string]string{"control-plane.yaml": harness.Server, "agent.yaml": harness.Agent} {
		data, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "kubernetes", file))
		if err != nil {
			t.Fatal(err)
		}
		var args []string
		for _, doc := range strings.Split(string(data), "\n---") {
			var obj struct {
				Spec struct {
					Template corev1.PodTemplateSpec `json:"template"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			for _, c := range obj.Spec.Template.Spec.Containers {
				args = append(args, c.Args...)
			}
		}
		if len(args) == 0 {
			t.Fatalf("%s starts no container with arguments", file)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, _ := exec.CommandContext(ctx, bins.Path(bin), "-h").CombinedOutput()
		cancel()
		for _, a := range args {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !strings.Contains(string(out), "-"+name+" ") && !strings.Contains(string(out), "-"+name+"\n") {
				t.Errorf("%s: %s has no flag --%s", file, bin, name)
			}
		}
	}
}
