package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

func newRetryCommand(o *options) *cobra.Command {
	return o.actionCommand("retry", "Restart an aborted rollout from its first step", "retried",
		func(ctx context.Context, c cutoverv1.RolloutServiceClient, name string) (*cutoverv1.Rollout, error) {
			resp, err := c.RetryRollout(ctx, &cutoverv1.RetryRolloutRequest{Name: name})
			return resp.GetRollout(), err
		})
}

func newUndoCommand(o *options) *cobra.Command {
	var to string
	cmd := o.actionCommand("undo", "Roll back to the previous revision (a new rollout through the same strategy)", "rolling back",
		func(ctx context.Context, c cutoverv1.RolloutServiceClient, name string) (*cutoverv1.Rollout, error) {
			resp, err := c.UndoRollout(ctx, &cutoverv1.UndoRolloutRequest{Name: name, ToRevision: to})
			return resp.GetRollout(), err
		})
	cmd.Flags().StringVar(&to, "to-revision", "", "revision to go back to (default: the last one that completed before)")
	return cmd
}

func newHistoryCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "history APP [NUMBER]",
		Short: "List an app's rollouts, or show one rollout's timeline",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("%q takes an APP and an optional rollout NUMBER, got %d arguments", cmd.CommandPath(), len(args))
			}
			if len(args) == 2 {
				if n, err := strconv.ParseInt(args[1], 10, 64); err != nil || n < 1 {
					return fmt.Errorf("NUMBER: must be a rollout number such as 3, got %q", args[1])
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp *cutoverv1.ListRolloutHistoryResponse
			err := o.call(cmd.Context(), func(ctx context.Context, cc grpc.ClientConnInterface) (err error) {
				req := &cutoverv1.ListRolloutHistoryRequest{Name: args[0]}
				resp, err = cutoverv1.NewRolloutServiceClient(cc).ListRolloutHistory(ctx, req)
				return err
			})
			if err != nil {
				return err
			}
			if len(args) == 1 {
				return o.render(resp, func(w io.Writer) error { return writeHistory(w, resp.GetRollouts()) })
			}
			n, _ := strconv.ParseInt(args[1], 10, 64)
			for _, r := range resp.GetRollouts() {
				if r.GetStatus().GetRolloutNumber() == n {
					return o.render(r, func(w io.Writer) error { return writeTimeline(w, r) })
				}
			}
			return fmt.Errorf("rollout %d of %s is not in the kept history", n, args[0])
		},
	}
}

// writeHistory is one line per rollout, newest first.
func writeHistory(w io.Writer, rollouts []*cutoverv1.Rollout) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "#\tREVISION\tOUTCOME\tAPPLIED BY\tSTARTED\tDURATION\tSTEPS")
	for _, r := range rollouts {
		st := r.GetStatus()
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\n",
			st.GetRolloutNumber(), r.GetSpec().GetRevision().GetName(), phaseLabel(st), orNone(r.GetAppliedBy()),
			timestamp(st.GetStartTime().AsTime()), duration(st), completedSteps(st))
	}
	return tw.Flush()
}

// writeTimeline lists what happened in one rollout.
func writeTimeline(w io.Writer, r *cutoverv1.Rollout) error {
	st := r.GetStatus()
	fmt.Fprintf(w, "Rollout %d of %s: revision %s, %s, applied by %s\n", st.GetRolloutNumber(), r.GetName(),
		r.GetSpec().GetRevision().GetName(), phaseLabel(st), orNone(r.GetAppliedBy()))
	waves := r.GetSpec().GetTargets().GetWaves()
	tw := newTable(w)
	fmt.Fprintln(tw, "TIME\tEVENT\tWAVE\tSTEP\tBY\tDETAIL")
	for _, e := range st.GetTimeline() {
		wave := "-"
		if i := int(e.GetWave()); i < len(waves) {
			wave = waves[i].GetName()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", timestamp(e.GetTime().AsTime()), enumWord(e.GetType()),
			wave, e.GetStep()+1, orNone(e.GetActor()), e.GetMessage())
	}
	return tw.Flush()
}

func completedSteps(st *cutoverv1.RolloutStatus) int {
	n := 0
	for _, e := range st.GetTimeline() {
		if e.GetType() == cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED {
			n++
		}
	}
	return n
}

func duration(st *cutoverv1.RolloutStatus) string {
	if st.GetEndTime() == nil || st.GetStartTime() == nil {
		return "running"
	}
	return st.GetEndTime().AsTime().Sub(st.GetStartTime().AsTime()).Round(100 * time.Millisecond).String()
}

func timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}
