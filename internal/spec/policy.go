package spec

import (
	"fmt"
	"slices"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Urgencies (spec.urgency).
const (
	UrgencyCritical = "critical"
	UrgencyHigh     = "high"
	UrgencyMedium   = "medium"
	UrgencyLow      = "low"
)

// maxApprovers bounds an approval's required count.
const maxApprovers = 10

// defaultApprovalRoles may approve when an approval names no roles.
var defaultApprovalRoles = []string{"approver", "admin"}

var roleNames = []string{"viewer", "deployer", "approver", "admin"}

// ApprovalRoles are the roles that may give an approval.
func ApprovalRoles(a *cutoverv1.ApprovalStep) []string {
	if len(a.GetRoles()) == 0 {
		return defaultApprovalRoles
	}
	return a.GetRoles()
}

// ApprovalTimeout is how long an approval may take; 0 for no limit.
func ApprovalTimeout(a *cutoverv1.ApprovalStep) time.Duration {
	d, err := time.ParseDuration(a.GetTimeout())
	if err != nil || d <= 0 {
		return 0
	}
	return d
}

func checkApproval(c *errs, path string, a *cutoverv1.ApprovalStep) {
	if n := a.GetRequired(); n < 0 || n > maxApprovers {
		c.add(path+".required", "must be between 1 and %d, got %d", maxApprovers, n)
	}
	for i, r := range a.GetRoles() {
		if !slices.Contains(roleNames, r) {
			c.add(fmt.Sprintf("%s.roles[%d]", path, i), "unknown role %q (viewer, deployer, approver, admin)", r)
		}
	}
	if t := a.GetTimeout(); t != "" {
		checkDuration(c, path+".timeout", t)
	}
}

func validatePolicy(c *errs, s *cutoverv1.RolloutSpec) {
	switch u := s.GetUrgency(); u {
	case "", UrgencyCritical, UrgencyHigh, UrgencyMedium, UrgencyLow:
	default:
		c.add("spec.urgency", "must be critical, high, medium or low, got %q", u)
	}
	if s.GetBreakGlassReason() != "" && s.GetUrgency() != UrgencyCritical {
		c.add("spec.breakGlassReason", "needs urgency critical (break-glass is for critical fixes only)")
	}
	if a := s.GetApproval(); a != nil {
		checkApproval(c, "spec.approval", a)
	}
	validateHooks(c, s)
}
