package cli

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// fakeAudit answers AuditService from its fields and keeps the last
// requests.
type fakeAudit struct {
	cutoverv1.UnimplementedAuditServiceServer
	records []*cutoverv1.AuditRecord
	verify  *cutoverv1.VerifyAuditResponse

	mu     sync.Mutex
	list   *cutoverv1.ListAuditRecordsRequest
	export *cutoverv1.ExportAuditRecordsRequest
}

func (f *fakeAudit) ListAuditRecords(_ context.Context, req *cutoverv1.ListAuditRecordsRequest) (*cutoverv1.ListAuditRecordsResponse, error) {
	f.mu.Lock()
	f.list = req
	f.mu.Unlock()
	return &cutoverv1.ListAuditRecordsResponse{Records: f.records, Truncated: true}, nil
}

func (f *fakeAudit) ExportAuditRecords(req *cutoverv1.ExportAuditRecordsRequest, s cutoverv1.AuditService_ExportAuditRecordsServer) error {
	f.mu.Lock()
	f.export = req
	f.mu.Unlock()
	for _, r := range f.records {
		if err := s.Send(&cutoverv1.ExportAuditRecordsResponse{Record: r}); err != nil {
			return err
		}
	}
	return nil
}

// requests returns the last list and export requests.
func (f *fakeAudit) requests() (*cutoverv1.ListAuditRecordsRequest, *cutoverv1.ExportAuditRecordsRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list, f.export
}

func (f *fakeAudit) VerifyAudit(context.Context, *cutoverv1.VerifyAuditRequest) (*cutoverv1.VerifyAuditResponse, error) {
	return f.verify, nil
}

func serveAudit(t *testing.T, f *fakeAudit) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	cutoverv1.RegisterAuditServiceServer(s, f)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Serve(lis) })
	t.Cleanup(func() {
		s.Stop()
		wg.Wait()
	})
	return lis.Addr().String()
}

var auditT0 = time.Date(2025, 1, 31, 9, 0, 0, 0, time.UTC)

func auditRecords() []*cutoverv1.AuditRecord {
	return []*cutoverv1.AuditRecord{
		{Seq: 1, Time: timestamppb.New(auditT0), Actor: "alice", Action: "rollout.apply", Target: "rollout/web", App: "web",
			After: "progressing v2 wave 1 step 1", Reason: "apply: revision v2", Hash: []byte{1, 2}},
		{Seq: 2, Time: timestamppb.New(auditT0.Add(time.Second)), Actor: "cutover", Action: "gate.tripped", Target: "rollout/web", App: "web",
			Cluster: "eu-1", Before: "progressing v2 wave 1 step 1", After: "aborted v2", Reason: "aborted: gate errors failed", PrevHash: []byte{1, 2}, Hash: []byte{3}},
	}
}

func TestAuditList(t *testing.T) {
	t.Parallel()
	f := &fakeAudit{records: auditRecords()}
	addr := serveAudit(t, f)
	before := time.Now()
	r := run("", "--server", addr, "audit", "list", "--app", "web", "--actor", "alice", "--since", "24h", "--until", "2025-02-01T00:00:00Z", "--limit", "5")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	if !strings.Contains(r.err, "Older records matched too") {
		t.Errorf("stderr %q does not say the list was truncated", r.err)
	}
	req, _ := f.requests()
	if req.GetApp() != "web" || req.GetActor() != "alice" || req.GetLimit() != 5 ||
		!req.GetUntil().AsTime().Equal(time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("request = %v", req)
	}
	if since := req.GetSince().AsTime(); since.Before(before.Add(-24*time.Hour-time.Minute)) || since.After(time.Now().Add(-24*time.Hour)) {
		t.Errorf("--since 24h sent %v, want 24h before now", since)
	}
	for _, fields := range [][]string{
		{"SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "CHANGE", "REASON"},
		{"1", "2025-01-31", "09:00:00.000Z", "alice", "rollout.apply", "rollout/web", "->", "progressing", "v2", "wave", "1", "step", "1", "apply:", "revision", "v2"},
		{"2", "2025-01-31", "09:00:01.000Z", "cutover", "gate.tripped", "rollout/web", "progressing", "v2", "wave", "1", "step", "1", "->", "aborted", "v2", "aborted:", "gate", "errors", "failed"},
	} {
		if !hasLine(r.out, fields) {
			t.Errorf("table lacks the line %q:\n%s", fields, r.out)
		}
	}

	r = run("", "--server", addr, "audit", "list", "-o", "json")
	wantOK(t, r)
	got := &cutoverv1.ListAuditRecordsResponse{}
	if err := protojson.Unmarshal([]byte(r.out), got); err != nil || len(got.GetRecords()) != 2 || !proto.Equal(got.GetRecords()[1], auditRecords()[1]) {
		t.Errorf("-o json = %s (%v)", r.out, err)
	}
}

func TestAuditListBadTimes(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--since", "yesterday"}, {"--until", "-5m"}, {"--since", "2025-13-01T00:00:00Z"}} {
		r := run("", append([]string{"--server", "127.0.0.1:1", "audit", "list"}, args...)...)
		wantError(t, r, args[0]+": want an RFC 3339 time")
	}
}

func TestAuditExportPrintsJSONLines(t *testing.T) {
	t.Parallel()
	f := &fakeAudit{records: auditRecords()}
	addr := serveAudit(t, f)
	r := run("", "--server", addr, "audit", "export", "--after-seq", "7")
	wantOK(t, r)
	if _, exp := f.requests(); exp.GetAfterSeq() != 7 {
		t.Errorf("export asked for records after %d, want 7", exp.GetAfterSeq())
	}
	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("export printed %d lines, want 2:\n%s", len(lines), r.out)
	}
	for i, l := range lines {
		got := &cutoverv1.AuditRecord{}
		if err := protojson.Unmarshal([]byte(l), got); err != nil {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
		if !proto.Equal(got, auditRecords()[i]) {
			t.Errorf("line %d = %v, want %v", i+1, got, auditRecords()[i])
		}
	}
}

func TestAuditVerify(t *testing.T) {
	t.Parallel()
	addr := serveAudit(t, &fakeAudit{verify: &cutoverv1.VerifyAuditResponse{Ok: true, RecordsChecked: 42}})
	r := run("", "--server", addr, "audit", "verify")
	wantOK(t, r)
	if r.out != "audit chain ok: 42 records\n" {
		t.Errorf("stdout = %q", r.out)
	}

	addr = serveAudit(t, &fakeAudit{verify: &cutoverv1.VerifyAuditResponse{RecordsChecked: 6, FirstBadSeq: 7, Problem: "hash does not match its content"}})
	r = run("", "--server", addr, "audit", "verify")
	wantError(t, r, "audit record 7: hash does not match its content")
}
