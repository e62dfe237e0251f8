package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/pki"
	"github.com/cutover-dev/cutover/test/harness"
)

// secureEnv is a control plane and an agent set up exactly as the README's
// "Turning security on" says, with the CLI.
type secureEnv struct {
	t                  *testing.T
	dir                string
	grpcAddr, httpAddr string
	tokens             map[string]string // subject -> token
	server, agent      *harness.Process
}

// cutover runs the CLI with an isolated config file.
func (s *secureEnv) cutover(args ...string) (string, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Path(harness.CLI), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "CUTOVER_CONFIG="+filepath.Join(s.dir, "cli.yaml"), "CUTOVER_SERVER=", "CUTOVER_TOKEN=", "CUTOVER_CA=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("cutover %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

func (s *secureEnv) must(args ...string) string {
	s.t.Helper()
	out, err := s.cutover(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// newSecureEnv follows the README's steps 1-5.
func newSecureEnv(t *testing.T) *secureEnv {
	s := &secureEnv{t: t, dir: t.TempDir(), tokens: map[string]string{}}
	addrs, err := harness.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	s.grpcAddr, s.httpAddr = addrs[0], addrs[1]
	// 1. A CA, the control plane's certificate, one certificate per agent.
	s.must("certs", "init", "--dir", "ca")
	s.must("certs", "issue-server", "--ca-dir", "ca", "--host", "127.0.0.1,localhost", "--out", "server")
	s.must("certs", "issue-agent", "--ca-dir", "ca", "--cluster", "eu-1", "--out", "agent-eu-1")
	// 2. Tokens, each printed once; the file keeps only their hashes.
	for _, tok := range []struct{ subject, role, apps string }{
		{"alice", "deployer", ""}, {"paula", "deployer", "payments-*"}, {"victor", "viewer", ""}, {"root", "admin", ""},
		{"bob", "approver", ""},
	} {
		args := []string{"tokens", "create", "--subject", tok.subject, "--role", tok.role, "--file", "tokens.yaml"}
		if tok.apps != "" {
			args = append(args, "--apps", tok.apps)
		}
		out := s.must(args...)
		s.tokens[tok.subject] = strings.SplitN(out, "\n", 2)[0]
		if !strings.HasPrefix(s.tokens[tok.subject], "cot_") {
			t.Fatalf("tokens create printed %q", out)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(s.dir, "tokens.yaml")); bytes.Contains(data, []byte(s.tokens["alice"])) {
		t.Fatal("the tokens file holds a token in the clear")
	}
	// 3. The control plane, TLS on both ports.
	s.server, err = harness.StartProcess("cutover-server", bins.Path(harness.Server), filepath.Join(s.dir, "server.log"),
		"--data-dir", filepath.Join(s.dir, "data"), "--grpc-listen", s.grpcAddr, "--http-listen", s.httpAddr,
		"--tls-cert", filepath.Join(s.dir, "server/server.crt"), "--tls-key", filepath.Join(s.dir, "server/server.key"),
		"--agent-ca", filepath.Join(s.dir, "ca/ca.crt"), "--tokens-file", filepath.Join(s.dir, "tokens.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.agent != nil {
			_ = s.agent.Stop(10 * time.Second)
		}
		_ = s.server.Stop(10 * time.Second)
		if t.Failed() {
			for _, f := range []string{"server.log", "agent.log"} {
				b, _ := os.ReadFile(filepath.Join(s.dir, f))
				t.Logf("==== %s ====\n%s", f, b)
			}
		}
	})
	// 4. The agent, with its certificate.
	s.agent, err = harness.StartProcess("cutover-agent", bins.Path(harness.Agent), filepath.Join(s.dir, "agent.log"),
		"--server", s.grpcAddr, "--cluster", "eu-1", "--data-dir", filepath.Join(s.dir, "agent-data"),
		"--tls-ca", filepath.Join(s.dir, "ca/ca.crt"), "--tls-cert", filepath.Join(s.dir, "agent-eu-1/agent.crt"),
		"--tls-key", filepath.Join(s.dir, "agent-eu-1/agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	// 5. People log in once; the CLI keeps server, CA and token.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last string
	err = harness.Poll(ctx, 50*time.Millisecond, "login and agent connected", func() (bool, error) {
		if _, err := s.cutover("login", "--server", s.grpcAddr, "--ca", "ca/ca.crt", "--token", s.tokens["alice"]); err != nil {
			last = err.Error()
			return false, nil
		}
		out, err := s.cutover("clusters")
		last = fmt.Sprint(out, err)
		return err == nil && strings.Contains(out, "eu-1") && strings.Contains(strings.ToLower(out), "connected"), nil
	})
	if err != nil {
		t.Fatalf("%v; last: %s", err, last)
	}
	return s
}

func manifestFor(app string) string {
	return fmt.Sprintf(`apiVersion: cutover.dev/v1
kind: Rollout
metadata: {name: %s}
spec:
  revision: {name: v1, command: %q, args: ["--version", "v1"]}
  endpoint: {listen: "127.0.0.1:1"}
  targets: {waves: [{clusters: [eu-1]}]}
  strategy: {canary: {steps: [{setWeight: 50}]}}
`, app, bins.Path(harness.DemoApp))
}

// rest calls the REST API over TLS with a token ("" for none).
func (s *secureEnv) rest(method, path, token, body string) (int, string) {
	s.t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(s.dir, "ca/ca.crt"))
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		s.t.Fatalf("ca: %v", err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(method, "https://"+s.httpAddr+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// grpcAs dials the control plane with TLS and, unless empty, a token.
func (s *secureEnv) grpcAs(token string) cutoverv1.RolloutServiceClient {
	s.t.Helper()
	tc, err := pki.ClientTLS(filepath.Join(s.dir, "ca/ca.crt"), nil, "127.0.0.1")
	if err != nil {
		s.t.Fatal(err)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(token)))
	}
	conn, err := grpc.NewClient(s.grpcAddr, opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close() })
	return cutoverv1.NewRolloutServiceClient(conn)
}

type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return true }

// People and automation: every call is authenticated and authorised by one
// policy, on gRPC and on REST alike.
func TestSecurityTokensAndRoles(t *testing.T) {
	s := newSecureEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	apply := func(app string) string {
		b, _ := json.Marshal(map[string]string{"manifest": manifestFor(app)})
		return string(b)
	}

	// No token: 401 / Unauthenticated.
	if code, body := s.rest("GET", "/v1/rollouts", "", ""); code != http.StatusUnauthorized {
		t.Errorf("REST without a token: %d %s, want 401", code, body)
	}
	_, err := s.grpcAs("").ListRollouts(ctx, &cutoverv1.ListRolloutsRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC without a token: %v, want Unauthenticated", err)
	}
	if code, _ := s.rest("GET", "/v1/rollouts", "cot_not-a-token", ""); code != http.StatusUnauthorized {
		t.Errorf("REST with an unknown token: %d, want 401", code)
	}
	// Health, readiness and metrics stay open for probes and Prometheus.
	if code, _ := s.rest("GET", "/readyz", "", ""); code != http.StatusOK {
		t.Errorf("/readyz: %d", code)
	}

	// A viewer reads but may not apply: 403 / PermissionDenied, naming
	// what was missing.
	if code, body := s.rest("GET", "/v1/rollouts", s.tokens["victor"], ""); code != http.StatusOK {
		t.Errorf("viewer listing: %d %s", code, body)
	}
	code, body := s.rest("POST", "/v1/rollouts", s.tokens["victor"], apply("web-shop"))
	if code != http.StatusForbidden || !strings.Contains(body, `victor lacks permission deploy on app \"web-shop\"`) {
		t.Errorf("viewer applying over REST: %d %s, want 403 naming the permission", code, body)
	}
	_, err = s.grpcAs(s.tokens["victor"]).ApplyRollout(ctx, &cutoverv1.ApplyRolloutRequest{Manifest: manifestFor("web-shop")})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "lacks permission deploy") {
		t.Errorf("viewer applying over gRPC: %v, want PermissionDenied", err)
	}

	// A deployer applies; the rollout records who did it.
	if code, body := s.rest("POST", "/v1/rollouts", s.tokens["alice"], apply("web-shop")); code != http.StatusOK {
		t.Fatalf("deployer applying over REST: %d %s", code, body)
	}
	r, err := s.grpcAs(s.tokens["victor"]).GetRollout(ctx, &cutoverv1.GetRolloutRequest{Name: "web-shop"})
	if err != nil || r.GetRollout().GetAppliedBy() != "alice" {
		t.Errorf("applied by %q (%v), want alice", r.GetRollout().GetAppliedBy(), err)
	}
	if out := s.must("abort", "web-shop"); out == "" {
		t.Error("the logged-in CLI printed nothing for abort")
	}

	// A deployer scoped to payments-* may deploy payments-api, not web-*.
	if _, err := s.grpcAs(s.tokens["paula"]).ApplyRollout(ctx, &cutoverv1.ApplyRolloutRequest{Manifest: manifestFor("payments-api")}); err != nil {
		t.Errorf("scoped deployer on payments-api: %v", err)
	}
	code, body = s.rest("POST", "/v1/rollouts", s.tokens["paula"], apply("web-other"))
	if code != http.StatusForbidden || !strings.Contains(body, "deployer on apps payments-*") {
		t.Errorf("scoped deployer on web-other: %d %s, want 403", code, body)
	}
	_, err = s.grpcAs(s.tokens["paula"]).AbortRollout(ctx, &cutoverv1.AbortRolloutRequest{Name: "web-shop"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("scoped deployer aborting web-shop: %v, want PermissionDenied", err)
	}

	// Listing shows a scoped caller only what is in its scope.
	for subject, want := range map[string]int{"victor": 2, "paula": 1} {
		resp, err := s.grpcAs(s.tokens[subject]).ListRollouts(ctx, &cutoverv1.ListRolloutsRequest{})
		if err != nil || len(resp.GetRollouts()) != want {
			t.Errorf("%s lists %d rollouts (%v), want %d", subject, len(resp.GetRollouts()), err, want)
		}
	}

	// The CLI never sends a token in clear text off loopback (refused
	// before it dials: nothing leaves the machine).
	if _, err := s.cutover("--config", filepath.Join(s.dir, "none.yaml"), "--server", "192.0.2.1:7070", "--ca", "", "--token", s.tokens["alice"], "clusters"); err == nil || !strings.Contains(err.Error(), "refusing to send a token in clear text") {
		t.Errorf("token in clear text to a remote server: %v", err)
	}

	// A token added to the file works after SIGHUP, without a restart.
	out := s.must("tokens", "create", "--subject", "newcomer", "--role", "viewer", "--file", "tokens.yaml")
	fresh := strings.SplitN(out, "\n", 2)[0]
	if code, _ := s.rest("GET", "/v1/rollouts", fresh, ""); code != http.StatusUnauthorized {
		t.Errorf("a token not yet reloaded: %d, want 401", code)
	}
	if err := syscall.Kill(s.server.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	err = harness.Poll(ctx, 20*time.Millisecond, "new token accepted after SIGHUP", func() (bool, error) {
		code, _ := s.rest("GET", "/v1/rollouts", fresh, "")
		return code == http.StatusOK, nil
	})
	if err != nil {
		t.Error(err)
	}
	if code, _ := s.rest("GET", "/v1/rollouts", s.tokens["alice"], ""); code != http.StatusOK {
		t.Errorf("an existing token after the reload: %d", code)
	}
}

// Agents: only a certificate from the agent CA gets in, only for the
// cluster it names, and only while it is valid.
func TestSecurityAgentCertificates(t *testing.T) {
	s := newSecureEnv(t)
	caDir := filepath.Join(s.dir, "ca")
	// Another CA's certificate for the same cluster.
	if _, err := s.cutover("certs", "init", "--dir", "other-ca"); err != nil {
		t.Fatal(err)
	}
	s.must("certs", "issue-agent", "--ca-dir", "other-ca", "--cluster", "eu-1", "--out", "rogue")
	s.must("certs", "issue-agent", "--ca-dir", "ca", "--cluster", "us-1", "--out", "agent-us-1")
	expired := filepath.Join(s.dir, "expired")
	writeExpiredAgentCert(t, caDir, expired, "eu-2")

	connect := func(certDir, hello string) error {
		kp, err := pki.NewKeyPair(filepath.Join(certDir, "agent.crt"), filepath.Join(certDir, "agent.key"))
		if err != nil {
			t.Fatal(err)
		}
		tc, err := pki.ClientTLS(filepath.Join(caDir, "ca.crt"), kp, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stream, err := cutoverv1.NewAgentServiceClient(conn).Connect(ctx)
		if err != nil {
			return err
		}
		if err := stream.Send(&cutoverv1.ConnectRequest{Payload: &cutoverv1.ConnectRequest_Hello{Hello: &cutoverv1.Hello{Cluster: hello, Runtime: "local"}}}); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_, err = stream.Recv()
		return err
	}
	// The right certificate for the cluster it names gets a stream (the
	// first message is a desired state or nothing; a refusal is an error).
	okErr := make(chan error, 1)
	go func() { okErr <- connect(filepath.Join(s.dir, "agent-us-1"), "us-1") }()
	for _, tt := range []struct {
		name, dir, hello string
		code             codes.Code
	}{
		{"another CA", filepath.Join(s.dir, "rogue"), "eu-1", codes.Unavailable},
		{"certificate for us-1, hello eu-1", filepath.Join(s.dir, "agent-us-1"), "eu-1", codes.PermissionDenied},
		{"expired", expired, "eu-2", codes.Unavailable},
	} {
		err := connect(tt.dir, tt.hello)
		if status.Code(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	select {
	case err := <-okErr:
		t.Errorf("a valid agent certificate was refused: %v", err)
	case <-time.After(2 * time.Second): // still connected
	}
	// No client certificate at all: the agent stream is refused.
	tc, err := pki.ClientTLS(filepath.Join(caDir, "ca.crt"), nil, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := cutoverv1.NewAgentServiceClient(conn).Connect(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("agent stream without a certificate: %v, want Unauthenticated", err)
	}
}

// writeExpiredAgentCert signs, with the CA of caDir, an agent certificate
// that expired an hour ago.
func writeExpiredAgentCert(t *testing.T, caDir, out, cluster string) {
	t.Helper()
	caCert := readPEM(t, filepath.Join(caDir, "ca.crt"))
	ca, err := x509.ParseCertificate(caCert)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := x509.ParsePKCS8PrivateKey(readPEM(t, filepath.Join(caDir, "ca.key")))
	if err != nil {
		t.Fatal(err)
	}
	// Reuse a fresh key pair's key for the leaf.
	tmp := t.TempDir()
	if err := pki.IssueAgent(caDir, tmp, cluster, time.Hour); err != nil {
		t.Fatal(err)
	}
	leafKeyDER := readPEM(t, filepath.Join(tmp, "agent.key"))
	leafKey, err := x509.ParsePKCS8PrivateKey(leafKeyDER)
	if err != nil {
		t.Fatal(err)
	}
	pub := leafKey.(crypto.Signer).Public()
	u, _ := url.Parse("cutover://cluster/" + cluster)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cluster},
		URIs:         []*url.URL{u},
		NotBefore:    time.Now().Add(-48 * time.Hour),
		NotAfter:     time.Now().Add(-time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "agent.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "agent.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: leafKeyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readPEM(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	return b.Bytes
}

// Four eyes through the real API: a rollout that needs two approvals
// before it starts is approved by two people other than its author, with
// a role that may approve; the author, a deployer and a second approval by
// the same person are refused.
func TestApprovalsFourEyes(t *testing.T) {
	s := newSecureEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	manifest := manifestFor("payments-api") + "  approval: {required: 2}\n"
	if _, err := s.grpcAs(s.tokens["root"]).ApplyRollout(ctx, &cutoverv1.ApplyRolloutRequest{Manifest: manifest}); err != nil {
		t.Fatal(err)
	}
	get := func() *cutoverv1.Rollout {
		r, err := s.grpcAs(s.tokens["victor"]).GetRollout(ctx, &cutoverv1.GetRolloutRequest{Name: "payments-api"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetRollout()
	}
	if err := harness.Poll(ctx, 20*time.Millisecond, "waiting for approval after the pre-flight", func() (bool, error) {
		return get().GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL, nil
	}); err != nil {
		t.Fatalf("before approvals: %v (%s)", err, get().GetStatus().GetPhase())
	}
	if out := s.must("approvals"); !strings.Contains(out, "payments-api") || !strings.Contains(out, "0 of 2") {
		t.Errorf("cutover approvals: %q", out)
	}
	approve := func(who string) error {
		_, err := s.grpcAs(s.tokens[who]).ApproveRollout(ctx, &cutoverv1.ApproveRolloutRequest{Name: "payments-api", Comment: "checked by " + who})
		return err
	}
	if err := approve("root"); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "cannot approve it (four eyes)") {
		t.Errorf("the author approving: %v", err)
	}
	if err := approve("alice"); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "lacks permission approve") {
		t.Errorf("a deployer approving: %v", err)
	}
	if err := approve("bob"); err != nil {
		t.Fatalf("bob approving: %v", err)
	}
	if err := approve("bob"); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "another person must") {
		t.Errorf("bob approving twice: %v", err)
	}
	if p := get().GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL {
		t.Fatalf("after one of two approvals: %s", p)
	}
	// The second approver uses the CLI, logged in with their own token.
	if _, err := s.cutover("--token", s.tokens["root"], "--ca", "ca/ca.crt", "approve", "payments-api", "--comment", "second pair of eyes"); err == nil {
		t.Error("the author approved through the CLI")
	}
	carol := strings.SplitN(s.must("tokens", "create", "--subject", "carol", "--role", "approver", "--apps", "payments-*", "--file", "tokens.yaml"), "\n", 2)[0]
	if err := syscall.Kill(s.server.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	err := harness.Poll(ctx, 50*time.Millisecond, "carol's approval", func() (bool, error) {
		_, err := s.cutover("--token", carol, "--ca", "ca/ca.crt", "approve", "payments-api", "--comment", "second pair of eyes")
		return err == nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := get()
	if p := r.GetStatus().GetPhase(); p == cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL {
		t.Fatalf("after two approvals: %s (%s)", p, r.GetStatus().GetMessage())
	}
	var who []string
	for _, a := range r.GetStatus().GetApprovals() {
		who = append(who, a.GetActor())
	}
	if strings.Join(who, ",") != "bob,carol" {
		t.Errorf("approvals recorded: %v", who)
	}
	if out := s.must("--token", s.tokens["bob"], "audit", "list", "--app", "payments-api"); !strings.Contains(out, "approval.approve") {
		t.Errorf("the audit trail lacks the approvals:\n%s", out)
	}
}
