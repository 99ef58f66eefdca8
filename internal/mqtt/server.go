package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/zerotouch/zerotouch/internal/provisioning"
)

// WebSocketPath is where MQTT over WebSockets is served on the HTTPS
// listener (DPS's wss://host/$iothub/websocket, subprotocol "mqtt").
const WebSocketPath = "/$iothub/websocket"

// Listener IDs, as the broker and the logs name them.
const (
	listenerTLS = "mqtts"
	listenerWS  = "wss"
)

// Limits bound what one client, one address and everyone together can
// make the broker hold. Zero fields take DefaultLimits' values.
type Limits struct {
	// MaxPacketBytes bounds an MQTT packet a client sends; a larger one
	// closes its connection.
	MaxPacketBytes int
	// MaxInflight bounds the requests one connection has in progress; one
	// more is answered 429 with retry-after.
	MaxInflight int
	// IdleTimeout is the longest a connection may stay silent; a client's
	// keepalive × 1.5 applies when it is shorter.
	IdleTimeout time.Duration
	// ConnectTimeout bounds the TLS handshake and the CONNECT packet.
	ConnectTimeout time.Duration
	// MaxConnections bounds the open connections, and
	// MaxConnectionsPerIP those from one source address; a connection over
	// either is closed before its TLS handshake (over WebSockets, answered
	// 503 before the upgrade).
	MaxConnections      int
	MaxConnectionsPerIP int
}

// DefaultLimits are the limits where the configuration says nothing.
var DefaultLimits = Limits{
	MaxPacketBytes:      64 << 10,
	MaxInflight:         4,
	IdleTimeout:         4 * time.Minute,
	ConnectTimeout:      30 * time.Second,
	MaxConnections:      100_000,
	MaxConnectionsPerIP: 1_000,
}

func (l Limits) orDefaults() Limits {
	d := DefaultLimits
	if l.MaxPacketBytes > 0 {
		d.MaxPacketBytes = l.MaxPacketBytes
	}
	if l.MaxInflight > 0 {
		d.MaxInflight = l.MaxInflight
	}
	if l.IdleTimeout > 0 {
		d.IdleTimeout = l.IdleTimeout
	}
	if l.ConnectTimeout > 0 {
		d.ConnectTimeout = l.ConnectTimeout
	}
	if l.MaxConnections > 0 {
		d.MaxConnections = l.MaxConnections
	}
	if l.MaxConnectionsPerIP > 0 {
		d.MaxConnectionsPerIP = l.MaxConnectionsPerIP
	}
	return d
}

// Config is what the MQTT transport needs. Prov, IDScope and TLS are
// required.
type Config struct {
	Prov    *provisioning.Service
	IDScope string
	// TLS holds the server certificate (the HTTPS listener's). The MQTT
	// listener requests, never requires, a client certificate: devices
	// with symmetric keys use it too.
	TLS *tls.Config
	Log *slog.Logger
	// Locate, if set, is the region of a client (the geo policy), from its
	// address and, over WebSockets, the upgrade request's headers.
	Locate func(remoteAddr string, header http.Header) string
	Limits Limits
	// ShutdownGrace bounds how long requests in progress may finish when
	// Serve stops (20 s when zero).
	ShutdownGrace time.Duration
	// TLSHandshakeFailed, if set, is called with "mqtt" for every TLS
	// handshake on the MQTT listener that fails (including a client that
	// closes or times out before finishing it). WebSocket connections are
	// the HTTPS server's.
	TLSHandshakeFailed func(listener string)
}

// requestTimeout bounds one register or poll (as the HTTPS API bounds a
// request).
const requestTimeout = 60 * time.Second

// Server is DPS over MQTT: the broker, its DPS hook and its listeners.
type Server struct {
	cfg    Config
	limits Limits
	log    *slog.Logger
	tls    *tls.Config
	broker *mochi.Server
	conns  *connCounter
	ws     *wsListener

	// ctx is the parent of every request; stop cancels it once the grace
	// after a stop has passed.
	ctx  context.Context
	stop context.CancelFunc
	// mu guards draining and the ops count's increments.
	mu       sync.Mutex
	draining bool
	ops      sync.WaitGroup
	served   atomic.Bool
}

