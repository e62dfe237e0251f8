package server

import (
	"context"
	"log/slog"

	"github.com/cutover-dev/cutover/internal/audit"
	"github.com/cutover-dev/cutover/internal/auth"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// auditMethods are the permission rules of AuditService: reading the trail
// is a permission of its own, and no method acts on one app.
var auditMethods = map[string]rule{
	cutoverv1.AuditService_ListAuditRecords_FullMethodName:   {perm: auth.PermAudit},
	cutoverv1.AuditService_ExportAuditRecords_FullMethodName: {perm: auth.PermAudit},
	cutoverv1.AuditService_VerifyAudit_FullMethodName:        {perm: auth.PermAudit},
}

// auditAppender appends records that accompany no other change.
type auditAppender interface {
	// AppendAudit chains records to the trail. Safe for concurrent use.
	AppendAudit(ctx context.Context, records ...*cutoverv1.AuditRecord) error
}

// auditDenied records a refused request in the audit trail. The refusal
// stands even if the record cannot be written; that failure is logged.
func auditDenied(trail auditAppender, log *slog.Logger) func(ctx context.Context, subject, method string, t auth.Target, reason string) {
	return func(ctx context.Context, subject, method string, t auth.Target, reason string) {
		// The call is refused either way; its record must not depend on
		// the caller staying connected.
		ctx = context.WithoutCancel(ctx)
		if err := trail.AppendAudit(ctx, audit.Denied(subject, method, t.App, t.Clusters, reason)); err != nil {
			log.Error("audit a refused request", "subject", subject, "method", method, "err", err)
		}
	}
}
