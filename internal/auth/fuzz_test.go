package auth_test

import (
	"strings"
	"testing"

	"github.com/cutover-dev/cutover/internal/auth"
)

// FuzzParseTokens: no input makes the parser panic or hang; a parsed file
// never authenticates the empty token, nor a token whose hash it does not
// list. Seeds: testdata/fuzz/FuzzParseTokens.
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte("tokens: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := auth.ParseTokens(data)
		if err != nil {
			if set != nil {
				t.Fatal("a set returned with an error")
			}
			return
		}
		if set.Lookup("") != nil {
			t.Fatal("the empty token authenticated")
		}
		for _, probe := range []string{string(data), "cot_probe"} {
			p := set.Lookup(probe)
			listed := strings.Contains(strings.ToLower(string(data)), strings.TrimPrefix(auth.HashToken(probe), "sha256:"))
			if p != nil && !listed {
				t.Fatalf("token %q authenticated as %q without its hash in the file", probe, p.Subject)
			}
			if p != nil {
				_ = auth.Authorize(p, auth.PermDeploy, auth.Target{App: "a", Clusters: []string{"c"}})
			}
		}
	})
}
