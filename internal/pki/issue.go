package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// The names of the files this package writes, relative to their directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	AgentCertFile  = "agent.crt"
	AgentKeyFile   = "agent.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
)

// ErrExists is returned, wrapped, by InitCA when the CA it would create is
// already there.
var ErrExists = errors.New("already exists")

const (
	// backdate is how far before "now" a certificate becomes valid, so that
	// a peer whose clock is a little behind accepts a fresh certificate.
	backdate = 5 * time.Minute
	// clusterURIPrefix starts the URI SAN that names an agent's cluster.
	clusterURIPrefix = "cutover://cluster/"
	maxClusterName   = 63
	// maxCommonName is the upper bound RFC 5280 sets on a CommonName.
	maxCommonName = 64
)

// clusterNameRE is the product's name rule (as for rollout names): a DNS
// label, so a cluster name is also safe in a URI path and a hostname.
var clusterNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// hostnameRE accepts DNS names, with an optional leading wildcard label.
var hostnameRE = regexp.MustCompile(`^(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$`)

// clock is the time certificates are issued at; tests pass one in the past
// to issue certificates that have already expired.
type clock func() time.Time

// InitCA creates a new cluster CA named name, valid for validity, as
// CACertFile and CAKeyFile in dir (created 0700 if missing). It refuses,
// with an error wrapping ErrExists that names the file, to replace either
// file of an existing CA.
func InitCA(dir, name string, validity time.Duration) error {
	return initCA(dir, name, validity, time.Now)
}

// IssueAgent issues the certificate of the agent of cluster, signed by the
// CA in caDir, as AgentCertFile and AgentKeyFile in outDir (created 0700 if
// missing), replacing any earlier ones.
func IssueAgent(caDir, outDir, cluster string, validity time.Duration) error {
	return issueAgent(caDir, outDir, cluster, validity, time.Now)
}

// IssueServer issues a control-plane certificate for hosts (DNS names,
// "*.domain" wildcards or IP addresses), signed by the CA in caDir, as
// ServerCertFile and ServerKeyFile in outDir (created 0700 if missing),
// replacing any earlier ones.
func IssueServer(caDir, outDir string, hosts []string, validity time.Duration) error {
	return issueServer(caDir, outDir, hosts, validity, time.Now)
}

func initCA(dir, name string, validity time.Duration, now clock) error {
	if err := checkValidity(validity); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	if name == "" || len(name) > maxCommonName {
		return fmt.Errorf("init CA: name: must be 1-%d characters, got %q", maxCommonName, name)
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("init CA: %s %w, refusing to overwrite an existing CA", p, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("init CA: %w", err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("init CA: generate key: %w", err)
	}
	t := now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             t.Add(-backdate),
		NotAfter:              t.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaves only, never another CA.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("init CA: create certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	// Exclusive writes: if another init raced this one, its files stay.
	if err := writeFile(keyPath, keyPEM, 0o600, true); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	if err := writeFile(certPath, encodeCert(der), 0o644, true); err != nil {
		// A key without its certificate would block the next init.
		_ = os.Remove(keyPath)
		return fmt.Errorf("init CA: %w", err)
	}
	return nil
}

func issueAgent(caDir, outDir, cluster string, validity time.Duration, now clock) error {
	if err := validCluster(cluster); err != nil {
		return fmt.Errorf("--cluster: %w", err)
	}
	u, err := url.Parse(clusterURIPrefix + cluster)
	if err != nil {
		return fmt.Errorf("issue agent certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cluster},
		URIs:        []*url.URL{u},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := issue(caDir, outDir, AgentCertFile, AgentKeyFile, tmpl, validity, now); err != nil {
		return fmt.Errorf("issue agent certificate for cluster %s: %w", cluster, err)
	}
	return nil
}

func issueServer(caDir, outDir string, hosts []string, validity time.Duration, now clock) error {
	if len(hosts) == 0 {
		return errors.New("--host: at least one host name or IP address is required")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "cutover control plane"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if len(h) > 253 || !hostnameRE.MatchString(h) {
			return fmt.Errorf("--host: want a DNS name or an IP address without a port, got %q", h)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, strings.ToLower(h))
	}
	if err := issue(caDir, outDir, ServerCertFile, ServerKeyFile, tmpl, validity, now); err != nil {
		return fmt.Errorf("issue server certificate for %s: %w", strings.Join(hosts, ", "), err)
	}
	return nil
}

// issue completes tmpl as a leaf certificate with a new key, signs it with
// the CA in caDir, and writes both into outDir.
func issue(caDir, outDir, certName, keyName string, tmpl *x509.Certificate, validity time.Duration, now clock) error {
	if err := checkValidity(validity); err != nil {
		return err
	}
	caCert, caKey, err := loadCA(caDir)
	if err != nil {
		return err
	}
	t := now()
	tmpl.NotBefore = t.Add(-backdate)
	tmpl.NotAfter = t.Add(validity)
	if tmpl.NotAfter.After(caCert.NotAfter) {
		return fmt.Errorf("the certificate would expire at %s, after its CA (%s) does at %s: issue it for less time or create a new CA",
			tmpl.NotAfter.UTC().Format(time.RFC3339), filepath.Join(caDir, CACertFile), caCert.NotAfter.UTC().Format(time.RFC3339))
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	// A nil SerialNumber makes CreateCertificate pick a random one.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return err
	}
	// Key first: a reader that sees the new certificate with the old key
	// fails to pair them and retries, keeping the old pair meanwhile.
	if err := writeFile(filepath.Join(outDir, keyName), keyPEM, 0o600, false); err != nil {
		return err
	}
	return writeFile(filepath.Join(outDir, certName), encodeCert(der), 0o644, false)
}

// loadCA reads the CA certificate and key in dir and checks that they belong
// together and can sign certificates.
func loadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA %s and %s: %w", certPath, keyPath, err)
	}
	ca := pair.Leaf
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("load CA: %s: key of type %T cannot sign", keyPath, pair.PrivateKey)
	}
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("load CA: %s is not a CA certificate", certPath)
	}
	return ca, signer, nil
}

func checkValidity(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("validity: must be positive, got %s", d)
	}
	return nil
}

// validCluster checks a cluster name against the product's name rule.
func validCluster(name string) error {
	if len(name) > maxClusterName || !clusterNameRE.MatchString(name) {
		return fmt.Errorf("must be 1-%d lowercase letters, digits or '-', starting and ending with a letter or digit, got %q", maxClusterName, name)
	}
	return nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeFile puts data at path with mode perm so that no reader ever sees a
// partial file: data goes to a synced temporary file in the same directory,
// which is then renamed over path or, when exclusive, hard-linked to path,
// which fails instead of replacing a file that is already there.
func writeFile(path string, data []byte, perm os.FileMode, exclusive bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if exclusive {
		if err := os.Link(tmp, path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("write %s: %w", path, ErrExists)
			}
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
