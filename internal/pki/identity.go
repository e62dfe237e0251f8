package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

var (
	// ErrNotAgent is returned, wrapped, by ClusterOf for a certificate that
	// does not name exactly one valid cluster or is not for client
	// authentication.
	ErrNotAgent = errors.New("not a cutover agent certificate")
	// ErrNoClientCert is returned, wrapped, by PeerCluster when the peer
	// presented no verified certificate: a person, not an agent.
	ErrNoClientCert = errors.New("no verified client certificate")
)

// ClusterOf returns the cluster an agent certificate speaks for. The caller
// must have verified cert against the cluster CA already (it is the leaf of
// a verified chain); ClusterOf only reads the identity.
//
// The cluster is the name in the URI SAN cutover://cluster/<name>, or, when
// the certificate has no such URI, its subject CommonName. It is an error
// wrapping ErrNotAgent if the certificate lacks the client-auth extended key
// usage, has neither name, has more than one cluster URI, has a CommonName
// that disagrees with the URI, or the name is not a valid cluster name.
// Other URI SANs are ignored.
func ClusterOf(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", fmt.Errorf("cluster identity: no certificate: %w", ErrNotAgent)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return "", fmt.Errorf("cluster identity of %q: not for client authentication: %w", cert.Subject.CommonName, ErrNotAgent)
	}
	cn := cert.Subject.CommonName
	var fromURI []string
	for _, u := range cert.URIs {
		if u.Scheme != "cutover" || u.Host != "cluster" {
			continue
		}
		name, ok := strings.CutPrefix(u.Path, "/")
		if !ok || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return "", fmt.Errorf("cluster identity: URI %q: want %s<name>: %w", u, clusterURIPrefix, ErrNotAgent)
		}
		fromURI = append(fromURI, name)
	}
	var name string
	switch {
	case len(fromURI) > 1:
		return "", fmt.Errorf("cluster identity: %d cluster URIs (%s): %w", len(fromURI), strings.Join(fromURI, ", "), ErrNotAgent)
	case len(fromURI) == 1:
		name = fromURI[0]
		if cn != "" && cn != name {
			return "", fmt.Errorf("cluster identity: URI names cluster %q but CommonName is %q: %w", name, cn, ErrNotAgent)
		}
	case cn != "":
		name = cn
	default:
		return "", fmt.Errorf("cluster identity: neither a %s URI nor a CommonName: %w", clusterURIPrefix, ErrNotAgent)
	}
	if err := validCluster(name); err != nil {
		return "", fmt.Errorf("cluster identity: cluster name %w: %w", err, ErrNotAgent)
	}
	return name, nil
}

// PeerCluster returns the cluster of the agent at the other end of a
// server-side connection configured by ServerTLS (for gRPC, the State of
// the peer's credentials.TLSInfo). A connection without a verified client
// certificate yields an error wrapping ErrNoClientCert.
func PeerCluster(cs tls.ConnectionState) (string, error) {
	// With VerifyClientCertIfGiven a presented certificate is verified or
	// the handshake fails, but only VerifiedChains says so for certain.
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", fmt.Errorf("cluster identity: %w", ErrNoClientCert)
	}
	return ClusterOf(cs.VerifiedChains[0][0])
}
