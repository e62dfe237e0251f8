package api

import (
	"time"

	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cutover-dev/cutover/controlplane/controller"
	"github.com/cutover-dev/cutover/internal/auth"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/internal/spec"
)

// ClusterRegistry tells which clusters exist.
type ClusterRegistry interface {
	// Known reports whether an agent has ever connected as cluster. Safe for
	// concurrent use.
	Known(cluster string) bool
	// Clusters returns every known cluster. Safe for concurrent use.
	Clusters() []*cutoverv1.Cluster
}

// PolicyResolver turns an applied spec into the effective spec under the
// release policy that applies to the app (policy.Set).
type PolicyResolver interface {
	// Resolve returns the effective spec of app name, or an error wrapping
	// policy.ErrRefused. It never modifies spec; safe for concurrent use.
	Resolve(name string, spec *cutoverv1.RolloutSpec) (*cutoverv1.RolloutSpec, error)
}

// Rollouts implements RolloutService.
type Rollouts struct {
	cutoverv1.UnimplementedRolloutServiceServer
	ctrl     *controller.Controller
	clusters ClusterRegistry
	policies PolicyResolver // nil: specs are stored as applied
}

// NewRollouts returns the RolloutService handlers.
func NewRollouts(ctrl *controller.Controller, clusters ClusterRegistry) *Rollouts {
	return &Rollouts{ctrl: ctrl, clusters: clusters}
}

// WithPolicies makes every applied spec go through p before it is
// validated and stored.
func (s *Rollouts) WithPolicies(p PolicyResolver) *Rollouts {
	s.policies = p
	return s
}

// ApplyRollout parses and validates a manifest, merges the release policy
// of its app into it, validates the result and hands it to the engine.
// Nothing is stored unless the whole manifest is valid and the policy
// allows it; what is stored is the effective spec, so retry and undo,
// which reuse the stored spec, stay under the policy.
func (s *Rollouts) ApplyRollout(ctx context.Context, req *cutoverv1.ApplyRolloutRequest) (*cutoverv1.ApplyRolloutResponse, error) {
	m, err := spec.Parse([]byte(req.GetManifest()))
	if err != nil {
		return nil, toStatus(err)
	}
	// Hook secrets go wherever a hook's URL points: only a platform team
	// may send them, in a release policy or as an admin of the app.
	if refs := spec.HookSecretRefs(m.Spec); len(refs) > 0 && !adminOf(ctx, m.Name) {
		return nil, status.Errorf(codes.PermissionDenied,
			"%s: only a release policy or an admin of %s may use the control plane's CUTOVER_HOOK_ secrets", refs[0], m.Name)
	}
	if s.policies != nil {
		if m.Spec, err = s.policies.Resolve(m.Name, m.Spec); err != nil {
			return nil, toStatus(err)
		}
		if err := spec.Validate(m.Spec); err != nil {
			return nil, toStatus(err)
		}
		spec.Default(m.Spec)
	}
	if err := spec.CheckClusters(m.Spec, s.clusters.Known); err != nil {
		return nil, toStatus(err)
	}
	apply := rollout.Apply{Name: m.Name, Spec: m.Spec, Actor: actor(ctx)}
	if req.GetDryRun() {
		select { // stored rollouts first, or an app that exists looks new
		case <-s.ctrl.Loaded():
		case <-ctx.Done():
			return nil, toStatus(ctx.Err())
		}
		cur, _ := s.ctrl.Get(m.Name) // nil for a new app
		res, err := rollout.Step(cur, apply, time.Now())
		if err != nil {
			return nil, toStatus(err)
		}
		return &cutoverv1.ApplyRolloutResponse{Rollout: res.Rollout, Changed: res.Changed}, nil
	}
	r, changed, err := s.ctrl.Do(ctx, m.Name, apply)
	if err != nil {
		return nil, toStatus(err)
	}
	return &cutoverv1.ApplyRolloutResponse{Rollout: r, Changed: changed}, nil
}

