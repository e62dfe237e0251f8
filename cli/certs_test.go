package cli

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCertsWorkOffline makes a CA and both kinds of certificate with no
// control plane to talk to, and checks that crypto/tls loads each pair and
// that each certificate chains to the CA for its use.
func TestCertsWorkOffline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caDir, agentDir, serverDir := filepath.Join(dir, "ca"), filepath.Join(dir, "agent"), filepath.Join(dir, "server")
	// An unreachable --server shows that nothing is dialled.
	offline := []string{"--server", "127.0.0.1:1"}

	r := run("", append(offline, "certs", "init", "--dir", caDir, "--name", "test CA")...)
	wantOK(t, r)
	if want := "wrote " + filepath.Join(caDir, "ca.crt") + " and " + filepath.Join(caDir, "ca.key") + " (CA test CA)\n"; r.out != want {
		t.Errorf("init printed %q, want %q", r.out, want)
	}
	r = run("", append(offline, "certs", "issue-agent", "--ca-dir", caDir, "--cluster", "eu-1", "--out", agentDir, "--valid-for", "720h")...)
	wantOK(t, r)
	if want := "wrote " + filepath.Join(agentDir, "agent.crt") + " and " + filepath.Join(agentDir, "agent.key") + " (cluster eu-1)\n"; r.out != want {
		t.Errorf("issue-agent printed %q, want %q", r.out, want)
	}
	r = run("", append(offline, "certs", "issue-server", "--ca-dir", caDir, "--host", "cutover.example,127.0.0.1", "--out", serverDir)...)
	wantOK(t, r)
	if !strings.Contains(r.out, filepath.Join(serverDir, "server.crt")) || !strings.Contains(r.out, filepath.Join(serverDir, "server.key")) {
		t.Errorf("issue-server printed %q, want the paths it wrote", r.out)
	}

	caPEM, err := os.ReadFile(filepath.Join(caDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	agent := loadCertPair(t, agentDir, "agent")
	if _, err := agent.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("agent certificate does not chain to the CA for client auth: %v", err)
	}
	if agent.Subject.CommonName != "eu-1" || len(agent.URIs) != 1 || agent.URIs[0].String() != "cutover://cluster/eu-1" {
		t.Errorf("agent certificate names %q and %v, want eu-1 and cutover://cluster/eu-1", agent.Subject.CommonName, agent.URIs)
	}
	if days := agent.NotAfter.Sub(agent.NotBefore).Hours() / 24; days < 30 || days > 30.1 {
		t.Errorf("agent certificate is valid for %.2f days, want --valid-for 720h", days)
	}
	server := loadCertPair(t, serverDir, "server")
	for _, name := range []string{"cutover.example", "127.0.0.1"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate does not chain to the CA for %s: %v", name, err)
		}
	}

	// The CA is never replaced.
	wantError(t, run("", append(offline, "certs", "init", "--dir", caDir)...), "init CA: "+filepath.Join(caDir, "ca.crt")+" already exists")
}

func TestCertsBadFlagsFailNamingTheFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"certs", "issue-agent", "--ca-dir", dir, "--out", dir}, `required flag(s) "cluster" not set`},
		{[]string{"certs", "issue-agent", "--ca-dir", dir, "--out", dir, "--cluster", "EU_1"}, `--cluster: must be 1-63 lowercase letters`},
		{[]string{"certs", "issue-agent", "--ca-dir", "", "--out", dir, "--cluster", "eu-1"}, `--ca-dir: must not be empty`},
		{[]string{"certs", "issue-server", "--ca-dir", dir, "--out", dir, "--host", "a.example:7070"}, `--host: want a DNS name or an IP address without a port`},
		{[]string{"certs", "issue-server", "--ca-dir", dir, "--out", dir}, `required flag(s) "host" not set`},
		{[]string{"certs", "issue-server", "--ca-dir", dir, "--out", dir, "--host", "a.example"}, `--ca-dir: ` + filepath.Join(dir, "ca.crt") + ` does not exist`},
		{[]string{"certs", "init", "--dir", dir, "--valid-for", "0s"}, `--valid-for: must be positive, got 0s`},
		{[]string{"certs", "init"}, `required flag(s) "dir" not set`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			wantError(t, run("", tt.args...), tt.want)
		})
	}
}

// loadCertPair loads dir/<name>.crt and .key with crypto/tls and returns the
// certificate.
func loadCertPair(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatalf("crypto/tls cannot load the %s key pair: %v", name, err)
	}
	return pair.Leaf
}
