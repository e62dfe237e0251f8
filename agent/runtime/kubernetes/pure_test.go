package kubernetes

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

func dr(track cutoverv1.Track, name string, weight int32) *cutoverv1.DesiredRevision {
	return &cutoverv1.DesiredRevision{Track: track, Weight: weight, Revision: &cutoverv1.Revision{Name: name, Image: "app:" + name}}
}

func TestPlanColours(t *testing.T) {
	const (
		stable   = cutoverv1.Track_TRACK_STABLE
		preview  = cutoverv1.Track_TRACK_PREVIEW
		previous = cutoverv1.Track_TRACK_PREVIOUS
	)
	for _, tt := range []struct {
		name   string
		active string
		runs   map[string]string // colour -> revision it runs ("" exists but runs something else)
		revs   []*cutoverv1.DesiredRevision
		want   map[string]string // colour -> revision
	}{
		{"nothing yet", "", nil, []*cutoverv1.DesiredRevision{dr(stable, "v1", 100)}, map[string]string{"blue": "v1"}},
		{"adopt the seed", "blue", map[string]string{"blue": "v1", "green": "v2"},
			[]*cutoverv1.DesiredRevision{dr(stable, "v1", 100)}, map[string]string{"blue": "v1"}},
		{"preview on the idle colour", "blue", map[string]string{"blue": "v1", "green": "v0"},
			[]*cutoverv1.DesiredRevision{dr(stable, "v1", 100), dr(preview, "v2", 0)}, map[string]string{"blue": "v1", "green": "v2"}},
		{"switched: previous kept warm", "blue", map[string]string{"blue": "v1", "green": "v2"},
			[]*cutoverv1.DesiredRevision{dr(stable, "v2", 100), dr(previous, "v1", 0)}, map[string]string{"blue": "v1", "green": "v2"}},
		{"abort after the switch goes back", "green", map[string]string{"blue": "v1", "green": "v2"},
			[]*cutoverv1.DesiredRevision{dr(stable, "v1", 100)}, map[string]string{"blue": "v1"}},
		{"a new stable never lands on the active colour", "blue", map[string]string{"blue": "v1", "green": "v0"},
			[]*cutoverv1.DesiredRevision{dr(stable, "v3", 100)}, map[string]string{"green": "v3"}},
		{"a third revision evicts previous", "green", map[string]string{"blue": "v1", "green": "v2"},
			[]*cutoverv1.DesiredRevision{dr(stable, "v2", 100), dr(preview, "v3", 0), dr(previous, "v1", 0)}, map[string]string{"green": "v2", "blue": "v3"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := planColours(tt.active,
				func(c string) bool { _, ok := tt.runs[c]; return ok },
				func(c string, rev *cutoverv1.Revision) bool { return tt.runs[c] == rev.GetName() },
				tt.revs)
			got := map[string]string{}
			for c, d := range plan {
				got[c] = d.GetRevision().GetName()
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReplicaSplit(t *testing.T) {
	for _, tt := range []struct{ n, w, stable, canary, share int32 }{
		{3, 0, 3, 0, 0}, {3, 10, 3, 1, 25}, {3, 50, 2, 2, 50}, {3, 80, 1, 3, 75}, {3, 100, 0, 3, 100},
		{10, 20, 8, 2, 20}, {10, 25, 8, 3, 27}, {1, 50, 1, 1, 50}, {4, 1, 4, 1, 20},
	} {
		s, c := ReplicaSplit(tt.n, tt.w)
		if s != tt.stable || c != tt.canary {
			t.Errorf("ReplicaSplit(%d, %d) = %d+%d, want %d+%d", tt.n, tt.w, s, c, tt.stable, tt.canary)
		}
		if _, share := replicaWeights(s, c); share != tt.share {
			t.Errorf("share of %d+%d = %d%%, want %d%%", s, c, share, tt.share)
		}
		if s+c < tt.n {
			t.Errorf("ReplicaSplit(%d, %d): capacity %d below %d", tt.n, tt.w, s+c, tt.n)
		}
	}
}

func TestRouteWeights(t *testing.T) {
	route := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "r", "namespace": "shop"},
		"spec": map[string]any{"rules": []any{
			map[string]any{"matches": []any{map[string]any{"path": map[string]any{"value": "/admin"}}},
				"backendRefs": []any{map[string]any{"name": "admin", "port": int64(80)}}},
			map[string]any{"backendRefs": []any{map[string]any{"name": "web-stable", "port": int64(80)}}},
		}},
	}}
	if s, c, found := RouteWeights(route, "shop", "web-stable", "web-canary"); !found || s != 100 || c != 0 {
		t.Fatalf("before: %d/%d found=%v, want 100/0", s, c, found)
	}
	if err := SetRouteWeights(route, "shop", "web-stable", "web-canary", 80, 75, 25); err != nil {
		t.Fatal(err)
	}
	if s, c, _ := RouteWeights(route, "shop", "web-stable", "web-canary"); s != 75 || c != 25 {
		t.Fatalf("after: %d/%d, want 75/25", s, c)
	}
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	admin := rules[0].(map[string]any)["backendRefs"].([]any)
	if len(admin) != 1 || admin[0].(map[string]any)["weight"] != nil {
		t.Errorf("a rule without the app's Services was changed: %v", admin)
	}
	refs := rules[1].(map[string]any)["backendRefs"].([]any)
	if len(refs) != 2 || refs[1].(map[string]any)["name"] != "web-canary" || refs[1].(map[string]any)["port"] != int64(80) {
		t.Errorf("canary backendRef not added: %v", refs)
	}
	other := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"rules": []any{
		map[string]any{"backendRefs": []any{map[string]any{"name": "x"}}}}}}}
	if err := SetRouteWeights(other, "shop", "web-stable", "web-canary", 80, 100, 0); err == nil {
		t.Error("a route without the app's Services was accepted")
	}
}

