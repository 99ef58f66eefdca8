package server

import (
	"bytes"
	"io"
	"log"
	"log/slog"
	"net"

	"google.golang.org/grpc/credentials"
)

// handshakeCounter calls failed for every gRPC server TLS handshake that
// fails.
type handshakeCounter struct {
	credentials.TransportCredentials
	failed func()
}

func (c handshakeCounter) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.failed()
	}
	return out, info, err
}

func (c handshakeCounter) Clone() credentials.TransportCredentials {
	return handshakeCounter{TransportCredentials: c.TransportCredentials.Clone(), failed: c.failed}
}

// tlsHandshakeError starts the line net/http's server logs for each
// failed TLS handshake (the only hook it offers for them).
var tlsHandshakeError = []byte("http: TLS handshake error from ")

// errorLog is the REST server's error log: every line at debug, and, when
// failed is set, failed("http") for each failed TLS handshake.
func errorLog(l *slog.Logger, failed func(listener string)) *log.Logger {
	inner := slog.NewLogLogger(l.Handler(), slog.LevelDebug)
	if failed == nil {
		return inner
	}
	return log.New(handshakeLog{next: inner.Writer(), failed: failed}, "", 0)
}

type handshakeLog struct {
	next   io.Writer
	failed func(listener string)
}

func (h handshakeLog) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, tlsHandshakeError) {
		h.failed("http")
	}
	return h.next.Write(p)
}
