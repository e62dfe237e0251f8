// Package auth says who a caller is and what it may do: bearer tokens from
// a tokens file (behind the Authenticator interface, so an OIDC issuer can
// be added without touching handlers), roles with app and cluster scopes,
// and the identities of agents taken from their certificates.
package auth

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
)

// Role is a named set of permissions.
type Role string

// Roles.
const (
	// RoleViewer reads rollouts, history and clusters.
	RoleViewer Role = "viewer"
	// RoleDeployer also applies and drives rollouts.
	RoleDeployer Role = "deployer"
	// RoleApprover reads, approves, and reads the audit trail.
	RoleApprover Role = "approver"
	// RoleAdmin may do everything.
	RoleAdmin Role = "admin"
)

// Permission is one thing a caller may do.
type Permission string

// Permissions.
const (
	// PermRead: get, list and watch rollouts, history and clusters.
	PermRead Permission = "read"
	// PermDeploy: apply, promote, pause, resume, abort, retry, undo.
	PermDeploy Permission = "deploy"
	// PermApprove: approve or reject a rollout waiting for approval.
	PermApprove Permission = "approve"
	// PermAudit: list, export and verify the audit trail.
	PermAudit Permission = "audit"
)

var rolePermissions = map[Role][]Permission{
	RoleViewer:   {PermRead},
	RoleDeployer: {PermRead, PermDeploy},
	RoleApprover: {PermRead, PermApprove, PermAudit},
	RoleAdmin:    {PermRead, PermDeploy, PermApprove, PermAudit},
}

func roleNames() []string {
	out := make([]string, 0, len(rolePermissions))
	for r := range rolePermissions {
		out = append(out, string(r))
	}
	sort.Strings(out)
	return out
}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if _, ok := rolePermissions[r]; !ok {
		return "", fmt.Errorf("unknown role %q (%s)", s, strings.Join(roleNames(), ", "))
	}
	return r, nil
}

// Principal is an authenticated caller.
type Principal struct {
	// Subject names it, e.g. "alice" or "ci-payments".
	Subject string
	// Grants are its roles with their scopes.
	Grants []Grant
}

// Errors of authentication.
var (
	// ErrNoCredentials: the call carries no bearer token.
	ErrNoCredentials = errors.New("no credentials: send the header 'authorization: Bearer <token>' (cutover login)")
	// ErrUnknownToken: the token is not in the tokens file (or was revoked).
	ErrUnknownToken = errors.New("unknown or revoked token")
)

// Authenticator turns a bearer credential into a principal. Token files
// implement it; an OIDC verifier can too.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (*Principal, error)
}

// Target is what a call acts on: an app (empty for calls on no app, such
// as listing) and the clusters it touches (empty when unknown or none).
type Target struct {
	App      string
	Clusters []string
}

// Denied explains a refused call.
type Denied struct {
	Subject    string
	Permission Permission
	Target     Target
	Has        []Grant
}

func (d *Denied) Error() string {
	what := string(d.Permission)
	if d.Target.App != "" {
		what += fmt.Sprintf(" on app %q", d.Target.App)
	}
	if len(d.Target.Clusters) > 0 {
		what += fmt.Sprintf(" in clusters %s", strings.Join(d.Target.Clusters, ", "))
	}
	has := make([]string, 0, len(d.Has))
	for _, g := range d.Has {
		has = append(has, g.String())
	}
	if len(has) == 0 {
		has = []string{"no roles"}
	}
	return fmt.Sprintf("%s lacks permission %s (has %s)", d.Subject, what, strings.Join(has, "; "))
}

// String is a grant in words, e.g. "deployer on apps payments-* in
// clusters eu-*".
func (g Grant) String() string {
	s := string(g.Role)
	if len(g.Apps) > 0 {
		s += " on apps " + strings.Join(g.Apps, ",")
	}
	if len(g.Clusters) > 0 {
		s += " in clusters " + strings.Join(g.Clusters, ",")
	}
	return s
}

// Allows reports whether the grant gives perm on t.
func (g Grant) Allows(perm Permission, t Target) bool {
	if !slices.Contains(rolePermissions[g.Role], perm) {
		return false
	}
	if t.App != "" && !matchAny(g.Apps, t.App) {
		return false
	}
	for _, c := range t.Clusters {
		if !matchAny(g.Clusters, c) {
			return false
		}
	}
	return true
}

// matchAny: an empty pattern list matches everything.
func matchAny(patterns []string, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// Authorize returns nil when one of p's grants gives perm on t, else a
// *Denied naming what was missing.
func Authorize(p *Principal, perm Permission, t Target) error {
	for _, g := range p.Grants {
		if g.Allows(perm, t) {
			return nil
		}
	}
	return &Denied{Subject: p.Subject, Permission: perm, Target: t, Has: p.Grants}
}

type principalKey struct{}
type agentKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller authenticated for ctx, if any.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// WithAgent returns ctx carrying the cluster an agent's certificate names.
func WithAgent(ctx context.Context, cluster string) context.Context {
	return context.WithValue(ctx, agentKey{}, cluster)
}

// AgentFrom returns the cluster an agent's certificate names, when the
// stream was authenticated by one.
func AgentFrom(ctx context.Context) (string, bool) {
	c, ok := ctx.Value(agentKey{}).(string)
	return c, ok && c != ""
}
