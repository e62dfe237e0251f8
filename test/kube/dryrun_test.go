package kube_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cutover-dev/cutover/agent/runtime"
	agentkube "github.com/cutover-dev/cutover/agent/runtime/kubernetes"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// dryRunPlacer is the kubernetes runtime as the agent runs it, with the
// token of deploy/kubernetes's ServiceAccount, so its RBAC is what is
// tested.
func dryRunPlacer(t *testing.T, ctx context.Context) *agentkube.Placer {
	t.Helper()
	setup(t)
	token, err := cluster.ServiceAccountToken(ctx, "cutover-system", "cutover-agent", 0)
	if err != nil {
		t.Fatalf("agent token: %v", err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "agent.kubeconfig")
	if err := cluster.WriteKubeconfig(kubeconfig, token); err != nil {
		t.Fatal(err)
	}
	cfg, err := agentkube.Config(kubeconfig, 50, 100)
	if err != nil {
		t.Fatal(err)
	}
	p, err := agentkube.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func dryRunOf(ns string, rev *cutoverv1.Revision, extra int32, requirePinned bool) *cutoverv1.DryRun {
	return &cutoverv1.DryRun{
		Desired: &cutoverv1.DesiredApp{
			App: "web", Generation: 1, Strategy: "canary",
			Kubernetes: &cutoverv1.KubernetesSpec{Namespace: ns},
			Revisions:  []*cutoverv1.DesiredRevision{{Track: cutoverv1.Track_TRACK_STABLE, Revision: rev, Weight: 100}},
		},
		ExtraInstances: extra,
		RequirePinned:  requirePinned,
	}
}

// check returns the result named name.
func check(t *testing.T, results []*cutoverv1.CheckResult, name string) *cutoverv1.CheckResult {
	t.Helper()
	for _, r := range results {
		if r.GetName() == name {
			if r.GetKind() != runtime.CheckKind || r.GetCluster() != clusterName {
				t.Errorf("check %q: kind %q cluster %q", name, r.GetKind(), r.GetCluster())
			}
			return r
		}
	}
	t.Fatalf("no check %q in %v", name, results)
	return nil
}

func TestDryRunKubernetes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	const ns = "dryrun"
	createNamespace(t, ns)
	p := dryRunPlacer(t, ctx)
	digest := strings.Repeat("0a", 32)

	// Given a good, pinned spec in a namespace without quotas, every check
	// passes, and nothing is created.
	good := &cutoverv1.Revision{Name: "v1", Image: "example/web:1", Sha256: digest, Instances: 2}
	got := p.DryRun(ctx, clusterName, dryRunOf(ns, good, 2, true), runtime.Held{})
	for _, name := range []string{agentkube.CheckSpecAccepted, agentkube.CheckPinned, agentkube.CheckCapacity} {
		if c := check(t, got, name); !c.GetPassed() {
			t.Errorf("good spec: %q failed: %s", name, c.GetMessage())
		}
	}
	if msg := check(t, got, agentkube.CheckSpecAccepted).GetMessage(); !strings.Contains(msg, "deployment/"+ns+"/web") {
		t.Errorf("spec accepted says %q, want it to name deployment %s/web", msg, ns)
	}
	if msg := check(t, got, agentkube.CheckPinned).GetMessage(); !strings.Contains(msg, "example/web:1@sha256:"+digest) {
		t.Errorf("pinned says %q, want the image it will run by digest", msg)
	}
	if msg := check(t, got, agentkube.CheckCapacity).GetMessage(); !strings.Contains(msg, "no ResourceQuota") {
		t.Errorf("capacity says %q, want no ResourceQuota", msg)
	}
	deps, err := cluster.Clientset().AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := cluster.Clientset().CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(deps.Items)+len(svcs.Items) != 0 {
		t.Errorf("the dry run created %d deployments and %d services", len(deps.Items), len(svcs.Items))
	}

	// An image without a digest, with requirePinned, fails "pinned".
	got = p.DryRun(ctx, clusterName, dryRunOf(ns, &cutoverv1.Revision{Name: "v1", Image: "example/web:1"}, 1, true), runtime.Held{})
	if c := check(t, got, agentkube.CheckPinned); c.GetPassed() || !strings.Contains(c.GetMessage(), "example/web:1 is not pinned") {
		t.Errorf("unpinned image with requirePinned: passed %v, %q", c.GetPassed(), c.GetMessage())
	}
	// One that carries its digest passes.
	got = p.DryRun(ctx, clusterName, dryRunOf(ns, &cutoverv1.Revision{Name: "v1", Image: "example/web@sha256:" + digest}, 1, true), runtime.Held{})
	if c := check(t, got, agentkube.CheckPinned); !c.GetPassed() {
		t.Errorf("image with its digest: %s", c.GetMessage())
	}

	// What the API server refuses fails "spec accepted" with its reason.
	bad := dryRunOf(ns, good, 1, false)
	bad.Desired.Kubernetes.ContainerPort = 70000
	got = p.DryRun(ctx, clusterName, bad, runtime.Held{})
	if c := check(t, got, agentkube.CheckSpecAccepted); c.GetPassed() || !strings.Contains(c.GetMessage(), "containerPort") {
		t.Errorf("container port 70000: passed %v, %q", c.GetPassed(), c.GetMessage())
	}

	// A ResourceQuota that leaves no room fails "capacity".
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "small", Namespace: ns},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourcePods:           resource.MustParse("1"),
			corev1.ResourceRequestsMemory: resource.MustParse("1Gi"),
		}},
	}
	if _, err := cluster.Clientset().CoreV1().ResourceQuotas(ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got = p.DryRun(ctx, clusterName, dryRunOf(ns, good, 2, false), runtime.Held{})
	if c := check(t, got, agentkube.CheckCapacity); c.GetPassed() || !strings.Contains(c.GetMessage(), "resourcequota small: pods") || !strings.Contains(c.GetMessage(), "exceeds hard 1") {
		t.Errorf("2 more pods under a quota of 1: passed %v, %q", c.GetPassed(), c.GetMessage())
	}
	got = p.DryRun(ctx, clusterName, dryRunOf(ns, good, 1, false), runtime.Held{})
	if c := check(t, got, agentkube.CheckCapacity); !c.GetPassed() {
		t.Errorf("1 more pod under a quota of 1: %s", c.GetMessage())
	}
}
