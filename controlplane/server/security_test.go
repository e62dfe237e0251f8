package server

import (
	"log/slog"
	"net"
	"strings"
	"testing"
)

// fakeListener only has an address: the check never accepts on it.
type fakeListener struct {
	net.Listener
	addr net.Addr
}

func (f fakeListener) Addr() net.Addr { return f.addr }

func TestInsecureOnlyOnLoopback(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	at := func(ip string) net.Listener {
		return fakeListener{addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 7070}}
	}
	for _, ip := range []string{"127.0.0.1", "::1", "127.0.0.53"} {
		if _, err := setUpSecurity(Security{}, log, at(ip)); err != nil {
			t.Errorf("open mode on %s: %v", ip, err)
		}
	}
	for _, ip := range []string{"0.0.0.0", "::", "192.0.2.10"} {
		_, err := setUpSecurity(Security{}, log, at("127.0.0.1"), at(ip))
		if err == nil || !strings.Contains(err.Error(), "is not a loopback address") || !strings.Contains(err.Error(), "--insecure-allow-remote") {
			t.Errorf("open mode on %s: %v, want a refusal naming the flags", ip, err)
		}
		if _, err := setUpSecurity(Security{AllowInsecureRemote: true}, log, at(ip)); err != nil {
			t.Errorf("forced open mode on %s: %v", ip, err)
		}
	}
	for _, tt := range []struct {
		cfg  Security
		want string
	}{
		{Security{TLSKey: "k"}, "--tls-cert: is required with --tls-key"},
		{Security{TLSCert: "c"}, "--tls-key: is required with --tls-cert"},
		{Security{TLSCert: "c", TLSKey: "k"}, "--agent-ca: is required"},
		{Security{TLSCert: "c", TLSKey: "k", AgentCA: "a"}, "--tokens-file: is required"},
		{Security{AgentCA: "a"}, "--tls-cert: is required with --agent-ca"},
		{Security{TokensFile: "/nonexistent/tokens.yaml"}, "--tls-cert: is required with --tokens-file"},
	} {
		if _, err := setUpSecurity(tt.cfg, log, at("127.0.0.1")); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
