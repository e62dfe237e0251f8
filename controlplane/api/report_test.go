package api_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cutover-dev/cutover/controlplane/api"
	"github.com/cutover-dev/cutover/controlplane/controller"
	"github.com/cutover-dev/cutover/internal/auth"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/internal/store"
	"github.com/cutover-dev/cutover/internal/store/storetest"
)

type nopPublisher struct{}

func (nopPublisher) SetDesired(string, *cutoverv1.DesiredApp) {}

func canarySpec(rev string, clusters ...string) *cutoverv1.RolloutSpec {
	return &cutoverv1.RolloutSpec{
		Revision: &cutoverv1.Revision{Name: rev, Command: "/bin/web", Instances: 1},
		Endpoint: &cutoverv1.Endpoint{Listen: ":8080"},
		Targets:  &cutoverv1.Targets{Waves: []*cutoverv1.Wave{{Name: "wave-1", Clusters: clusters}}},
		Strategy: &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Canary{Canary: &cutoverv1.CanaryStrategy{
			Steps: []*cutoverv1.CanaryStep{{Step: &cutoverv1.CanaryStep_SetWeight{SetWeight: 50}}},
		}}},
	}
}

// reports runs a controller on a real store holding two rollouts of web
// (v1 on us-1, then v2 on eu-1) and returns the ReportService handlers.
func reports(t *testing.T) *api.Reports {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctrl := controller.New(db, nopPublisher{}, time.Now, slog.New(slog.DiscardHandler)).WithEvaluations(db)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		storetest.Check(t, db.DB())
		_ = db.Close()
	})
	<-ctrl.Loaded()
	if err := db.AppendAudit(ctx, &cutoverv1.AuditRecord{Actor: "bob", Action: "rollout.apply", App: "other"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []rollout.Apply{
		{Name: "web", Spec: canarySpec("v1", "us-1"), Actor: "alice"},
		{Name: "web", Spec: canarySpec("v2", "eu-1"), Actor: "carol"},
	} {
		time.Sleep(2 * time.Millisecond) // distinct times for the two rollouts' records
		if _, _, err := ctrl.Do(ctx, "web", a); err != nil {
			t.Fatal(err)
		}
	}
	return api.NewReports(ctrl, db)
}

// A report is of the current rollout by default or of one in history by
// number, with the app's audit records of its time only, and the chain
// verified.
func TestReportOfCurrentAndEarlierRollouts(t *testing.T) {
	s := reports(t)
	ctx := t.Context()
	cur, err := s.GetRolloutReport(ctx, &cutoverv1.GetRolloutReportRequest{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if cur.GetRollout().GetStatus().GetRolloutNumber() != 2 || cur.GetRollout().GetAppliedBy() != "carol" {
		t.Errorf("current report is of rollout %d by %s", cur.GetRollout().GetStatus().GetRolloutNumber(), cur.GetRollout().GetAppliedBy())
	}
	if v := cur.GetAuditVerification(); !v.GetOk() || v.GetRecordsChecked() < 4 {
		t.Errorf("verification = %v", v)
	}
	if cur.GetEvaluations().GetName() != "web" || cur.GetEvaluations().GetRolloutNumber() != 2 || cur.GetGenerateTime() == nil {
		t.Errorf("evaluations %v, generated %v", cur.GetEvaluations(), cur.GetGenerateTime())
	}
	for _, r := range cur.GetAuditRecords() {
		if r.GetApp() != "web" || r.GetActor() == "alice" && r.GetAction() == "rollout.apply" {
			t.Errorf("report of rollout 2 holds %s by %s of %s", r.GetAction(), r.GetActor(), r.GetApp())
		}
	}
	if !hasRecord(cur.GetAuditRecords(), "carol", "rollout.apply") {
		t.Errorf("report of rollout 2 lacks its apply: %v", cur.GetAuditRecords())
	}

	first, err := s.GetRolloutReport(ctx, &cutoverv1.GetRolloutReportRequest{Name: "web", RolloutNumber: 1})
	if err != nil {
		t.Fatal(err)
	}
	if first.GetRollout().GetStatus().GetRolloutNumber() != 1 || first.GetRollout().GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_SUPERSEDED {
		t.Errorf("report of rollout 1 is of %v", first.GetRollout().GetStatus())
	}
	if !hasRecord(first.GetAuditRecords(), "alice", "rollout.apply") || !hasRecord(first.GetAuditRecords(), "cutover", "rollout.superseded") {
		t.Errorf("report of rollout 1 lacks its apply or its end: %v", first.GetAuditRecords())
	}

	for _, c := range []struct {
		req  *cutoverv1.GetRolloutReportRequest
		code codes.Code
		msg  string
	}{
		{&cutoverv1.GetRolloutReportRequest{}, codes.InvalidArgument, "name: is required"},
		{&cutoverv1.GetRolloutReportRequest{Name: "web", RolloutNumber: -1}, codes.InvalidArgument, "rollout_number: must be 0 (the current rollout) or more, got -1"},
		{&cutoverv1.GetRolloutReportRequest{Name: "web", RolloutNumber: 7}, codes.NotFound, "rollout_number: rollout 7 of web is not kept (kept: 1 to 2)"},
		{&cutoverv1.GetRolloutReportRequest{Name: "nope"}, codes.NotFound, ""},
	} {
		_, err := s.GetRolloutReport(ctx, c.req)
		if st, _ := status.FromError(err); st.Code() != c.code || c.msg != "" && st.Message() != c.msg {
			t.Errorf("GetRolloutReport(%v) = %v, want %s %q", c.req, err, c.code, c.msg)
		}
	}
}

// A caller whose audit grant covers the clusters of the current rollout
// only cannot read the report of an earlier rollout elsewhere.
func TestReportChecksTheClustersOfTheRolloutReported(t *testing.T) {
	s := reports(t)
	p := &auth.Principal{Subject: "eve", Grants: []auth.Grant{{Role: auth.RoleApprover, Apps: []string{"web"}, Clusters: []string{"eu-*"}}}}
	ctx := auth.WithPrincipal(t.Context(), p)
	if _, err := s.GetRolloutReport(ctx, &cutoverv1.GetRolloutReportRequest{Name: "web"}); err != nil {
		t.Errorf("report of the rollout on eu-1: %v", err)
	}
	_, err := s.GetRolloutReport(ctx, &cutoverv1.GetRolloutReportRequest{Name: "web", RolloutNumber: 1})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("report of the rollout on us-1 = %v, want PermissionDenied", err)
	}
}

func hasRecord(recs []*cutoverv1.AuditRecord, actor, action string) bool {
	for _, r := range recs {
		if r.GetActor() == actor && r.GetAction() == action {
			return true
		}
	}
	return false
}
