package kubecluster

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// NeverReadyImage is the container image of pods that run but never become
// Ready: a pod whose first container has exactly this image goes to phase
// Running with Ready=False and stays there. Every other pod is Running and
// Ready moments after it is scheduled.
const NeverReadyImage = "cutover.test/never-ready:1"

// NodeName is the cluster's one (fake) node, managed by kwok.
const NodeName = "kwok-node-0"

// kwokNodeAnnotation marks the nodes kwok manages.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

//go:embed never-ready-stage.yaml
var neverReadyStage string

// podReadyStage is the name of kwok's stage that makes pending pods ready.
const podReadyStage = "pod-ready"

// writeKwokConfig writes kwok's --config: every Stage of stagesDir, with the
// pod-ready stage restricted to pods not running NeverReadyImage, plus the
// never-ready stage for those.
func writeKwokConfig(stagesDir, path string) error {
	files, err := filepath.Glob(filepath.Join(stagesDir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("kwok stages: %w", err)
	}
	sort.Strings(files)
	var docs [][]byte
	patched := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("kwok stages: %w", err)
		}
		raws, err := decodeDocs(b)
		if err != nil {
			return fmt.Errorf("kwok stage %s: %w", f, err)
		}
		for _, raw := range raws {
			var obj map[string]any
			if err := json.Unmarshal(raw, &obj); err != nil {
				return fmt.Errorf("kwok stage %s: %w", f, err)
			}
			if obj["kind"] == "Stage" && nestedString(obj, "metadata", "name") == podReadyStage {
				if err := excludeNeverReady(obj); err != nil {
					return fmt.Errorf("kwok stage %s: %w", f, err)
				}
				patched = true
			}
			doc, err := yaml.Marshal(obj)
			if err != nil {
				return fmt.Errorf("kwok stage %s: %w", f, err)
			}
			docs = append(docs, doc)
		}
	}
	if !patched {
		return fmt.Errorf("kwok stages in %s: no %q stage to exclude %s from", stagesDir, podReadyStage, NeverReadyImage)
	}
	docs = append(docs, []byte(strings.ReplaceAll(neverReadyStage, "NEVER_READY_IMAGE", NeverReadyImage)))
	if err := os.WriteFile(path, bytes.Join(docs, []byte("\n---\n")), 0o644); err != nil {
		return fmt.Errorf("write kwok config: %w", err)
	}
	return nil
}

// excludeNeverReady adds "first container image NotIn [NeverReadyImage]" to
// a stage's selector.
func excludeNeverReady(stage map[string]any) error {
	spec, _ := stage["spec"].(map[string]any)
	sel, _ := spec["selector"].(map[string]any)
	if sel == nil {
		return errors.New("pod-ready stage has no selector")
	}
	exprs, _ := sel["matchExpressions"].([]any)
	sel["matchExpressions"] = append(exprs, map[string]any{
		"key":      ".spec.containers.[0].image",
		"operator": "NotIn",
		"values":   []any{NeverReadyImage},
	})
	return nil
}

// decodeDocs splits a multi-document YAML (or JSON) stream into one JSON
// document per object, skipping empty documents.
func decodeDocs(b []byte) ([]json.RawMessage, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []json.RawMessage
	for n := 1; ; n++ {
		var doc json.RawMessage
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode YAML document %d: %w", n, err)
		}
		if d := bytes.TrimSpace(doc); len(d) > 0 && !bytes.Equal(d, []byte("null")) && !bytes.Equal(d, []byte("{}")) {
			out = append(out, doc)
		}
	}
}

func nestedString(obj map[string]any, fields ...string) string {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[f]
	}
	s, _ := cur.(string)
	return s
}
