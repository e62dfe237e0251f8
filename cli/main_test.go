package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// fakeServer answers both services through its function fields; a nil field
// answers Unimplemented, as the real server would for an unknown method.
type fakeServer struct {
	cutoverv1.UnimplementedRolloutServiceServer
	cutoverv1.UnimplementedClusterServiceServer

	apply        func(*cutoverv1.ApplyRolloutRequest) (*cutoverv1.ApplyRolloutResponse, error)
	get          func(*cutoverv1.GetRolloutRequest) (*cutoverv1.GetRolloutResponse, error)
	list         func(*cutoverv1.ListRolloutsRequest) (*cutoverv1.ListRolloutsResponse, error)
	promote      func(*cutoverv1.PromoteRolloutRequest) (*cutoverv1.PromoteRolloutResponse, error)
	abort        func(*cutoverv1.AbortRolloutRequest) (*cutoverv1.AbortRolloutResponse, error)
	listClusters func(*cutoverv1.ListClustersRequest) (*cutoverv1.ListClustersResponse, error)
}

// handle calls fn, or answers Unimplemented when the test left it nil.
func handle[Req, Resp any](fn func(Req) (Resp, error), req Req) (Resp, error) {
	if fn == nil {
		var zero Resp
		return zero, status.Error(codes.Unimplemented, "not faked")
	}
	return fn(req)
}

func (f *fakeServer) ApplyRollout(_ context.Context, r *cutoverv1.ApplyRolloutRequest) (*cutoverv1.ApplyRolloutResponse, error) {
	return handle(f.apply, r)
}

func (f *fakeServer) GetRollout(_ context.Context, r *cutoverv1.GetRolloutRequest) (*cutoverv1.GetRolloutResponse, error) {
	return handle(f.get, r)
}

func (f *fakeServer) ListRollouts(_ context.Context, r *cutoverv1.ListRolloutsRequest) (*cutoverv1.ListRolloutsResponse, error) {
	return handle(f.list, r)
}

func (f *fakeServer) PromoteRollout(_ context.Context, r *cutoverv1.PromoteRolloutRequest) (*cutoverv1.PromoteRolloutResponse, error) {
	return handle(f.promote, r)
}

func (f *fakeServer) AbortRollout(_ context.Context, r *cutoverv1.AbortRolloutRequest) (*cutoverv1.AbortRolloutResponse, error) {
	return handle(f.abort, r)
}

func (f *fakeServer) ListClusters(_ context.Context, r *cutoverv1.ListClustersRequest) (*cutoverv1.ListClustersResponse, error) {
	return handle(f.listClusters, r)
}

// serve runs f on a real gRPC server on a free loopback port and returns its
// address.
func serve(t *testing.T, f *fakeServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	cutoverv1.RegisterRolloutServiceServer(s, f)
	cutoverv1.RegisterClusterServiceServer(s, f)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Serve(lis) })
	t.Cleanup(func() {
		s.Stop()
		wg.Wait()
	})
	return lis.Addr().String()
}

type result struct {
	out, err string
	code     int
}

