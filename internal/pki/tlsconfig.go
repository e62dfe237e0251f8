package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
)

// ServerTLS returns the TLS configuration of the control plane's port,
// which serves both people (bearer tokens, no client certificate) and
// agents. A client certificate is therefore optional for TLS but verified
// when given, against clientCAs as it is at that handshake; the agent
// service itself demands one (see PeerCluster). The server certificate is
// kp's current pair; kp must not be nil. A nil clientCAs asks for no client
// certificates.
//
// Session tickets are off: a resumed session is not verified again, which
// would let a certificate from a rotated-out CA back in; agents hold long
// connections, so full handshakes cost little.
func ServerTLS(kp *KeyPair, clientCAs *CAPool) *tls.Config {
	forHandshake := func() *tls.Config {
		c := &tls.Config{
			MinVersion:     tls.VersionTLS12, // 1.3 is preferred: Go picks the highest both support
			GetCertificate: kp.GetCertificate,
			// The config of each handshake replaces the one a server
			// (net/http, gRPC) added its ALPN protocols to, so they are
			// listed here: h2 for gRPC, http/1.1 for a plain HTTP listener.
			NextProtos:             []string{"h2", "http/1.1"},
			SessionTicketsDisabled: true,
		}
		if clientCAs != nil {
			c.ClientAuth = tls.VerifyClientCertIfGiven
			c.ClientCAs = clientCAs.Pool()
		}
		return c
	}
	cfg := forHandshake()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return forHandshake(), nil
	}
	return cfg
}

// ClientTLS returns the TLS configuration of a client of the control plane
// (an agent, or the CLI). It verifies the server's certificate against the
// CA certificates in caFile as the file is at each handshake, and its name
// against serverName (a DNS name or IP address, without a port). When kp is
// not nil its current pair is presented as the client certificate.
func ClientTLS(caFile string, kp *KeyPair, serverName string) (*tls.Config, error) {
	if serverName == "" {
		return nil, errors.New("client TLS: server name: must not be empty")
	}
	if _, _, err := net.SplitHostPort(serverName); err == nil {
		return nil, fmt.Errorf("client TLS: server name %q: want a host name or IP address without a port", serverName)
	}
	roots, err := NewCAPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("client TLS: %w", err)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: serverName,
		// The built-in verification would pin the roots of this moment;
		// VerifyConnection does the same checks with the current roots. It
		// runs on every handshake, resumed ones included.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(cs.PeerCertificates, roots.Pool(), serverName)
		},
	}
	if kp != nil {
		cfg.GetClientCertificate = kp.GetClientCertificate
	}
	return cfg, nil
}

// verifyServer checks what crypto/tls checks by default: that chain leads
// to roots, is valid now, is for server authentication, and names
// serverName (a DNS name or an IP address).
func verifyServer(chain []*x509.Certificate, roots *x509.CertPool, serverName string) error {
	if len(chain) == 0 {
		return errors.New("tls: server presented no certificate")
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		DNSName:       serverName,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("tls: verify server certificate: %w", err)
	}
	return nil
}
