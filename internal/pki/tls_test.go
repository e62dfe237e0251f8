package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	day     = 24 * time.Hour
	year    = 365 * day
	cluster = "eu-1"
)

// newCA creates a CA in a fresh directory and returns the directory.
func newCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := InitCA(dir, "test CA", 10*year); err != nil {
		t.Fatal(err)
	}
	return dir
}

// agentIn issues an agent certificate for cluster from the CA in caDir at
// time now and returns its directory.
func agentIn(t *testing.T, caDir string, validity time.Duration, now clock) string {
	t.Helper()
	dir := t.TempDir()
	if err := issueAgent(caDir, dir, cluster, validity, now); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serverIn issues a server certificate for hosts from the CA in caDir and
// returns its directory.
func serverIn(t *testing.T, caDir string, validity time.Duration, now clock, hosts ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := issueServer(caDir, dir, hosts, validity, now); err != nil {
		t.Fatal(err)
	}
	return dir
}

func keyPair(t *testing.T, dir, certName, keyName string) *KeyPair {
	t.Helper()
	kp, err := NewKeyPair(filepath.Join(dir, certName), filepath.Join(dir, keyName))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func caPool(t *testing.T, file string) *CAPool {
	t.Helper()
	p, err := NewCAPool(file)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func clientTLS(t *testing.T, caDir string, kp *KeyPair, serverName string) *tls.Config {
	t.Helper()
	cfg, err := ClientTLS(filepath.Join(caDir, CACertFile), kp, serverName)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// end is what one end of a handshake saw.
type end struct {
	state tls.ConnectionState
	err   error
}

// handshake connects a client to a server over loopback and returns what
// each end saw. The server sends one byte after its handshake succeeds,
// because in TLS 1.3 the client finishes before the server has checked the
// client's certificate: the client's read then carries the server's verdict.
func handshake(t *testing.T, server, client *tls.Config) (srv, cli end) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan end, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			done <- end{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(deadline)
		tc := tls.Server(conn, server)
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte{1})
		}
		done <- end{state: tc.ConnectionState(), err: err}
	}()
	conn, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	tc := tls.Client(conn, client)
	err = tc.Handshake()
	if err == nil {
		_, err = io.ReadFull(tc, make([]byte, 1))
	}
	cli = end{state: tc.ConnectionState(), err: err}
	conn.Close()
	return <-done, cli
}

func TestAgentIsAcceptedAndNamesItsCluster(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	srvKP := keyPair(t, serverIn(t, ca, year, time.Now, "127.0.0.1"), ServerCertFile, ServerKeyFile)
	agentKP := keyPair(t, agentIn(t, ca, year, time.Now), AgentCertFile, AgentKeyFile)

	srv, cli := handshake(t,
		ServerTLS(srvKP, caPool(t, filepath.Join(ca, CACertFile))),
		clientTLS(t, ca, agentKP, "127.0.0.1"))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("handshake failed: server %v, client %v", srv.err, cli.err)
	}
	if srv.state.Version != tls.VersionTLS13 {
		t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(srv.state.Version))
	}
	got, err := PeerCluster(srv.state)
	if err != nil || got != cluster {
		t.Errorf("PeerCluster = %q, %v; want %q", got, err, cluster)
	}
}

func TestPersonWithoutCertificateIsAcceptedButIsNoAgent(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	srvKP := keyPair(t, serverIn(t, ca, year, time.Now, "localhost", "127.0.0.1"), ServerCertFile, ServerKeyFile)

	srv, cli := handshake(t,
		ServerTLS(srvKP, caPool(t, filepath.Join(ca, CACertFile))),
		clientTLS(t, ca, nil, "localhost"))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("handshake failed: server %v, client %v", srv.err, cli.err)
	}
	if _, err := PeerCluster(srv.state); !errors.Is(err, ErrNoClientCert) {
		t.Errorf("PeerCluster error = %v, want ErrNoClientCert", err)
	}
}

