package server

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/cutover-dev/cutover/internal/auth"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// BenchmarkGuardCheck is what authentication and authorisation add to
// one call: a tokens file of 1,000 subjects, a scoped deployer promoting
// an app by name.
func BenchmarkGuardCheck(b *testing.B) {
	file := "tokens:\n"
	var token string
	for i := range 1000 {
		tok, hash, err := auth.NewToken()
		if err != nil {
			b.Fatal(err)
		}
		if i == 500 {
			token = tok
		}
		entry, err := auth.EntryYAML("user-"+strconv.Itoa(i), hash, []auth.Grant{{Role: auth.RoleDeployer, Apps: []string{"payments-*"}}})
		if err != nil {
			b.Fatal(err)
		}
		file += "  " + strings.ReplaceAll(strings.TrimRight(entry, "\n"), "\n", "\n  ") + "\n"
	}
	set, err := auth.ParseTokens([]byte(file))
	if err != nil {
		b.Fatal(err)
	}
	g := &guard{authn: setAuthenticator{set}}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
	req := &cutoverv1.PromoteRolloutRequest{Name: "payments-api"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := g.check(ctx, cutoverv1.RolloutService_PromoteRollout_FullMethodName, req); err != nil {
			b.Fatal(err)
		}
	}
}

type setAuthenticator struct{ set *auth.TokenSet }

func (s setAuthenticator) Authenticate(_ context.Context, bearer string) (*auth.Principal, error) {
	if p := s.set.Lookup(bearer); p != nil {
		return p, nil
	}
	return nil, auth.ErrUnknownToken
}
