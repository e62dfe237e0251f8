package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

func newClustersCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "clusters",
		Short: "List the clusters whose agents have connected",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp *cutoverv1.ListClustersResponse
			err := o.call(cmd.Context(), func(ctx context.Context, cc grpc.ClientConnInterface) (err error) {
				resp, err = cutoverv1.NewClusterServiceClient(cc).ListClusters(ctx, &cutoverv1.ListClustersRequest{})
				return err
			})
			if err != nil {
				return err
			}
			return o.render(resp, func(w io.Writer) error {
				if len(resp.GetClusters()) == 0 {
					_, err := fmt.Fprintln(o.streams.Err, "No clusters found.")
					return err
				}
				return writeClusterTable(w, resp.GetClusters(), time.Now())
			})
		},
	}
}

func writeClusterTable(w io.Writer, clusters []*cutoverv1.Cluster, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tREGION\tSTATUS\tRUNTIME\tVERSION\tLABELS\tLAST HEARTBEAT")
	for _, c := range clusters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			c.GetName(),
			orNone(c.GetRegion()),
			enumWord(c.GetStatus()),
			orNone(c.GetRuntime()),
			orNone(c.GetAgentVersion()),
			labelsLabel(c.GetLabels()),
			age(c.GetLastHeartbeatTime(), now))
	}
	return tw.Flush()
}

// labelsLabel renders labels as k=v pairs sorted by key.
func labelsLabel(labels map[string]string) string {
	if len(labels) == 0 {
		return none
	}
	pairs := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		pairs = append(pairs, k+"="+labels[k])
	}
	return strings.Join(pairs, ",")
}
