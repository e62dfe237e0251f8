package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cutover-dev/cutover/internal/auth"
)

func TestParseTokensAndAuthorize(t *testing.T) {
	alice, aliceHash, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	bob, bobHash, _ := auth.NewToken()
	if !strings.HasPrefix(alice, auth.TokenPrefix) || alice == bob {
		t.Fatalf("tokens %q %q", alice, bob)
	}
	file := "tokens:\n" +
		"  - subject: alice\n    hash: " + aliceHash + "\n    roles:\n      - role: deployer\n        apps: [\"payments-*\"]\n        clusters: [\"eu-*\"]\n" +
		"  - subject: bob\n    hash: " + bobHash + "\n    roles: [{role: viewer}, {role: approver, apps: [web]}]\n"
	set, err := auth.ParseTokens([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 2 || set.Lookup("cot_wrong") != nil || set.Lookup("") != nil {
		t.Fatalf("lookup of unknown tokens succeeded")
	}
	a, b := set.Lookup(alice), set.Lookup(bob)
	if a == nil || a.Subject != "alice" || b == nil || b.Subject != "bob" {
		t.Fatalf("lookup: %+v %+v", a, b)
	}
	for _, tt := range []struct {
		p    *auth.Principal
		perm auth.Permission
		t    auth.Target
		ok   bool
	}{
		{a, auth.PermDeploy, auth.Target{App: "payments-api", Clusters: []string{"eu-1", "eu-2"}}, true},
		{a, auth.PermDeploy, auth.Target{App: "web-1"}, false},
		{a, auth.PermDeploy, auth.Target{App: "payments-api", Clusters: []string{"eu-1", "us-1"}}, false},
		{a, auth.PermRead, auth.Target{App: "payments-api"}, true},
		{a, auth.PermRead, auth.Target{}, true},
		{a, auth.PermAudit, auth.Target{}, false},
		{b, auth.PermDeploy, auth.Target{App: "web"}, false},
		{b, auth.PermApprove, auth.Target{App: "web"}, true},
		{b, auth.PermApprove, auth.Target{App: "web-2"}, false},
		{b, auth.PermRead, auth.Target{App: "anything"}, true},
	} {
		err := auth.Authorize(tt.p, tt.perm, tt.t)
		if (err == nil) != tt.ok {
			t.Errorf("%s %s %+v: %v, want allowed=%v", tt.p.Subject, tt.perm, tt.t, err, tt.ok)
		}
		var d *auth.Denied
		if err != nil && (!errors.As(err, &d) || !strings.Contains(err.Error(), string(tt.perm))) {
			t.Errorf("denial %q does not name the permission", err)
		}
	}
	err = auth.Authorize(a, auth.PermDeploy, auth.Target{App: "web-1"})
	if want := `alice lacks permission deploy on app "web-1" (has deployer on apps payments-* in clusters eu-*)`; err.Error() != want {
		t.Errorf("denial = %q\nwant     %q", err, want)
	}
}

func TestParseTokensErrors(t *testing.T) {
	_, h, _ := auth.NewToken()
	for _, tt := range []struct{ file, want string }{
		{"tokens: [{subject: '', hash: x, roles: []}]", `tokens[0].subject: is required; tokens[0].hash: must be "sha256:" followed by 64 hex digits (the SHA-256 of the token), got "x"; tokens[0].roles: at least one role is required`},
		{"tokens: [{subject: a, hash: " + h + ", roles: [{role: god}]}]", `tokens[0].roles[0].role: unknown role "god" (admin, approver, deployer, viewer)`},
		{"tokens: [{subject: a, hash: " + h + ", roles: [{role: admin, apps: ['[']}]}]", `tokens[0].roles[0].apps[0]: "[" is not a valid pattern`},
		{"tokens: [{subject: a, hash: " + h + ", roles: [{role: admin}]}, {subject: a, hash: " + h + ", roles: [{role: admin}]}]", `tokens[1].subject: "a" has another token already`},
		{"tokens: [{subject: a, hash: " + h + ", roles: [{role: admin}], secret: s3cr3t}]", `unknown field "secret"`},
		{"tokens: [{subject: 'a b', hash: sha256:abcd, roles: [{role: admin}]}]", `tokens[0].subject: "a b" must be`},
	} {
		_, err := auth.ParseTokens([]byte(tt.file))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseTokens(%s):\n got %v\nwant it to contain %s", tt.file, err, tt.want)
		}
	}
}

func TestTokenFileReload(t *testing.T) {
	dir := t.TempDir()
	tok, h, _ := auth.NewToken()
	path := dir + "/tokens.yaml"
	entry, err := auth.EntryYAML("ci", h, []auth.Grant{{Role: auth.RoleViewer}})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(path, "tokens:\n"+indent(entry)); err != nil {
		t.Fatal(err)
	}
	tf, err := auth.LoadTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := tf.Authenticate(context.Background(), tok); err != nil || p.Subject != "ci" {
		t.Fatalf("authenticate: %v %v", p, err)
	}
	if err := writeFile(path, "tokens: [{subject: broken"); err != nil {
		t.Fatal(err)
	}
	if err := tf.Reload(); err == nil {
		t.Fatal("a broken file reloaded")
	}
	if _, err := tf.Authenticate(context.Background(), tok); err != nil {
		t.Errorf("a failed reload dropped the tokens in force: %v", err)
	}
	if err := writeFile(path, "tokens: []\n"); err != nil {
		t.Fatal(err)
	}
	if err := tf.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := tf.Authenticate(context.Background(), tok); !errors.Is(err, auth.ErrUnknownToken) {
		t.Errorf("a revoked token still authenticates: %v", err)
	}
}