// GetRollout returns one rollout.
func (s *Rollouts) GetRollout(_ context.Context, req *cutoverv1.GetRolloutRequest) (*cutoverv1.GetRolloutResponse, error) {
	if err := requireName(req.GetName()); err != nil {
		return nil, err
	}
	r, err := s.ctrl.Get(req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &cutoverv1.GetRolloutResponse{Rollout: r}, nil
}

// ListRollouts returns every rollout.
// A caller whose read grants are scoped sees only the rollouts in scope.
func (s *Rollouts) ListRollouts(ctx context.Context, _ *cutoverv1.ListRolloutsRequest) (*cutoverv1.ListRolloutsResponse, error) {
	all := s.ctrl.List()
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return &cutoverv1.ListRolloutsResponse{Rollouts: all}, nil
	}
	var out []*cutoverv1.Rollout
	for _, r := range all {
		t := auth.Target{App: r.GetName()}
		for _, w := range r.GetSpec().GetTargets().GetWaves() {
			t.Clusters = append(t.Clusters, w.GetClusters()...)
		}
		if auth.Authorize(p, auth.PermRead, t) == nil {
			out = append(out, r)
		}
	}
	return &cutoverv1.ListRolloutsResponse{Rollouts: out}, nil
}

// WatchRollout streams the rollout's states until the client goes away.
func (s *Rollouts) WatchRollout(req *cutoverv1.WatchRolloutRequest, stream cutoverv1.RolloutService_WatchRolloutServer) error {
	if err := requireName(req.GetName()); err != nil {
		return err
	}
	ch, stop, err := s.ctrl.Watch(req.GetName())
	if err != nil {
		return toStatus(err)
	}
	defer stop()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case r := <-ch:
			if err := stream.Send(&cutoverv1.WatchRolloutResponse{Rollout: r}); err != nil {
				return err
			}
		}
	}
}

// PromoteRollout completes the current step, or every step with full.
func (s *Rollouts) PromoteRollout(ctx context.Context, req *cutoverv1.PromoteRolloutRequest) (*cutoverv1.PromoteRolloutResponse, error) {
	r, err := s.act(ctx, req.GetName(), rollout.Promote{Full: req.GetFull(), Actor: actor(ctx)})
	if err != nil {
		return nil, err
	}
	return &cutoverv1.PromoteRolloutResponse{Rollout: r}, nil
}

// ApproveRollout records the caller's approval, with the roles they hold
// that may approve this app.
func (s *Rollouts) ApproveRollout(ctx context.Context, req *cutoverv1.ApproveRolloutRequest) (*cutoverv1.ApproveRolloutResponse, error) {
	r, err := s.act(ctx, req.GetName(), rollout.Approve{Actor: actor(ctx), Roles: approverRoles(ctx, req.GetName()), Comment: req.GetComment()})
	if err != nil {
		return nil, err
	}
	return &cutoverv1.ApproveRolloutResponse{Rollout: r}, nil
}

// RejectRollout refuses the approval the rollout waits for.
func (s *Rollouts) RejectRollout(ctx context.Context, req *cutoverv1.RejectRolloutRequest) (*cutoverv1.RejectRolloutResponse, error) {
	if strings.TrimSpace(req.GetComment()) == "" {
		return nil, status.Error(codes.InvalidArgument, "comment: is required (say why it is rejected)")
	}
	r, err := s.act(ctx, req.GetName(), rollout.Reject{Actor: actor(ctx), Comment: req.GetComment()})
	if err != nil {
		return nil, err
	}
	return &cutoverv1.RejectRolloutResponse{Rollout: r}, nil
}

// adminOf reports whether the caller holds the admin role on app; in the
// open mode (no authentication) every caller does.
func adminOf(ctx context.Context, app string) bool {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return true
	}
	return slices.ContainsFunc(p.Grants, func(g auth.Grant) bool {
		return g.Role == auth.RoleAdmin && g.Allows(auth.PermDeploy, auth.Target{App: app})
	})
}

// approverRoles are the caller's roles that may approve app; in the open
// mode (no authentication) a caller approves as admin.
func approverRoles(ctx context.Context, app string) []string {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return []string{string(auth.RoleAdmin)}
	}
	var roles []string
	for _, g := range p.Grants {
		if g.Allows(auth.PermApprove, auth.Target{App: app}) && !slices.Contains(roles, string(g.Role)) {
			roles = append(roles, string(g.Role))
		}
	}
	return roles
}

