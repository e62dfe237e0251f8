package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/report"
	"github.com/cutover-dev/cutover/internal/version"
)

func newReportCommand(o *options) *cobra.Command {
	var number int64
	var file string
	cmd := &cobra.Command{
		Use:   "report APP",
		Short: "Write a rollout's compliance report: one self-contained HTML file (prints to PDF from a browser)",
		Long: "Write the compliance report of an app's current rollout, or of an earlier one with --rollout-number:\n" +
			"who applied it and when, its timeline, approvals, checks and deployment windows, every gate evaluation\n" +
			"with a chart of canary against stable per cluster, and the app's audit records of that time with the\n" +
			"audit chain's verification. It needs the audit permission on the app (roles approver and admin).\n" +
			"With --output json or yaml it prints the evidence itself instead.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%q takes one APP, got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if number < 0 {
				return fmt.Errorf("--rollout-number: must be 1 or more (default: the current rollout), got %d", number)
			}
			if file == "" {
				return fmt.Errorf("--file: must not be empty; use - for standard output")
			}
			var resp *cutoverv1.GetRolloutReportResponse
			err := o.call(cmd.Context(), func(ctx context.Context, cc grpc.ClientConnInterface) (err error) {
				req := &cutoverv1.GetRolloutReportRequest{Name: args[0], RolloutNumber: number}
				resp, err = cutoverv1.NewReportServiceClient(cc).GetRolloutReport(ctx, req)
				if st, ok := status.FromError(err); ok && st.Code() == codes.NotFound && number > 0 {
					return status.Errorf(codes.NotFound, "--rollout-number %d: %s", number, st.Message())
				}
				return err
			})
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if o.output == outputTable {
				err = report.Write(&buf, resp, report.Meta{Generator: "cutover report " + version.String(), Server: o.server})
			} else {
				err = writeMessage(&buf, o.output, resp)
			}
			if err != nil {
				return err
			}
			return writeReport(o.streams.Out, file, buf.Bytes())
		},
	}
	cmd.Flags().Int64Var(&number, "rollout-number", 0, "the app's rollout to report on, as `cutover history APP` numbers them (default: the current one)")
	cmd.Flags().StringVarP(&file, "file", "f", "-", "write the report to this file instead of standard output (-)")
	return cmd
}

// writeReport writes the document to stdout for "-", else to file through
// a temporary file in the same directory, so that a failure never leaves
// half a report behind.
func writeReport(stdout io.Writer, file string, doc []byte) error {
	if file == "-" {
		_, err := stdout.Write(doc)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return fmt.Errorf("--file %s: %w", file, err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; removes a failed attempt
	if _, err := tmp.Write(doc); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("--file %s: %w", file, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("--file %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--file %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("--file %s: %w", file, err)
	}
	return nil
}
