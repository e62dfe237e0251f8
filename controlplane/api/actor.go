package api

import (
	"context"
	"net"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/cutover-dev/cutover/internal/auth"
)

// actor names who made a call, for history, timelines and the audit trail:
// the authenticated subject, or, in the loopback-only open mode, the
// caller's address (the client's own for REST, which the gateway forwards;
// the peer's for gRPC).
func actor(ctx context.Context) string {
	if p, ok := auth.PrincipalFrom(ctx); ok {
		return p.Subject
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-forwarded-for"); len(v) > 0 && v[0] != "" {
			return "anonymous@" + v[0]
		}
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		host, _, err := net.SplitHostPort(p.Addr.String())
		if err != nil {
			host = p.Addr.String()
		}
		return "anonymous@" + host
	}
	return "anonymous"
}