func TestServerRejectsBadAgentCertificates(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	srvDir := serverIn(t, ca, year, time.Now, "127.0.0.1")
	server := ServerTLS(keyPair(t, srvDir, ServerCertFile, ServerKeyFile), caPool(t, filepath.Join(ca, CACertFile)))
	past := func() time.Time { return time.Now().Add(-2 * day) }

	tests := []struct {
		name    string
		kp      *KeyPair
		wantErr func(error) bool
	}{
		{"from another CA", keyPair(t, agentIn(t, newCA(t), year, time.Now), AgentCertFile, AgentKeyFile), isUnknownAuthority},
		{"expired", keyPair(t, agentIn(t, ca, day, past), AgentCertFile, AgentKeyFile), isInvalid(x509.Expired)},
		{"server certificate as client", keyPair(t, srvDir, ServerCertFile, ServerKeyFile), isInvalid(x509.IncompatibleUsage)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, cli := handshake(t, server, clientTLS(t, ca, tt.kp, "127.0.0.1"))
			if !tt.wantErr(srv.err) {
				t.Errorf("server error = %v, want the certificate rejected", srv.err)
			}
			if cli.err == nil {
				t.Error("client saw no error")
			}
		})
	}
}

func TestClientRejectsBadServerCertificates(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	past := func() time.Time { return time.Now().Add(-2 * day) }

	tests := []struct {
		name       string
		kp         *KeyPair
		serverName string
		wantErr    func(error) bool
	}{
		{"from another CA", keyPair(t, serverIn(t, newCA(t), year, time.Now, "127.0.0.1"), ServerCertFile, ServerKeyFile), "127.0.0.1", isUnknownAuthority},
		{"wrong name", keyPair(t, serverIn(t, ca, year, time.Now, "127.0.0.1", "a.example"), ServerCertFile, ServerKeyFile), "b.example", isHostname},
		{"wrong IP", keyPair(t, serverIn(t, ca, year, time.Now, "127.0.0.2", "a.example"), ServerCertFile, ServerKeyFile), "127.0.0.1", isHostname},
		{"expired", keyPair(t, serverIn(t, ca, day, past, "127.0.0.1"), ServerCertFile, ServerKeyFile), "127.0.0.1", isInvalid(x509.Expired)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, cli := handshake(t, ServerTLS(tt.kp, nil), clientTLS(t, ca, nil, tt.serverName))
			if !tt.wantErr(cli.err) {
				t.Errorf("client error = %v, want the certificate rejected", cli.err)
			}
			if srv.err == nil {
				t.Error("server saw no error")
			}
		})
	}
}

func isUnknownAuthority(err error) bool {
	var target x509.UnknownAuthorityError
	return errors.As(err, &target)
}

func isHostname(err error) bool {
	var target x509.HostnameError
	return errors.As(err, &target)
}

func isInvalid(reason x509.InvalidReason) func(error) bool {
	return func(err error) bool {
		var target x509.CertificateInvalidError
		return errors.As(err, &target) && target.Reason == reason
	}
}

