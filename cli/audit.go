package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

func newAuditCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, export and verify the tamper-evident audit trail",
	}
	cmd.AddCommand(newAuditListCommand(o), newAuditExportCommand(o), newAuditVerifyCommand(o))
	return cmd
}

func newAuditListCommand(o *options) *cobra.Command {
	var since, until string
	req := &cutoverv1.ListAuditRecordsRequest{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the newest audit records, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			var err error
			if req.Since, err = parseWhen("--since", since, now); err != nil {
				return err
			}
			if req.Until, err = parseWhen("--until", until, now); err != nil {
				return err
			}
			var resp *cutoverv1.ListAuditRecordsResponse
			err = o.call(cmd.Context(), func(ctx context.Context, cc grpc.ClientConnInterface) (err error) {
				resp, err = cutoverv1.NewAuditServiceClient(cc).ListAuditRecords(ctx, req)
				return err
			})
			if err != nil {
				return err
			}
			return o.render(resp, func(w io.Writer) error {
				if len(resp.GetRecords()) == 0 {
					_, err := fmt.Fprintln(o.streams.Err, "No audit records found.")
					return err
				}
				if err := writeAuditTable(w, resp.GetRecords()); err != nil {
					return err
				}
				if resp.GetTruncated() {
					_, err := fmt.Fprintf(o.streams.Err, "Older records matched too; raise --limit or narrow --since to see them.\n")
					return err
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.App, "app", "", "only records of this app")
	f.StringVar(&req.Actor, "actor", "", `only records by this actor, e.g. alice, agent:eu-1 or cutover (the engine)`)
	f.StringVar(&since, "since", "", "only records at or after this time: RFC 3339 (2025-01-31T09:00:00Z) or an age such as 24h")
	f.StringVar(&until, "until", "", "only records before this time: RFC 3339 or an age such as 1h")
	f.Int32Var(&req.Limit, "limit", 0, "at most this many records, the newest (default 1000)")
	return cmd
}

// parseWhen reads a point in time given as RFC 3339 or as an age before
// now (a Go duration such as 24h or 90m).
func parseWhen(flag, v string, now time.Time) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return timestamppb.New(t), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return nil, fmt.Errorf("%s: want an RFC 3339 time such as 2025-01-31T09:00:00Z or an age such as 24h, got %q", flag, v)
	}
	return timestamppb.New(now.Add(-d)), nil
}

func writeAuditTable(w io.Writer, recs []*cutoverv1.AuditRecord) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tTARGET\tCHANGE\tREASON")
	for _, r := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetSeq(), timestamp(r.GetTime().AsTime()),
			orNone(r.GetActor()), r.GetAction(), orNone(r.GetTarget()), auditChange(r), orNone(oneLine(r.GetReason())))
	}
	return tw.Flush()
}

// auditChange is "before -> after", or whichever of them is set.
func auditChange(r *cutoverv1.AuditRecord) string {
	switch {
	case r.GetBefore() == "" && r.GetAfter() == "":
		return none
	case r.GetBefore() == "":
		return "-> " + r.GetAfter()
	case r.GetAfter() == "":
		return r.GetBefore() + " ->"
	}
	return r.GetBefore() + " -> " + r.GetAfter()
}

func newAuditExportCommand(o *options) *cobra.Command {
	var after uint64
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Print audit records as JSON lines (one protojson record per line), for a SIEM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.exportAudit(cmd.Context(), after)
		},
	}
	cmd.Flags().Uint64Var(&after, "after-seq", 0, "only records with a greater seq (the last one a previous export printed)")
	return cmd
}

// exportAudit streams the records: an export of a long trail takes as long
// as it takes, so --timeout bounds only the wait for the first record.
func (o *options) exportAudit(ctx context.Context, after uint64) error {
	conn, err := o.dial()
	if err != nil {
		return fmt.Errorf("cannot reach control plane at %s: %w", o.server, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slow := fmt.Errorf("no answer from the control plane at %s within --timeout %s", o.server, o.timeout)
	first := time.AfterFunc(o.timeout, func() { cancel(slow) })
	defer first.Stop()
	explain := func(err error) error {
		if errors.Is(context.Cause(ctx), slow) {
			return slow
		}
		return o.explain(conn, err)
	}
	stream, err := cutoverv1.NewAuditServiceClient(conn).ExportAuditRecords(ctx, &cutoverv1.ExportAuditRecordsRequest{AfterSeq: after})
	if err != nil {
		return explain(err)
	}
	w := bufio.NewWriter(o.streams.Out)
	for {
		resp, err := stream.Recv()
		first.Stop()
		if errors.Is(err, io.EOF) {
			return w.Flush()
		}
		if err != nil {
			_ = w.Flush()
			return explain(err)
		}
		b, err := protojson.Marshal(resp.GetRecord())
		if err != nil {
			return fmt.Errorf("encode audit record %d: %w", resp.GetRecord().GetSeq(), err)
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return err
		}
	}
}

func newAuditVerifyCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check the audit trail's hash chain; fails naming the first bad record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp *cutoverv1.VerifyAuditResponse
			err := o.call(cmd.Context(), func(ctx context.Context, cc grpc.ClientConnInterface) (err error) {
				resp, err = cutoverv1.NewAuditServiceClient(cc).VerifyAudit(ctx, &cutoverv1.VerifyAuditRequest{})
				return err
			})
			if err != nil {
				return err
			}
			err = o.render(resp, func(w io.Writer) error {
				if !resp.GetOk() {
					return nil
				}
				_, err := fmt.Fprintf(w, "audit chain ok: %d records\n", resp.GetRecordsChecked())
				return err
			})
			if err != nil || resp.GetOk() {
				return err
			}
			return fmt.Errorf("audit record %d: %s", resp.GetFirstBadSeq(), strings.TrimSpace(resp.GetProblem()))
		},
	}
}