func TestAddresses(t *testing.T) {
	yes, no := true, false
	port, name := int32(8080), "http"
	ep := func(pod, ip string, ready, terminating *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ip}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod},
			Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating}}
	}
	slices := []*discoveryv1.EndpointSlice{
		{Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}}, Endpoints: []discoveryv1.Endpoint{
			ep("a", "10.0.0.1", &yes, nil), ep("b", "10.0.0.2", &no, nil), ep("c", "10.0.0.3", &yes, &yes),
			ep("d", "10.0.0.4", nil, nil), ep("unknown", "10.0.0.5", &yes, nil),
			{Addresses: []string{"10.0.0.6"}}, // no pod behind it
		}},
		{Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}}, Endpoints: []discoveryv1.Endpoint{
			ep("a", "10.0.0.1", &yes, nil), ep("e", "fd00::7", &yes, nil), // seen twice: once
		}},
		{Endpoints: []discoveryv1.Endpoint{ep("f", "10.0.0.8", &yes, nil)}}, // no port
	}
	revs := map[string]string{"a": "v1", "b": "v1", "c": "v1", "d": "v2", "e": "v2", "f": "v2"}
	got := Addresses(slices, "http", func(pod string) string { return revs[pod] })
	want := map[string][]string{"v1": {"10.0.0.1:8080"}, "v2": {"10.0.0.4:8080", "[fd00::7]:8080"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Addresses = %v, want %v", got, want)
	}
}

// An abort sent stable back to blue, which is still starting, and a new
// rollout arrives: its preview must not land on green, which has the
// traffic.
func TestPlanColoursPreviewNeverOnActive(t *testing.T) {
	runs := map[string]string{"blue": "", "green": "v2"}
	plan := planColours("green",
		func(c string) bool { _, ok := runs[c]; return ok },
		func(c string, rev *cutoverv1.Revision) bool { return runs[c] == rev.GetName() },
		[]*cutoverv1.DesiredRevision{dr(cutoverv1.Track_TRACK_STABLE, "v1", 100), dr(cutoverv1.Track_TRACK_PREVIEW, "v3", 0)})
	if plan["green"] != nil {
		t.Errorf("green (active) got %s", plan["green"].GetRevision().GetName())
	}
	if plan["blue"].GetRevision().GetName() != "v1" {
		t.Errorf("blue got %v, want v1", plan["blue"])
	}
}

// Mirroring needs the agent's proxy: a shadow, whether the strategy or a
// canary's shadow step, is refused with a reason; a canary is not.
func TestRefuseMirror(t *testing.T) {
	const (
		stable = cutoverv1.Track_TRACK_STABLE
		shadow = cutoverv1.Track_TRACK_SHADOW
		canary = cutoverv1.Track_TRACK_CANARY
	)
	for _, tt := range []struct {
		name string
		d    *cutoverv1.DesiredApp
		want error
	}{
		{"shadow strategy", &cutoverv1.DesiredApp{Strategy: "shadow", MirrorPercent: 20,
			Revisions: []*cutoverv1.DesiredRevision{dr(stable, "v1", 100), dr(shadow, "v2", 0)}}, errShadowStrategy},
		{"canary shadow step", &cutoverv1.DesiredApp{Strategy: "canary", MirrorPercent: 100,
			Revisions: []*cutoverv1.DesiredRevision{dr(stable, "v1", 100), dr(shadow, "v2", 0)}}, errShadowStep},
		{"canary after the shadow", &cutoverv1.DesiredApp{Strategy: "canary",
			Revisions: []*cutoverv1.DesiredRevision{dr(stable, "v1", 99), dr(canary, "v2", 1)}}, nil},
	} {
		if got := refuseMirror(tt.d); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestImagePinnedBySha256(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, tc := range []struct{ image, sha, want string }{
		{"example/web:1", "", "example/web:1"},
		{"example/web:1", strings.ToUpper(sum), "example/web:1@sha256:" + sum},
		{"registry:5000/web", sum, "registry:5000/web@sha256:" + sum},
		{"example/web@sha256:" + sum, sum, "example/web@sha256:" + sum},
	} {
		if got := Image(&cutoverv1.Revision{Image: tc.image, Sha256: tc.sha}); got != tc.want {
			t.Errorf("Image(%s, %q) = %s, want %s", tc.image, tc.sha, got, tc.want)
		}
	}
	// With a command too, sha256 is the local binary's: the image runs as given.
	if got := Image(&cutoverv1.Revision{Image: "example/web:1", Command: "./web", Sha256: sum}); got != "example/web:1" {
		t.Errorf("Image of a mixed revision = %s, want the image as given", got)
	}
}
