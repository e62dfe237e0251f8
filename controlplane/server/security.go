package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cutover-dev/cutover/internal/auth"
	"github.com/cutover-dev/cutover/internal/pki"
)

// Security configures TLS, agent certificates and tokens. The zero value is
// the insecure mode, allowed only when every listener is on loopback.
type Security struct {
	// TLSCert and TLSKey serve both ports over TLS (cutover certs
	// issue-server); reloaded when the files change or on SIGHUP.
	TLSCert, TLSKey string
	// AgentCA verifies agents' client certificates (cutover certs init);
	// an agent's cluster is the one its certificate names.
	AgentCA string
	// TokensFile holds the bearer tokens of people and automation;
	// reloaded on SIGHUP.
	TokensFile string
	// AllowInsecureRemote serves without TLS on a non-loopback address.
	// Anyone who can reach it can deploy.
	AllowInsecureRemote bool
}

// secured is a control plane's security in force.
type secured struct {
	kp     *pki.KeyPair
	agents *pki.CAPool
	tokens *auth.TokenFile
}

// tlsOn reports whether the ports serve TLS.
func (s *secured) tlsOn() bool { return s.kp != nil }

// setUpSecurity checks the flags together, loads what they name and
// refuses an exposed insecure server.
func setUpSecurity(cfg Security, log *slog.Logger, listeners ...net.Listener) (*secured, error) {
	s := &secured{}
	switch {
	case cfg.TLSCert == "" && cfg.TLSKey != "":
		return nil, errors.New("--tls-cert: is required with --tls-key")
	case cfg.TLSCert != "" && cfg.TLSKey == "":
		return nil, errors.New("--tls-key: is required with --tls-cert")
	case cfg.TLSCert != "" && cfg.AgentCA == "":
		return nil, errors.New("--agent-ca: is required with --tls-cert (agents authenticate with certificates from it)")
	case cfg.TLSCert != "" && cfg.TokensFile == "":
		return nil, errors.New("--tokens-file: is required with --tls-cert (people and automation authenticate with its tokens)")
	case cfg.TLSCert == "" && cfg.AgentCA != "":
		return nil, errors.New("--tls-cert: is required with --agent-ca (agent certificates need TLS)")
	case cfg.TLSCert == "" && cfg.TokensFile != "":
		return nil, errors.New("--tls-cert: is required with --tokens-file (tokens must not travel in clear, and agents need certificates)")
	}
	if cfg.TLSCert != "" {
		kp, err := pki.NewKeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		pool, err := pki.NewCAPool(cfg.AgentCA)
		if err != nil {
			return nil, fmt.Errorf("--agent-ca: %w", err)
		}
		s.kp, s.agents = kp, pool
	}
	if cfg.TokensFile != "" {
		t, err := auth.LoadTokenFile(cfg.TokensFile)
		if err != nil {
			return nil, err
		}
		s.tokens = t
	}
	if s.tlsOn() {
		return s, nil
	}
	for _, ln := range listeners {
		if loopback(ln.Addr()) {
			continue
		}
		if !cfg.AllowInsecureRemote {
			return nil, fmt.Errorf("%s is not a loopback address: without TLS and tokens the control plane serves only on loopback; set --tls-cert, --tls-key, --agent-ca and --tokens-file (see the README), or --insecure-allow-remote to serve it anyway", ln.Addr())
		}
		log.Warn("INSECURE: serving without TLS or authentication on a non-loopback address; anyone who can reach it can deploy and abort rollouts", "addr", ln.Addr().String())
	}
	return s, nil
}

// loopback reports whether a listener's address is on loopback only.
func loopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP != nil && tcp.IP.IsLoopback()
}

// authenticator is the tokens in force, nil in the open mode.
func (s *secured) authenticator() auth.Authenticator {
	if s.tokens == nil {
		return nil
	}
	return s.tokens
}

// grpcCreds are the gRPC server's transport credentials.
func (s *secured) grpcCreds() credentials.TransportCredentials {
	if !s.tlsOn() {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(pki.ServerTLS(s.kp, s.agents))
}

// httpListener wraps the REST listener in TLS when it is on.
func (s *secured) httpListener(ln net.Listener) net.Listener {
	if !s.tlsOn() {
		return ln
	}
	return tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.kp.GetCertificate})
}

// gatewayCreds are how the REST gateway dials the gRPC port of this same
// process: over TLS that accepts exactly the certificate this server
// serves (the address dialled is loopback, which the certificate need not
// name).
func (s *secured) gatewayCreds() credentials.TransportCredentials {
	if !s.tlsOn() {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(&tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			cur, err := s.kp.GetCertificate(nil)
			if err != nil {
				return err
			}
			if len(raw) == 0 || len(cur.Certificate) == 0 || !bytes.Equal(raw[0], cur.Certificate[0]) {
				return errors.New("gateway: the gRPC port did not present this server's own certificate")
			}
			return nil
		},
	})
}

// reloadOnSIGHUP re-reads certificates, the agent CA and the tokens file
// on SIGHUP until stop is closed.
func (s *secured) reloadOnSIGHUP(stop <-chan struct{}, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-stop:
			return
		case <-hup:
		}
		var errs []error
		if s.kp != nil {
			errs = append(errs, s.kp.Reload(), s.agents.Reload())
		}
		if s.tokens != nil {
			errs = append(errs, s.tokens.Reload())
		}
		if err := errors.Join(errs...); err != nil {
			log.Error("reload on SIGHUP (what was in force stays)", "err", err)
			continue
		}
		log.Info("reloaded certificates and tokens on SIGHUP")
	}
}
