package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/zerotouch/zerotouch/internal/provisioning"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	httpPeerKey
	regionKey
)

// withRegion records where the transport located the client (the geo
// policy); the device services put it in the registration request.
func withRegion(ctx context.Context, region string) context.Context {
	if region == "" {
		return ctx
	}
	return context.WithValue(ctx, regionKey, region)
}

func regionOf(ctx context.Context) string {
	r, _ := ctx.Value(regionKey).(string)
	return r
}

// transportOf says whether the call came through the REST gateway.
func transportOf(ctx context.Context) provisioning.Transport {
	if _, ok := ctx.Value(httpPeerKey).(httpPeer); ok {
		return provisioning.TransportREST
	}
	return provisioning.TransportGRPC
}

// httpPeer is what the REST transport knows of its client; the gateway
// calls services in-process, so the TLS state travels in the context.
type httpPeer struct {
	addr string
	tls  *tls.ConnectionState
}

func withHTTPPeer(ctx context.Context, addr string, state *tls.ConnectionState) context.Context {
	return context.WithValue(ctx, httpPeerKey, httpPeer{addr: addr, tls: state})
}

// peerInfo returns the client address and TLS state of the caller, over
// either transport.
func peerInfo(ctx context.Context) (string, *tls.ConnectionState) {
	if hp, ok := ctx.Value(httpPeerKey).(httpPeer); ok {
		return hp.addr, hp.tls
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", nil
	}
	addr := ""
	if p.Addr != nil {
		addr = p.Addr.String()
	}
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		return addr, &info.State
	}
	return addr, nil
}

// maxRequestIDLength bounds a client-supplied request ID.
const maxRequestIDLength = 64

// newRequestID takes the caller's x-request-id if it is short and plain,
// else makes one.
func newRequestID(given string) string {
	if given != "" && len(given) <= maxRequestIDLength {
		plain := true
		for i := 0; i < len(given); i++ {
			c := given[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				plain = false
				break
			}
		}
		if plain {
			return given
		}
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func firstMetadata(ctx context.Context, key string) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
