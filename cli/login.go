package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"sigs.k8s.io/yaml"

	"github.com/cutover-dev/cutover/internal/auth"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Environment variables of the connection settings.
const (
	tokenEnv  = "CUTOVER_TOKEN"
	caEnv     = "CUTOVER_CA"
	configEnv = "CUTOVER_CONFIG"
)

// config is the CLI config file: where the control plane is and how to
// authenticate to it. Flags and environment variables override it.
type config struct {
	Server string `json:"server,omitempty"`
	Token  string `json:"token,omitempty"`
	CA     string `json:"ca,omitempty"`
}

// defaultConfigPath is $CUTOVER_CONFIG, else cutover/config.yaml in the
// user's config directory.
func defaultConfigPath() string {
	if p := os.Getenv(configEnv); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "cutover", "config.yaml")
}

func readConfig(path string) (config, error) {
	var c config
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("--config: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("--config %s: %w", path, err)
	}
	return c, nil
}

// resolve fills the connection settings the flags and environment left
// unset from the config file, then checks the global flags.
func (o *options) resolve(cmd *cobra.Command) error {
	c, err := readConfig(o.config)
	if err != nil {
		return err
	}
	flags := cmd.Flags()
	if c.Server != "" && !flags.Changed("server") && os.Getenv(serverEnv) == "" {
		o.server = c.Server
	}
	if o.token == "" && !flags.Changed("token") {
		o.token = c.Token
	}
	if o.ca == "" && !flags.Changed("ca") {
		o.ca = c.CA
	}
	return o.validate()
}

func newLoginCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Check a token against the control plane and save it with the server and CA in the config file",
		Long: "login calls the control plane with the given --server, --token and --ca and, once it answers, " +
			"writes them to the config file (mode 0600), so later commands need no flags.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.token == "" {
				return errors.New("--token: is required (or " + tokenEnv + ")")
			}
			if o.config == "" {
				return errors.New("--config: no config directory; pass a path")
			}
			ca := o.ca
			if ca != "" {
				abs, err := filepath.Abs(ca)
				if err != nil {
					return fmt.Errorf("--ca: %w", err)
				}
				ca = abs
			}
			err := o.call(cmd.Context(), func(ctx context.Context, conn grpc.ClientConnInterface) error {
				_, err := cutoverv1.NewClusterServiceClient(conn).ListClusters(ctx, &cutoverv1.ListClustersRequest{})
				return err
			})
			if err != nil {
				return fmt.Errorf("login to %s: %w", o.server, err)
			}
			data, err := yaml.Marshal(config{Server: o.server, Token: o.token, CA: ca})
			if err != nil {
				return fmt.Errorf("config: %w", err)
			}
			if err := os.MkdirAll(filepath.Dir(o.config), 0o700); err != nil {
				return fmt.Errorf("--config: %w", err)
			}
			if err := writeFileAtomic(o.config, data, 0o600); err != nil {
				return fmt.Errorf("--config: %w", err)
			}
			_, err = fmt.Fprintf(o.streams.Out, "logged in to %s; settings saved in %s\n", o.server, o.config)
			return err
		},
	}
	return cmd
}

// writeFileAtomic replaces path with data, never leaving half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil { // on disk before it replaces the old file
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

func newTokensCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Manage the control plane's tokens file (offline)"}
	var subject, role, file string
	var apps, clusters []string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a token: print it once, and add its hash, subject and role to a tokens file",
		Long: "create makes a random token and prints it (it is shown only this once). With --file it adds the " +
			"token's SHA-256 hash, the subject and the role to that tokens file (creating it); the control plane " +
			"reads the file at start and on SIGHUP. Without --file it prints the entry to add.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if subject == "" {
				return errors.New("--subject: is required")
			}
			r, err := auth.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			g := auth.Grant{Role: r, Apps: apps, Clusters: clusters}
			token, hash, err := auth.NewToken()
			if err != nil {
				return err
			}
			entry, err := auth.EntryYAML(subject, hash, []auth.Grant{g})
			if err != nil {
				return err
			}
			nested := "  " + strings.ReplaceAll(strings.TrimRight(entry, "\n"), "\n", "\n  ") + "\n"
			if _, err := auth.ParseTokens([]byte("tokens:\n" + nested)); err != nil {
				return fmt.Errorf("--subject, --apps or --clusters: %w", err)
			}
			if file == "" {
				_, err := fmt.Fprintf(o.streams.Out, "%s\n# add under tokens: in the tokens file\n%s", token, nested)
				return err
			}
			if err := appendToken(file, nested); err != nil {
				return fmt.Errorf("--file: %w", err)
			}
			_, err = fmt.Fprintf(o.streams.Out, "%s\n# %s (%s) added to %s; reload the control plane (SIGHUP)\n", token, subject, g, file)
			return err
		},
	}
	f := create.Flags()
	f.StringVar(&subject, "subject", "", "who the token is for, e.g. alice or ci-payments")
	f.StringVar(&role, "role", "", "viewer, deployer, approver or admin")
	f.StringSliceVar(&apps, "apps", nil, "app name patterns the role is limited to, e.g. 'payments-*' (default: every app)")
	f.StringSliceVar(&clusters, "clusters", nil, "cluster name patterns the role is limited to (default: every cluster)")
	f.StringVar(&file, "file", "", "tokens file to add the entry to")
	cmd.AddCommand(create)
	return cmd
}

// appendToken adds an entry to a tokens file, creating it, and checks the
// result still parses, so a broken file is never written.
func appendToken(file, nested string) error {
	data, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	body := strings.TrimRight(string(data), "\n")
	switch {
	case strings.TrimSpace(body) == "" || strings.TrimSpace(body) == "tokens: []":
		body = "tokens:\n" + nested
	default:
		body += "\n" + nested
	}
	if _, err := auth.ParseTokens([]byte(body)); err != nil {
		return err
	}
	return writeFileAtomic(file, []byte(body), 0o600)
}
