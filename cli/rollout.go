package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

func newApplyCommand(o *options) *cobra.Command {
	var file string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update a rollout from a manifest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			manifest, err := readManifest(file, o.streams.In)
			if err != nil {
				return err
			}
			return o.apply(cmd.Context(), manifest, dryRun)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "manifest file, or - for standard input")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only check the manifest: print the rollout it would make (its policy applied; -o yaml shows the whole spec) and store nothing")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// readManifest returns the manifest unparsed: the server parses it, so the
// CLI and the REST API report the same field errors.
func readManifest(file string, stdin io.Reader) (string, error) {
	if file == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return "", fmt.Errorf("read standard input: %w", err)
		}
		return string(b), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (o *options) apply(ctx context.Context, manifest string, dryRun bool) error {
	var resp *cutoverv1.ApplyRolloutResponse
	err := o.call(ctx, func(ctx context.Context, cc grpc.ClientConnInterface) (err error) {
		req := &cutoverv1.ApplyRolloutRequest{Manifest: manifest, DryRun: dryRun}
		resp, err = cutoverv1.NewRolloutServiceClient(cc).ApplyRollout(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	result := "unchanged"
	if resp.GetChanged() {
		result = "configured"
	}
	if dryRun {
		result += " (dry run: nothing stored)"
		if p := resp.GetRollout().GetSpec().GetPolicy(); p != "" {
			result += ", policy " + p
		}
	}
	return o.render(resp.GetRollout(), func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "rollout/%s %s\n", resp.GetRollout().GetName(), result)
		return err
	})
}

func newGetCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get",
		Short: "Show rollouts",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return fmt.Errorf("unknown resource type %q: use \"get rollout NAME\" or \"get rollouts\"", args[0])
		},
	}
	cmd.AddCommand(newGetRolloutsCommand(o), newGetRolloutCommand(o))
	return cmd
}

func newGetRolloutsCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "rollouts",
		Short: "List every rollout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp *cutoverv1.ListRolloutsResponse
			err := o.call(cmd.Context(), func(ctx context.Context, cc grpc.ClientConnInterface) (err error) {
				resp, err = cutoverv1.NewRolloutServiceClient(cc).ListRollouts(ctx, &cutoverv1.ListRolloutsRequest{})
				return err
			})
			if err != nil {
				return err
			}
			return o.render(resp, func(w io.Writer) error {
				if len(resp.GetRollouts()) == 0 {
					_, err := fmt.Fprintln(o.streams.Err, "No rollouts found.")
					return err
				}
				return writeRolloutTable(w, resp.GetRollouts(), time.Now())
			})
		},
	}
}

func newGetRolloutCommand(o *options) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "rollout NAME",
		Short: "Show one rollout with its per-cluster progress",
		Long: "Show one rollout with its per-cluster progress. With --watch, follow it live until it\n" +
			"ends: exit status 0 when it ends Healthy, 1 when it is aborted or held after a failure.",
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if watch {
				return o.watch(cmd.Context(), args[0])
			}
			var resp *cutoverv1.GetRolloutResponse
			err := o.call(cmd.Context(), func(ctx context.Context, cc grpc.ClientConnInterface) (err error) {
				req := &cutoverv1.GetRolloutRequest{Name: args[0]}
				resp, err = cutoverv1.NewRolloutServiceClient(cc).GetRollout(ctx, req)
				return err
			})
			if err != nil {
				return err
			}
			return o.render(resp.GetRollout(), func(w io.Writer) error {
				return writeRolloutDetail(w, resp.GetRollout(), time.Now())
			})
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollout live until it ends")
	return cmd
}

func writeRolloutTable(w io.Writer, rollouts []*cutoverv1.Rollout, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tREVISION\tPHASE\tWAVE\tSTEP\tAGE")
	for _, r := range rollouts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			r.GetName(),
			orNone(r.GetSpec().GetRevision().GetName()),
			enumWord(r.GetStatus().GetPhase()),
			waveLabel(r),
			stepLabel(r),
			age(r.GetStatus().GetStartTime(), now))
	}
	return tw.Flush()
}

// rolloutAction performs one operator action and returns the rollout after it.
type rolloutAction func(ctx context.Context, c cutoverv1.RolloutServiceClient, name string) (*cutoverv1.Rollout, error)

// actionCommand builds a command that runs act on the named rollout and
// reports "rollout/NAME <done>".
func (o *options) actionCommand(verb, short, done string, act rolloutAction) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			var r *cutoverv1.Rollout
			err := o.call(cmd.Context(), func(ctx context.Context, cc grpc.ClientConnInterface) (err error) {
				r, err = act(ctx, cutoverv1.NewRolloutServiceClient(cc), args[0])
				return err
			})
			if err != nil {
				return err
			}
			return o.render(r, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "rollout/%s %s\n", args[0], done)
				return err
			})
		},
	}
}

