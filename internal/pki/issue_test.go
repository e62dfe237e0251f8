package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInitCARefusesToOverwrite(t *testing.T) {
	t.Parallel()
	dir := newCA(t)
	certFile, keyFile := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	cert, key := readFile(t, certFile), readFile(t, keyFile)

	err := InitCA(dir, "again", year)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), certFile) {
		t.Errorf("second InitCA: %v, want ErrExists naming %s", err, certFile)
	}
	if !bytes.Equal(readFile(t, certFile), cert) || !bytes.Equal(readFile(t, keyFile), key) {
		t.Error("second InitCA changed the CA files")
	}

	// A lone key is a CA half made or half removed: still not overwritten.
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	err = InitCA(dir, "again", year)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), keyFile) {
		t.Errorf("InitCA over a lone key: %v, want ErrExists naming %s", err, keyFile)
	}
	if !bytes.Equal(readFile(t, keyFile), key) {
		t.Error("InitCA changed the lone key")
	}
}

func TestInitCAWritesAPrivateCA(t *testing.T) {
	t.Parallel()
	dir := newCA(t)
	wantMode(t, dir, fs.ModeDir|0o700)
	wantMode(t, filepath.Join(dir, CAKeyFile), 0o600)
	ca := parseCert(t, filepath.Join(dir, CACertFile))
	if !ca.IsCA || ca.Subject.CommonName != "test CA" || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Errorf("CA certificate: IsCA %v, CN %q, MaxPathLen %d (zero %v); want a CA named %q that signs leaves only",
			ca.IsCA, ca.Subject.CommonName, ca.MaxPathLen, ca.MaxPathLenZero, "test CA")
	}
	if got := pemTypes(t, filepath.Join(dir, CAKeyFile)); !slices.Equal(got, []string{"PRIVATE KEY"}) {
		t.Errorf("key file holds PEM blocks %q, want one PRIVATE KEY", got)
	}
	if err := InitCA(filepath.Join(t.TempDir(), "x"), "", year); err == nil {
		t.Error("InitCA with an empty name succeeded")
	}
}

func TestIssuedAgentCertificate(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	out := filepath.Join(t.TempDir(), "agent")
	if err := IssueAgent(ca, out, cluster, year); err != nil {
		t.Fatal(err)
	}
	wantMode(t, filepath.Join(out, AgentKeyFile), 0o600)
	cert := verifyLeaf(t, ca, filepath.Join(out, AgentCertFile), filepath.Join(out, AgentKeyFile), x509.ExtKeyUsageClientAuth)
	if cert.Subject.CommonName != cluster || len(cert.URIs) != 1 || cert.URIs[0].String() != "cutover://cluster/"+cluster {
		t.Errorf("CN %q, URIs %v; want %q and [cutover://cluster/%s]", cert.Subject.CommonName, cert.URIs, cluster, cluster)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage = %v, want client auth only", cert.ExtKeyUsage)
	}
	if got, err := ClusterOf(cert); err != nil || got != cluster {
		t.Errorf("ClusterOf = %q, %v; want %q", got, err, cluster)
	}
}

func TestIssuedServerCertificate(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	out := t.TempDir()
	if err := IssueServer(ca, out, []string{"Cutover.Example", "*.cutover.example", "127.0.0.1", "::1"}, year); err != nil {
		t.Fatal(err)
	}
	wantMode(t, filepath.Join(out, ServerKeyFile), 0o600)
	cert := verifyLeaf(t, ca, filepath.Join(out, ServerCertFile), filepath.Join(out, ServerKeyFile), x509.ExtKeyUsageServerAuth)
	if !slices.Equal(cert.DNSNames, []string{"cutover.example", "*.cutover.example"}) {
		t.Errorf("DNSNames = %q", cert.DNSNames)
	}
	if len(cert.IPAddresses) != 2 || !cert.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !cert.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IPAddresses = %v, want [127.0.0.1 ::1]", cert.IPAddresses)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v, want server auth only", cert.ExtKeyUsage)
	}
	if _, err := ClusterOf(cert); !errors.Is(err, ErrNotAgent) {
		t.Errorf("ClusterOf(server certificate) error = %v, want ErrNotAgent", err)
	}
}

