package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover-dev/cutover/internal/pki"
)

func newCertsCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create the cluster CA and the certificates of mutual TLS between agents and the control plane",
		Args:  cobra.NoArgs,
		// These commands work on local files only: the global --server,
		// --output and --timeout do not apply, so they are not checked.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
	}
	cmd.AddCommand(newCertsInitCommand(o), newCertsIssueAgentCommand(o), newCertsIssueServerCommand(o))
	return cmd
}

func newCertsInitCommand(o *options) *cobra.Command {
	var dir, name string
	var validFor time.Duration
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Create a cluster CA (" + pki.CACertFile + ", " + pki.CAKeyFile + ") in DIR; an existing CA is never overwritten",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := checkCertFlags(validFor, "dir", dir, "name", name); err != nil {
				return err
			}
			if err := pki.InitCA(dir, name, validFor); err != nil {
				return err
			}
			return wrote(o, dir, pki.CACertFile, pki.CAKeyFile, "CA "+name)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory for the CA's certificate and key, created if missing (required)")
	f.StringVar(&name, "name", "cutover cluster CA", "the CA's name (subject CommonName)")
	f.DurationVar(&validFor, "valid-for", 87600*time.Hour, "how long the CA is valid")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

func newCertsIssueAgentCommand(o *options) *cobra.Command {
	var caDir, cluster, out string
	var validFor time.Duration
	cmd := &cobra.Command{
		Use:   "issue-agent --ca-dir DIR --cluster NAME --out DIR",
		Short: "Issue the client certificate (" + pki.AgentCertFile + ", " + pki.AgentKeyFile + ") of one cluster's agent",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := checkCertFlags(validFor, "ca-dir", caDir, "out", out); err != nil {
				return err
			}
			if err := pki.IssueAgent(caDir, out, cluster, validFor); err != nil {
				return explainCADir(caDir, err)
			}
			return wrote(o, out, pki.AgentCertFile, pki.AgentKeyFile, "cluster "+cluster)
		},
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca-dir", "", "directory of the CA made by 'cutover certs init' (required)")
	f.StringVar(&cluster, "cluster", "", "name of the agent's cluster, as the agent's --cluster (required)")
	f.StringVar(&out, "out", "", "directory for the certificate and key, created if missing (required)")
	f.DurationVar(&validFor, "valid-for", 8760*time.Hour, "how long the certificate is valid")
	for _, name := range []string{"ca-dir", "cluster", "out"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func newCertsIssueServerCommand(o *options) *cobra.Command {
	var caDir, out string
	var hosts []string
	var validFor time.Duration
	cmd := &cobra.Command{
		Use:   "issue-server --ca-dir DIR --host H[,H...] --out DIR",
		Short: "Issue the control plane's server certificate (" + pki.ServerCertFile + ", " + pki.ServerKeyFile + ")",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := checkCertFlags(validFor, "ca-dir", caDir, "out", out); err != nil {
				return err
			}
			if err := pki.IssueServer(caDir, out, hosts, validFor); err != nil {
				return explainCADir(caDir, err)
			}
			return wrote(o, out, pki.ServerCertFile, pki.ServerKeyFile, strings.Join(hosts, ", "))
		},
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca-dir", "", "directory of the CA made by 'cutover certs init' (required)")
	f.StringSliceVar(&hosts, "host", nil, "DNS names and IP addresses agents and people reach the control plane by (required)")
	f.StringVar(&out, "out", "", "directory for the certificate and key, created if missing (required)")
	f.DurationVar(&validFor, "valid-for", 8760*time.Hour, "how long the certificate is valid")
	for _, name := range []string{"ca-dir", "host", "out"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// checkCertFlags rejects a non-positive --valid-for and string flags, given
// as name-value pairs, that are empty: cobra's required check only sees
// whether a flag was set.
func checkCertFlags(validFor time.Duration, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return fmt.Errorf("--%s: must not be empty", pairs[i])
		}
	}
	if validFor <= 0 {
		return fmt.Errorf("--valid-for: must be positive, got %s", validFor)
	}
	return nil
}

// explainCADir turns the most likely mistake, a --ca-dir without a CA,
// into an error that names the flag and the way out; other errors pass.
func explainCADir(dir string, err error) error {
	crt := filepath.Join(dir, pki.CACertFile)
	if _, serr := os.Stat(crt); errors.Is(err, fs.ErrNotExist) && errors.Is(serr, fs.ErrNotExist) {
		return fmt.Errorf("--ca-dir: %s does not exist; create a CA with cutover certs init --dir %s", crt, dir)
	}
	return err
}

// wrote reports the two files a command wrote into dir.
func wrote(o *options, dir, certName, keyName, what string) error {
	_, err := fmt.Fprintf(o.streams.Out, "wrote %s and %s (%s)\n", filepath.Join(dir, certName), filepath.Join(dir, keyName), what)
	return err
}
