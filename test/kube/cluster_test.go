package kube_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cutover-dev/cutover/test/kubecluster"
)

// cluster is the one control plane every test of this package shares; each
// test works in namespaces of its own.
var cluster *kubecluster.Cluster

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cutover-kube-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := kubecluster.Start(ctx, kubecluster.Options{Dir: dir, Log: log, GatewayAPI: true})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start the Kubernetes test cluster: %v\n", err)
		return 1
	}
	cluster = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop the Kubernetes test cluster: %v\n", err)
		code = 1
	}
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "Kubernetes test cluster logs kept in %s\n", dir)
	}
	return code
}

const appManifests = `apiVersion: v1
kind: Namespace
metadata:
  name: smoke
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 3
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: app
        image: example/app:1
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  replicas: 2
  selector:
    matchLabels: {app: stuck}
  template:
    metadata:
      labels: {app: stuck}
    spec:
      containers:
      - name: app
        image: ` + kubecluster.NeverReadyImage + `
`

func TestClusterWorks(t *testing.T) {
	ctx := t.Context()
	const ns = "smoke"
	begin := time.Now()
	if err := cluster.Apply(ctx, []byte(appManifests), ns); err != nil {
		t.Fatal(err)
	}

	// Given a Deployment of an ordinary image, its pods all become Ready.
	waitPods(ctx, t, ns, "app=app", 3, "Ready", podReady)
	t.Logf("3 pods Ready %s after apply", time.Since(begin).Round(time.Millisecond))

	// Given one of NeverReadyImage, its pods run but never become Ready.
	pods := waitPods(ctx, t, ns, "app=stuck", 2, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	for _, p := range pods {
		if podReady(&p) {
			t.Errorf("pod %s of %s is Ready", p.Name, kubecluster.NeverReadyImage)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running == nil || cs.Ready {
				t.Errorf("pod %s container %s: running %v, ready %v; want running, not ready", p.Name, cs.Name, cs.State.Running != nil, cs.Ready)
			}
		}
	}
	d, err := cluster.Clientset().AppsV1().Deployments(ns).Get(ctx, "stuck", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.ReadyReplicas != 0 {
		t.Errorf("deployment stuck has %d ready replicas, want 0", d.Status.ReadyReplicas)
	}

	// The Gateway API CRDs are served.
	route := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "HTTPRoute",
		"metadata":   map[string]any{"name": "app"},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "gateway"}},
			"rules": []any{map[string]any{
				"backendRefs": []any{map[string]any{"name": "app", "port": int64(80), "weight": int64(100)}},
			}},
		},
	}}
	httpRoutes := schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
	if _, err := cluster.Dynamic().Resource(httpRoutes).Namespace(ns).Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create HTTPRoute: %v", err)
	}
}

func TestServiceAccountKubeconfig(t *testing.T) {
	ctx := t.Context()
	const ns = "sa-token"
	manifests := `apiVersion: v1
kind: Namespace
metadata:
  name: sa-token
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: agent
`
	if err := cluster.Apply(ctx, []byte(manifests), ns); err != nil {
		t.Fatal(err)
	}
	tok, err := cluster.ServiceAccountToken(ctx, ns, "agent", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cluster.WriteKubeconfig(path, tok); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Status.UserInfo.Username, "system:serviceaccount:sa-token:agent"; got != want {
		t.Errorf("token authenticates as %q, want %q", got, want)
	}
	// Without a role binding the ServiceAccount may do nothing.
	if _, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("an unbound ServiceAccount could list pods")
	}
}

// waitPods polls until n pods match selector and all satisfy cond, and
// returns them.
func waitPods(ctx context.Context, t *testing.T, ns, selector string, n int, what string, cond func(*corev1.Pod) bool) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := cluster.Clientset().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		pods = l.Items
		if len(pods) != n {
			return false, nil
		}
		for i := range pods {
			if !cond(&pods[i]) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("waiting for %d pods %s %s in %s: %v; pods: %v", n, selector, what, ns, err, summary(pods))
	}
	return pods
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func summary(pods []corev1.Pod) []string {
	var s []string
	for _, p := range pods {
		s = append(s, fmt.Sprintf("%s node=%q phase=%s ready=%v", p.Name, p.Spec.NodeName, p.Status.Phase, podReady(&p)))
	}
	return s
}
