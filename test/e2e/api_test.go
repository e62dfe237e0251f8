package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// The CLI and the REST API show the same rollouts, and a restarted control
// plane still has them (and its clusters).
func TestRolloutsSurviveServerRestartAndMatchAcrossCLIAndREST(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")

	if err := f.env.Server.Stop(20 * time.Second); err != nil {
		t.Fatalf("SIGTERM cutover-server: %v", err)
	}
	if err := f.env.StartServer(ctx); err != nil {
		t.Fatal(err)
	}

	viaCLI := cliRollouts(ctx, t, f.env)
	viaREST := restRollouts(ctx, t, f.env)
	if strings.Join(viaCLI, ",") != "demo/v1/ROLLOUT_PHASE_HEALTHY" {
		t.Errorf("cutover get rollouts -o json after restart: %v", viaCLI)
	}
	if strings.Join(viaREST, ",") != strings.Join(viaCLI, ",") {
		t.Errorf("REST shows %v, CLI shows %v", viaREST, viaCLI)
	}
	table, _, code, err := f.env.CLI(ctx, "", "get", "rollouts")
	if err != nil || code != 0 || !strings.Contains(table, "demo") || !strings.Contains(table, "Healthy") {
		t.Errorf("cutover get rollouts: code %d err %v\n%s", code, err, table)
	}

	// The agents reconnect by themselves; the clusters were never forgotten.
	if err := harness.Poll(ctx, 50*time.Millisecond, "both clusters reconnected", func() (bool, error) {
		out, _, _, err := f.env.CLI(ctx, "", "clusters", "-o", "json")
		if err != nil {
			return false, err
		}
		var resp struct {
			Clusters []struct{ Name, Status string }
		}
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			return false, err
		}
		connected := 0
		for _, c := range resp.Clusters {
			if c.Status == "CLUSTER_STATUS_CONNECTED" {
				connected++
			}
		}
		return len(resp.Clusters) == 2 && connected == 2, nil
	}); err != nil {
		t.Error(err)
	}
	// And the rollout keeps working: a new canary goes out after the restart.
	if _, err := f.env.Apply(ctx, f.app("v2", "setWeight: 40", "pause: {}").Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "at 40%", harness.AtStep(0, 1))
	f.expectShare(ctx, "us-east", "v2", 0.4, tolerance)
}

func cliRollouts(ctx context.Context, t *testing.T, env *harness.Env) []string {
	t.Helper()
	out, stderr, code, err := env.CLI(ctx, "", "get", "rollouts", "-o", "json")
	if err != nil || code != 0 {
		t.Fatalf("cutover get rollouts -o json: code %d err %v %s", code, err, stderr)
	}
	return summarize(t, []byte(out))
}

func restRollouts(ctx context.Context, t *testing.T, env *harness.Env) []string {
	t.Helper()
	code, body, err := env.HTTP(ctx, http.MethodGet, "/v1/rollouts", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /v1/rollouts: %d %v %s", code, err, body)
	}
	return summarize(t, body)
}

