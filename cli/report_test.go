package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// fakeReports answers ReportService with report and keeps the requests.
type fakeReports struct {
	cutoverv1.UnimplementedReportServiceServer
	report func(*cutoverv1.GetRolloutReportRequest) (*cutoverv1.GetRolloutReportResponse, error)

	mu   sync.Mutex
	reqs []*cutoverv1.GetRolloutReportRequest
}

func (f *fakeReports) GetRolloutReport(_ context.Context, req *cutoverv1.GetRolloutReportRequest) (*cutoverv1.GetRolloutReportResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	report := f.report
	f.mu.Unlock()
	return report(req)
}

func serveReports(t *testing.T, f *fakeReports) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	cutoverv1.RegisterReportServiceServer(s, f)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Serve(lis) })
	t.Cleanup(func() {
		s.Stop()
		wg.Wait()
	})
	return lis.Addr().String()
}

func reportOf(n int64) *cutoverv1.GetRolloutReportResponse {
	return &cutoverv1.GetRolloutReportResponse{
		Rollout: &cutoverv1.Rollout{Name: "web", AppliedBy: "alice", Spec: &cutoverv1.RolloutSpec{Revision: &cutoverv1.Revision{Name: "v2"}},
			Status: &cutoverv1.RolloutStatus{RolloutNumber: n, Phase: cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY}},
		AuditVerification: &cutoverv1.AuditVerification{Ok: true, RecordsChecked: 3},
	}
}

// The report goes to standard output, or to a file; --rollout-number picks
// an earlier rollout; -o json prints the evidence itself.
func TestReportWritesTheDocument(t *testing.T) {
	f := &fakeReports{report: func(req *cutoverv1.GetRolloutReportRequest) (*cutoverv1.GetRolloutReportResponse, error) {
		if req.GetRolloutNumber() == 0 {
			return reportOf(4), nil // the current one
		}
		return reportOf(req.GetRolloutNumber()), nil
	}}
	addr := serveReports(t, f)

	r := run("", "--server", addr, "report", "web")
	wantOK(t, r)
	for _, want := range []string{"<!DOCTYPE html>", "Rollout report: web #4", `id="timeline"`, `id="gates"`, "Audit chain verified: ok.", "cutover report"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}

	file := filepath.Join(t.TempDir(), "report.html")
	r = run("", "--server", addr, "report", "web", "--rollout-number", "2", "-f", file)
	wantOK(t, r)
	if r.out != "" {
		t.Errorf("stdout = %q with --file", r.out)
	}
	doc, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(doc), "Rollout report: web #2") {
		t.Errorf("report file: %v\n%.300s", err, doc)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".report.html.*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	r = run("", "--server", addr, "report", "web", "-o", "json")
	wantOK(t, r)
	got := &cutoverv1.GetRolloutReportResponse{}
	if err := protojson.Unmarshal([]byte(r.out), got); err != nil || got.GetRollout().GetAppliedBy() != "alice" {
		t.Errorf("-o json printed %q (%v)", r.out, err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 3 || f.reqs[0].GetRolloutNumber() != 0 || f.reqs[1].GetRolloutNumber() != 2 || f.reqs[1].GetName() != "web" {
		t.Errorf("requests = %v", f.reqs)
	}
}

// Errors name the flag or argument at fault.
func TestReportErrors(t *testing.T) {
	f := &fakeReports{report: func(req *cutoverv1.GetRolloutReportRequest) (*cutoverv1.GetRolloutReportResponse, error) {
		return nil, status.Errorf(codes.NotFound, "rollout_number: rollout %d of web is not kept (kept: 3 to 5)", req.GetRolloutNumber())
	}}
	addr := serveReports(t, f)
	wantError(t, run("", "--server", addr, "report"), `"cutover report" takes one APP, got 0 arguments`)
	wantError(t, run("", "--server", addr, "report", "web", "--rollout-number", "-1"), "--rollout-number: must be 1 or more")
	wantError(t, run("", "--server", addr, "report", "web", "--rollout-number", "x"), `invalid argument "x" for "--rollout-number"`)
	wantError(t, run("", "--server", addr, "report", "web", "-f", ""), "--file: must not be empty")
	wantError(t, run("", "--server", addr, "report", "web", "--rollout-number", "9"), "--rollout-number 9: rollout_number: rollout 9 of web is not kept")
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "r.html")
	f.mu.Lock()
	f.report = func(*cutoverv1.GetRolloutReportRequest) (*cutoverv1.GetRolloutReportResponse, error) {
		return reportOf(1), nil
	}
	f.mu.Unlock()
	wantError(t, run("", "--server", addr, "report", "web", "-f", missing), "--file "+missing+":")
}