// New builds the broker and its hook; Serve runs it.
func New(cfg Config) (*Server, error) {
	if cfg.Prov == nil || cfg.IDScope == "" {
		return nil, errors.New("mqtt: the provisioning service and an ID scope are required")
	}
	if cfg.TLS == nil || len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil {
		return nil, errors.New("mqtt: a TLS server certificate is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 20 * time.Second
	}
	s := &Server{cfg: cfg, limits: cfg.Limits.orDefaults(), log: cfg.Log}
	s.conns = &connCounter{max: s.limits.MaxConnections, maxPerIP: s.limits.MaxConnectionsPerIP, perIP: map[string]int{}}
	s.ctx, s.stop = context.WithCancel(context.Background())

	s.tls = cfg.TLS.Clone()
	s.tls.MinVersion = max(s.tls.MinVersion, tls.VersionTLS12)
	// As on the HTTPS listener: X.509 devices present a certificate,
	// symmetric-key devices do not. Go checks possession of the leaf's
	// key; attestation verifies the chain against the enrollment.
	s.tls.ClientAuth = tls.RequestClientCert
	s.tls.NextProtos = nil

	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(s.limits.MaxConnections)
	caps.MaximumPacketSize = uint32(s.limits.MaxPacketBytes)
	caps.ReceiveMaximum = uint16(s.limits.MaxInflight)
	caps.MaximumInflight = uint16(s.limits.MaxInflight)
	// Answers are written straight to their connection, never queued.
	caps.MaximumClientWritesPending = 4
	caps.MaximumSessionExpiryInterval = 0
	caps.MaximumMessageExpiryInterval = 60
	caps.MinimumProtocolVersion = 4 // MQTT 3.1.1; the hook refuses 5
	caps.RetainAvailable = 0
	caps.SharedSubAvailable = 0
	caps.SubIDAvailable = 0
	caps.TopicAliasMaximum = 0
	s.broker = mochi.New(&mochi.Options{
		Capabilities: caps,
		Logger:       slog.New(debugOnly{cfg.Log.Handler()}),
		// $SYS topics are published to nobody (no client may subscribe to
		// them); an hour keeps their ticker quiet.
		SysTopicResendInterval: 3600,
	})
	if err := s.broker.AddHook(&hook{srv: s}, nil); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	s.ws = &wsListener{srv: s}
	if err := s.broker.AddListener(s.ws); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	return s, nil
}

// Serve serves MQTT over TLS on lis (nil: WebSockets only) until ctx
// ends, then stops taking connections, lets requests in progress answer
// within the shutdown grace, and closes the connections left. It returns
// an error if lis fails.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("mqtt: Serve called twice")
	}
	failed := make(chan error, 1)
	if lis != nil {
		if err := s.broker.AddListener(&tlsListener{srv: s, lis: lis, failed: failed}); err != nil {
			return fmt.Errorf("mqtt: %w", err)
		}
		s.log.Info("serving DPS over MQTT", "addr", lis.Addr().String())
	}
	if err := s.broker.Serve(); err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-failed:
	}
	if lis != nil {
		lis.Close() // no new connections while requests finish
	}
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.ops.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownGrace):
		s.stop()
		<-done
	}
	s.stop()
	_ = s.broker.Close()
	return serveErr
}

// WebSocket serves MQTT over WebSockets (mount it at WebSocketPath). It
// answers 503 until Serve runs and once it stops.
func (s *Server) WebSocket() http.Handler { return s.ws }

// begin counts a request in progress, unless the server is stopping.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.ops.Add(1)
	return true
}

func (s *Server) accepting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.draining
}

// tlsListener accepts MQTT over TLS on a listener the caller opened.
type tlsListener struct {
	srv    *Server
	lis    net.Listener
	failed chan<- error
	closed atomic.Bool
}

func (l *tlsListener) ID() string              { return listenerTLS }
func (l *tlsListener) Address() string         { return l.lis.Addr().String() }
func (l *tlsListener) Protocol() string        { return "mqtts" }
func (l *tlsListener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until the listener closes. A connection over
// the limits is closed before its TLS handshake, the costly part.
func (l *tlsListener) Serve(establish listeners.EstablishFn) {
	var backoff time.Duration
	for {
		c, err := l.lis.Accept()
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.srv.log.Warn("mqtt accept", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-l.srv.ctx.Done():
				return
			}
		}
		backoff = 0
		release, ok := l.srv.conns.acquire(c.RemoteAddr())
		if !ok {
			l.srv.log.Debug("mqtt connection over the limits closed", "peer", c.RemoteAddr().String())
			c.Close()
			continue
		}
		_ = c.SetDeadline(time.Now().Add(l.srv.limits.ConnectTimeout))
		tc := tls.Server(c, l.srv.tls)
		dc := &deviceConn{Conn: tc, transport: provisioning.TransportMQTT, release: release}
		go func() {
			// The handshake first, on its own, so that its failures are
			// told apart from the broker's.
			if err := tc.HandshakeContext(l.srv.ctx); err != nil {
				l.srv.log.Debug("mqtt TLS handshake failed", "peer", dc.RemoteAddr().String(), "err", err)
				if f := l.srv.cfg.TLSHandshakeFailed; f != nil {
					f("mqtt")
				}
				dc.Close()
				return
			}
			if err := establish(listenerTLS, dc); err != nil {
				l.srv.log.Debug("mqtt connection ended", "peer", dc.RemoteAddr().String(), "err", err)
			}
			l.srv.forget(dc)
		}()
	}
}

// Close stops accepting and disconnects the listener's clients.
func (l *tlsListener) Close(closeClients listeners.CloseFn) {
	l.closed.Store(true)
	l.lis.Close()
	closeClients(listenerTLS)
}

// debugOnly logs the broker's own messages at debug: the transport logs
// what operators need (connections refused, registrations).
type debugOnly struct{ h slog.Handler }

func (d debugOnly) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d debugOnly) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return d.h.Handle(ctx, r)
}

func (d debugOnly) WithAttrs(as []slog.Attr) slog.Handler { return debugOnly{d.h.WithAttrs(as)} }
func (d debugOnly) WithGroup(n string) slog.Handler       { return debugOnly{d.h.WithGroup(n)} }

// maxKeepalive is the keepalive whose deadline (× 1.5) is the idle
// timeout.
func (s *Server) maxKeepalive() uint16 {
	return uint16(min(math.MaxUint16, max(1, int(s.limits.IdleTimeout/time.Second)*2/3)))
}
