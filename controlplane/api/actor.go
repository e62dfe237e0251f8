package api

import (
	"context"
	"net"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// actor names who made a call, for history and timelines. Until callers
// authenticate it is the caller's address: the client's own for REST (the
// gateway forwards it), the peer's for gRPC.
func actor(ctx context.Context) string {
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
