package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/controlplane/controller"
	"github.com/cutover-dev/cutover/internal/auth"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
)

// reportAuditLimit bounds the audit records one report carries (the
// newest are kept and the response says so).
const reportAuditLimit = 5000

// Reports implements ReportService.
type Reports struct {
	cutoverv1.UnimplementedReportServiceServer
	ctrl  *controller.Controller
	audit AuditLog
	now   func() time.Time
}

// NewReports returns the ReportService handlers.
func NewReports(ctrl *controller.Controller, audit AuditLog) *Reports {
	return &Reports{ctrl: ctrl, audit: audit, now: time.Now}
}

// GetRolloutReport gathers the evidence of one rollout of an app.
func (s *Reports) GetRolloutReport(ctx context.Context, req *cutoverv1.GetRolloutReportRequest) (*cutoverv1.GetRolloutReportResponse, error) {
	if err := requireName(req.GetName()); err != nil {
		return nil, err
	}
	if req.GetRolloutNumber() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "rollout_number: must be 0 (the current rollout) or more, got %d", req.GetRolloutNumber())
	}
	now := s.now()
	r, err := s.rollout(ctx, req.GetName(), req.GetRolloutNumber())
	if err != nil {
		return nil, err
	}
	// The interceptor checked the app and the clusters it targets now; an
	// earlier rollout may have targeted others.
	if p, ok := auth.PrincipalFrom(ctx); ok {
		t := auth.Target{App: r.GetName()}
		for _, w := range r.GetSpec().GetTargets().GetWaves() {
			t.Clusters = append(t.Clusters, w.GetClusters()...)
		}
		if err := auth.Authorize(p, auth.PermAudit, t); err != nil {
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
	}
	number := r.GetStatus().GetRolloutNumber()
	evals, err := s.ctrl.Evaluations(ctx, r.GetName(), number)
	if err != nil {
		return nil, toStatus(err)
	}
	q := store.AuditQuery{App: r.GetName(), Limit: reportAuditLimit}
	if st := r.GetStatus(); st.GetStartTime() != nil {
		q.Since = st.GetStartTime().AsTime()
	}
	if end := r.GetStatus().GetEndTime(); end != nil {
		q.Until = end.AsTime().Add(time.Microsecond) // the record of the end itself
	}
	recs, truncated, err := s.audit.ListAudit(ctx, q)
	if err != nil {
		return nil, toStatus(err)
	}
	verification, err := s.verify(ctx)
	if err != nil {
		return nil, err
	}
	return &cutoverv1.GetRolloutReportResponse{
		Rollout:           r,
		Evaluations:       evals,
		AuditRecords:      inScope(ctx, recs),
		AuditTruncated:    truncated,
		AuditVerification: verification,
		GenerateTime:      timestamppb.New(now),
	}, nil
}

// rollout is the app's rollout number, or its current one for 0.
func (s *Reports) rollout(ctx context.Context, name string, number int64) (*cutoverv1.Rollout, error) {
	hist, err := s.ctrl.History(ctx, name)
	if err != nil {
		return nil, toStatus(err)
	}
	if number == 0 {
		return hist[0], nil
	}
	for _, r := range hist {
		if r.GetStatus().GetRolloutNumber() == number {
			return r, nil
		}
	}
	oldest := hist[len(hist)-1].GetStatus().GetRolloutNumber()
	newest := hist[0].GetStatus().GetRolloutNumber()
	return nil, status.Error(codes.NotFound, fmt.Sprintf("rollout_number: rollout %d of %s is not kept (kept: %d to %d)", number, name, oldest, newest))
}

// verify checks the whole chain; a broken chain is part of the report.
func (s *Reports) verify(ctx context.Context) (*cutoverv1.AuditVerification, error) {
	n, err := s.audit.VerifyAudit(ctx)
	var br *store.AuditBreak
	switch {
	case err == nil:
		return &cutoverv1.AuditVerification{Ok: true, RecordsChecked: n}, nil
	case errors.As(err, &br):
		return &cutoverv1.AuditVerification{RecordsChecked: n, FirstBadSeq: br.Seq, Problem: br.Problem}, nil
	}
	return nil, toStatus(err)
}
