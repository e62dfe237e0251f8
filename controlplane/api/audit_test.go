package api_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/controlplane/api"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
	"github.com/cutover-dev/cutover/internal/store/storetest"
)

func auditStore(t *testing.T, n int) *store.Bolt {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		storetest.Check(t, db.DB())
		_ = db.Close()
	})
	t0 := time.Date(2025, 1, 31, 9, 0, 0, 0, time.UTC)
	for i := range n {
		rec := &cutoverv1.AuditRecord{Time: timestamppb.New(t0.Add(time.Duration(i) * time.Second)), Actor: "alice", Action: "rollout.promote", App: "web"}
		if err := db.AppendAudit(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// exportStream collects what ExportAuditRecords sends.
type exportStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent []uint64
}

func (s *exportStream) Context() context.Context { return s.ctx }

func (s *exportStream) Send(r *cutoverv1.ExportAuditRecordsResponse) error {
	s.sent = append(s.sent, r.GetRecord().GetSeq())
	return nil
}

func TestAuditList(t *testing.T) {
	ctx := t.Context()
	a := api.NewAudit(auditStore(t, 1005))
	resp, err := a.ListAuditRecords(ctx, &cutoverv1.ListAuditRecordsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetRecords()); n != 1000 || !resp.GetTruncated() || resp.GetRecords()[0].GetSeq() != 6 || resp.GetRecords()[999].GetSeq() != 1005 {
		t.Errorf("default list: %d records from %d, truncated %v; want the newest 1000, newest last", n, resp.GetRecords()[0].GetSeq(), resp.GetTruncated())
	}
	since := timestamppb.New(time.Date(2025, 1, 31, 9, 16, 40, 0, time.UTC)) // record 1001
	resp, err = a.ListAuditRecords(ctx, &cutoverv1.ListAuditRecordsRequest{Since: since, Limit: 10})
	if err != nil || len(resp.GetRecords()) != 5 || resp.GetTruncated() {
		t.Errorf("since record 1001: %d records, truncated %v, %v", len(resp.GetRecords()), resp.GetTruncated(), err)
	}
	for _, bad := range []*cutoverv1.ListAuditRecordsRequest{
		{Limit: -1},
		{Since: since, Until: since},
	} {
		if _, err := a.ListAuditRecords(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ListAuditRecords(%v) = %v, want InvalidArgument", bad, err)
		}
	}
}

// An export pages through the store until it has sent every record.
func TestAuditExportSendsEveryRecord(t *testing.T) {
	a := api.NewAudit(auditStore(t, 1203))
	s := &exportStream{ctx: t.Context()}
	if err := a.ExportAuditRecords(&cutoverv1.ExportAuditRecordsRequest{AfterSeq: 2}, s); err != nil {
		t.Fatal(err)
	}
	if len(s.sent) != 1201 || s.sent[0] != 3 || s.sent[1200] != 1203 {
		t.Errorf("export sent %d records", len(s.sent))
	}
	for i := 1; i < len(s.sent); i++ {
		if s.sent[i] != s.sent[i-1]+1 {
			t.Fatalf("export sent %d after %d", s.sent[i], s.sent[i-1])
		}
	}
}

func TestAuditVerify(t *testing.T) {
	ctx := t.Context()
	db := auditStore(t, 3)
	a := api.NewAudit(db)
	resp, err := a.VerifyAudit(ctx, &cutoverv1.VerifyAuditRequest{})
	if err != nil || !resp.GetOk() || resp.GetRecordsChecked() != 3 {
		t.Fatalf("VerifyAudit = %v, %v", resp, err)
	}
	// Remove record 2 behind the store's back, in its own file handle.
	err = db.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("audit")).Delete([]byte{0, 0, 0, 0, 0, 0, 0, 2})
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = a.VerifyAudit(ctx, &cutoverv1.VerifyAuditRequest{})
	if err != nil || resp.GetOk() || resp.GetFirstBadSeq() != 2 || resp.GetRecordsChecked() != 1 || resp.GetProblem() == "" {
		t.Errorf("VerifyAudit after removing record 2 = %v, %v", resp, err)
	}
}
