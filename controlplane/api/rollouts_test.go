package api_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cutover-dev/cutover/controlplane/api"
	"github.com/cutover-dev/cutover/controlplane/controller"
	"github.com/cutover-dev/cutover/internal/auth"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
)

// everyCluster is a registry that has seen every cluster.
type everyCluster struct{}

func (everyCluster) Known(string) bool              { return true }
func (everyCluster) Clusters() []*cutoverv1.Cluster { return nil }

func rolloutsAPI(t *testing.T) *api.Rollouts {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctrl := controller.New(db, nopPublisher{}, time.Now, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = db.Close()
	})
	return api.NewRollouts(ctrl, everyCluster{})
}

const secretHookManifest = `apiVersion: cutover.dev/v1
kind: Rollout
metadata: {name: web}
spec:
  revision: {name: v1, command: /bin/true}
  endpoint: {listen: "127.0.0.1:9"}
  targets: {waves: [{clusters: [eu-1]}]}
  strategy: {canary: {steps: [{setWeight: 50}]}}
  hooks:
    preRollout:
      - {name: scan, http: {url: "https://scanner.example/v1", headers: {Authorization: "Bearer ${CUTOVER_HOOK_SCAN_TOKEN}"}}}
`

// Hook secrets leave the control plane for whatever URL a hook names: a
// deployer may not reference them, an admin of the app may (and a policy,
// whose hooks are added after this check).
func TestHookSecretsNeedAnAdmin(t *testing.T) {
	s := rolloutsAPI(t)
	as := func(role auth.Role) context.Context {
		return auth.WithPrincipal(t.Context(), &auth.Principal{Subject: "p-" + string(role),
			Grants: []auth.Grant{{Role: role, Apps: []string{"web"}, Clusters: []string{"*"}}}})
	}
	_, err := s.ApplyRollout(as(auth.RoleDeployer), &cutoverv1.ApplyRolloutRequest{Manifest: secretHookManifest, DryRun: true})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "spec.hooks.preRollout[0].http.headers.Authorization") {
		t.Fatalf("a deployer's secret reference: %v, want PermissionDenied naming the field", err)
	}
	if _, err := s.ApplyRollout(as(auth.RoleAdmin), &cutoverv1.ApplyRolloutRequest{Manifest: secretHookManifest, DryRun: true}); err != nil {
		t.Fatalf("an admin's secret reference: %v", err)
	}
	plain := strings.Replace(secretHookManifest, "Bearer ${CUTOVER_HOOK_SCAN_TOKEN}", "Bearer public", 1)
	if _, err := s.ApplyRollout(as(auth.RoleDeployer), &cutoverv1.ApplyRolloutRequest{Manifest: plain, DryRun: true}); err != nil {
		t.Fatalf("a deployer's hook without secrets: %v", err)
	}
}
