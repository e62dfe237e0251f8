package kubecluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const podReadyYAML = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.status.phase'
      operator: 'In'
      values: ['Pending']
  next:
    statusTemplate: |
      phase: Running
`

func TestWriteKwokConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pod-ready.yaml"), []byte(podReadyYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "kwok.yaml")
	if err := writeKwokConfig(dir, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "NEVER_READY_IMAGE") {
		t.Errorf("placeholder left in the config:\n%s", b)
	}
	docs, err := decodeDocs(b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"pod-ready": "NotIn", "cutover-pod-never-ready": "In"}
	if len(docs) != len(want) {
		t.Fatalf("%d stages, want %d:\n%s", len(docs), len(want), b)
	}
	for _, doc := range docs {
		var st struct {
			Metadata struct{ Name string }
			Spec     struct {
				Selector struct {
					MatchExpressions []struct {
						Key, Operator string
						Values        []string
					}
				}
			}
		}
		if err := json.Unmarshal(doc, &st); err != nil {
			t.Fatal(err)
		}
		op, ok := want[st.Metadata.Name]
		if !ok {
			t.Errorf("unexpected stage %q", st.Metadata.Name)
			continue
		}
		found := false
		for _, e := range st.Spec.Selector.MatchExpressions {
			if e.Key == ".spec.containers.[0].image" {
				found = e.Operator == op && len(e.Values) == 1 && e.Values[0] == NeverReadyImage
			}
		}
		if !found {
			t.Errorf("stage %s: no selector %q %s [%s]: %+v", st.Metadata.Name, ".spec.containers.[0].image", op, NeverReadyImage, st.Spec.Selector)
		}
	}
}

func TestWriteKwokConfigNeedsPodReady(t *testing.T) {
	if err := writeKwokConfig(t.TempDir(), filepath.Join(t.TempDir(), "kwok.yaml")); err == nil {
		t.Fatal("no error without a pod-ready stage")
	}
}

func TestDecodeObjects(t *testing.T) {
	objs, err := decodeObjects([]byte(`---
# only a comment
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: b}
---
{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}, "spec": {"n": 3}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.GetKind()+"/"+o.GetName())
	}
	if got, want := strings.Join(names, " "), "ConfigMap/a ConfigMap/b Namespace/c"; got != want {
		t.Errorf("objects %s, want %s", got, want)
	}
	// Integers stay integers, as the API server expects.
	if n, ok := objs[2].Object["spec"].(map[string]any)["n"].(int64); !ok || n != 3 {
		t.Errorf("spec.n = %#v, want int64 3", objs[2].Object["spec"].(map[string]any)["n"])
	}
}