// summarize reduces a ListRolloutsResponse in JSON to name/revision/phase.
func summarize(t *testing.T, body []byte) []string {
	t.Helper()
	var resp struct {
		Rollouts []struct {
			Name string `json:"name"`
			Spec struct {
				Revision struct {
					Name string `json:"name"`
				} `json:"revision"`
			} `json:"spec"`
			Status struct {
				Phase string `json:"phase"`
			} `json:"status"`
		} `json:"rollouts"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	var out []string
	for _, r := range resp.Rollouts {
		out = append(out, r.Name+"/"+r.Spec.Revision.Name+"/"+r.Status.Phase)
	}
	sort.Strings(out)
	return out
}

// Bad manifests are refused with a message naming the field, the same over
// gRPC (CLI: one line, exit 1) and REST (400), and nothing is stored.
func TestBadManifestsAreRejectedWithFieldPathAndNothingStored(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	good := f.app("v2", "setWeight: 10", "pause: {}", "setWeight: 50")
	before, err := f.env.Get(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}

	unknownCluster := good
	unknownCluster.Waves = [][]string{{"us-east", "ap-south"}, {"eu-west"}}
	cases := []struct {
		name, manifest, want string
	}{
		{"unknown field", strings.Replace(good.Manifest(), "    canary:\n", "    canary:\n      bogus: 1\n", 1),
			"spec.strategy.canary.bogus: unknown field"},
		{"weight of 140", f.app("v2", "setWeight: 10", "pause: {}", "setWeight: 140").Manifest(),
			"spec.strategy.canary.steps[2].setWeight: must be between 0 and 100, got 140"},
		{"empty step list", f.app("v2").Manifest(),
			"spec.strategy.canary.steps: must not be empty"},
		{"unknown cluster", unknownCluster.Manifest(),
			`spec.targets.waves[0].clusters[1]: unknown cluster "ap-south"`},
		{"malformed YAML", "apiVersion: cutover.dev/v1\nkind: Rollout\nspec: [unclosed\n",
			"manifest: malformed YAML"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// gRPC
			_, err := f.env.Apply(ctx, tc.manifest)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Errorf("gRPC: %v, want InvalidArgument containing %q", err, tc.want)
			}
			// CLI
			out, stderr, code, err := f.env.CLI(ctx, tc.manifest, "apply", "-f", "-")
			if err != nil || code != 1 || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("CLI: code %d err %v stdout %q stderr %q, want exit 1 and one line containing %q", code, err, out, stderr, tc.want)
			}
			// REST
			body, _ := json.Marshal(map[string]string{"manifest": tc.manifest})
			status, resp, err := f.env.HTTP(ctx, http.MethodPost, "/v1/rollouts", string(body))
			if err != nil || status != http.StatusBadRequest || !strings.Contains(string(resp), jsonEscape(tc.want)) {
				t.Errorf("REST: %d %v %s, want 400 containing %q", status, err, resp, tc.want)
			}
		})
	}
	after, err := f.env.Get(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if after.GetStatus().GetRolloutNumber() != before.GetStatus().GetRolloutNumber() ||
		after.GetSpec().GetRevision().GetName() != "v1" {
		t.Errorf("a rejected manifest changed the stored rollout: revision %s, rollout #%d (was #%d)",
			after.GetSpec().GetRevision().GetName(), after.GetStatus().GetRolloutNumber(), before.GetStatus().GetRolloutNumber())
	}
	resp, err := f.env.Rollouts.ListRollouts(ctx, &cutoverv1.ListRolloutsRequest{})
	if err != nil || len(resp.GetRollouts()) != 1 {
		t.Errorf("rollouts after rejected manifests: %v %v", resp.GetRollouts(), err)
	}
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}

// The HTTP port serves health, readiness, Prometheus metrics with the
// cutover_ prefix and the OpenAPI document of the REST API.
func TestHTTPEndpoints(t *testing.T) {
	env := harness.TestEnv(t, bins, regions[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for path, want := range map[string]string{
		"/healthz":      "ok",
		"/readyz":       "ok",
		"/metrics":      "cutover_agents_connected 1",
		"/openapi.json": `"/v1/rollouts/{name}:promote"`,
	} {
		code, body, err := env.HTTP(ctx, http.MethodGet, path, "")
		if err != nil || code != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %v, want 200 containing %q", path, code, err, want)
		}
	}
	code, body, err := env.HTTP(ctx, http.MethodGet, "/v1/clusters", "")
	if err != nil || code != http.StatusOK || !strings.Contains(string(body), `"us-east"`) {
		t.Errorf("GET /v1/clusters: %d %v %s", code, err, body)
	}
	code, _, err = env.HTTP(ctx, http.MethodGet, "/v1/rollouts/nothing", "")
	if err != nil || code != http.StatusNotFound {
		t.Errorf("GET an unknown rollout: %d %v, want 404", code, err)
	}
}
