package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cutover-dev/cutover/internal/auth"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
)

// AuditLog is the audit trail the API reads.
type AuditLog interface {
	// ListAudit returns the newest records matching q, oldest first, and
	// whether older ones were left out. Safe for concurrent use.
	ListAudit(ctx context.Context, q store.AuditQuery) ([]*cutoverv1.AuditRecord, bool, error)
	// AuditRecords returns up to n records after seq after, oldest first.
	// Safe for concurrent use.
	AuditRecords(ctx context.Context, after uint64, n int) ([]*cutoverv1.AuditRecord, error)
	// VerifyAudit checks the whole chain; a broken one is an
	// *store.AuditBreak. Safe for concurrent use.
	VerifyAudit(ctx context.Context) (uint64, error)
}

const (
	// defaultAuditLimit is how many records a list returns by default.
	defaultAuditLimit = 1000
	// exportPage is how many records an export reads per store
	// transaction, so a slow reader never holds one open.
	exportPage = 500
)

// Audit implements AuditService.
type Audit struct {
	cutoverv1.UnimplementedAuditServiceServer
	log AuditLog
}

// NewAudit returns the AuditService handlers.
func NewAudit(log AuditLog) *Audit { return &Audit{log: log} }

// ListAuditRecords returns the newest matching records, oldest first.
func (s *Audit) ListAuditRecords(ctx context.Context, req *cutoverv1.ListAuditRecordsRequest) (*cutoverv1.ListAuditRecordsResponse, error) {
	q := store.AuditQuery{App: req.GetApp(), Actor: req.GetActor(), Limit: int(req.GetLimit())}
	if req.GetLimit() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "limit: must not be negative, got %d", req.GetLimit())
	}
	if q.Limit == 0 {
		q.Limit = defaultAuditLimit
	}
	if req.GetSince() != nil {
		q.Since = req.GetSince().AsTime()
	}
	if req.GetUntil() != nil {
		q.Until = req.GetUntil().AsTime()
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return nil, status.Errorf(codes.InvalidArgument, "until: must be after since (%s)", q.Since.Format("2006-01-02T15:04:05.999Z07:00"))
	}
	recs, truncated, err := s.log.ListAudit(ctx, q)
	if err != nil {
		return nil, toStatus(err)
	}
	return &cutoverv1.ListAuditRecordsResponse{Records: inScope(ctx, recs), Truncated: truncated}, nil
}

// ExportAuditRecords streams every record after req.after_seq, oldest
// first, page by page until none is left.
func (s *Audit) ExportAuditRecords(req *cutoverv1.ExportAuditRecordsRequest, stream cutoverv1.AuditService_ExportAuditRecordsServer) error {
	ctx := stream.Context()
	after := req.GetAfterSeq()
	for {
		page, err := s.log.AuditRecords(ctx, after, exportPage)
		if err != nil {
			return toStatus(err)
		}
		if len(page) == 0 {
			return nil
		}
		for _, r := range page {
			after = r.GetSeq()
			if len(inScope(ctx, []*cutoverv1.AuditRecord{r})) == 0 {
				continue
			}
			if err := stream.Send(&cutoverv1.ExportAuditRecordsResponse{Record: r}); err != nil {
				return err
			}
		}
	}
}

// VerifyAudit checks the chain. A broken chain is a result, not an error.
func (s *Audit) VerifyAudit(ctx context.Context, _ *cutoverv1.VerifyAuditRequest) (*cutoverv1.VerifyAuditResponse, error) {
	n, err := s.log.VerifyAudit(ctx)
	var br *store.AuditBreak
	switch {
	case err == nil:
		return &cutoverv1.VerifyAuditResponse{Ok: true, RecordsChecked: n}, nil
	case errors.As(err, &br):
		return &cutoverv1.VerifyAuditResponse{RecordsChecked: n, FirstBadSeq: br.Seq, Problem: br.Problem}, nil
	}
	return nil, toStatus(err)
}

// inScope keeps the records a caller with scoped audit grants may read:
// those of its apps and clusters (all of them in the open mode).
func inScope(ctx context.Context, recs []*cutoverv1.AuditRecord) []*cutoverv1.AuditRecord {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return recs
	}
	out := recs[:0:0]
	for _, r := range recs {
		t := auth.Target{App: r.GetApp()}
		if r.GetCluster() != "" {
			t.Clusters = []string{r.GetCluster()}
		}
		if auth.Authorize(p, auth.PermAudit, t) == nil {
			out = append(out, r)
		}
	}
	return out
}