// AbortRollout returns every touched cluster to stable.
func (s *Rollouts) AbortRollout(ctx context.Context, req *cutoverv1.AbortRolloutRequest) (*cutoverv1.AbortRolloutResponse, error) {
	r, err := s.act(ctx, req.GetName(), rollout.Abort{Reason: req.GetReason(), Actor: actor(ctx)})
	if err != nil {
		return nil, err
	}
	return &cutoverv1.AbortRolloutResponse{Rollout: r}, nil
}

// PauseRollout holds the rollout where it is.
func (s *Rollouts) PauseRollout(ctx context.Context, req *cutoverv1.PauseRolloutRequest) (*cutoverv1.PauseRolloutResponse, error) {
	r, err := s.act(ctx, req.GetName(), rollout.Pause{Actor: actor(ctx)})
	if err != nil {
		return nil, err
	}
	return &cutoverv1.PauseRolloutResponse{Rollout: r}, nil
}

// ResumeRollout lifts an operator pause.
func (s *Rollouts) ResumeRollout(ctx context.Context, req *cutoverv1.ResumeRolloutRequest) (*cutoverv1.ResumeRolloutResponse, error) {
	r, err := s.act(ctx, req.GetName(), rollout.Resume{Actor: actor(ctx)})
	if err != nil {
		return nil, err
	}
	return &cutoverv1.ResumeRolloutResponse{Rollout: r}, nil
}

// RetryRollout restarts an aborted rollout from its first step.
func (s *Rollouts) RetryRollout(ctx context.Context, req *cutoverv1.RetryRolloutRequest) (*cutoverv1.RetryRolloutResponse, error) {
	r, err := s.act(ctx, req.GetName(), rollout.Retry{Actor: actor(ctx)})
	if err != nil {
		return nil, err
	}
	return &cutoverv1.RetryRolloutResponse{Rollout: r}, nil
}

// UndoRollout rolls back to an earlier revision as a new rollout.
func (s *Rollouts) UndoRollout(ctx context.Context, req *cutoverv1.UndoRolloutRequest) (*cutoverv1.UndoRolloutResponse, error) {
	if err := requireName(req.GetName()); err != nil {
		return nil, err
	}
	r, err := s.ctrl.Undo(ctx, req.GetName(), req.GetToRevision(), actor(ctx))
	if err != nil {
		return nil, toStatus(err)
	}
	return &cutoverv1.UndoRolloutResponse{Rollout: r}, nil
}

// ListRolloutHistory returns the app's rollouts, newest first.
func (s *Rollouts) ListRolloutHistory(ctx context.Context, req *cutoverv1.ListRolloutHistoryRequest) (*cutoverv1.ListRolloutHistoryResponse, error) {
	if err := requireName(req.GetName()); err != nil {
		return nil, err
	}
	hist, err := s.ctrl.History(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &cutoverv1.ListRolloutHistoryResponse{Rollouts: hist}, nil
}

func (s *Rollouts) act(ctx context.Context, name string, ev rollout.Event) (*cutoverv1.Rollout, error) {
	if err := requireName(name); err != nil {
		return nil, err
	}
	r, _, err := s.ctrl.Do(ctx, name, ev)
	if err != nil {
		return nil, toStatus(err)
	}
	return r, nil
}

func requireName(name string) error {
	if name == "" {
		return status.Error(codes.InvalidArgument, "name: is required")
	}
	return nil
}

// Clusters implements ClusterService.
type Clusters struct {
	cutoverv1.UnimplementedClusterServiceServer
	registry ClusterRegistry
}

// NewClusters returns the ClusterService handlers.
func NewClusters(registry ClusterRegistry) *Clusters { return &Clusters{registry: registry} }

// ListClusters returns every known cluster.
func (s *Clusters) ListClusters(context.Context, *cutoverv1.ListClustersRequest) (*cutoverv1.ListClustersResponse, error) {
	return &cutoverv1.ListClustersResponse{Clusters: s.registry.Clusters()}, nil
}
