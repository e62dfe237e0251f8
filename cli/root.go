package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cutover-dev/cutover/internal/pki"
	"github.com/cutover-dev/cutover/internal/version"
)

const (
	// serverEnv names the environment variable that overrides defaultServer.
	serverEnv     = "CUTOVER_SERVER"
	defaultServer = "127.0.0.1:7070"
)

// Streams are the standard streams a command reads and writes; tests pass
// buffers.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// options holds the global flags and streams shared by every command of one
// root command.
type options struct {
	streams Streams
	server  string
	output  string
	timeout time.Duration
	token   string // bearer token
	ca      string // CA file verifying the server: TLS when set
	config  string // the CLI config file
}

// Main runs the CLI with args (without the program name) and returns the
// process exit code. Every failure is printed as one "error: " line.
func Main(args []string, streams Streams) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRootCommand(streams)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(streams.Err, "error: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

// NewRootCommand builds the cutover command tree writing to streams.
func NewRootCommand(streams Streams) *cobra.Command {
	o := &options{streams: streams}
	root := &cobra.Command{
		Use:                "cutover",
		Short:              "Drive progressive rollouts across clusters",
		SilenceUsage:       true,
		SilenceErrors:      true,
		DisableSuggestions: true, // suggestions span lines; errors must not
		PersistentPreRunE:  func(cmd *cobra.Command, _ []string) error { return o.resolve(cmd) },
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	o.addFlags(root)
	root.AddCommand(
		newApplyCommand(o),
		newGetCommand(o),
		newPromoteCommand(o),
		newAbortCommand(o),
		newPauseCommand(o),
		newResumeCommand(o),
		newRetryCommand(o),
		newUndoCommand(o),
		newHistoryCommand(o),
		newClustersCommand(o),
		newAuditCommand(o),
		newReportCommand(o),
		newVersionCommand(o),
		newApproveCommand(o),
		newRejectCommand(o),
		newApprovalsCommand(o),
		newLoginCommand(o),
		newTokensCommand(o),
		newCertsCommand(o),
	)
	return root
}

func (o *options) addFlags(root *cobra.Command) {
	server := defaultServer
	if v, ok := os.LookupEnv(serverEnv); ok && v != "" {
		server = v
	}
	f := root.PersistentFlags()
	f.StringVar(&o.server, "server", server, "control plane address (env "+serverEnv+")")
	f.StringVarP(&o.output, "output", "o", outputTable, "output format: table, json or yaml")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "timeout for each request")
	f.StringVar(&o.token, "token", os.Getenv(tokenEnv), "bearer token (env "+tokenEnv+"; default: the config file's, see cutover login)")
	f.StringVar(&o.ca, "ca", os.Getenv(caEnv), "CA certificate of the control plane; connects over TLS (env "+caEnv+")")
	f.StringVar(&o.config, "config", defaultConfigPath(), "CLI config file written by cutover login (env "+configEnv+")")
}

// validate checks the global flags; cobra only checks their syntax.
func (o *options) validate() error {
	if err := validateOutput(o.output); err != nil {
		return err
	}
	if o.server == "" {
		return errors.New("--server: must not be empty")
	}
	if o.timeout <= 0 {
		return fmt.Errorf("--timeout: must be positive, got %s", o.timeout)
	}
	return nil
}

func newVersionCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the CLI version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(o.streams.Out, "cutover", version.String())
			return err
		},
	}
}

// dial opens a connection to the control plane. It is the only place that
// chooses transport credentials: TLS verified against --ca when given, and
// the bearer token on every call.
func (o *options) dial() (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if o.ca != "" {
		host, _, err := net.SplitHostPort(o.server)
		if err != nil {
			return nil, fmt.Errorf("--server %q: %w", o.server, err)
		}
		tc, err := pki.ClientTLS(o.ca, nil, host)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		creds = credentials.NewTLS(tc)
	}
	// Reports carry a rollout's whole evaluation record: more than gRPC's
	// default 4 MiB.
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponse))}
	if o.token != "" && o.ca == "" && !loopbackServer(o.server) {
		return nil, fmt.Errorf("--token: refusing to send a token in clear text to %s; pass --ca to connect over TLS", o.server)
	}
	if o.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerCreds{token: o.token, tls: o.ca != ""}))
	}
	return grpc.NewClient(o.server, opts...)
}

// maxResponse bounds one response the CLI accepts.
const maxResponse = 64 << 20

// loopbackServer reports whether an address is a loopback IP or localhost.
func loopbackServer(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return host == "localhost"
}

// bearerCreds sends the token with every call. Without TLS it goes only
// to a loopback server (the server refuses plaintext anywhere else).
type bearerCreds struct {
	token string
	tls   bool
}

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearerCreds) RequireTransportSecurity() bool { return b.tls }

// call runs fn on a fresh connection with the unary timeout and turns its
// error into the message the user sees.
func (o *options) call(ctx context.Context, fn func(context.Context, grpc.ClientConnInterface) error) error {
	conn, err := o.dial()
	if err != nil {
		return fmt.Errorf("cannot reach control plane at %s: %w", o.server, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	return o.explain(conn, fn(ctx, conn))
}

// explain reduces a gRPC status error to its message, which the server
// writes for people. Unavailable or DeadlineExceeded on a connection that
// never became ready means the server was not reached at all; one that the
// server itself returned arrives on a ready connection.
func (o *options) explain(conn *grpc.ClientConn, err error) error {
	st, ok := status.FromError(err)
	if err == nil || !ok {
		return err
	}
	msg := st.Message()
	if msg == "" {
		msg = st.Code().String()
	}
	code := st.Code()
	if (code == codes.Unavailable || code == codes.DeadlineExceeded) && conn.GetState() != connectivity.Ready {
		return fmt.Errorf("cannot reach control plane at %s: %s", o.server, dialDetail(msg))
	}
	return errors.New(msg)
}

// dialDetail digs the dial error out of gRPC's wrapping, e.g.
// `connection error: desc = "transport: Error while dialing: dial tcp ...:
// connect: connection refused"` becomes `dial tcp ...: connect: connection
// refused`. Messages of any other shape are returned unchanged.
func dialDetail(msg string) string {
	quoted, ok := strings.CutPrefix(msg, "connection error: desc = ")
	if !ok {
		return msg
	}
	desc, err := strconv.Unquote(quoted)
	if err != nil {
		return msg
	}
	return strings.TrimPrefix(desc, "transport: Error while dialing: ")
}

// oneLine joins a multi-line message so that every failure is one line.
func oneLine(msg string) string {
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}