func TestIssueRejectsBadInput(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	out := t.TempDir()
	tests := []struct {
		name  string
		issue func() error
		want  string
	}{
		{"empty cluster", func() error { return IssueAgent(ca, out, "", year) }, "--cluster: must be 1-63 lowercase letters"},
		{"upper-case cluster", func() error { return IssueAgent(ca, out, "EU-1", year) }, `--cluster: must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit, got "EU-1"`},
		{"cluster ending in -", func() error { return IssueAgent(ca, out, "eu-", year) }, "--cluster: "},
		{"cluster of 64", func() error { return IssueAgent(ca, out, strings.Repeat("a", 64), year) }, "--cluster: "},
		{"no host", func() error { return IssueServer(ca, out, nil, year) }, "--host: at least one"},
		{"host with port", func() error { return IssueServer(ca, out, []string{"a.example:7070"}, year) }, `--host: want a DNS name or an IP address without a port, got "a.example:7070"`},
		{"empty host", func() error { return IssueServer(ca, out, []string{"a.example", ""}, year) }, `--host: `},
		{"URL as host", func() error { return IssueServer(ca, out, []string{"https://a.example"}, year) }, `--host: `},
		{"no validity", func() error { return IssueAgent(ca, out, cluster, 0) }, "issue agent certificate for cluster eu-1: validity: must be positive, got 0s"},
		{"outliving the CA", func() error { return IssueAgent(ca, out, cluster, 11*year) }, "after its CA (" + filepath.Join(ca, CACertFile) + ") does"},
		{"no CA", func() error { return IssueAgent(filepath.Join(out, "none"), out, cluster, year) }, "load CA " + filepath.Join(out, "none", CACertFile)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.issue()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("failed issues left files behind: %v", entries)
	}
	if err := IssueAgent(ca, out, strings.Repeat("a", 63), year); err != nil {
		t.Errorf("a 63-character cluster name: %v", err)
	}
}

// verifyLeaf loads the key pair with crypto/tls and verifies its
// certificate against the CA for usage.
func verifyLeaf(t *testing.T, caDir, certFile, keyFile string, usage x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, filepath.Join(caDir, CACertFile)))
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Fatalf("%s does not chain to the CA: %v", certFile, err)
	}
	return pair.Leaf
}

func parseCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(readFile(t, file))
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", file)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemTypes(t *testing.T, file string) []string {
	t.Helper()
	var types []string
	for rest := readFile(t, file); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return types
		}
		types = append(types, b.Type)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantMode(t *testing.T, name string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode(); got != want {
		t.Errorf("%s has mode %s, want %s", name, got, want)
	}
}

func TestWriteFileLeavesNoTemporaryFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := writeFile(path, []byte("one"), 0o644, false); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(path, []byte("two"), 0o644, false); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(path, []byte("three"), 0o644, true); !errors.Is(err, ErrExists) {
		t.Errorf("exclusive write over a file: %v, want ErrExists", err)
	}
	if got := string(readFile(t, path)); got != "two" {
		t.Errorf("file holds %q, want %q", got, "two")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %v, want only f", entries)
	}
}

func TestNewKeyPairAndCAPoolFailOnBadFiles(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.crt")
	if _, err := NewKeyPair(missing, filepath.Join(ca, CAKeyFile)); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("NewKeyPair of a missing file: %v, want an error naming it", err)
	}
	// A key pair that does not belong together.
	if _, err := NewKeyPair(filepath.Join(ca, CACertFile), filepath.Join(agentIn(t, ca, year, time.Now), AgentKeyFile)); err == nil {
		t.Error("NewKeyPair of a mismatched pair succeeded")
	}
	if _, err := NewCAPool(missing); err == nil {
		t.Error("NewCAPool of a missing file succeeded")
	}
	empty := filepath.Join(dir, "empty.crt")
	if err := writeFile(empty, nil, 0o644, false); err != nil {
		t.Fatal(err)
	}
	if _, err := NewCAPool(empty); err == nil || !strings.Contains(err.Error(), "no PEM CERTIFICATE block") {
		t.Errorf("NewCAPool of an empty file: %v", err)
	}
	withKey := filepath.Join(dir, "with-key.crt")
	if err := writeFile(withKey, append(readFile(t, filepath.Join(ca, CACertFile)), readFile(t, filepath.Join(ca, CAKeyFile))...), 0o644, false); err != nil {
		t.Fatal(err)
	}
	if _, err := NewCAPool(withKey); err == nil || !strings.Contains(err.Error(), `PEM block 2 is "PRIVATE KEY"`) {
		t.Errorf("NewCAPool of a bundle with a key: %v", err)
	}
	if _, err := ClientTLS(filepath.Join(ca, CACertFile), nil, "a.example:7070"); err == nil {
		t.Error("ClientTLS accepted a server name with a port")
	}
}