// await runs handshakes until ok accepts one, failing the test after a
// deadline; files are examined at most once a second, so a change takes up
// to that long to show.
func await(t *testing.T, server, client *tls.Config, ok func(srv, cli end) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv, cli := handshake(t, server, client)
		if ok(srv, cli) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("change not picked up within 5s: last handshake: server %v, client %v", srv.err, cli.err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServerPicksUpRotatedKeyPair(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	srvDir := serverIn(t, ca, year, time.Now, "127.0.0.1")
	kp := keyPair(t, srvDir, ServerCertFile, ServerKeyFile)
	server := ServerTLS(kp, nil)
	client := clientTLS(t, ca, nil, "127.0.0.1")
	_, cli := handshake(t, server, client)
	if cli.err != nil {
		t.Fatal(cli.err)
	}
	old := cli.state.PeerCertificates[0]

	if err := IssueServer(ca, srvDir, []string{"127.0.0.1", "cutover.example"}, year); err != nil {
		t.Fatal(err)
	}
	await(t, server, client, func(_, cli end) bool {
		return cli.err == nil && !cli.state.PeerCertificates[0].Equal(old)
	})
	_, cli = handshake(t, server, client)
	if got := cli.state.PeerCertificates[0].DNSNames; !slices.Equal(got, []string{"cutover.example"}) {
		t.Errorf("server now presents DNS names %q, want the new certificate's [cutover.example]", got)
	}
	if err := kp.Err(); err != nil {
		t.Errorf("Err() = %v after a good rotation", err)
	}
}

func TestServerPicksUpRotatedClientCA(t *testing.T) {
	t.Parallel()
	oldCA, newCA := newCA(t), newCA(t)
	srvKP := keyPair(t, serverIn(t, oldCA, year, time.Now, "127.0.0.1"), ServerCertFile, ServerKeyFile)
	agentKP := keyPair(t, agentIn(t, newCA, year, time.Now), AgentCertFile, AgentKeyFile)
	trust := filepath.Join(t.TempDir(), "clients.crt")
	copyFile(t, filepath.Join(oldCA, CACertFile), trust)
	server := ServerTLS(srvKP, caPool(t, trust))
	client := clientTLS(t, oldCA, agentKP, "127.0.0.1")
	if srv, _ := handshake(t, server, client); !isUnknownAuthority(srv.err) {
		t.Fatalf("server error = %v before the rotation, want unknown authority", srv.err)
	}

	copyFile(t, filepath.Join(newCA, CACertFile), trust)
	await(t, server, client, func(srv, cli end) bool { return srv.err == nil && cli.err == nil })
}

func TestFailedReloadKeepsThePreviousPair(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dir := serverIn(t, ca, year, time.Now, "127.0.0.1")
	kp := keyPair(t, dir, ServerCertFile, ServerKeyFile)
	before, _ := kp.GetCertificate(nil)

	certFile := filepath.Join(dir, ServerCertFile)
	if err := writeFile(certFile, []byte("not PEM"), 0o644, false); err != nil {
		t.Fatal(err)
	}
	if err := kp.Reload(); err == nil {
		t.Fatal("Reload of a broken certificate succeeded")
	}
	if after, err := kp.GetCertificate(nil); err != nil || after != before {
		t.Errorf("GetCertificate = %p, %v after a failed reload; want the previous pair %p", after, err, before)
	}
	if err := kp.Err(); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Errorf("Err() = %v, want the failure naming %s", err, certFile)
	}

	if err := IssueServer(ca, dir, []string{"127.0.0.1"}, year); err != nil {
		t.Fatal(err)
	}
	if err := kp.Reload(); err != nil {
		t.Fatalf("Reload after repair: %v", err)
	}
	if after, _ := kp.GetCertificate(nil); after == before {
		t.Error("GetCertificate still returns the old pair after a good reload")
	}
	if err := kp.Err(); err != nil {
		t.Errorf("Err() = %v after a good reload, want nil", err)
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestFilesAreExaminedAtMostOnceASecond(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dir := serverIn(t, ca, year, time.Now, "127.0.0.1")
	kp := keyPair(t, dir, ServerCertFile, ServerKeyFile)
	clk := &fakeClock{t: kp.w.checked}
	kp.w.now = clk.now
	before, _ := kp.GetCertificate(nil)

	if err := IssueServer(ca, dir, []string{"127.0.0.1"}, year); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(checkEvery - time.Millisecond)
	if got, _ := kp.GetCertificate(nil); got != before {
		t.Fatal("files were examined again within a second")
	}
	clk.t = clk.t.Add(time.Millisecond)
	after, _ := kp.GetCertificate(nil)
	if after == before {
		t.Fatal("a changed key pair was not loaded once a second had passed")
	}

	// A broken file is noticed by the next check too, without Reload.
	if err := writeFile(filepath.Join(dir, ServerKeyFile), []byte("garbage"), 0o600, false); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(checkEvery)
	if got, _ := kp.GetCertificate(nil); got != after {
		t.Error("a broken key replaced the working pair")
	}
	if kp.Err() == nil {
		t.Error("Err() = nil after a failed automatic reload")
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dir := serverIn(t, ca, year, time.Now, "127.0.0.1")
	kp := keyPair(t, dir, ServerCertFile, ServerKeyFile)
	pool := caPool(t, filepath.Join(ca, CACertFile))
	kp.w.every, pool.w.every = 0, 0 // examine the files on every call

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c, err := kp.GetCertificate(nil); err != nil || c == nil {
					t.Errorf("GetCertificate = %v, %v", c, err)
					return
				}
				if pool.Pool() == nil {
					t.Error("Pool() = nil")
					return
				}
			}
		})
	}
	for range 5 {
		if err := IssueServer(ca, dir, []string{"127.0.0.1"}, year); err != nil {
			t.Error(err)
		}
		_ = kp.Reload() // may race the rewrite of the other file; Err says
		_ = pool.Reload()
	}
	close(stop)
	wg.Wait()
	if err := kp.Reload(); err != nil {
		t.Errorf("final Reload: %v", err)
	}
}

// copyFile replaces dst with the contents of src the way a rotation does,
// atomically.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dst, data, 0o644, false); err != nil {
		t.Fatal(err)
	}
}
