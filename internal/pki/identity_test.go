package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"testing"
	"time"
)

// selfSigned returns a certificate with the given identity; ClusterOf reads
// identities only, so it need not chain anywhere.
func selfSigned(t *testing.T, cn string, uris []string, usage ...x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   time.Now(),
		NotAfter:    time.Now().Add(time.Hour),
		ExtKeyUsage: usage,
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClusterOf(t *testing.T) {
	t.Parallel()
	client := x509.ExtKeyUsageClientAuth
	tests := []struct {
		name string
		cert *x509.Certificate
		want string // "" means an error wrapping ErrNotAgent
	}{
		{"URI and CommonName agree", selfSigned(t, "eu-1", []string{"cutover://cluster/eu-1"}, client), "eu-1"},
		{"URI only", selfSigned(t, "", []string{"cutover://cluster/eu-1"}, client), "eu-1"},
		{"CommonName only", selfSigned(t, "eu-1", nil, client), "eu-1"},
		{"other URIs are ignored", selfSigned(t, "eu-1", []string{"spiffe://example.org/eu-2", "cutover://cluster/eu-1"}, client), "eu-1"},
		{"client and server usage", selfSigned(t, "eu-1", nil, x509.ExtKeyUsageServerAuth, client), "eu-1"},
		{"URI and CommonName disagree", selfSigned(t, "eu-2", []string{"cutover://cluster/eu-1"}, client), ""},
		{"two cluster URIs", selfSigned(t, "", []string{"cutover://cluster/eu-1", "cutover://cluster/eu-2"}, client), ""},
		{"neither name", selfSigned(t, "", []string{"spiffe://example.org/eu-1"}, client), ""},
		{"server usage only", selfSigned(t, "eu-1", []string{"cutover://cluster/eu-1"}, x509.ExtKeyUsageServerAuth), ""},
		{"any usage is not client auth", selfSigned(t, "eu-1", nil, x509.ExtKeyUsageAny), ""},
		{"no extended usage", selfSigned(t, "eu-1", nil), ""},
		{"invalid CommonName", selfSigned(t, "EU 1", nil, client), ""},
		{"invalid URI name", selfSigned(t, "", []string{"cutover://cluster/eu-1/x"}, client), ""},
		{"URI with a query", selfSigned(t, "", []string{"cutover://cluster/eu-1?x=1"}, client), ""},
		{"nil", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ClusterOf(tt.cert)
			if tt.want == "" {
				if !errors.Is(err, ErrNotAgent) {
					t.Errorf("ClusterOf = %q, %v; want an error wrapping ErrNotAgent", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ClusterOf = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestPeerClusterNeedsAVerifiedChain(t *testing.T) {
	t.Parallel()
	agent := selfSigned(t, "eu-1", nil, x509.ExtKeyUsageClientAuth)
	// Presented but unverified (as with tls.RequestClientCert) is no identity.
	if _, err := PeerCluster(tls.ConnectionState{PeerCertificates: []*x509.Certificate{agent}}); !errors.Is(err, ErrNoClientCert) {
		t.Errorf("PeerCluster of an unverified certificate: %v, want ErrNoClientCert", err)
	}
	got, err := PeerCluster(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{agent}}})
	if err != nil || got != "eu-1" {
		t.Errorf("PeerCluster = %q, %v; want eu-1", got, err)
	}
}