// run runs the CLI as a user would, with stdin as standard input.
func run(stdin string, args ...string) result {
	var out, errOut bytes.Buffer
	code := Main(args, Streams{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	return result{out: out.String(), err: errOut.String(), code: code}
}

// wantOK fails the test unless r succeeded without writing to stderr.
func wantOK(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 || r.err != "" {
		t.Fatalf("exit %d, stderr %q; want success", r.code, r.err)
	}
}

// wantError fails the test unless r failed with exactly one stderr line
// starting with "error: "+prefix and printed nothing to stdout.
func wantError(t *testing.T, r result, prefix string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit code = %d, want 1", r.code)
	}
	if !strings.HasPrefix(r.err, "error: "+prefix) || strings.Count(r.err, "\n") != 1 || !strings.HasSuffix(r.err, "\n") {
		t.Errorf("stderr = %q, want one line starting %q", r.err, "error: "+prefix)
	}
	if r.out != "" {
		t.Errorf("stdout = %q, want nothing", r.out)
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadRollout(t *testing.T) *cutoverv1.Rollout {
	t.Helper()
	r := &cutoverv1.Rollout{}
	if err := protojson.Unmarshal(readTestdata(t, "rollout.json"), r); err != nil {
		t.Fatal(err)
	}
	return r
}

func loadClusters(t *testing.T) *cutoverv1.ListClustersResponse {
	t.Helper()
	resp := &cutoverv1.ListClustersResponse{}
	if err := protojson.Unmarshal(readTestdata(t, "clusters.json"), resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestApplySendsManifestVerbatim(t *testing.T) {
	t.Parallel()
	manifest := string(readTestdata(t, "rollout.yaml"))
	file := filepath.Join("testdata", "rollout.yaml")
	tests := []struct {
		name    string
		changed bool
		args    []string
		stdin   string
		want    string
	}{
		{"changed from file", true, []string{"apply", "-f", file}, "", "rollout/web configured\n"},
		{"unchanged from file", false, []string{"apply", "--filename", file}, "", "rollout/web unchanged\n"},
		{"changed from stdin", true, []string{"apply", "-f", "-"}, manifest, "rollout/web configured\n"},
		{"dry run", true, []string{"apply", "-f", file, "--dry-run"}, "", "rollout/web configured (dry run: nothing stored), policy banking\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got string
			addr := serve(t, &fakeServer{apply: func(req *cutoverv1.ApplyRolloutRequest) (*cutoverv1.ApplyRolloutResponse, error) {
				got = req.GetManifest()
				r := &cutoverv1.Rollout{Name: "web"}
				if req.GetDryRun() != strings.Contains(tt.name, "dry run") {
					return nil, status.Errorf(codes.InvalidArgument, "dry_run %t", req.GetDryRun())
				}
				if req.GetDryRun() {
					r.Spec = &cutoverv1.RolloutSpec{Policy: "banking"}
				}
				return &cutoverv1.ApplyRolloutResponse{Rollout: r, Changed: tt.changed}, nil
			}})
			r := run(tt.stdin, append([]string{"--server", addr}, tt.args...)...)
			wantOK(t, r)
			if got != manifest {
				t.Errorf("server received manifest %q, want the file verbatim %q", got, manifest)
			}
			if r.out != tt.want {
				t.Errorf("stdout = %q, want %q", r.out, tt.want)
			}
		})
	}
}

func TestServerErrorIsOneLine(t *testing.T) {
	t.Parallel()
	const msg = "spec.strategy.canary.steps[2].setWeight: must be between 0 and 100"
	addr := serve(t, &fakeServer{apply: func(*cutoverv1.ApplyRolloutRequest) (*cutoverv1.ApplyRolloutResponse, error) {
		return nil, status.Error(codes.InvalidArgument, msg)
	}})
	r := run("", "--server", addr, "apply", "-f", filepath.Join("testdata", "rollout.yaml"))
	wantError(t, r, msg)
	if r.err != "error: "+msg+"\n" {
		t.Errorf("stderr = %q, want exactly the server's message", r.err)
	}
}

func TestGetRolloutShowsWavesAndWeights(t *testing.T) {
	t.Parallel()
	rollout := loadRollout(t)
	var asked string
	addr := serve(t, &fakeServer{get: func(req *cutoverv1.GetRolloutRequest) (*cutoverv1.GetRolloutResponse, error) {
		asked = req.GetName()
		return &cutoverv1.GetRolloutResponse{Rollout: rollout}, nil
	}})
	r := run("", "--server", addr, "get", "rollout", "web")
	wantOK(t, r)
	if asked != "web" {
		t.Errorf("server asked for %q, want web", asked)
	}
	for _, want := range [][]string{
		{"Phase:", "Paused (Step)"},
		{"Wave:", "1/2 (canary)"},
		{"Wave 1/2: canary (current)"},
		{"eu-1", "Progressing", "10%", "v1", "v1 2/2 ready 90%, v2 1/1 ready 10%", "yes"},
		{"Wave 2/2: rest (pending)"},
		{"us-2", "Pending", "0%", "v1", "v1 0/1 ready 0%", "no"},
	} {
		if !hasLine(r.out, want) {
			t.Errorf("no line with fields %q in:\n%s", want, r.out)
		}
	}
	// The rest of the step line says how long ago it started.
	if !hasPrefixLine(r.out, []string{"Step:", "2/4 pause until promoted, started"}) {
		t.Errorf("no step line in:\n%s", r.out)
	}
}

// hasLine reports whether some line of out consists of fields, in order,
// separated only by spaces.
func hasLine(out string, fields []string) bool {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := matchFields(line, fields); ok && rest == "" {
			return true
		}
	}
	return false
}

// hasPrefixLine is hasLine for the leading fields of a line, so that tests
// can leave out ages, which depend on the clock.
func hasPrefixLine(out string, fields []string) bool {
	for _, line := range strings.Split(out, "\n") {
		if _, ok := matchFields(line, fields); ok {
			return true
		}
	}
	return false
}

// matchFields consumes fields from the start of line and returns the rest.
func matchFields(line string, fields []string) (rest string, ok bool) {
	rest = strings.TrimSpace(line)
	for _, f := range fields {
		after, found := strings.CutPrefix(rest, f)
		if !found {
			return "", false
		}
		rest = strings.TrimLeft(after, " ")
	}
	return rest, true
}

func TestStructuredOutputParsesBack(t *testing.T) {
	t.Parallel()
	rollout := loadRollout(t)
	addr := serve(t, &fakeServer{
		get: func(*cutoverv1.GetRolloutRequest) (*cutoverv1.GetRolloutResponse, error) {
			return &cutoverv1.GetRolloutResponse{Rollout: rollout}, nil
		},
		list: func(*cutoverv1.ListRolloutsRequest) (*cutoverv1.ListRolloutsResponse, error) {
			return &cutoverv1.ListRolloutsResponse{Rollouts: []*cutoverv1.Rollout{rollout}}, nil
		},
	})
	tests := []struct {
		args []string
		got  proto.Message
		want proto.Message
	}{
		{[]string{"get", "rollout", "web", "-o", "json"}, &cutoverv1.Rollout{}, rollout},
		{[]string{"get", "rollout", "web", "--output", "yaml"}, &cutoverv1.Rollout{}, rollout},
		{[]string{"get", "rollouts", "-o", "json"}, &cutoverv1.ListRolloutsResponse{},
			&cutoverv1.ListRolloutsResponse{Rollouts: []*cutoverv1.Rollout{rollout}}},
		{[]string{"-o", "yaml", "get", "rollouts"}, &cutoverv1.ListRolloutsResponse{},
			&cutoverv1.ListRolloutsResponse{Rollouts: []*cutoverv1.Rollout{rollout}}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			r := run("", append([]string{"--server", addr}, tt.args...)...)
			wantOK(t, r)
			js := []byte(r.out)
			if strings.Contains(strings.Join(tt.args, " "), "yaml") {
				var err error
				if js, err = yaml.YAMLToJSON(js); err != nil {
					t.Fatalf("output is not YAML: %v\n%s", err, r.out)
				}
			}
			if err := protojson.Unmarshal(js, tt.got); err != nil {
				t.Fatalf("output does not parse back: %v\n%s", err, r.out)
			}
			if !proto.Equal(tt.got, tt.want) {
				t.Errorf("parsed back %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestActions(t *testing.T) {
	t.Parallel()
	var promoted *cutoverv1.PromoteRolloutRequest
	var aborted *cutoverv1.AbortRolloutRequest
	addr := serve(t, &fakeServer{
		promote: func(req *cutoverv1.PromoteRolloutRequest) (*cutoverv1.PromoteRolloutResponse, error) {
			promoted = req
			return &cutoverv1.PromoteRolloutResponse{Rollout: &cutoverv1.Rollout{Name: req.GetName()}}, nil
		},
		abort: func(req *cutoverv1.AbortRolloutRequest) (*cutoverv1.AbortRolloutResponse, error) {
			aborted = req
			return &cutoverv1.AbortRolloutResponse{Rollout: &cutoverv1.Rollout{Name: req.GetName()}}, nil
		},
	})

	r := run("", "--server", addr, "promote", "web", "--full")
	wantOK(t, r)
	if r.out != "rollout/web promoted\n" || !proto.Equal(promoted, &cutoverv1.PromoteRolloutRequest{Name: "web", Full: true}) {
		t.Errorf("promote: stdout %q, request %v", r.out, promoted)
	}

	r = run("", "--server", addr, "abort", "web", "--reason", "errors up")
	wantOK(t, r)
	if r.out != "rollout/web aborted\n" || !proto.Equal(aborted, &cutoverv1.AbortRolloutRequest{Name: "web", Reason: "errors up"}) {
		t.Errorf("abort: stdout %q, request %v", r.out, aborted)
	}

	wantError(t, run("", "--server", addr, "pause", "web"), "method PauseRollout not implemented")
	wantError(t, run("", "--server", addr, "resume"), `"cutover resume" takes exactly one rollout NAME`)
}

func TestClustersTable(t *testing.T) {
	t.Parallel()
	addr := serve(t, &fakeServer{listClusters: func(*cutoverv1.ListClustersRequest) (*cutoverv1.ListClustersResponse, error) {
		return loadClusters(t), nil
	}})
	r := run("", "--server", addr, "clusters")
	wantOK(t, r)
	for _, want := range [][]string{
		{"NAME", "REGION", "STATUS", "RUNTIME", "VERSION", "LABELS", "LAST HEARTBEAT"},
		{"eu-1", "eu-west", "Connected", "local", "0.1.0-dev", "env=prod,env-group=a,tier=gold"},
		{"us-1", "us-east", "Disconnected", "local", "0.1.0-dev", "-"},
	} {
		if !hasPrefixLine(r.out, want) {
			t.Errorf("no line starting with fields %q in:\n%s", want, r.out)
		}
	}
}

func TestServerFromEnvironment(t *testing.T) {
	addr := serve(t, &fakeServer{list: func(*cutoverv1.ListRolloutsRequest) (*cutoverv1.ListRolloutsResponse, error) {
		return &cutoverv1.ListRolloutsResponse{}, nil
	}})
	t.Setenv(serverEnv, addr)
	r := run("", "get", "rollouts")
	if r.code != 0 || r.out != "" || r.err != "No rollouts found.\n" {
		t.Errorf("got %+v, want the empty-list notice from the server in $%s", r, serverEnv)
	}
}

func TestBadFlagsFailNamingTheFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-o", "xml", "clusters"}, `--output: must be one of table, json, yaml, got "xml"`},
		{[]string{"get", "rollouts", "--output=wide"}, `--output: must be one of table, json, yaml, got "wide"`},
		{[]string{"--timeout", "0s", "clusters"}, `--timeout: must be positive, got 0s`},
		{[]string{"apply"}, `required flag(s) "filename" not set`},
		{[]string{"gett", "rollouts"}, `unknown command "gett" for "cutover"`},
		{[]string{"get", "demo"}, `unknown resource type "demo": use "get rollout NAME" or "get rollouts"`},
		{[]string{"clusters", "--bogus"}, `unknown flag: --bogus`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			r := run("", append([]string{"--server", "127.0.0.1:1"}, tt.args...)...)
			wantError(t, r, tt.want)
			if r.err != "error: "+tt.want+"\n" {
				t.Errorf("stderr = %q, want %q", r.err, "error: "+tt.want+"\n")
			}
		})
	}
}

// TestUnreachableServer is not parallel so that no fake server of another
// test can take the closed port in the meantime.
func TestUnreachableServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there any more

	r := run("", "--server", addr, "get", "rollouts")
	wantError(t, r, "cannot reach control plane at "+addr+": ")
	if !strings.Contains(r.err, "connection refused") {
		t.Errorf("stderr = %q, want the dial error", r.err)
	}
}

func TestServerUnavailableIsNotUnreachable(t *testing.T) {
	t.Parallel()
	addr := serve(t, &fakeServer{list: func(*cutoverv1.ListRolloutsRequest) (*cutoverv1.ListRolloutsResponse, error) {
		return nil, status.Error(codes.Unavailable, "store is closing")
	}})
	r := run("", "--server", addr, "get", "rollouts")
	wantError(t, r, "store is closing")
}