func newPromoteCommand(o *options) *cobra.Command {
	var full bool
	cmd := o.actionCommand("promote", "Complete the current step, or with --full every remaining step and wave", "promoted",
		func(ctx context.Context, c cutoverv1.RolloutServiceClient, name string) (*cutoverv1.Rollout, error) {
			resp, err := c.PromoteRollout(ctx, &cutoverv1.PromoteRolloutRequest{Name: name, Full: full})
			return resp.GetRollout(), err
		})
	cmd.Flags().BoolVar(&full, "full", false, "skip every remaining step and wave")
	return cmd
}

func newAbortCommand(o *options) *cobra.Command {
	var reason string
	cmd := o.actionCommand("abort", "Return all traffic to the stable revision", "aborted",
		func(ctx context.Context, c cutoverv1.RolloutServiceClient, name string) (*cutoverv1.Rollout, error) {
			resp, err := c.AbortRollout(ctx, &cutoverv1.AbortRolloutRequest{Name: name, Reason: reason})
			return resp.GetRollout(), err
		})
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the record")
	return cmd
}

func newApproveCommand(o *options) *cobra.Command {
	var comment string
	cmd := o.actionCommand("approve", "Approve what the rollout waits for (an approval step, its start, or a break-glass)", "approved",
		func(ctx context.Context, c cutoverv1.RolloutServiceClient, name string) (*cutoverv1.Rollout, error) {
			resp, err := c.ApproveRollout(ctx, &cutoverv1.ApproveRolloutRequest{Name: name, Comment: comment})
			return resp.GetRollout(), err
		})
	cmd.Flags().StringVar(&comment, "comment", "", "why, for the record")
	return cmd
}

func newRejectCommand(o *options) *cobra.Command {
	var comment string
	cmd := o.actionCommand("reject", "Refuse what the rollout waits for: it aborts", "rejected",
		func(ctx context.Context, c cutoverv1.RolloutServiceClient, name string) (*cutoverv1.Rollout, error) {
			if strings.TrimSpace(comment) == "" {
				return nil, errors.New("--comment: is required (say why it is rejected)")
			}
			resp, err := c.RejectRollout(ctx, &cutoverv1.RejectRolloutRequest{Name: name, Comment: comment})
			return resp.GetRollout(), err
		})
	cmd.Flags().StringVar(&comment, "comment", "", "why it is rejected (required)")
	return cmd
}

func newApprovalsCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "approvals",
		Short: "List the rollouts waiting for an approval",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(cmd.Context(), func(ctx context.Context, conn grpc.ClientConnInterface) error {
				resp, err := cutoverv1.NewRolloutServiceClient(conn).ListRollouts(ctx, &cutoverv1.ListRolloutsRequest{})
				if err != nil {
					return err
				}
				n := 0
				for _, r := range resp.GetRollouts() {
					if r.GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL {
						continue
					}
					n++
					if _, err := fmt.Fprintf(o.streams.Out, "%s\t%s\tapplied by %s\t%s\n", r.GetName(), r.GetSpec().GetRevision().GetName(), r.GetAppliedBy(), r.GetStatus().GetMessage()); err != nil {
						return err
					}
				}
				if n == 0 {
					_, err = fmt.Fprintln(o.streams.Out, "no rollout is waiting for an approval")
				}
				return err
			})
		},
	}
}

func newPauseCommand(o *options) *cobra.Command {
	return o.actionCommand("pause", "Hold the rollout at its current step", "paused",
		func(ctx context.Context, c cutoverv1.RolloutServiceClient, name string) (*cutoverv1.Rollout, error) {
			resp, err := c.PauseRollout(ctx, &cutoverv1.PauseRolloutRequest{Name: name})
			return resp.GetRollout(), err
		})
}

func newResumeCommand(o *options) *cobra.Command {
	return o.actionCommand("resume", "Lift an operator pause", "resumed",
		func(ctx context.Context, c cutoverv1.RolloutServiceClient, name string) (*cutoverv1.Rollout, error) {
			resp, err := c.ResumeRollout(ctx, &cutoverv1.ResumeRolloutRequest{Name: name})
			return resp.GetRollout(), err
		})
}

// oneName accepts exactly one argument, the rollout's name.
func oneName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%q takes exactly one rollout NAME, got %d arguments", cmd.CommandPath(), len(args))
	}
	return nil
}
